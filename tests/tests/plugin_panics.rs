//! Plugin panics: caught at the boundary, routed where the host says (not printed by
//! the plugin's own standard library), and not pinning the plugin in memory.
#![cfg(target_os = "linux")]

use fidius::CallError;
use fidius_hotreload::{HotPlugin, ReloadEvent, UnloadState};
use fidius_tests::{recv_until, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::sync::{mpsc, Arc, Barrier};

/// A build that panicked 1000 times on 8 host threads, which are all still alive,
/// leaves memory when it is swapped out: printing a panic in the plugin would have
/// registered thread-local destructors on each of those threads, and glibc cannot
/// unmap a library while one of its destructors is registered.
#[test]
fn a_plugin_that_panicked_a_thousand_times_on_eight_threads_unloads() {
    let dir = HotDir::new("panics");
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .watch(false)
        .build()
        .unwrap();
    let rx = hot.subscribe();
    let client = Arc::new(VersionedClient::new(hot.handle()).unwrap());
    let release = Arc::new(Barrier::new(9));
    let (done_tx, done_rx) = mpsc::channel();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let release = release.clone();
            let done = done_tx.clone();
            std::thread::Builder::new()
                .name("host-worker".into())
                .spawn(move || {
                    for _ in 0..125 {
                        match client.work(1) {
                            Err(CallError::Panic(message)) => {
                                assert!(message.contains("a broken build"), "{message}")
                            }
                            other => panic!("expected a caught panic, got {other:?}"),
                        }
                    }
                    done.send(()).unwrap();
                    // Alive until the old version's unload has been judged.
                    release.wait();
                })
                .unwrap()
        })
        .collect();
    for _ in 0..8 {
        done_rx.recv().unwrap();
    }
    dir.deploy("v1", Deploy::Rename);
    hot.reload_now().unwrap();
    let events = recv_until(&rx, |e| matches!(e, ReloadEvent::Unloaded { .. }));
    release.wait();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        matches!(
            events.last(),
            Some(ReloadEvent::Unloaded {
                generation: 1,
                state: UnloadState::Unmapped
            })
        ),
        "{events:#?}"
    );
}

/// Counts the `fidius::plugin_panic` events at each level, and keeps their messages.
#[derive(Default)]
struct PanicEvents(std::sync::Mutex<Vec<(tracing::Level, String)>>);

struct MessageOf<'a>(&'a mut String);

impl tracing::field::Visit for MessageOf<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "panic" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for &'static PanicEvents {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "fidius::plugin_panic" {
            let mut message = String::new();
            event.record(&mut MessageOf(&mut message));
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), message));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A plugin's panic reaches the host's `tracing`, at the level the host sets, or
/// nowhere; and its caller gets it as `CallError::Panic` either way.
#[test]
fn panics_go_where_the_host_routes_them() {
    use calc_interface::CalculatorClient;
    use fidius::panics::{route_plugin_panics, PanicRoute};
    let (_dir, lib) = fidius_tests::private_copy("calc-plugins");
    let handle = fidius::PluginHost::builder()
        .build()
        .load_from(&lib, "BasicCalc")
        .unwrap();
    let calc = CalculatorClient::new(handle).unwrap();
    let events: &'static PanicEvents = Box::leak(Box::default());
    tracing::subscriber::with_default(events, || {
        route_plugin_panics(PanicRoute::Trace(tracing::Level::WARN));
        let err = calc.boom("routed".into()).unwrap_err();
        assert!(
            matches!(&err, CallError::Panic(m) if m == "routed"),
            "{err:?}"
        );
        route_plugin_panics(PanicRoute::Nowhere);
        calc.boom("dropped".into()).unwrap_err();
        route_plugin_panics(PanicRoute::default());
    });
    let seen = events.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, tracing::Level::WARN);
    assert!(seen[0].1.contains("routed"), "{seen:?}");
}

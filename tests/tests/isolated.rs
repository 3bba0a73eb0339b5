//! Isolated plugins: real plugin libraries in real child processes (this test binary
//! started again, taken over by fidius-isolated's runner before `main`), crashing,
//! hanging and hogging memory while the host carries on.
#![cfg(target_os = "linux")]

use calc_interface::{Calculator, CalculatorClient};
use fidius::host::{LoadError, PluginLibrary};
use fidius::{CallError, ProcessExit};
use fidius_isolated::{IsolatedEvent, IsolatedPlugin, ProcessEnd, StartError};
use fidius_tests::fixture;
use misbehave_interface::{Misbehave, MisbehaveClient};
use std::time::{Duration, Instant};

fn misbehaving() -> fidius_isolated::IsolatedBuilder {
    IsolatedPlugin::builder::<dyn Misbehave>(fixture("misbehave-plugin"), "Misbehaving")
}

#[test]
fn the_typed_client_works_across_the_process_boundary() {
    let plugin = IsolatedPlugin::builder::<dyn Calculator>(fixture("calc-plugins"), "BasicCalc")
        .build()
        .unwrap();
    let calc = CalculatorClient::new(plugin.handle()).unwrap();
    assert_eq!(calc.add(2, 3).unwrap(), 5);
    assert_eq!(calc.sub(2, 3).unwrap(), -1);
    assert_eq!(calc.concat("a".into(), "b".into(), '-').unwrap(), "a-b");
    assert_eq!(calc.echo(vec![1, 2, 3]).unwrap(), [1, 2, 3]);
    assert_eq!(calc.reverse_raw(vec![1, 2, 3]).unwrap(), [3, 2, 1]);
    assert_eq!(calc.stats().unwrap().name, "basic");
    // Optional methods, `Result` methods and panics behave as in-process.
    assert!(calc.has_square());
    assert_eq!(calc.square(7).unwrap(), 49);
    match calc.divide(1, 0) {
        Err(CallError::Plugin(e)) => assert!(!e.code.is_empty(), "{e}"),
        other => panic!("{other:?}"),
    }
    let pid = plugin.status().pid.unwrap();
    match calc.boom("on purpose".into()) {
        Err(CallError::Panic(message)) => assert!(message.contains("on purpose"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(calc.add(1, 1).unwrap(), 2);
    assert_eq!(
        plugin.status().pid,
        Some(pid),
        "a panic does not end the process"
    );
    assert_eq!(plugin.status().restarts, 0);
    // Dynamic calls, without the interface crate.
    let out = plugin
        .handle()
        .call_dynamic("add", &[fidius::Value::from(40), fidius::Value::from(2)])
        .unwrap();
    assert_eq!(out, fidius::Value::from(42));
    assert_ne!(pid, std::process::id());
}

/// A refused plugin gives the same `LoadError` as an in-process load.
#[test]
fn refusals_are_the_in_process_load_errors() {
    let isolated = |path: std::path::PathBuf, name: &str| match IsolatedPlugin::builder::<
        dyn Misbehave,
    >(&path, name)
    .build()
    {
        Err(StartError::Load(e)) => e,
        other => panic!("{other:?}"),
    };
    // Another interface.
    let calc = fixture("calc-plugins");
    let in_process = PluginLibrary::open(&calc)
        .unwrap()
        .handle(
            "BasicCalc",
            Some(&<dyn Misbehave as fidius::Interface>::INFO),
        )
        .unwrap_err();
    let across = isolated(calc, "BasicCalc");
    assert!(
        matches!(across, LoadError::InterfaceName { .. }),
        "{across}"
    );
    assert_eq!(across.to_string(), in_process.to_string());
    // No such plugin.
    let across = isolated(fixture("misbehave-plugin"), "Nobody");
    assert!(
        matches!(across, LoadError::PluginNotFound { .. }),
        "{across}"
    );
    // Not a plugin at all.
    let across = isolated(fixture("not-a-plugin"), "Anything");
    assert!(
        matches!(across, LoadError::MissingRegistry { .. }),
        "{across}"
    );
    // Not even a file.
    let across = isolated("/nonexistent/libnothing.so".into(), "Anything");
    assert!(
        across.to_string().contains("/nonexistent/libnothing.so"),
        "{across}"
    );
}

#[test]
fn a_crash_is_contained_reported_and_the_next_call_is_served() {
    let plugin = misbehaving().build().unwrap();
    let events = plugin.subscribe();
    let client = MisbehaveClient::new(plugin.handle()).unwrap();
    let first = client.pid().unwrap();
    for (how, expected) in [
        (
            "segfault",
            ProcessExit::Signal {
                signal: 11,
                name: "SIGSEGV".into(),
            },
        ),
        (
            "abort",
            ProcessExit::Signal {
                signal: 6,
                name: "SIGABRT".into(),
            },
        ),
        ("exit", ProcessExit::Exited { code: 7 }),
    ] {
        let before = client.pid().unwrap();
        match client.crash(how.into()) {
            Err(CallError::Crashed { exit, stderr, .. }) => {
                assert_eq!(exit, expected, "{how}");
                if how == "abort" {
                    assert!(
                        stderr.iter().any(|l| l.contains("aborting on request")),
                        "{stderr:?}"
                    );
                }
            }
            other => panic!("{how}: {other:?}"),
        }
        let after = client.pid().unwrap();
        assert_ne!(before, after, "{how}: a new process serves");
        assert_eq!(client.add(2, 2).unwrap(), 4);
    }
    assert_ne!(first, client.pid().unwrap());
    let status = plugin.status();
    assert_eq!(status.restarts, 3);
    assert!(matches!(
        status.last_end,
        Some((
            ProcessEnd::Crashed {
                exit: ProcessExit::Exited { code: 7 },
                ..
            },
            _
        ))
    ));
    let ended = events
        .try_iter()
        .filter(|e| matches!(e, IsolatedEvent::Ended { .. }))
        .count();
    assert_eq!(ended, 3);
}

#[test]
fn an_endless_call_times_out_within_its_deadline_and_the_next_is_served() {
    let deadline = Duration::from_millis(300);
    let plugin = misbehaving().deadline(deadline).build().unwrap();
    let client = MisbehaveClient::new(plugin.handle()).unwrap();
    let before = client.pid().unwrap();
    // Calls running in the same process at the time fail too, and say why.
    let slow = {
        let client = MisbehaveClient::new(plugin.handle().without_deadline()).unwrap();
        std::thread::spawn(move || client.sleep_ms(5_000))
    };
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    match client.spin() {
        Err(CallError::Timeout {
            method,
            deadline: d,
            ..
        }) => {
            assert_eq!(method, "spin");
            assert_eq!(d, deadline);
        }
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(took >= deadline, "{took:?}");
    // The contract is the deadline plus 10 ms; a shared test machine gets slack.
    assert!(took < deadline + Duration::from_millis(250), "{took:?}");
    match slow.join().unwrap() {
        Err(CallError::ProcessKilled { reason, .. }) => {
            assert!(reason.contains("`spin` passed its deadline"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.add(1, 2).unwrap(), 3);
    assert_ne!(client.pid().unwrap(), before);
}

#[test]
fn a_plugin_past_its_memory_limit_is_reported_as_such() {
    let limit = 1 << 30;
    let plugin = misbehaving().memory_limit(limit).build().unwrap();
    let client = MisbehaveClient::new(plugin.handle()).unwrap();
    match client.hog() {
        Err(CallError::Crashed { exit, stderr, .. }) => {
            assert_eq!(exit, ProcessExit::MemoryLimit { limit }, "{stderr:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.echo("still here".into()).unwrap(), "still here");
}

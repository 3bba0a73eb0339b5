//! Isolated plugins: real plugin libraries in real child processes (this test binary
//! started again, taken over by fidius-isolated's runner before `main`), crashing,
//! hanging and hogging memory while the host carries on.
#![cfg(target_os = "linux")]

use calc_interface::{Calculator, CalculatorClient};
use fidius::host::{LoadError, PluginLibrary};
use fidius::{CallError, ProcessExit};
use fidius_isolated::{IsolatedEvent, IsolatedPlugin, ProcessEnd, StartError};
use fidius_tests::{fixture, live_children, running};
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
        matches!(
            across,
            LoadError::InterfaceMismatch {
                mismatch: fidius::InterfaceMismatch::Name { .. },
                ..
            }
        ),
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

#[path = "../../fidius-hotreload/tests/support/forbid_membarrier.rs"]
#[allow(dead_code)]
mod support;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// 100 crashes under four calling threads: every call ends (a result or an error
/// that says what happened), the host survives, and once the plugin is let go no
/// process or file descriptor is left. Runs alone in a child process, so that other
/// tests' processes and descriptors do not count.
#[test]
fn a_hundred_crashes_under_four_callers_leave_nothing_behind() {
    if !support::in_child_process("a_hundred_crashes_under_four_callers_leave_nothing_behind") {
        return;
    }
    const CRASHES: u64 = 100;
    let fds_before = open_fds();
    {
        let plugin = misbehaving().build().unwrap();
        // A deadline far above any real call: a hang fails the test instead of
        // stalling it.
        let handle = plugin.handle().with_deadline(Duration::from_secs(20));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let callers: Vec<_> = (0..3)
            .map(|i| {
                let client = MisbehaveClient::new(handle.clone()).unwrap();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match client.add(i, 1) {
                            Ok(sum) => {
                                assert_eq!(sum, i + 1);
                                ok += 1;
                            }
                            Err(CallError::Crashed { .. }) => failed += 1,
                            Err(other) => panic!("caller {i}: {other}"),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let crasher = MisbehaveClient::new(handle.clone()).unwrap();
        for round in 0..CRASHES {
            match crasher.crash("segfault".into()) {
                Err(CallError::Crashed { .. }) => {}
                other => panic!("round {round}: {other:?}"),
            }
            // Served again before the next crash.
            assert_eq!(crasher.add(1, 1).unwrap(), 2, "round {round}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut ok, mut failed) = (0, 0);
        for caller in callers {
            let (o, f) = caller.join().unwrap();
            ok += o;
            failed += f;
        }
        eprintln!("{CRASHES} crashes: {ok} calls served, {failed} crashed under their caller");
        assert!(ok > 0);
        assert_eq!(plugin.status().restarts, CRASHES);
    }
    // Letting the plugin go kills its process; its watcher reaps it.
    let until = Instant::now() + Duration::from_secs(5);
    while !live_children().is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(live_children(), Vec::<u32>::new(), "plugin processes left");
    let until = Instant::now() + Duration::from_secs(5);
    while open_fds() > fds_before && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(open_fds(), fds_before, "file descriptors left");
}

/// A host killed with SIGKILL takes its plugin processes with it within a second:
/// they exit when their connection to it closes. The host is this test binary in a
/// child process.
#[test]
fn plugin_processes_do_not_outlive_a_host_killed_by_sigkill() {
    const HOST: &str = "FIDIUS_TEST_ISOLATED_HOST";
    const NAME: &str = "plugin_processes_do_not_outlive_a_host_killed_by_sigkill";
    if std::env::var_os(HOST).is_some() {
        let plugins: Vec<_> = (0..2).map(|_| misbehaving().build().unwrap()).collect();
        // One of them busy in an endless call: it must go too.
        let busy = MisbehaveClient::new(plugins[0].handle()).unwrap();
        std::thread::spawn(move || busy.spin());
        let pids: Vec<String> = plugins
            .iter()
            .map(|p| p.status().pid.unwrap().to_string())
            .collect();
        println!("plugin pids: {}", pids.join(" "));
        std::thread::sleep(Duration::from_secs(60));
        panic!("the host was not killed");
    }
    use std::io::BufRead;
    let mut host = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(HOST, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(host.stdout.take().unwrap()).lines();
    let pids: Vec<u32> = loop {
        let line = lines.next().expect("the host said nothing").unwrap();
        // libtest may have begun the line ("test <name> ... ").
        if let Some((_, pids)) = line.split_once("plugin pids: ") {
            break pids.split(' ').map(|p| p.parse().unwrap()).collect();
        }
    };
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| running(p)));
    std::thread::sleep(Duration::from_millis(100));
    host.kill().unwrap();
    host.wait().unwrap();
    let killed = Instant::now();
    while pids.iter().any(|&p| running(p)) && killed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone_after = killed.elapsed();
    eprintln!("plugin processes gone {gone_after:?} after the host was killed");
    assert!(
        pids.iter().all(|&p| !running(p)),
        "plugin processes outlived the host"
    );
    assert!(gone_after < Duration::from_secs(1), "{gone_after:?}");
}

/// A stream crosses the boundary item by item, errors and panics included; dropping
/// one early stops its producer in the plugin process.
#[test]
fn streams_cross_the_boundary_and_dropping_one_stops_its_producer() {
    use stream_interface::{Streams, StreamsClient};
    let plugin = IsolatedPlugin::builder::<dyn Streams>(fixture("stream-plugin"), "StreamSource")
        .workers(2)
        .build()
        .unwrap();
    let client = StreamsClient::new(plugin.handle()).unwrap();
    let all: Vec<u64> = client.numbers(1000).unwrap().map(Result::unwrap).collect();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert_eq!(client.nothing().unwrap().count(), 0);
    let failing: Vec<_> = client.fail_after(3).unwrap().collect();
    assert_eq!(failing.len(), 4, "{failing:?}");
    assert!(
        matches!(failing[3], Err(CallError::Plugin(_))),
        "{failing:?}"
    );
    let panicking: Vec<_> = client.panic_after(2).unwrap().collect();
    assert!(
        matches!(panicking[2], Err(CallError::Panic(_))),
        "{panicking:?}"
    );
    for (i, blob) in client.blobs(4, 1 << 20).unwrap().enumerate() {
        let blob = blob.unwrap();
        assert_eq!(blob.len(), 1 << 20);
        assert!(blob.iter().all(|&b| b == i as u8));
    }
    // Dropped early: the producer in the plugin process goes.
    let mut endless = client.numbers(u64::MAX).unwrap();
    assert_eq!(endless.next().unwrap().unwrap(), 0);
    assert_eq!(endless.next().unwrap().unwrap(), 1);
    assert_eq!(client.live().unwrap(), 1);
    drop(endless);
    let until = Instant::now() + Duration::from_secs(5);
    while client.live().unwrap() != 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(client.live().unwrap(), 0, "the producer was stopped");
    // Without the interface crate.
    let dynamic: Vec<_> = plugin
        .handle()
        .call_dynamic_stream("numbers", &[fidius::Value::from(3)])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(dynamic.len(), 3);
    assert_eq!(plugin.status().restarts, 0);
}

/// A plugin that forks a copy of itself (which holds every connection to the host
/// open) and then crashes: the crash is still noticed at once, and the copy is
/// killed with it (a plugin process is a process group of its own).
#[test]
fn a_crash_that_leaves_a_forked_copy_behind_is_noticed_and_the_copy_killed() {
    let plugin = misbehaving().build().unwrap();
    let client = MisbehaveClient::new(plugin.handle()).unwrap();
    let pid = client.pid().unwrap();
    let started = Instant::now();
    match client.crash("fork-then-segfault".into()) {
        Err(CallError::Crashed { exit, .. }) => {
            assert_eq!(exit.to_string(), "was killed by signal 11 (SIGSEGV)")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.add(1, 1).unwrap(), 2);
    // Nothing is left in the dead process's group.
    let group_members = || {
        fidius_tests::live_processes()
            .iter()
            .filter(|(_, stat)| stat.pgrp == pid)
            .count()
    };
    let until = Instant::now() + Duration::from_secs(2);
    while group_members() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(group_members(), 0, "the forked copy outlived the crash");
}

/// A panic in the caller's own decoding, between sending a call and giving its
/// connection back, loses no worker: with one worker, the next call is served.
#[test]
fn a_panic_while_decoding_loses_no_worker() {
    use fidius::PluginCaller;
    let plugin = misbehaving().workers(1).build().unwrap();
    let handle = plugin.handle().with_deadline(Duration::from_secs(10));
    let index = handle.info().method("add").unwrap().index;
    let input = fidius::wire::encode(&(1i64, 2i64)).unwrap();
    for _ in 0..3 {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle.call_with(index, &input, |_| -> Result<(), CallError> {
                panic!("decoding")
            })
        }));
        assert!(panicked.is_err());
    }
    let client = MisbehaveClient::new(handle).unwrap();
    assert_eq!(client.add(1, 2).unwrap(), 3);
}

/// A runner that is not one (it exits at once, or does not exist) is refused with an
/// error that says what to do.
#[test]
fn a_runner_that_does_not_take_over_is_explained() {
    for runner in ["/bin/true", "/nonexistent/runner"] {
        match misbehaving()
            .runner(runner)
            .start_timeout(Duration::from_secs(5))
            .build()
        {
            Err(e @ StartError::Runner { .. }) => {
                let text = e.to_string();
                assert!(text.contains(runner), "{text}");
                assert!(text.contains("run_if_plugin_process"), "{text}");
            }
            other => panic!("{runner}: {other:?}"),
        }
    }
}

/// Every process, restarts included, loads the file the plugin was started from,
/// even after its path names another build; `stop` ends the process for good.
#[test]
fn restarts_load_the_same_file_and_stop_ends_the_plugin() {
    let (_dir, path) = fidius_tests::private_copy("misbehave-plugin");
    let plugin = IsolatedPlugin::builder::<dyn Misbehave>(&path, "Misbehaving")
        .build()
        .unwrap();
    let client = MisbehaveClient::new(plugin.handle()).unwrap();
    // Another library now at that path (renamed into place, as a deploy does).
    let staged = path.with_extension("staged");
    std::fs::copy(fixture("calc-plugins"), &staged).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    assert!(matches!(
        client.crash("exit".into()),
        Err(CallError::Crashed { .. })
    ));
    assert_eq!(
        client.add(2, 2).unwrap(),
        4,
        "the restart loaded the original"
    );
    assert_eq!(plugin.status().restarts, 1);
    let pid = plugin.status().pid.unwrap();
    plugin.stop();
    assert!(!running(pid), "stop waits for the process to end");
    assert_eq!(plugin.status().pid, None);
    assert!(matches!(
        client.add(1, 1),
        Err(CallError::Unavailable { .. })
    ));
}

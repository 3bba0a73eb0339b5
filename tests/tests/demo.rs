//! The demo, end to end: the tour's own checks, and the interactive service.

use fidius_tests::demo_app;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_tour_passes_all_its_checks() {
    let (app, target) = demo_app();
    let out = Command::new(app)
        .arg("--tour")
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tour failed:\n{stdout}\n{stderr}");
    for line in [
        "[tour]   ok: the rebuilt plugin was swapped in",
        "[tour]   ok: new calls reach it: uppercase 1.1-tour",
        "[tour]   ok: the broken build was rejected",
        "[tour]   ok: the good version keeps serving: uppercase 1.1-tour",
        "[tour]   ok: zero failed requests (0)",
        "[tour]   ok: the panicking build was rolled back",
        "[tour]   ok: its count of lines carried over:",
        "[tour]   ok: its build is quarantined until the file changes",
        "[tour] all checks passed",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    #[cfg(target_os = "linux")]
    for line in [
        "[tour]   ok: the segmentation fault ended the call with CallError::Crashed, and the demo is still up",
        "[tour]   ok: the next call is served by a new process",
        "[tour]   ok: the endless call returned CallError::Timeout after",
        "[tour]   ok: two processes replaced, the host never restarted",
        "[tour]   ok: the hot-reloading plugins served on meanwhile",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    assert!(
        stdout.contains("[reload] Uppercase: swapped generation 1 -> 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[reload] Uppercase: REJECTED at the load stage"),
        "{stdout}"
    );
}

#[cfg(unix)]
#[test]
fn the_service_transforms_lines_and_stops_cleanly_on_ctrl_c() {
    let (app, target) = demo_app();
    let mut child = Command::new(app)
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let read_until = |stdout: &mut BufReader<_>, seen: &mut String, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut line = String::new();
        while !seen.contains(want) {
            assert!(Instant::now() < deadline, "no `{want}` in:\n{seen}");
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("the demo exited early:\n{seen}");
            }
            seen.push_str(&line);
        }
    };
    read_until(&mut stdout, &mut seen, "Ctrl-C to stop");
    assert!(seen.contains("Uppercase: uppercase 1.0"), "{seen}");
    assert!(seen.contains("Redact: redact 1.0"), "{seen}");
    assert!(
        seen.contains("cargo build -p uppercase"),
        "tells the user what to run:\n{seen}"
    );

    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "room 101").unwrap();
    read_until(&mut stdout, &mut seen, "Redact: room ###");
    read_until(&mut stdout, &mut seen, "Uppercase: ROOM 101");
    #[cfg(target_os = "linux")]
    {
        // The isolated plugin: a crash and an endless call cost one call each.
        read_until(&mut stdout, &mut seen, "): moor 101");
        writeln!(stdin, "crash").unwrap();
        read_until(&mut stdout, &mut seen, "was killed by signal 11 (SIGSEGV)");
        writeln!(stdin, "hang").unwrap();
        read_until(&mut stdout, &mut seen, "passed its deadline");
        writeln!(stdin, "still here").unwrap();
        read_until(&mut stdout, &mut seen, "): llits ereh");
    }

    // Through the shell's `kill`, which every Unix has, whatever else is installed.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    read_until(&mut stdout, &mut seen, "summary:");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}\n{seen}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    seen.push_str(&rest);
    assert!(seen.contains("failures 0"), "{seen}");
}

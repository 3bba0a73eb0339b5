//! The `fidius` command-line tool against real plugin libraries.

use fidius_tests::{fidius_tool, fixture, private_copy};
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(fidius_tool()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn describe_prints_every_plugin_as_json() {
    let lib = fixture("calc-plugins");
    let (code, out, err) = run(&["describe", lib.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let plugins = json["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 2);
    let basic = plugins.iter().find(|p| p["name"] == "BasicCalc").unwrap();
    assert_eq!(basic["interface"], "Calculator");
    assert_eq!(basic["trait_metadata"]["category"], "math");
    let concat = basic["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "concat")
        .unwrap();
    assert_eq!(
        concat["arguments"],
        serde_json::json!(["String", "String", "char"])
    );
    assert_eq!(concat["returns"], "String");
    assert_eq!(concat["wire"], "messagepack");
    let raw = basic["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "reverse_raw")
        .unwrap();
    assert_eq!(raw["wire"], "raw");
}

#[test]
fn call_takes_and_prints_json() {
    let lib = fixture("calc-plugins");
    let lib = lib.to_str().unwrap();
    assert_eq!(
        run(&["call", lib, "BasicCalc", "add", "[40, 2]"]).1.trim(),
        "42"
    );
    assert_eq!(
        run(&["call", lib, "BasicCalc", "concat", r#"["a", "b", "+"]"#])
            .1
            .trim(),
        r#""a+b""#
    );
    let (_, out, _) = run(&["call", lib, "BasicCalc", "stats"]);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["name"], "basic");
}

#[test]
fn streams_print_one_value_per_line() {
    let lib = fixture("stream-plugin");
    let (code, out, err) = run(&[
        "call",
        lib.to_str().unwrap(),
        "StreamSource",
        "numbers",
        "[3]",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["0", "1", "2"]);
}

#[test]
fn errors_have_clear_messages_and_exit_codes() {
    let lib = fixture("calc-plugins");
    let lib = lib.to_str().unwrap();
    let (code, _, err) = run(&["call", lib, "BasicCalc", "divide", "[1, 0]"]);
    assert_eq!(code, 1);
    assert!(err.contains("DIV_ZERO"), "{err}");
    // A panic is reported once, as the call's error: the plugin prints nothing of
    // its own (no "panicked at", no backtrace).
    let (code, _, err) = run(&["call", lib, "BasicCalc", "boom", r#"["kaboom"]"#]);
    assert_eq!(code, 1);
    assert!(err.contains("kaboom"), "{err}");
    assert!(!err.contains("panicked at"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = run(&["call", lib, "BasicCalc", "nope", "[]"]);
    assert_eq!(code, 1);
    assert!(err.contains("no method `nope`"), "{err}");
    let (code, _, err) = run(&["call", lib, "BasicCalc", "add", "[1]"]);
    assert_eq!(code, 1);
    assert!(err.contains("takes 2 argument(s), 1 given"), "{err}");
    let (code, _, err) = run(&["call", lib, "BasicCalc", "add", "not json"]);
    assert_eq!(code, 2);
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = run(&["describe", "/no/such/libx.so"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/libx.so"), "{err}");
    let (code, _, _) = run(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn help_lists_every_command() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for command in [
        "describe", "call", "check", "keygen", "sign", "verify", "hash",
    ] {
        assert!(
            out.contains(&format!("fidius {command}")),
            "{command}: {out}"
        );
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("fidius "), "{out}");
    let (code, _, err) = run(&["sign", "x", "--json"]);
    assert_eq!(code, 2);
    assert!(err.contains("takes no option --json"), "{err}");
}

/// keygen, sign, verify: the whole round, and each way a signature can be wrong.
#[test]
fn keygen_sign_and_verify() {
    let (dir, lib) = private_copy("calc-plugins");
    let lib = lib.to_str().unwrap();
    let base = dir.path().join("release");
    let base = base.to_str().unwrap();
    let (code, out, err) = run(&["keygen", "--out", base]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("release.key") && out.contains("release.pub"),
        "{out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(format!("{base}.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the secret key is readable by others: {mode:o}"
        );
    }
    // Never replaced by accident.
    let (code, _, err) = run(&["keygen", "--out", base]);
    assert_eq!(code, 2);
    assert!(err.contains("--force"), "{err}");

    let public = format!("{base}.pub");
    let (code, _, err) = run(&["verify", lib, "--key", &public]);
    assert_eq!(code, 1);
    assert!(err.contains("not signed"), "{err}");

    let (code, out, err) = run(&["sign", lib, "--key", &format!("{base}.key")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".sig"), "{out}");
    let (code, out, err) = run(&["verify", lib, "--key", &public]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("signed by trusted key"), "{out}");
    let (code, out, _) = run(&["verify", lib, "--key", &public, "--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["trusted"], true);

    // Another key does not vouch for it.
    let other = dir.path().join("other");
    run(&["keygen", "--out", other.to_str().unwrap()]);
    let (code, _, err) = run(&["verify", lib, "--key", &format!("{}.pub", other.display())]);
    assert_eq!(code, 1);
    assert!(err.contains("does not trust"), "{err}");

    // Changed after signing.
    let mut bytes = std::fs::read(lib).unwrap();
    bytes.push(0);
    std::fs::write(lib, bytes).unwrap();
    let (code, out, _) = run(&["verify", lib, "--key", &public, "--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["trusted"], false);
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{report}"
    );

    // A pinned digest, from `fidius hash`.
    let (code, out, _) = run(&["hash", lib]);
    assert_eq!(code, 0);
    let digest = out.split_whitespace().next().unwrap().to_string();
    assert_eq!(digest.len(), 64, "{out}");
    let (code, out, err) = run(&["verify", lib, "--pin", &digest]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pinned"), "{out}");
}

/// `check` runs the host's checks and reports every reason, in words or as JSON.
#[test]
fn check_reports_every_reason_a_host_would_refuse() {
    let good = fixture("calc-plugins");
    let variants = fixture("calc-variants");
    let (code, out, err) = run(&[
        "check",
        good.to_str().unwrap(),
        "--against",
        good.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("a host would accept it"), "{out}");

    let (code, out, err) = run(&[
        "check",
        variants.to_str().unwrap(),
        "--against",
        good.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["accepted"], false);
    let reasons = report["reasons"].as_array().unwrap();
    let broken: Vec<&str> = reasons
        .iter()
        .filter(|r| r["plugin"] == "BrokenCalc")
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    // The hash, naming the changed method, and the method table entry itself.
    assert!(
        broken
            .iter()
            .any(|m| m.contains("interface hash") && m.contains("add(i32,i32)->i32")),
        "{broken:?}"
    );
    assert!(
        broken.iter().any(|m| m.starts_with("method 0")),
        "{broken:?}"
    );

    // Not a fidius plugin: the message says what to add.
    let (code, out, _) = run(&["check", fixture("not-a-plugin").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("fidius_plugin_registry!"), "{out}");

    // With a key, an unsigned library is refused and not loaded at all.
    let (dir, lib) = private_copy("calc-plugins");
    let base = dir.path().join("k");
    run(&["keygen", "--out", base.to_str().unwrap()]);
    let (code, out, _) = run(&[
        "check",
        lib.to_str().unwrap(),
        "--key",
        &format!("{}.pub", base.display()),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("refused (trust)") && out.contains("not checked"),
        "{out}"
    );
}

/// A library named without a directory is the file in the current directory (the
/// dynamic loader alone would look in the system's library path), and a loader
/// failure keeps the loader's own words.
#[test]
fn a_bare_file_name_is_the_file_here() {
    let lib = fixture("calc-plugins");
    let dir = lib.parent().unwrap();
    let name = lib.file_name().unwrap().to_str().unwrap();
    let out = Command::new(fidius_tool())
        .current_dir(dir)
        .args(["check", name, "--against", name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out, _) = run(&["check", "/no/such/dir/libnothing.so"]);
    assert_eq!(code, 1);
    assert!(out.contains("No such file"), "{out}");
}

/// Bytes go in as JSON arrays of numbers, as they come out.
#[test]
fn bytes_are_arrays_of_numbers_both_ways() {
    let lib = fixture("calc-plugins");
    let lib = lib.to_str().unwrap();
    let (code, out, err) = run(&["call", lib, "BasicCalc", "reverse_raw", "[[1, 2, 3]]"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[3,2,1]");
    let (code, out, err) = run(&["call", lib, "BasicCalc", "echo", "[[0, 255]]"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[0,255]");
}

//! The `fidius` command-line tool against real plugin libraries.

use fidius_tests::{fidius_tool, fixture};
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

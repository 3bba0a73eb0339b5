//! Calling plugins with no interface crate: the method table from the library alone,
//! calls by name with `Value` arguments, streams of `Value`s.

use fidius::host::PluginHost;
use fidius::{CallError, Value};
use fidius_tests::fixture;

fn handle(lib: &str, plugin: &str) -> fidius::PluginHandle {
    PluginHost::builder()
        .build()
        .load_from(fixture(lib), plugin)
        .unwrap()
}

#[test]
fn methods_are_listed_with_signatures_from_the_library_alone() {
    let h = handle("calc-plugins", "BasicCalc");
    let info = h.info();
    let concat = info.method("concat").unwrap();
    assert_eq!(concat.arguments(), ["String", "String", "char"]);
    assert_eq!(concat.returns(), "String");
    let divide = info.method("divide").unwrap();
    assert!(divide.fallible);
    assert_eq!(divide.returns(), "Result<i64,PluginError>");
    let reset = info.method("reset").unwrap();
    assert!(reset.arguments().is_empty());
    assert_eq!(reset.returns(), "()");
    let square = info.method("square").unwrap();
    assert!(square.optional && square.present);
    assert!(info.method("reverse_raw").unwrap().raw);
    assert_eq!(info.method("stats").unwrap().meta("cost"), Some("high"));
}

#[test]
fn calls_by_name_with_values() {
    let h = handle("calc-plugins", "BasicCalc");
    assert_eq!(
        h.call_dynamic("add", &[Value::from(40), Value::from(2)])
            .unwrap(),
        Value::from(42)
    );
    assert_eq!(
        h.call_dynamic(
            "concat",
            &[Value::from("a"), Value::from("b"), Value::from("-")]
        )
        .unwrap(),
        Value::from("a-b")
    );
    // A struct result arrives self-described, as a map with field names.
    let stats = h.call_dynamic("stats", &[]).unwrap();
    let map = stats.as_map().unwrap();
    assert!(map
        .iter()
        .any(|(k, v)| k.as_str() == Some("name") && v.as_str() == Some("basic")));
    // Bytes: typed methods as bin, raw methods untouched.
    assert_eq!(
        h.call_dynamic("echo", &[Value::Binary(vec![1, 2, 3])])
            .unwrap(),
        Value::Binary(vec![1, 2, 3])
    );
    assert_eq!(
        h.call_dynamic("reverse_raw", &[Value::Binary(vec![1, 2, 3])])
            .unwrap(),
        Value::Binary(vec![3, 2, 1])
    );
    // A plugin error keeps its code.
    let err = h
        .call_dynamic("divide", &[Value::from(1), Value::from(0)])
        .unwrap_err();
    assert!(matches!(err, CallError::Plugin(e) if e.code == "DIV_ZERO"));
    // Values convert to typed results too.
    let v = h
        .call_dynamic("add", &[Value::from(1), Value::from(2)])
        .unwrap();
    assert_eq!(fidius::from_value::<i64>(v).unwrap(), 3);
}

#[test]
fn unknown_names_and_wrong_argument_counts_are_clear_errors() {
    let h = handle("calc-plugins", "BasicCalc");
    let err = h.call_dynamic("multiply", &[]).unwrap_err();
    let CallError::UnknownMethod {
        method, available, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(method, "multiply");
    assert!(available.contains(&"add".to_string()));
    assert!(err.to_string().contains("add"), "{err}");

    let err = h.call_dynamic("add", &[Value::from(1)]).unwrap_err();
    assert!(
        matches!(&err, CallError::ArgumentCount { expected: 2, found: 1, signature } if signature == "add(i64,i64)->i64"),
        "{err:?}"
    );
    let err = h
        .call_dynamic("add", &[Value::from("x"), Value::from(1)])
        .unwrap_err();
    assert!(matches!(err, CallError::PluginSerialization(_)), "{err:?}");
}

#[test]
fn streams_of_values() {
    let h = handle("stream-plugin", "StreamSource");
    let items: Vec<Value> = h
        .call_dynamic_stream("numbers", &[Value::from(4)])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(items, (0..4).map(Value::from).collect::<Vec<_>>());
    let err = h.call_dynamic("numbers", &[Value::from(4)]).unwrap_err();
    assert!(matches!(
        err,
        CallError::StreamingMismatch {
            streaming: true,
            ..
        }
    ));
    let err = h.call_dynamic_stream("produced", &[]).err().unwrap();
    assert!(matches!(
        err,
        CallError::StreamingMismatch {
            streaming: false,
            ..
        }
    ));
    let items: Vec<Result<Value, CallError>> = h
        .call_dynamic_stream("fail_after", &[Value::from(1)])
        .unwrap()
        .collect();
    assert_eq!(items.len(), 2);
    assert!(matches!(&items[1], Err(CallError::Plugin(_))));
}

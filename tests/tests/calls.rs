//! Calling plugins through typed clients and handles: every kind of method, errors,
//! panics, optional methods, metadata, several plugins per library.

use calc_interface::{Calculator, CalculatorClient, Stats};
use fidius::host::{PluginHandle, PluginHost};
use fidius::{CallError, PluginError};
use fidius_tests::{fixture, fixture_dir};

fn host() -> PluginHost {
    PluginHost::builder()
        .search_path(fixture_dir())
        .expect_interface::<dyn Calculator>()
        .build()
}

fn client(name: &str) -> CalculatorClient<PluginHandle> {
    CalculatorClient::new(host().load(name).unwrap()).unwrap()
}

#[test]
fn scalar_string_unit_and_struct_methods() {
    let c = client("BasicCalc");
    assert_eq!(c.add(2, 40).unwrap(), 42);
    assert_eq!(c.add(i64::MAX, 0).unwrap(), i64::MAX);
    assert_eq!(c.concat("a".into(), "b".into(), '+').unwrap(), "a+b");
    assert_eq!(c.concat("".into(), "é✓".into(), 'ß').unwrap(), "ßé✓");
    c.reset().unwrap();
    assert_eq!(
        c.stats().unwrap(),
        Stats {
            calls: 0,
            name: "basic".into()
        }
    );
}

#[test]
fn methods_are_wired_by_name_not_impl_order() {
    // BasicCalc lists `sub` first and `add` last; both have the same signature.
    let c = client("BasicCalc");
    assert_eq!(c.add(10, 3).unwrap(), 13);
    assert_eq!(c.sub(10, 3).unwrap(), 7);
}

#[test]
fn plugin_errors_arrive_intact() {
    let c = client("BasicCalc");
    assert_eq!(c.divide(9, 3).unwrap(), 3);
    let err = c.divide(1, 0).unwrap_err();
    assert_eq!(
        err,
        CallError::Plugin(
            PluginError::new("DIV_ZERO", "cannot divide 1 by zero").with_details("b was 0")
        )
    );
}

#[test]
fn panics_are_caught_and_the_handle_stays_usable() {
    let c = client("BasicCalc");
    let err = c.boom("kaboom at the boundary".into()).unwrap_err();
    assert_eq!(err, CallError::Panic("kaboom at the boundary".into()));
    assert_eq!(c.boom(String::new()).unwrap(), 7);
    assert_eq!(c.add(1, 1).unwrap(), 2);
}

#[test]
fn bytes_echo_and_raw_methods() {
    let c = client("BasicCalc");
    for n in [0usize, 1, 64, 4096, 300_000] {
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        assert_eq!(c.echo(data.clone()).unwrap(), data);
        let mut reversed = data.clone();
        reversed.reverse();
        assert_eq!(c.reverse_raw(data).unwrap(), reversed);
    }
}

#[test]
fn bytes_travel_as_msgpack_bin() {
    let handle = host().load("BasicCalc").unwrap();
    let index = handle.method_index("echo").unwrap();
    // A bin8 payload: fixarray(1), 0xc4, len, bytes.
    let input = [0x91, 0xc4, 3, 1, 2, 3];
    let out = handle.call_method_raw(index, &input).unwrap();
    assert_eq!(out, vec![0xc4, 3, 1, 2, 3]);
}

#[test]
fn raw_methods_pass_bytes_untouched() {
    let handle = host().load("BasicCalc").unwrap();
    let index = handle.method_index("reverse_raw").unwrap();
    assert!(handle.info().methods[index].raw);
    let out = handle.call_method_raw(index, &[1, 2, 3, 0xc1]).unwrap();
    assert_eq!(out, vec![0xc1, 3, 2, 1]);
}

#[test]
fn optional_methods_and_capabilities() {
    let basic = client("BasicCalc");
    assert!(basic.has_square());
    assert_eq!(basic.square(12).unwrap(), 144);

    let counting = client("CountingCalc");
    assert!(!counting.has_square());
    let err = counting.square(3).unwrap_err();
    assert!(
        matches!(&err, CallError::NotImplemented { plugin, method } if plugin == "CountingCalc" && method == "square"),
        "{err:?}"
    );

    let handle = host().load("CountingCalc").unwrap();
    let square = handle.info().method("square").unwrap();
    assert!(square.optional && !square.present);
    assert_eq!(square.since, 2);
    assert_eq!(handle.capabilities(), 0);
    assert!(!handle.has_capability(0));
    assert!(host().load("BasicCalc").unwrap().has_capability(0));
}

#[test]
fn not_implemented_does_not_cross_the_boundary() {
    // CountingCalc counts every method body that runs; a NotImplemented call must not
    // reach it. A private copy of the library gives this test its own instance.
    let (_dir, copy) = fidius_tests::private_copy("calc-plugins");
    let c = CalculatorClient::new(host().load_from(copy, "CountingCalc").unwrap()).unwrap();
    for _ in 0..5 {
        assert!(c.square(2).is_err());
    }
    assert_eq!(c.stats().unwrap().calls, 0);
    assert_eq!(c.add(1, 2).unwrap(), 1003);
    assert_eq!(c.stats().unwrap().calls, 1);
}

#[test]
fn method_and_trait_metadata() {
    let handle = host().load("BasicCalc").unwrap();
    assert_eq!(handle.method_meta("stats", "cost"), Some("high"));
    assert_eq!(handle.method_meta("stats", "unit"), Some("calls"));
    assert_eq!(handle.method_meta("square", "added"), Some("v2"));
    assert_eq!(handle.method_meta("add", "cost"), None);
    assert_eq!(handle.trait_meta("category"), Some("math"));
    assert_eq!(handle.trait_meta("owner"), Some("tests"));
    assert_eq!(handle.trait_meta("missing"), None);
    let stats = handle.info().method("stats").unwrap();
    assert_eq!(
        stats.metadata,
        vec![
            ("cost".to_string(), "high".to_string()),
            ("unit".to_string(), "calls".to_string())
        ]
    );
}

#[test]
fn two_plugins_in_one_library_are_distinct() {
    let lib = fixture("calc-plugins");
    let basic = CalculatorClient::new(host().load_from(&lib, "BasicCalc").unwrap()).unwrap();
    let counting = CalculatorClient::new(host().load_from(&lib, "CountingCalc").unwrap()).unwrap();
    assert_eq!(basic.add(1, 2).unwrap(), 3);
    assert_eq!(counting.add(1, 2).unwrap(), 1003);
    assert_eq!(counting.stats().unwrap().name, "counting");
}

#[test]
fn two_libraries_implement_one_interface() {
    let basic = client("BasicCalc");
    let alt = client("AltCalc");
    assert_eq!(basic.add(3, 4).unwrap(), 7);
    assert_eq!(alt.add(3, 4).unwrap(), 14);
    assert_eq!(
        basic.info_hash(),
        alt.info_hash(),
        "both implement the same interface"
    );
}

trait InfoHash {
    fn info_hash(&self) -> u64;
}

impl InfoHash for CalculatorClient<PluginHandle> {
    fn info_hash(&self) -> u64 {
        self.caller().info().interface_hash
    }
}

#[test]
fn call_method_by_index_with_typed_arguments() {
    let handle = host().load("BasicCalc").unwrap();
    let add = handle.method_index("add").unwrap();
    let sum: i64 = handle.call_method(add, &(20i64, 22i64)).unwrap();
    assert_eq!(sum, 42);
    let divide = handle.method_index("divide").unwrap();
    let err = handle
        .call_method::<_, i64>(divide, &(1i64, 0i64))
        .unwrap_err();
    assert!(matches!(err, CallError::Plugin(e) if e.code == "DIV_ZERO"));
}

#[test]
fn invalid_index_and_wrong_arguments_are_errors() {
    let handle = host().load("BasicCalc").unwrap();
    let count = handle.info().methods.len();
    let err = handle.call_method_raw(count, &[]).unwrap_err();
    assert!(
        matches!(err, CallError::InvalidMethodIndex { index, count: c, .. } if index == count && c == count)
    );

    let add = handle.method_index("add").unwrap();
    let err = handle
        .call_method::<_, i64>(add, &("not", "numbers"))
        .unwrap_err();
    assert!(matches!(err, CallError::PluginSerialization(_)), "{err:?}");
    let err = handle.call_method_raw(add, &[0xc1, 0xff]).unwrap_err();
    assert!(matches!(err, CallError::PluginSerialization(_)), "{err:?}");

    // A result decoded as the wrong type is a host-side serialization error.
    let err = handle
        .call_method::<_, String>(add, &(1i64, 2i64))
        .unwrap_err();
    assert!(matches!(err, CallError::Serialization(_)), "{err:?}");
    // And the handle still works.
    assert_eq!(handle.call_method::<_, i64>(add, &(1i64, 2i64)).unwrap(), 3);
}

#[test]
fn client_refuses_a_plugin_of_another_interface() {
    let greeter = PluginHost::builder()
        .build()
        .load_from(fixture("calc-variants"), "HelloGreeter")
        .unwrap();
    let err = CalculatorClient::new(greeter).unwrap_err();
    assert!(
        matches!(err, CallError::InterfaceMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Greeter"), "{err}");
}

#[test]
fn clients_work_over_references_and_arcs() {
    let handle = host().load("BasicCalc").unwrap();
    let by_ref = CalculatorClient::new(&handle).unwrap();
    assert_eq!(by_ref.add(1, 2).unwrap(), 3);
    let by_arc = CalculatorClient::new(std::sync::Arc::new(handle.clone())).unwrap();
    assert_eq!(by_arc.add(2, 2).unwrap(), 4);
}

#[test]
fn many_threads_call_one_client() {
    let c = std::sync::Arc::new(client("CountingCalc"));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..2000i64 {
                    assert_eq!(c.add(i, t).unwrap(), i + t + 1000);
                    let data = vec![t as u8; (i % 100) as usize];
                    assert_eq!(c.echo(data.clone()).unwrap(), data);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

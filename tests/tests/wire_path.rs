//! The wire path through real plugins: every signature the call benchmark measures
//! round-trips through every way of calling, byte arguments travel as `bin` and still
//! agree with hosts and plugins that send integer arrays, and undecodable input is a
//! clear error.

use bench_interface::{BenchAllocClient, BenchArenaClient, Record};
use bytes_interface::BlobsClient;
use fidius::host::{PluginHandle, PluginHost};
use fidius::{CallError, Value};
use proptest::prelude::*;
use std::sync::OnceLock;

struct Bench {
    arena: BenchArenaClient<PluginHandle>,
    alloc: BenchAllocClient<PluginHandle>,
}

fn bench() -> &'static Bench {
    static BENCH: OnceLock<Bench> = OnceLock::new();
    BENCH.get_or_init(|| {
        let lib = fidius_tests::fixture("bench-plugin");
        let host = PluginHost::builder().build();
        Bench {
            arena: BenchArenaClient::new(host.load_from(&lib, "ArenaBench").unwrap()).unwrap(),
            alloc: BenchAllocClient::new(host.load_from(&lib, "AllocBench").unwrap()).unwrap(),
        }
    })
}

fn blobs() -> BlobsClient<PluginHandle> {
    let lib = fidius_tests::fixture("bytes-plugin");
    BlobsClient::new(
        PluginHost::builder()
            .build()
            .load_from(lib, "BlobStore")
            .unwrap(),
    )
    .unwrap()
}

/// The handles of both strategies.
fn handles() -> [&'static PluginHandle; 2] {
    [bench().arena.caller(), bench().alloc.caller()]
}

/// Calls method `index` through its wire slot, even when it has an unframed entry.
fn through_the_wire_slot<R: serde::de::DeserializeOwned>(
    h: &PluginHandle,
    index: usize,
    args: &impl serde::Serialize,
) -> R {
    let mut input = Vec::new();
    fidius::wire::encode_args(args, &mut input).unwrap();
    fidius::PluginCaller::call_with(h, index, &input, fidius::__private::decode_result::<R>)
        .unwrap()
}

fn record() -> impl Strategy<Value = Record> {
    (
        ".{0,40}",
        any::<u64>(),
        prop::collection::vec(".{0,12}", 0..5),
        prop::option::of(-1e300..1e300f64),
        any::<bool>(),
    )
        .prop_map(|(name, id, tags, score, active)| Record {
            name,
            id,
            tags,
            score,
            active,
        })
}

/// Short strings, long strings and unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,8}", "\\PC{0,300}", "[a-z]{2000,5000}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn add_round_trips_through_every_path(a in any::<i64>(), b in any::<i64>()) {
        let sum = a.wrapping_add(b);
        prop_assert_eq!(bench().arena.add(a, b).unwrap(), sum);
        prop_assert_eq!(bench().alloc.add(a, b).unwrap(), sum);
        for h in handles() {
            let index = h.method_index("add").unwrap();
            prop_assert_eq!(h.call_method::<_, i64>(index, &(a, b)).unwrap(), sum);
            prop_assert_eq!(
                h.call_dynamic("add", &[Value::from(a), Value::from(b)]).unwrap(),
                Value::from(sum)
            );
        }
    }

    #[test]
    fn strings_round_trip_through_every_path(s in text()) {
        prop_assert_eq!(&bench().arena.echo_str(s.clone()).unwrap(), &s);
        prop_assert_eq!(&bench().alloc.echo_str(s.clone()).unwrap(), &s);
        for h in handles() {
            let index = h.method_index("echo_str").unwrap();
            prop_assert_eq!(&h.call_method::<_, String>(index, &(&s,)).unwrap(), &s);
            prop_assert_eq!(&through_the_wire_slot::<String>(h, index, &(&s,)), &s);
            prop_assert_eq!(
                h.call_dynamic("echo_str", &[Value::from(s.as_str())]).unwrap(),
                Value::from(s.as_str())
            );
        }
    }

    #[test]
    fn records_round_trip_through_every_path(r in record()) {
        let expected = r.clone().updated();
        prop_assert_eq!(&bench().arena.update(r.clone()).unwrap(), &expected);
        prop_assert_eq!(&bench().alloc.update(r.clone()).unwrap(), &expected);
        for h in handles() {
            let index = h.method_index("update").unwrap();
            prop_assert_eq!(&h.call_method::<_, Record>(index, &(&r,)).unwrap(), &expected);
            let value = h
                .call_dynamic("update", &[fidius::to_value(&r).unwrap()])
                .unwrap();
            prop_assert_eq!(&fidius::from_value::<Record>(value).unwrap(), &expected);
        }
    }

    #[test]
    fn bytes_round_trip_through_every_path(data in prop::collection::vec(any::<u8>(), 0..3000)) {
        prop_assert_eq!(&bench().arena.echo(&data).unwrap(), &data);
        prop_assert_eq!(&bench().alloc.echo(&data).unwrap(), &data);
        prop_assert_eq!(&bench().arena.echo_raw(&data).unwrap(), &data);
        prop_assert_eq!(&bench().alloc.echo_raw(&data).unwrap(), &data);
        for h in handles() {
            let index = h.method_index("echo").unwrap();
            prop_assert_eq!(&h.call_method::<_, Vec<u8>>(index, &(&data,)).unwrap(), &data);
            prop_assert_eq!(&through_the_wire_slot::<Vec<u8>>(h, index, &(&data,)), &data);
            prop_assert_eq!(
                h.call_dynamic("echo", &[Value::Binary(data.clone())]).unwrap(),
                Value::Binary(data.clone())
            );
        }
    }
}

#[test]
fn call_method_takes_every_byte_container() {
    let c = blobs();
    let h = c.caller();
    let triple = h.method_index("triple").unwrap();
    let data: Vec<u8> = (0..=255).collect();
    let expected = c.triple(&data).unwrap();
    assert_eq!(expected.len(), 3 * data.len());
    let boxed: Box<[u8]> = data.clone().into_boxed_slice();
    let results: Vec<Vec<u8>> = vec![
        h.call_method(triple, &(&data,)).unwrap(),
        h.call_method(triple, &(data.clone(),)).unwrap(),
        h.call_method(triple, &(data.as_slice(),)).unwrap(),
        h.call_method(triple, &(&boxed,)).unwrap(),
    ];
    for r in results {
        assert_eq!(r, expected);
    }
}

#[test]
fn a_host_that_sends_bytes_as_integers_still_gets_its_answer() {
    // A host built before byte arguments became `bin` encoded `(Vec<u8>,)` with serde's
    // default: an array of integers. Plugins built now accept it.
    let c = blobs();
    let h = c.caller();
    let data: Vec<u8> = (0..=255).rev().collect();
    let as_integers = fidius::wire::encode(&(data.clone(),)).unwrap();
    assert_eq!(as_integers[1], 0xdc, "an array of 256 integers, not a bin");
    for method in ["echo", "triple"] {
        let index = h.method_index(method).unwrap();
        let output = h.call_method_raw(index, &as_integers).unwrap();
        let result: Vec<u8> = fidius::wire::decode::<fidius::wire::BinVec>(&output)
            .unwrap()
            .0;
        let expected = if method == "echo" {
            data.clone()
        } else {
            c.triple(&data).unwrap()
        };
        assert_eq!(result, expected, "{method}");
    }
}

#[test]
fn a_plugin_that_returns_bytes_as_integers_still_decodes() {
    // `widen` returns Vec<u16>: an array of integers, as a plugin built before `bin`
    // returned a Vec<u8>. A host reading it as Vec<u8> gets the bytes.
    let c = blobs();
    let h = c.caller();
    let index = h.method_index("widen").unwrap();
    let data: Vec<u8> = (0..=255).collect();
    let raw = h
        .call_method_raw(
            index,
            &fidius::wire::encode(&(fidius::wire::AsBin(&data),)).unwrap(),
        )
        .unwrap();
    assert_eq!(raw[0], 0xdc, "an array of integers");
    let bytes: Vec<u8> = h.call_method(index, &(&data,)).unwrap();
    assert_eq!(bytes, data);
}

/// The message of a call that failed because the plugin could not decode its input.
fn undecodable(result: Result<Vec<u8>, CallError>) -> String {
    match result {
        Err(CallError::PluginSerialization(message)) => message,
        other => panic!("expected a decoding error, got {other:?}"),
    }
}

#[test]
fn undecodable_arguments_name_the_method_and_the_argument() {
    for h in handles() {
        let add = h.method_index("add").unwrap();
        let update = h.method_index("update").unwrap();
        let echo_str = h.method_index("echo_str").unwrap();
        let raw = |index, args: &dyn erased::Args| h.call_method_raw(index, &args.encode());

        let m = undecodable(raw(add, &(1i64, "two")));
        assert!(m.contains("`add(i64,i64)->i64`"), "{m}");
        assert!(m.contains("argument 2 (`b: i64`) is a string"), "{m}");

        let m = undecodable(raw(add, &(1i64,)));
        assert!(m.contains("expected 2 argument(s), found 1"), "{m}");

        let m = undecodable(raw(echo_str, &(7u8,)));
        assert!(
            m.contains("argument 1 (`text: String`) is an integer"),
            "{m}"
        );

        let m = undecodable(raw(update, &(("not", "a record"),)));
        assert!(m.contains("`update(Record)->Record`"), "{m}");
        assert!(
            m.contains("argument 1 (`record: Record`) is an array"),
            "{m}"
        );

        let m = undecodable(h.call_method_raw(update, b"\x91\xa5ab"));
        assert!(m.contains("not valid MessagePack"), "{m}");
        let m = undecodable(h.call_method_raw(update, b"\x07"));
        assert!(
            m.contains("expected an array of 1 argument(s), found an integer"),
            "{m}"
        );
        let m = undecodable(h.call_method_raw(update, b""));
        assert!(m.contains("update"), "{m}");
    }
}

/// Argument tuples of different types, encoded as a host encodes them.
mod erased {
    pub trait Args {
        fn encode(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Args for T {
        fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            fidius::wire::encode_args(self, &mut out).unwrap();
            out
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever bytes arrive, every method answers with a result or an error, and the
    /// plugin never panics over them.
    #[test]
    fn garbage_input_is_an_error_never_a_panic(input in prop::collection::vec(any::<u8>(), 0..64)) {
        for h in handles() {
            for method in ["add", "echo_str", "update", "echo"] {
                let index = h.method_index(method).unwrap();
                match h.call_method_raw(index, &input) {
                    Ok(_) | Err(CallError::PluginSerialization(_)) => {}
                    Err(other) => prop_assert!(false, "{method}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn a_string_method_has_an_unframed_text_entry_that_checks_utf8() {
    for h in handles() {
        let index = h.method_index("echo_str").unwrap();
        assert_eq!(h.info().methods[index].fast_path, fidius::FastPath::Text);
        let caller = |input: &[u8]| fidius::PluginCaller::call_bytes(h, index, input);
        assert_eq!(
            caller("héllo".as_bytes()).unwrap().unwrap(),
            "héllo".as_bytes()
        );
        let m = match caller(b"\xff\xfe") {
            Some(Err(CallError::PluginSerialization(m))) => m,
            other => panic!("expected a decoding error, got {other:?}"),
        };
        assert!(m.contains("`echo_str(String)->String`"), "{m}");
        assert!(m.contains("argument 1 is not UTF-8"), "{m}");
    }
    let err = fidius::__private::text_result(vec![b'a', 0xff]).unwrap_err();
    assert!(
        matches!(&err, CallError::Serialization(m) if m.contains("not UTF-8")),
        "{err:?}"
    );
}

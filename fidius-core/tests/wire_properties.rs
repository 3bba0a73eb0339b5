//! Property tests of the wire format: random values round-trip, random bytes never
//! panic the decoder, random `Value`s round-trip through `to_value`/`from_value`.

use fidius_core::wire::{decode, encode, AsBin, BinVec};
use fidius_core::{from_value, to_value, Value};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    count: u64,
    delta: i32,
    ratio: f64,
    flag: bool,
    tags: Vec<String>,
    maybe: Option<u16>,
    pair: (u8, char),
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<String>(),
        any::<u64>(),
        any::<i32>(),
        any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan()),
        any::<bool>(),
        proptest::collection::vec(any::<String>(), 0..5),
        any::<Option<u16>>(),
        (any::<u8>(), any::<char>()),
    )
        .prop_map(
            |(name, count, delta, ratio, flag, tags, maybe, pair)| Record {
                name,
                count,
                delta,
                ratio,
                flag,
                tags,
                maybe,
                pair,
            },
        )
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("NaN never equals itself", |f| !f.is_nan())
            .prop_map(Value::F64),
        any::<String>().prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any::<String>().prop_map(Value::from), inner), 0..8)
                .prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn records_round_trip(r in record()) {
        let bytes = encode(&r).unwrap();
        prop_assert_eq!(decode::<Record>(&bytes).unwrap(), r);
    }

    #[test]
    fn argument_tuples_with_bytes_round_trip(s in any::<String>(), b in proptest::collection::vec(any::<u8>(), 0..4096), n in any::<i64>()) {
        let bytes = encode(&(&s, AsBin(&b), n)).unwrap();
        let (s2, b2, n2): (String, BinVec, i64) = decode(&bytes).unwrap();
        prop_assert_eq!((s2, b2.0, n2), (s, b, n));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<Record>(&bytes);
        let _ = decode::<(String, BinVec, Vec<u32>)>(&bytes);
        let _ = decode::<fidius_core::PluginError>(&bytes);
        let _ = rmpv::decode::read_value(&mut bytes.as_slice());
    }

    #[test]
    fn values_round_trip(v in value()) {
        let through = to_value(&v).unwrap();
        prop_assert_eq!(&through, &v);
        prop_assert_eq!(from_value::<Value>(through).unwrap(), v);
    }

    #[test]
    fn records_round_trip_through_value(r in record()) {
        prop_assert_eq!(from_value::<Record>(to_value(&r).unwrap()).unwrap(), r);
    }
}

//! A self-describing value any serde type converts to and from.
//!
//! The wire format is MessagePack, which is self-describing, so fidius uses rmpv's
//! MessagePack value model as its [`Value`] rather than inventing another one.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use rmpv::Value;

/// A failure to convert between a Rust type and a [`Value`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(String);

/// Converts any serde type into a [`Value`].
///
/// ```
/// let v = fidius_core::to_value(&("a", 1u8)).unwrap();
/// assert!(v.is_array());
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    // Going through the wire encoding keeps Value identical to what crosses the boundary
    // (structs as maps, bytes as bin).
    let bytes = crate::wire::encode(value).map_err(|e| ValueError(e.0))?;
    rmpv::decode::read_value(&mut bytes.as_slice()).map_err(|e| ValueError(e.to_string()))
}

/// Converts a [`Value`] into any serde type.
///
/// ```
/// let v = fidius_core::to_value(&vec![1u32, 2]).unwrap();
/// let back: Vec<u32> = fidius_core::from_value(v).unwrap();
/// assert_eq!(back, vec![1, 2]);
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ValueError> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &value).map_err(|e| ValueError(e.to_string()))?;
    crate::wire::decode(&bytes).map_err(|e| ValueError(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Circle(f64),
        Rect { w: u32, h: u32 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Doc {
        title: String,
        tags: Vec<String>,
        score: Option<i64>,
        shapes: Vec<Shape>,
        counts: BTreeMap<String, u64>,
        nested: Option<Box<Doc>>,
    }

    fn sample() -> Doc {
        Doc {
            title: "t".into(),
            tags: vec!["a".into(), "b".into()],
            score: Some(-3),
            shapes: vec![Shape::Unit, Shape::Circle(1.5), Shape::Rect { w: 2, h: 3 }],
            counts: [("x".to_string(), 1u64), ("y".to_string(), u64::MAX)].into(),
            nested: Some(Box::new(Doc {
                title: "inner".into(),
                tags: vec![],
                score: None,
                shapes: vec![],
                counts: BTreeMap::new(),
                nested: None,
            })),
        }
    }

    #[test]
    fn serde_types_round_trip_through_value() {
        let doc = sample();
        let value = to_value(&doc).unwrap();
        // Self-describing: the struct is a map keyed by field names.
        let map = value.as_map().unwrap();
        assert!(map
            .iter()
            .any(|(k, v)| k.as_str() == Some("title") && v.as_str() == Some("t")));
        let back: Doc = from_value(value).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn a_wire_payload_decodes_as_a_value_without_its_type() {
        let bytes = crate::wire::encode(&sample()).unwrap();
        let value = rmpv::decode::read_value(&mut bytes.as_slice()).unwrap();
        assert_eq!(value, to_value(&sample()).unwrap());
        let back: Doc = crate::wire::decode(&{
            let mut out = Vec::new();
            rmpv::encode::write_value(&mut out, &value).unwrap();
            out
        })
        .unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn mismatched_values_are_errors() {
        let v = to_value(&"text").unwrap();
        assert!(from_value::<u32>(v).is_err());
        let v = to_value(&(1u8, 2u8)).unwrap();
        assert!(from_value::<Doc>(v).is_err());
    }
}

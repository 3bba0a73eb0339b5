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

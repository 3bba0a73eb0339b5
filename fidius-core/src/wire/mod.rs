//! The wire format: MessagePack through serde and rmp-serde.
//!
//! * A method's arguments are encoded as one tuple (a MessagePack array), even when
//!   there is a single argument.
//! * Structs are encoded as maps with field names, so every payload is
//!   self-describing and can be read as a [`Value`](crate::value::Value).
//! * A byte container that is an argument itself, or a `Vec<u8>` result, travels as a
//!   MessagePack `bin` (see [`AsBin`], [`BinVec`] and [`encode_args`]): one copy per
//!   side, not one branch per byte; both sides also read the integer arrays that
//!   builds before this sent. `Vec<u8>` nested inside your own types follows serde's
//!   default (a sequence), because serde's untagged, internally tagged and flattened
//!   types buffer their content in a form that cannot turn a `bin` back into a
//!   `Vec<u8>`; mark such fields `#[serde(with = "serde_bytes")]`.
//! * `#[wire(raw)]` methods skip all of this: bytes in, bytes out; so do the unframed
//!   entries of `fn(Vec<u8>) -> Vec<u8>` and `fn(String) -> String` methods.
//!
//! How the format is driven, fast, without changing it:
//! * [`encode_args`] sends the byte containers of an argument tuple as `bin`;
//! * [`WireScalar`] and [`ScalarArgs`] read and write plain scalars and tuples of
//!   them directly, without a serde round trip: the shims of scalar methods and the
//!   decoding of scalar results use them, and fall back to serde for any encoding
//!   they do not take.

use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

mod args;
mod results;
mod scalar;

pub use args::{
    arguments_error, byte_container, check_arg, decode_args, decode_scalar_args, encode_args,
    encode_call_args, explain_args, single_bytes, single_text, text_arg, ArgCheck,
};
pub(crate) use args::{cast, write_array_header};
pub use results::{decode_bytes, decode_result, text_result};
pub use scalar::{Encoded, ScalarArgs, WireScalar};

/// A failure to encode or decode a wire payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

/// Appends the MessagePack encoding of `value` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
    value
        .serialize(&mut ser)
        .map_err(|e| WireError(e.to_string()))
}

/// Writes the MessagePack encoding of `value` to `out`.
pub fn encode_into_writer<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    out: &mut W,
) -> Result<(), WireError> {
    let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
    value
        .serialize(&mut ser)
        .map_err(|e| WireError(e.to_string()))
}

/// The MessagePack encoding of `value`.
///
/// ```
/// let bytes = fidius_core::wire::encode(&("hi", 3u8)).unwrap();
/// let back: (String, u8) = fidius_core::wire::decode(&bytes).unwrap();
/// assert_eq!(back, ("hi".to_string(), 3));
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes a value from its MessagePack encoding.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    rmp_serde::from_slice(bytes).map_err(|e| WireError(e.to_string()))
}

/// Decodes a value from its MessagePack encoding; a `Vec<u8>` is read at once from a
/// `bin` (or, as plugins built before `bin` sent it, from an array of integers), and a
/// plain scalar without serde.
#[inline]
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    /// A scalar result is read directly when it can be (see [`WireScalar`]).
    macro_rules! scalar {
        ($($t:ty),*) => {$(
            if typeid::of::<T>() == typeid::of::<$t>() {
                let mut input = bytes;
                if let Some(v) = <$t as WireScalar>::read(&mut input).filter(|_| input.is_empty()) {
                    // SAFETY: T is $t.
                    return Ok(unsafe { std::mem::transmute_copy::<$t, T>(&v) });
                }
            }
        )*};
    }
    scalar!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, bool);
    if typeid::of::<T>() == typeid::of::<Vec<u8>>() {
        let BinVec(v) = decode::<BinVec>(bytes)?;
        return Ok(cast(v).unwrap_or_else(|_| unreachable!("T is Vec<u8>")));
    }
    decode(bytes)
}

/// Serializes a byte slice as a MessagePack `bin`. Used by generated code for
/// `Vec<u8>` arguments and results.
#[derive(Debug, Clone, Copy)]
pub struct AsBin<'a>(pub &'a [u8]);

impl Serialize for AsBin<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Deserializes a `Vec<u8>` from a MessagePack `bin` (or, for tolerance, an array of
/// integers). Used by generated code for `Vec<u8>` arguments and results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinVec(pub Vec<u8>);

impl<'de> Deserialize<'de> for BinVec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BinVisitor;
        impl<'de> Visitor<'de> for BinVisitor {
            type Value = BinVec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte array")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<BinVec, E> {
                Ok(BinVec(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<BinVec, E> {
                Ok(BinVec(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BinVec, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(BinVec(out))
            }
        }
        deserializer.deserialize_byte_buf(BinVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_travel_as_bin() {
        let data = vec![7u8; 300];
        let encoded = encode(&(AsBin(&data),)).unwrap();
        // fixarray(1), bin16 marker, 2-byte length, then the bytes themselves.
        assert_eq!(encoded[0], 0x91);
        assert_eq!(encoded[1], 0xc5);
        assert_eq!(encoded.len(), 1 + 3 + 300);
        let (back,): (BinVec,) = decode(&encoded).unwrap();
        assert_eq!(back.0, data);
    }

    #[test]
    fn bin_vec_accepts_integer_arrays() {
        let encoded = encode(&vec![1u8, 2, 3]).unwrap();
        let back: BinVec = decode(&encoded).unwrap();
        assert_eq!(back.0, vec![1, 2, 3]);
    }

    #[test]
    fn byte_results_decode_from_bin_and_from_integer_arrays() {
        let data: Vec<u8> = (0..=255).collect();
        let as_bin = encode(&AsBin(&data)).unwrap();
        // A plugin built before `bin` sent an array of integers.
        let as_integers = encode(&data).unwrap();
        assert_ne!(as_bin, as_integers);
        for encoded in [&as_bin, &as_integers] {
            assert_eq!(decode_value::<Vec<u8>>(encoded).unwrap(), data);
        }
        assert_eq!(decode_value::<String>(&encode("x").unwrap()).unwrap(), "x");
        assert!(decode_value::<Vec<u8>>(&encode("not bytes").unwrap()).is_err());
        assert!(decode_value::<Vec<u8>>(&encode(&vec![300u16]).unwrap()).is_err());
        assert!(
            decode_value::<Vec<u8>>(&[0xc4, 9, 1]).is_err(),
            "truncated bin"
        );
    }

    #[test]
    fn structs_are_self_describing_maps() {
        #[derive(Serialize)]
        struct Point {
            x: i32,
        }
        let encoded = encode(&Point { x: 1 }).unwrap();
        assert_eq!(encoded[0], 0x81, "a one-entry map");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<(String, u32)>(&[0xc1, 0xff, 0x00]).is_err());
        assert!(decode::<String>(&[]).is_err());
    }
}

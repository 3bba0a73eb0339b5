//! The wire format: MessagePack through serde and rmp-serde.
//!
//! * A method's arguments are encoded as one tuple (a MessagePack array), even when
//!   there is a single argument.
//! * Structs are encoded as maps with field names, so every payload is
//!   self-describing and can be read as a [`Value`](crate::value::Value).
//! * A top-level `Vec<u8>` argument or result of a typed method travels as a
//!   MessagePack `bin` (see [`AsBin`] and [`BinVec`]): one copy per side, not one
//!   branch per byte. `Vec<u8>` nested inside your own types follows serde's default
//!   (a sequence) unless you mark it `#[serde(with = "serde_bytes")]`.
//! * `#[wire(raw)]` methods skip all of this: bytes in, bytes out.

use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

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

/// Appends the MessagePack encoding of the argument tuple `args` to `out`.
///
/// As [`encode_into`], except that an element of the tuple that is itself a byte
/// container (`Vec<u8>`, `[u8]`, `Box<[u8]>`, or a reference to one) travels as one
/// MessagePack `bin`, copied at once, and not as one integer per byte. Plugins decode
/// both forms (see [`BinVec`]), so hosts and plugins built before this still agree.
///
/// ```
/// let data = vec![1u8, 2, 3];
/// let mut out = Vec::new();
/// fidius_core::wire::encode_args(&(&data, "x"), &mut out).unwrap();
/// // A two-element array whose first element is a 3-byte `bin`.
/// assert_eq!(&out[..3], &[0x92, 0xc4, 3]);
/// ```
pub fn encode_args<A: Serialize + ?Sized>(args: &A, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
    args.serialize(ArgsSerializer(&mut ser))
        .map_err(|e| WireError(e.to_string()))
}

/// The bytes of `value` when it is a byte container sent as `bin`: `Vec<u8>`, `[u8]`,
/// `Box<[u8]>`, or a shared or mutable reference to one of these.
#[inline]
pub fn byte_container<T: ?Sized>(value: &T) -> Option<&[u8]> {
    let id = typeid::of::<T>();
    let ptr = value as *const T;
    // Each branch reinterprets `value` as the type its identity was just compared with
    // (lifetimes aside, which the borrow of `value` bounds).
    if id == typeid::of::<Vec<u8>>() {
        // SAFETY: T is Vec<u8>.
        Some(unsafe { &*(ptr as *const Vec<u8>) })
    } else if id == typeid::of::<[u8]>() {
        // SAFETY: T is [u8], whose size is its length.
        Some(unsafe { std::slice::from_raw_parts(ptr as *const u8, std::mem::size_of_val(value)) })
    } else if id == typeid::of::<Box<[u8]>>() {
        // SAFETY: T is Box<[u8]>.
        Some(unsafe { &*(ptr as *const Box<[u8]>) })
    } else if id == typeid::of::<&Vec<u8>>() || id == typeid::of::<&mut Vec<u8>>() {
        // SAFETY: T is a reference to a Vec<u8>; `&mut` has the layout of `&`.
        Some(unsafe { *(ptr as *const &Vec<u8>) })
    } else if id == typeid::of::<&[u8]>() || id == typeid::of::<&mut [u8]>() {
        // SAFETY: T is a reference to [u8]; `&mut` has the layout of `&`.
        Some(unsafe { *(ptr as *const &[u8]) })
    } else if id == typeid::of::<&Box<[u8]>>() {
        // SAFETY: T is &Box<[u8]>.
        Some(unsafe { *(ptr as *const &Box<[u8]>) })
    } else {
        None
    }
}

/// Serializes an argument tuple, its byte containers as `bin` (see [`encode_args`]).
/// Anything that is not a tuple is serialized as it is.
struct ArgsSerializer<S>(S);

/// The tuple of [`ArgsSerializer`].
struct ArgsTuple<T>(T);

impl<T: serde::ser::SerializeTuple> serde::ser::SerializeTuple for ArgsTuple<T> {
    type Ok = T::Ok;
    type Error = T::Error;

    #[inline]
    fn serialize_element<E: Serialize + ?Sized>(&mut self, value: &E) -> Result<(), T::Error> {
        match byte_container(value) {
            Some(bytes) => self.0.serialize_element(&AsBin(bytes)),
            None => self.0.serialize_element(value),
        }
    }

    #[inline]
    fn end(self) -> Result<T::Ok, T::Error> {
        self.0.end()
    }
}

/// Forwards serializer methods to the wrapped serializer.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        #[inline]
        fn $name(self, $($arg: $ty),*) -> Result<$ret, S::Error> {
            self.0.$name($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for ArgsSerializer<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = S::SerializeSeq;
    type SerializeTuple = ArgsTuple<S::SerializeTuple>;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = S::SerializeMap;
    type SerializeStruct = S::SerializeStruct;
    type SerializeStructVariant = S::SerializeStructVariant;

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(ArgsTuple)
    }

    forward! {
        serialize_bool(v: bool) -> S::Ok;
        serialize_i8(v: i8) -> S::Ok;
        serialize_i16(v: i16) -> S::Ok;
        serialize_i32(v: i32) -> S::Ok;
        serialize_i64(v: i64) -> S::Ok;
        serialize_i128(v: i128) -> S::Ok;
        serialize_u8(v: u8) -> S::Ok;
        serialize_u16(v: u16) -> S::Ok;
        serialize_u32(v: u32) -> S::Ok;
        serialize_u64(v: u64) -> S::Ok;
        serialize_u128(v: u128) -> S::Ok;
        serialize_f32(v: f32) -> S::Ok;
        serialize_f64(v: f64) -> S::Ok;
        serialize_char(v: char) -> S::Ok;
        serialize_str(v: &str) -> S::Ok;
        serialize_bytes(v: &[u8]) -> S::Ok;
        serialize_none() -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(name: &'static str) -> S::Ok;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> S::Ok;
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeTupleVariant;
        serialize_map(len: Option<usize>) -> Self::SerializeMap;
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct;
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeStructVariant;
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(value)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, value)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Decodes a value from its MessagePack encoding; a `Vec<u8>` is read at once from a
/// `bin` (or, as plugins built before `bin` sent it, from an array of integers).
#[inline]
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if typeid::of::<T>() == typeid::of::<Vec<u8>>() {
        let BinVec(v) = decode::<BinVec>(bytes)?;
        let v = std::mem::ManuallyDrop::new(v);
        // SAFETY: T is Vec<u8>, so this moves the Vec out as the type it is; the
        // original is not dropped.
        return Ok(unsafe { std::ptr::read(&*v as *const Vec<u8> as *const T) });
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
    fn byte_containers_in_argument_tuples_travel_as_bin() {
        let data = vec![5u8; 40];
        let boxed: Box<[u8]> = data.clone().into_boxed_slice();
        let mut mutable = data.clone();
        // Each form of byte container, with a string after it.
        let forms: Vec<Vec<u8>> = vec![
            args(&(data.clone(), "s")),
            args(&(&data, "s")),
            args(&(data.as_slice(), "s")),
            args(&(&boxed, "s")),
            args(&(boxed.clone(), "s")),
            args(&(&mut mutable, "s")),
            args(&(mutable.as_mut_slice(), "s")),
        ];
        for encoded in &forms {
            // fixarray(2), bin8 of 40 bytes, the bytes, then fixstr "s".
            assert_eq!(&encoded[..3], &[0x92, 0xc4, 40]);
            assert_eq!(&encoded[3..43], &data[..]);
            assert_eq!(&encoded[43..], &[0xa1, b's']);
            // Plugins decode it as before: a BinVec, or a plain Vec<u8> element.
            let (v, s): (BinVec, String) = decode(encoded).unwrap();
            assert_eq!((v.0, s.as_str()), (data.clone(), "s"));
            let (v, _): (Vec<u8>, String) = decode(encoded).unwrap();
            assert_eq!(v, data);
        }
        // Nested byte containers and other sequences keep serde's own encoding.
        let nested = args(&(Some(data.clone()), vec![1u16, 2]));
        assert_eq!(
            nested,
            encode(&(Some(data.clone()), vec![1u16, 2])).unwrap()
        );
        // Not a tuple: encoded as it is.
        assert_eq!(args(&7u32), encode(&7u32).unwrap());
    }

    fn args<A: Serialize + ?Sized>(a: &A) -> Vec<u8> {
        let mut out = Vec::new();
        encode_args(a, &mut out).unwrap();
        out
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

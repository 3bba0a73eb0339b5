//! Argument tuples: encoded on the host (byte containers as `bin`, copied at once;
//! scalars written directly), decoded in the plugin (scalars read directly, and a
//! failure explained argument by argument).

use super::{ScalarArgs, WireError, WireScalar};
use crate::error::CallError;
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

/// Appends the MessagePack encoding of the argument tuple `args` to `out`.
///
/// As [`encode_into`](super::encode_into), except that an element of the tuple that is itself a byte
/// container (`Vec<u8>`, `[u8]`, `Box<[u8]>`, or a reference to one) travels as one
/// MessagePack `bin`, copied at once, and not as one integer per byte. Plugins decode
/// both forms (see [`BinVec`](super::BinVec)), so hosts and plugins built before this still agree.
///
/// ```
/// let data = vec![1u8, 2, 3];
/// let mut out = Vec::new();
/// fidius_core::wire::encode_args(&(&data, "x"), &mut out).unwrap();
/// // A two-element array whose first element is a 3-byte `bin`.
/// assert_eq!(&out[..3], &[0x92, 0xc4, 3]);
/// ```
pub fn encode_args<A: Serialize + ?Sized>(args: &A, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut ser: Rmp<'_> = rmp_serde::Serializer::new(out).with_struct_map();
    args.serialize(ArgsSerializer(&mut ser))
        .map_err(|e| WireError(e.to_string()))
}

/// Appends `args` as a call's argument tuple ([`encode_args`]);
/// a failure is a [`CallError::Serialization`] that says so.
pub fn encode_call_args<A: Serialize + ?Sized>(
    args: &A,
    out: &mut Vec<u8>,
) -> Result<(), CallError> {
    encode_args(args, out).map_err(|e| arguments_error(&e))
}

/// The error for arguments that could not be encoded.
#[cold]
pub fn arguments_error(e: &dyn std::fmt::Display) -> CallError {
    CallError::Serialization(format!("encoding arguments: {e}"))
}

/// The bytes of `value` when it is a byte container sent as `bin`: `Vec<u8>`, `[u8]`,
/// `Box<[u8]>`, or a shared or mutable reference to one of these.
#[inline]
pub fn byte_container<T: ?Sized>(value: &T) -> Option<&[u8]> {
    let id = typeid::of::<T>();
    let ptr = value as *const T;
    // Each branch reinterprets `value` as the type its identity was just compared with.
    // typeid erases lifetimes: a reference inside `T` may be shorter than the one
    // named here, but the slice returned borrows from `value`, and `&'a T` implies
    // `T: 'a`, so it lives no longer than what it points into.
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

/// The bytes of a one-element argument tuple whose element is a byte container (see
/// [`byte_container`]): `(Vec<u8>,)`, `(&Vec<u8>,)`, `(&[u8],)`, `(Box<[u8]>,)` or
/// `(&Box<[u8]>,)`. A call of a `fn(Vec<u8>) -> Vec<u8>` method with such a tuple can
/// take the unframed bytes entry.
#[inline]
pub fn single_bytes<A: ?Sized>(args: &A) -> Option<&[u8]> {
    // As in `byte_container`: lifetimes are erased by typeid, and what is returned
    // borrows from `args`, which every reference inside `A` outlives.
    let id = typeid::of::<A>();
    let ptr = args as *const A;
    macro_rules! one {
        ($($t:ty),*) => {$(
            if id == typeid::of::<($t,)>() {
                // SAFETY: A is ($t,).
                return byte_container(&unsafe { &*(ptr as *const ($t,)) }.0);
            }
        )*};
    }
    one!(Vec<u8>, &Vec<u8>, &[u8], Box<[u8]>, &Box<[u8]>);
    None
}

/// The string of a one-element argument tuple whose element is a string: `(String,)`,
/// `(&String,)`, `(&str,)` or `(&&str,)`. A call of a `fn(String) -> String` method
/// with such a tuple can take the unframed text entry.
#[inline]
pub fn single_text<A: ?Sized>(args: &A) -> Option<&str> {
    // As in `byte_container`: lifetimes are erased by typeid, and what is returned
    // borrows from `args`, which every reference inside `A` outlives.
    let id = typeid::of::<A>();
    let ptr = args as *const A;
    if id == typeid::of::<(String,)>() {
        // SAFETY: A is (String,).
        return Some(&unsafe { &*(ptr as *const (String,)) }.0);
    }
    if id == typeid::of::<(&String,)>() {
        // SAFETY: A is (&String,).
        return Some(unsafe { &*(ptr as *const (&String,)) }.0);
    }
    if id == typeid::of::<(&str,)>() {
        // SAFETY: A is (&str,).
        return Some(unsafe { &*(ptr as *const (&str,)) }.0);
    }
    if id == typeid::of::<(&&str,)>() {
        // SAFETY: A is (&&str,).
        return Some(unsafe { &*(ptr as *const (&&str,)) }.0);
    }
    None
}

/// Types without lifetimes that [`cast`] may move out as a `T`.
pub(crate) trait LifetimeFree: Sized {}
impl LifetimeFree for Vec<u8> {}
impl LifetimeFree for String {}

/// `value` as a `T` when `T` is `V`: moves it out as the type it is.
#[inline]
pub(crate) fn cast<V: LifetimeFree, T>(value: V) -> Result<T, V> {
    if typeid::of::<T>() != typeid::of::<V>() {
        return Err(value);
    }
    let value = std::mem::ManuallyDrop::new(value);
    // SAFETY: typeid compares types with their lifetimes erased, and `V` has none, so
    // `T` is exactly `V`: this moves the value out as the type it is, and the original
    // is not dropped.
    Ok(unsafe { std::ptr::read(&*value as *const V as *const T) })
}

/// The serializer every wire payload is written with.
type Rmp<'a> = rmp_serde::Serializer<
    &'a mut Vec<u8>,
    rmp_serde::config::StructMapConfig<rmp_serde::config::DefaultConfig>,
>;

/// Serializes an argument tuple: the array header and each element written directly
/// when it is a byte container (as `bin`) or a plain scalar, through rmp-serde
/// otherwise. Anything that is not a tuple is serialized as it is.
struct ArgsSerializer<'s, 'a>(&'s mut Rmp<'a>);

/// The tuple of [`ArgsSerializer`].
struct ArgsTuple<'s, 'a>(&'s mut Rmp<'a>);

type Error = rmp_serde::encode::Error;

impl serde::ser::SerializeTuple for ArgsTuple<'_, '_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_element<E: Serialize + ?Sized>(&mut self, value: &E) -> Result<(), Error> {
        let out: &mut Vec<u8> = self.0.get_mut();
        if let Some(bytes) = byte_container(value) {
            write_bin_header(out, bytes.len())?;
            out.extend_from_slice(bytes);
            return Ok(());
        }
        if write_scalar(value, out) {
            return Ok(());
        }
        value.serialize(&mut *self.0)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// Writes `value` if it is a plain scalar (or a reference to one); false otherwise.
#[inline]
fn write_scalar<T: ?Sized>(value: &T, out: &mut Vec<u8>) -> bool {
    let id = typeid::of::<T>();
    let ptr = value as *const T;
    macro_rules! scalars {
        ($($t:ty),*) => {$(
            if id == typeid::of::<$t>() {
                // SAFETY: T is $t.
                let v = unsafe { *(ptr as *const $t) };
                WireScalar::push_to(v, out);
                return true;
            }
            if id == typeid::of::<&$t>() {
                // SAFETY: T is &$t.
                let v = unsafe { **(ptr as *const &$t) };
                WireScalar::push_to(v, out);
                return true;
            }
        )*};
    }
    scalars!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, bool);
    false
}

fn write_bin_header(out: &mut Vec<u8>, len: usize) -> Result<(), Error> {
    if len <= u8::MAX as usize {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len <= u16::MAX as usize {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        let len = u32::try_from(len).map_err(|_| {
            <Error as serde::ser::Error>::custom("a byte argument larger than 4 GiB")
        })?;
        out.push(0xc6);
        out.extend_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

#[inline(always)]
pub(crate) fn write_array_header(out: &mut Vec<u8>, len: usize) -> Result<(), Error> {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        let len = u32::try_from(len)
            .map_err(|_| <Error as serde::ser::Error>::custom("too many arguments"))?;
        out.push(0xdd);
        out.extend_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// Forwards serializer methods to rmp-serde's.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        #[inline]
        fn $name(self, $($arg: $ty),*) -> Result<$ret, Error> {
            self.0.$name($($arg),*)
        }
    )*};
}

impl<'s, 'a> Serializer for ArgsSerializer<'s, 'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = <&'s mut Rmp<'a> as Serializer>::SerializeSeq;
    type SerializeTuple = ArgsTuple<'s, 'a>;
    type SerializeTupleStruct = <&'s mut Rmp<'a> as Serializer>::SerializeTupleStruct;
    type SerializeTupleVariant = <&'s mut Rmp<'a> as Serializer>::SerializeTupleVariant;
    type SerializeMap = <&'s mut Rmp<'a> as Serializer>::SerializeMap;
    type SerializeStruct = <&'s mut Rmp<'a> as Serializer>::SerializeStruct;
    type SerializeStructVariant = <&'s mut Rmp<'a> as Serializer>::SerializeStructVariant;

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Error> {
        write_array_header(self.0.get_mut(), len)?;
        Ok(ArgsTuple(self.0))
    }

    forward! {
        serialize_bool(v: bool) -> ();
        serialize_i8(v: i8) -> ();
        serialize_i16(v: i16) -> ();
        serialize_i32(v: i32) -> ();
        serialize_i64(v: i64) -> ();
        serialize_i128(v: i128) -> ();
        serialize_u8(v: u8) -> ();
        serialize_u16(v: u16) -> ();
        serialize_u32(v: u32) -> ();
        serialize_u64(v: u64) -> ();
        serialize_u128(v: u128) -> ();
        serialize_f32(v: f32) -> ();
        serialize_f64(v: f64) -> ();
        serialize_char(v: char) -> ();
        serialize_str(v: &str) -> ();
        serialize_bytes(v: &[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(name: &'static str) -> ();
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> ();
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeTupleVariant;
        serialize_map(len: Option<usize>) -> Self::SerializeMap;
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct;
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeStructVariant;
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.0.serialize_some(value)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.0.serialize_newtype_struct(name, value)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

// In the plugin: decoding a call's argument tuple, and saying why it failed.

/// Decodes a method's argument tuple.
pub fn decode_args<T: DeserializeOwned>(input: &[u8]) -> Result<T, String> {
    crate::wire::decode(input).map_err(|e| format!("decoding arguments: {e}"))
}

/// Checks one encoded argument: [`check_arg`] for the argument's type.
pub type ArgCheck = fn(&[u8]) -> Result<(), String>;

/// Checks that `input` decodes as one `T`: the per-argument check of [`explain_args`].
pub fn check_arg<T: DeserializeOwned>(input: &[u8]) -> Result<(), String> {
    crate::wire::decode::<T>(input).map(drop).map_err(|e| e.0)
}

/// Says why a method's argument tuple did not decode: which argument, declared how,
/// and what was wrong with it, or that the tuple itself has the wrong shape. Only
/// called once decoding has failed, so it may take its time: it walks the encoded
/// array and decodes each element on its own with `checks` (one per argument, in
/// order).
#[cold]
#[inline(never)]
pub fn explain_args(
    signature: &str,
    args: &[(&str, &str)],
    checks: &[ArgCheck],
    input: &[u8],
    error: &str,
) -> String {
    let head = format!("decoding the arguments of `{signature}`");
    let mut rest = input;
    let found = match rmpv::decode::read_value(&mut rest) {
        Ok(rmpv::Value::Array(items)) => items.len(),
        Ok(other) => {
            return format!(
                "{head}: expected an array of {} argument(s), found {}",
                args.len(),
                value_kind(&other)
            )
        }
        Err(e) => return format!("{head}: the input is not valid MessagePack ({e})"),
    };
    if found != args.len() {
        return format!("{head}: expected {} argument(s), found {found}", args.len());
    }
    // Walk the elements again, as byte ranges, and check each on its own.
    let mut cursor = input;
    if rmp_skip_array_header(&mut cursor).is_none() {
        return format!("{head}: {error}");
    }
    for (position, ((name, ty), check)) in args.iter().zip(checks).enumerate() {
        let before = cursor;
        let Ok(value) = rmpv::decode::read_value(&mut cursor) else {
            break;
        };
        let element = &before[..before.len() - cursor.len()];
        if let Err(e) = check(element) {
            return format!(
                "{head}: argument {} (`{name}: {ty}`) is {}: {e}",
                position + 1,
                value_kind(&value)
            );
        }
    }
    if !cursor.is_empty() {
        return format!(
            "{head}: {} trailing byte(s) after the arguments",
            cursor.len()
        );
    }
    format!("{head}: {error}")
}

/// Advances past a MessagePack array header.
fn rmp_skip_array_header(input: &mut &[u8]) -> Option<()> {
    let (&marker, rest) = input.split_first()?;
    let skip = match marker {
        0x90..=0x9f => 0,
        0xdc => 2,
        0xdd => 4,
        _ => return None,
    };
    *input = rest.get(skip..)?;
    Some(())
}

fn value_kind(value: &rmpv::Value) -> &'static str {
    match value {
        rmpv::Value::Nil => "nil",
        rmpv::Value::Boolean(_) => "a boolean",
        rmpv::Value::Integer(_) => "an integer",
        rmpv::Value::F32(_) | rmpv::Value::F64(_) => "a float",
        rmpv::Value::String(_) => "a string",
        rmpv::Value::Binary(_) => "bytes",
        rmpv::Value::Array(_) => "an array",
        rmpv::Value::Map(_) => "a map",
        rmpv::Value::Ext(..) => "an extension value",
    }
}

/// The argument of a `fn(String) -> String` method's text entry: its unframed bytes,
/// which must be UTF-8.
pub fn text_arg(signature: &str, input: &[u8]) -> Result<String, String> {
    if let Ok(s) = simdutf8::basic::from_utf8(input) {
        return Ok(s.to_owned());
    }
    // Failed: the standard check says where.
    let detail = std::str::from_utf8(input).err().map(|e| e.to_string());
    Err(format!(
        "decoding the arguments of `{signature}`: argument 1 is not UTF-8 ({})",
        detail.as_deref().unwrap_or("invalid")
    ))
}

/// Decodes the argument tuple of a scalar method: directly when it is encoded as
/// rmp-serde encodes it, through serde (with its conversions and errors) otherwise.
#[inline]
pub fn decode_scalar_args<T: ScalarArgs + DeserializeOwned>(input: &[u8]) -> Result<T, String> {
    match T::read(input) {
        Some(args) => Ok(args),
        None => decode_args(input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode, BinVec};

    #[test]
    fn single_byte_and_text_arguments_are_recognised() {
        let data = vec![1u8, 2];
        let boxed: Box<[u8]> = data.clone().into_boxed_slice();
        assert_eq!(single_bytes(&(data.clone(),)), Some(&[1u8, 2][..]));
        assert_eq!(single_bytes(&(&data,)), Some(&[1u8, 2][..]));
        assert_eq!(single_bytes(&(data.as_slice(),)), Some(&[1u8, 2][..]));
        assert_eq!(single_bytes(&(&boxed,)), Some(&[1u8, 2][..]));
        assert_eq!(single_bytes(&(data.clone(), 1u8)), None);
        assert_eq!(single_bytes(&data), None);
        assert_eq!(single_bytes(&("x",)), None);
        let text = String::from("hé");
        assert_eq!(single_text(&(text.clone(),)), Some("hé"));
        assert_eq!(single_text(&(&text,)), Some("hé"));
        assert_eq!(single_text(&(text.as_str(),)), Some("hé"));
        assert_eq!(single_text(&(&text.as_str(),)), Some("hé"));
        assert_eq!(single_text(&(text.as_bytes(),)), None);
        assert_eq!(single_text(&text), None);
        assert_eq!(cast::<Vec<u8>, Vec<u8>>(data.clone()), Ok(data.clone()));
        assert_eq!(cast::<Vec<u8>, String>(data.clone()), Err(data));
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
        // Scalars (and references to them) are written as rmp-serde writes them, in
        // tuples of any length.
        let (a, b) = (-70_000i64, 3.5f64);
        let scalars = (a, &b, true, u64::MAX, -1i8, 7u16, 1.25f32, usize::MAX, &a);
        assert_eq!(args(&scalars), encode(&scalars).unwrap());
        let empty: [u8; 0] = [];
        let sixteen = (
            1u8,
            2u8,
            3u8,
            4u8,
            5u8,
            6u8,
            7u8,
            8u8,
            9u8,
            10u8,
            11u8,
            12u8,
            "s",
            empty,
            'c',
            (),
        );
        assert_eq!(
            args(&sixteen)[0],
            0xdc,
            "an array of 16 takes a 16-bit length"
        );
        assert_eq!(args(&sixteen), encode(&sixteen).unwrap());
        let big = vec![9u8; 70_000];
        let (v,): (BinVec,) = decode(&args(&(&big,))).unwrap();
        assert_eq!(v.0, big);
        // Not a tuple: encoded as it is.
        assert_eq!(args(&7u32), encode(&7u32).unwrap());
    }

    fn args<A: Serialize + ?Sized>(a: &A) -> Vec<u8> {
        let mut out = Vec::new();
        encode_args(a, &mut out).unwrap();
        out
    }
}

//! Plain scalars on the wire, read and written directly.
//!
//! A method whose arguments and result are all scalars (`add(i64, i64) -> i64`) spends
//! most of a wire call in serde's machinery, not in the MessagePack bytes. These
//! readers and writers handle exactly those bytes: the shims of such methods use them
//! for the argument tuple and the result, and hosts use them to decode a scalar
//! result. The bytes are those rmp-serde writes (the most compact encoding of each
//! value), so either side may use serde instead. A reader returns `None` for anything
//! it does not take (another encoding, a value out of range, trailing bytes), and the
//! caller then decodes with serde, which gives the real error or conversion.

use std::io::Write;

/// A scalar as MessagePack holds it.
#[derive(Clone, Copy)]
enum Num {
    Uint(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
}

/// Reads the next scalar from `input`, advancing past it.
#[inline(always)]
fn read_num(input: &mut &[u8]) -> Option<Num> {
    let (&marker, rest) = input.split_first()?;
    /// The next `N` bytes after the marker, big-endian.
    #[inline(always)]
    fn take<'a, const N: usize>(rest: &'a [u8], input: &mut &'a [u8]) -> Option<[u8; N]> {
        let bytes: [u8; N] = rest.get(..N)?.try_into().ok()?;
        *input = &rest[N..];
        Some(bytes)
    }
    let num = match marker {
        0x00..=0x7f => Num::Uint(marker as u64),
        0xe0..=0xff => Num::Int(marker as i8 as i64),
        0xc2 => Num::Bool(false),
        0xc3 => Num::Bool(true),
        0xcc => return take::<1>(rest, input).map(|b| Num::Uint(b[0] as u64)),
        0xcd => return take(rest, input).map(|b| Num::Uint(u16::from_be_bytes(b) as u64)),
        0xce => return take(rest, input).map(|b| Num::Uint(u32::from_be_bytes(b) as u64)),
        0xcf => return take(rest, input).map(|b| Num::Uint(u64::from_be_bytes(b))),
        0xd0 => return take::<1>(rest, input).map(|b| Num::Int(b[0] as i8 as i64)),
        0xd1 => return take(rest, input).map(|b| Num::Int(i16::from_be_bytes(b) as i64)),
        0xd2 => return take(rest, input).map(|b| Num::Int(i32::from_be_bytes(b) as i64)),
        0xd3 => return take(rest, input).map(|b| Num::Int(i64::from_be_bytes(b))),
        0xca => return take(rest, input).map(|b| Num::F32(f32::from_be_bytes(b))),
        0xcb => return take(rest, input).map(|b| Num::F64(f64::from_be_bytes(b))),
        _ => return None,
    };
    *input = rest;
    Some(num)
}

/// The encoding of one scalar: at most 9 bytes, the first `len` of `bytes`.
///
/// Fixed-size, so that a writer can copy all 9 bytes at once (a few moves, no call to
/// `memcpy`) and keep `len` of them.
#[derive(Clone, Copy)]
pub struct Encoded {
    /// The bytes; only the first `len` count.
    pub bytes: [u8; 9],
    /// How many bytes the encoding has.
    pub len: usize,
}

impl Encoded {
    #[inline(always)]
    fn new<const N: usize>(marker: Option<u8>, payload: [u8; N]) -> Self {
        let mut bytes = [0u8; 9];
        let start = match marker {
            Some(m) => {
                bytes[0] = m;
                1
            }
            None => 0,
        };
        bytes[start..start + N].copy_from_slice(&payload);
        Self {
            bytes,
            len: start + N,
        }
    }

    /// The encoding's bytes.
    #[inline(always)]
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `v` in the most compact unsigned form.
#[inline(always)]
fn encode_uint(v: u64) -> Encoded {
    if v < 0x80 {
        Encoded::new(None, [v as u8])
    } else if v <= u8::MAX as u64 {
        Encoded::new(Some(0xcc), [v as u8])
    } else if v <= u16::MAX as u64 {
        Encoded::new(Some(0xcd), (v as u16).to_be_bytes())
    } else if v <= u32::MAX as u64 {
        Encoded::new(Some(0xce), (v as u32).to_be_bytes())
    } else {
        Encoded::new(Some(0xcf), v.to_be_bytes())
    }
}

/// `v` in the most compact form: unsigned when it is not negative.
#[inline(always)]
fn encode_int(v: i64) -> Encoded {
    if v >= 0 {
        encode_uint(v as u64)
    } else if v >= -32 {
        Encoded::new(None, [v as i8 as u8])
    } else if v >= i8::MIN as i64 {
        Encoded::new(Some(0xd0), [v as i8 as u8])
    } else if v >= i16::MIN as i64 {
        Encoded::new(Some(0xd1), (v as i16).to_be_bytes())
    } else if v >= i32::MIN as i64 {
        Encoded::new(Some(0xd2), (v as i32).to_be_bytes())
    } else {
        Encoded::new(Some(0xd3), v.to_be_bytes())
    }
}

/// A plain scalar that crosses the wire without serde: integers up to 64 bits, `f32`,
/// `f64` and `bool`, the types of the scalar fast path.
pub trait WireScalar: Sized + Copy {
    /// Reads one value of this type from `input` and advances past it; `None` when the
    /// next value is not this type's (or out of its range).
    fn read(input: &mut &[u8]) -> Option<Self>;

    /// This value's encoding.
    fn encode(self) -> Encoded;

    /// Writes this value.
    #[inline(always)]
    fn write(self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(self.encode().as_slice())
    }

    /// Appends this value to `out`: reserves 9 bytes and copies all 9 (a fixed size
    /// copies without a call), then keeps as many as the encoding has.
    #[inline(always)]
    fn push_to(self, out: &mut Vec<u8>) {
        let e = self.encode();
        out.reserve(9);
        let len = out.len();
        // SAFETY: `reserve(9)` made room for 9 more bytes, and only the first `e.len`
        // of them, all initialised, become part of the vector.
        unsafe {
            std::ptr::copy_nonoverlapping(e.bytes.as_ptr(), out.as_mut_ptr().add(len), 9);
            out.set_len(len + e.len);
        }
    }
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl WireScalar for $t {
            #[inline(always)]
            fn read(input: &mut &[u8]) -> Option<Self> {
                match read_num(input)? {
                    Num::Uint(v) => v.try_into().ok(),
                    Num::Int(v) => v.try_into().ok(),
                    _ => None,
                }
            }

            #[inline(always)]
            #[allow(unused_comparisons)] // unsigned types are never below zero
            fn encode(self) -> Encoded {
                if self < 0 {
                    encode_int(self as i64)
                } else {
                    encode_uint(self as u64)
                }
            }
        }
    )*};
}

wire_int!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl WireScalar for f64 {
    #[inline(always)]
    fn read(input: &mut &[u8]) -> Option<Self> {
        match read_num(input)? {
            Num::F64(v) => Some(v),
            Num::F32(v) => Some(v as f64),
            _ => None,
        }
    }

    #[inline(always)]
    fn encode(self) -> Encoded {
        Encoded::new(Some(0xcb), self.to_be_bytes())
    }
}

impl WireScalar for f32 {
    #[inline(always)]
    fn read(input: &mut &[u8]) -> Option<Self> {
        match read_num(input)? {
            Num::F32(v) => Some(v),
            _ => None,
        }
    }

    #[inline(always)]
    fn encode(self) -> Encoded {
        Encoded::new(Some(0xca), self.to_be_bytes())
    }
}

impl WireScalar for bool {
    #[inline(always)]
    fn read(input: &mut &[u8]) -> Option<Self> {
        match read_num(input)? {
            Num::Bool(v) => Some(v),
            _ => None,
        }
    }

    #[inline(always)]
    fn encode(self) -> Encoded {
        Encoded::new(None, [if self { 0xc3 } else { 0xc2 }])
    }
}

/// A tuple of [`WireScalar`]s: the argument tuple of a scalar method.
pub trait ScalarArgs: Sized {
    /// Reads the whole encoded tuple; `None` unless `input` is exactly an array of this
    /// many values of these types.
    fn read(input: &[u8]) -> Option<Self>;
}

macro_rules! scalar_args {
    ($($n:literal: ($($t:ident),*);)*) => {$(
        impl<$($t: WireScalar),*> ScalarArgs for ($($t,)*) {
            #[inline]
            fn read(input: &[u8]) -> Option<Self> {
                let (&header, mut rest) = input.split_first()?;
                // A fixarray of this many elements (every arity here is below 16; serde's
                // tuples stop at 16, which the shims decode through serde).
                if header != 0x90 | $n {
                    return None;
                }
                let value = ($($t::read(&mut rest)?,)*);
                rest.is_empty().then_some(value)
            }
        }
    )*};
}

scalar_args! {
    1: (A);
    2: (A, B);
    3: (A, B, C);
    4: (A, B, C, D);
    5: (A, B, C, D, E);
    6: (A, B, C, D, E, F);
    7: (A, B, C, D, E, F, G);
    8: (A, B, C, D, E, F, G, H);
    9: (A, B, C, D, E, F, G, H, I);
    10: (A, B, C, D, E, F, G, H, I, J);
    11: (A, B, C, D, E, F, G, H, I, J, K);
    12: (A, B, C, D, E, F, G, H, I, J, K, L);
    13: (A, B, C, D, E, F, G, H, I, J, K, L, M);
    14: (A, B, C, D, E, F, G, H, I, J, K, L, M, N);
    15: (A, B, C, D, E, F, G, H, I, J, K, L, M, N, O);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode};
    use proptest::prelude::*;
    use std::fmt;

    /// Writes `v` with [`WireScalar`] and checks the bytes against rmp-serde's, both
    /// ways.
    fn same_as_serde<T>(v: T) -> Result<(), TestCaseError>
    where
        T: WireScalar + serde::Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug,
    {
        let mut ours = Vec::new();
        v.write(&mut ours).unwrap();
        let theirs = encode(&v).unwrap();
        prop_assert_eq!(&ours, &theirs, "{:?}", v);
        let mut input = &theirs[..];
        prop_assert_eq!(T::read(&mut input), Some(v));
        prop_assert!(input.is_empty());
        prop_assert_eq!(decode::<T>(&ours).unwrap(), v);
        Ok(())
    }

    proptest! {
        #[test]
        fn scalars_are_written_as_rmp_serde_writes_them(
            a in any::<i64>(), b in any::<u64>(), c in any::<i8>(), d in any::<u16>(),
            e in any::<i32>(), f in any::<bool>(), g in -1e300..1e300f64, h in -1e30..1e30f32,
        ) {
            same_as_serde(a)?;
            same_as_serde(b)?;
            same_as_serde(c)?;
            same_as_serde(d)?;
            same_as_serde(e)?;
            same_as_serde(f)?;
            same_as_serde(g)?;
            same_as_serde(h)?;
            same_as_serde(a as isize)?;
            same_as_serde(b as usize)?;
        }

        #[test]
        fn tuples_read_what_serde_writes(a in any::<i64>(), b in any::<u8>(), c in any::<f64>()) {
            let encoded = encode(&(a, b, c)).unwrap();
            let (x, y, z) = <(i64, u8, f64)>::read(&encoded).unwrap();
            prop_assert_eq!((x, y), (a, b));
            prop_assert!(z == c || (z.is_nan() && c.is_nan()));
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        // Out of range, another type, the wrong arity, trailing bytes, truncation.
        assert_eq!(<(u8,)>::read(&encode(&(300u16,)).unwrap()), None);
        assert_eq!(<(i64,)>::read(&encode(&("x",)).unwrap()), None);
        assert_eq!(<(i64,)>::read(&encode(&(1i64, 2i64)).unwrap()), None);
        let mut trailing = encode(&(1i64,)).unwrap();
        trailing.push(0);
        assert_eq!(<(i64,)>::read(&trailing), None);
        assert_eq!(<(i64,)>::read(&[0x91, 0xd3, 0, 0]), None);
        assert_eq!(<(i64,)>::read(&[]), None);
        assert_eq!(<(f32,)>::read(&encode(&(1.5f64,)).unwrap()), None);
        // Negative into unsigned.
        assert_eq!(<(u64,)>::read(&encode(&(-1i64,)).unwrap()), None);
    }
}

//! Results, decoded on the host: typed values (scalars and `Vec<u8>` read directly),
//! byte items of streams, and the UTF-8 of a text entry.

use crate::error::CallError;

/// Decodes a typed result; a failure becomes [`CallError::Serialization`].
#[inline]
pub fn decode_result<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CallError> {
    crate::wire::decode_value(bytes)
        .map_err(|e| CallError::Serialization(format!("decoding result: {e}")))
}

/// The result of a `fn(String) -> String` method's text entry: its unframed bytes,
/// checked to be UTF-8 (and not copied).
pub fn text_result(bytes: Vec<u8>) -> Result<String, CallError> {
    if simdutf8::basic::from_utf8(&bytes).is_ok() {
        // SAFETY: just checked to be UTF-8.
        return Ok(unsafe { String::from_utf8_unchecked(bytes) });
    }
    // Failed: the standard check says where.
    String::from_utf8(bytes).map_err(|e| {
        CallError::Serialization(format!("decoding result: not UTF-8 ({})", e.utf8_error()))
    })
}

/// Decodes a `bin` item as `Vec<u8>`.
pub fn decode_bytes(bytes: &[u8]) -> Result<Vec<u8>, CallError> {
    decode_result::<super::BinVec>(bytes).map(|v| v.0)
}

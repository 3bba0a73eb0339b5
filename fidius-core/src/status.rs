//! Status codes returned by every method slot across the FFI boundary.
//!
//! A slot returns one of these as an `i32`. Where the payload lives depends on the
//! status and on whether the host lent a buffer:
//!
//! | status | payload | buffer |
//! |---|---|---|
//! | [`STATUS_OK`] | the encoded result | the buffer the host lent; plugin-allocated when it lent none, or for plugins built before loans with the `PluginAllocated` strategy (the host tells them apart by the pointer) |
//! | [`STATUS_BUFFER_TOO_SMALL`] | the encoded result (after a loan only) | plugin-allocated: the buffer the host lent was too small, so the plugin handed over its own buffer instead of running the method again |
//! | [`STATUS_SERIALIZATION_ERROR`] | UTF-8 message | plugin-allocated |
//! | [`STATUS_PLUGIN_ERROR`] | encoded [`PluginError`](crate::error::PluginError) | plugin-allocated |
//! | [`STATUS_PANIC`] | UTF-8 panic message | plugin-allocated |
//!
//! Every plugin-allocated buffer is released with the descriptor's `free_buffer`.

/// The method ran and the result is in the output buffer.
pub const STATUS_OK: i32 = 0;
/// Only after a loan: the host's buffer was too small. The method ran once and its
/// result was handed over in a plugin-allocated buffer; the host grows its arena for
/// the next call.
pub const STATUS_BUFFER_TOO_SMALL: i32 = 1;
/// Decoding the arguments or encoding the result failed.
pub const STATUS_SERIALIZATION_ERROR: i32 = 2;
/// The method returned `Err(PluginError)`.
pub const STATUS_PLUGIN_ERROR: i32 = 3;
/// The method panicked; the panic was caught at the boundary.
pub const STATUS_PANIC: i32 = 4;

/// Returned by a stream's `stream_next` when the stream has no more items (see
/// [`crate::stream`]).
pub const STREAM_END: i32 = 16;

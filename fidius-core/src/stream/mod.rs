//! Streams: a plugin method returns [`Stream<T>`], and the host pulls one item at a
//! time.
//!
//! * this module: [`Stream<T>`], what a plugin method returns;
//! * [`reader`]: the host side ([`RawStream`](reader::RawStream),
//!   [`PluginStream`](reader::PluginStream), [`StreamSource`](reader::StreamSource));
//! * [`producer`]: the plugin side, the `stream_next` and `stream_free` every
//!   descriptor carries.
//!
//! ## Across the boundary
//!
//! A [`METHOD_STREAMING`](crate::descriptor::METHOD_STREAMING) method's slot runs the
//! method, which builds a [`Stream`], and hands the host an opaque
//! producer: [`STATUS_OK`](crate::status::STATUS_OK) with `out.ptr` set to the
//! producer's state and no buffer. The host then calls the descriptor's `stream_next`
//! with that state for each item, and `stream_free` once when it is done with the
//! stream (after the end, after an error, or when it drops the stream early, which
//! cancels the producer).
//!
//! `stream_next` writes each item like a method result. `out.ptr` is either null (no
//! loan: the item comes in a plugin-allocated buffer) or points at `out.cap` writable
//! bytes the host lends; hosts built with this version lend, older ones pass null. An
//! item that does not fit the loan is handed over in a plugin-allocated buffer (so an
//! item of any size arrives whole). `stream_next` returns:
//!
//! | status | meaning |
//! |---|---|
//! | `STATUS_OK` | one item, encoded, in `out` (in the loan, or handed over) |
//! | `STATUS_BUFFER_TOO_SMALL` | one item, handed over in a buffer of the plugin's because it did not fit the loan |
//! | [`STREAM_END`](crate::status::STREAM_END) | no more items |
//! | `STATUS_PLUGIN_ERROR` | the producer yielded `Err(PluginError)`; the stream is over |
//! | `STATUS_PANIC` | the producer panicked; the stream is over |
//! | `STATUS_SERIALIZATION_ERROR` | an item could not be encoded; the stream is over |

pub mod producer;
pub mod reader;

use crate::error::PluginError;

/// A pull-based sequence of items produced by a plugin method.
///
/// ```
/// use fidius_core::Stream;
/// let s = Stream::from_iter(1..=3);
/// assert_eq!(s.map(Result::unwrap).collect::<Vec<_>>(), vec![1, 2, 3]);
///
/// // An error ends the stream with that error.
/// let s: Stream<u32> = Stream::from_results(vec![Ok(1), Err(fidius_core::PluginError::new("E", "bad"))]);
/// assert_eq!(s.count(), 2);
/// ```
pub struct Stream<T> {
    items: Box<dyn Iterator<Item = Result<T, PluginError>> + Send>,
}

impl<T: 'static> Stream<T> {
    /// A stream over any iterator of items.
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I>(iter: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self {
            items: Box::new(iter.into_iter().map(Ok)),
        }
    }

    /// A stream over an iterator of results: the first `Err` ends the stream, and the
    /// host receives it as `CallError::Plugin`.
    pub fn from_results<I>(iter: I) -> Self
    where
        I: IntoIterator<Item = Result<T, PluginError>>,
        I::IntoIter: Send + 'static,
    {
        Self {
            items: Box::new(iter.into_iter()),
        }
    }

    /// A stream with no items.
    pub fn empty() -> Self
    where
        T: Send,
    {
        Self::from_iter(std::iter::empty())
    }
}

impl<T> Iterator for Stream<T> {
    type Item = Result<T, PluginError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.items.next()
    }
}

impl<T> std::fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}

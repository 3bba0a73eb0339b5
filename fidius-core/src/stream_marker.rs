//! [`Stream<T>`]: what a plugin method returns to stream items to the host.
//!
//! The plugin builds one from any iterator; the host pulls one item at a time through
//! the generated client (see [`crate::stream_ffi`] for the boundary).

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

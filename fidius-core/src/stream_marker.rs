//! [`Stream<T>`]: the type a plugin method returns to stream items to the host.
//!
//! The plugin side can build one from any iterator today. Crossing the boundary with
//! one item per pull is specified in [`crate::stream_ffi`]; the interface macro does
//! not yet accept `-> Stream<T>` methods.

/// A pull-based sequence of items produced by a plugin.
pub struct Stream<T> {
    items: Box<dyn Iterator<Item = T> + Send>,
}

impl<T> Stream<T> {
    /// A stream over any iterator.
    ///
    /// ```
    /// let s = fidius_core::Stream::from_iter(1..=3);
    /// assert_eq!(s.collect::<Vec<_>>(), vec![1, 2, 3]);
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I>(iter: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self {
            items: Box::new(iter.into_iter()),
        }
    }

    /// A stream with no items.
    pub fn empty() -> Self
    where
        T: Send + 'static,
    {
        Self::from_iter(std::iter::empty())
    }
}

impl<T> Iterator for Stream<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.items.next()
    }
}

impl<T> std::fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}

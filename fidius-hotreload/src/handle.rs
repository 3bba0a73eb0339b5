//! [`HotHandle`]: calls always go to the version current when they start.

use crate::pipeline::Shared;
use fidius::descriptor::{CallOutput, ErasedFn};
use fidius::{CallError, InterfaceInfo, InterfaceMismatch, PluginCaller, PluginInfo, RawStream};
use std::sync::Arc;

/// A callable view of a [`HotPlugin`](crate::HotPlugin): cheap to clone, usable from
/// any thread, and a [`PluginCaller`], so the interface's typed client works over it.
///
/// Each call announces the version it uses in a per-thread hazard slot (no shared
/// counter, no locked instruction) and clears it when the call returns: a swap during
/// the call never affects it, and the old library stays loaded until the call is done.
/// See the crate docs, *Concurrency*, for how this works and why it is safe.
#[derive(Clone)]
pub struct HotHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HotHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotHandle")
            .field("plugin", &self.shared.plugin())
            .field("generation", &self.generation())
            .finish()
    }
}

impl HotHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The generation new calls go to.
    pub fn generation(&self) -> u64 {
        self.shared.current.with(|v| v.generation)
    }

    /// What the current version offers.
    pub fn info(&self) -> PluginInfo {
        self.shared.current.with(|v| v.handle.info().clone())
    }
}

impl PluginCaller for HotHandle {
    #[inline]
    fn call_with<R>(
        &self,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        self.shared
            .current
            .with(|v| v.handle.call_with(index, input, decode))
    }

    #[inline]
    fn call_direct(
        &self,
        index: usize,
        call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
    ) -> Option<Result<(), CallError>> {
        self.shared
            .current
            .with(|v| v.handle.call_direct(index, call))
    }

    #[inline]
    fn call_bytes(&self, index: usize, input: &[u8]) -> Option<Result<Vec<u8>, CallError>> {
        self.shared
            .current
            .with(|v| v.handle.call_bytes(index, input))
    }

    fn call_stream(&self, index: usize, input: &[u8]) -> Result<RawStream, CallError> {
        // A stream outlives the call: it holds its version (an owned Arc, not a slot),
        // so a stream started on one version finishes on it, and the version is only
        // retired once the stream is gone.
        let version = self.shared.current.load_full();
        let mut stream = version.handle.call_stream(index, input)?;
        stream.keep_alive(Box::new(version));
        Ok(stream)
    }

    fn has_method(&self, index: usize) -> bool {
        self.shared.current.with(|v| v.handle.has_method(index))
    }

    fn check_interface(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch> {
        // Every version is validated against the interface the hot plugin was built
        // for, so checking the current one checks them all.
        self.shared
            .current
            .with(|v| v.handle.check_interface(expected))
    }
}

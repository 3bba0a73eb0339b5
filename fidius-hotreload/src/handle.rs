//! [`HotHandle`]: calls always go to the version current when they start.

use crate::pipeline::Shared;
use crate::probation::{FROZEN, ON_PROBATION};
use crate::version::Version;
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

    /// Runs `f` (one call) in the current version. A version on probation has the
    /// call counted (with its error, if it failed); a version frozen for a state
    /// handoff makes the call wait, then go to whichever version is current.
    /// Otherwise one load of the version's flags is all it adds.
    #[inline]
    fn call<T: Outcome>(&self, mut f: impl FnMut(&Version) -> T) -> Result<T, CallError> {
        loop {
            let done = self.shared.current.with(|v| {
                let flags = v.trial.flags();
                if flags & FROZEN != 0 {
                    return None;
                }
                let result = f(v);
                if flags & ON_PROBATION != 0 {
                    self.shared.judge(v, result.error());
                }
                Some(result)
            });
            match done {
                Some(result) => return Ok(result),
                None => self.shared.wait_for_handoff()?,
            }
        }
    }
}

/// What a call returned, as far as probation cares: the error it ended in, if any.
trait Outcome {
    fn error(&self) -> Option<&CallError>;
}

impl<T> Outcome for Result<T, CallError> {
    fn error(&self) -> Option<&CallError> {
        self.as_ref().err()
    }
}

/// A fast path's result: `None` when there is none.
impl<T> Outcome for Option<Result<T, CallError>> {
    fn error(&self) -> Option<&CallError> {
        self.as_ref().and_then(Outcome::error)
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
        let mut decode = Some(decode);
        self.call(|v| {
            let decode = decode.take().expect("a call runs once");
            v.handle.call_with(index, input, decode)
        })
        .and_then(|result| result)
    }

    #[inline]
    fn call_direct(
        &self,
        index: usize,
        call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
    ) -> Option<Result<(), CallError>> {
        let mut call = Some(call);
        self.call(|v| {
            let call = call.take().expect("a call runs once");
            v.handle.call_direct(index, call)
        })
        .unwrap_or_else(|e| Some(Err(e)))
    }

    #[inline]
    fn call_bytes(&self, index: usize, input: &[u8]) -> Option<Result<Vec<u8>, CallError>> {
        self.call(|v| v.handle.call_bytes(index, input))
            .unwrap_or_else(|e| Some(Err(e)))
    }

    fn call_stream(&self, index: usize, input: &[u8]) -> Result<RawStream, CallError> {
        // A stream outlives the call: it holds its version (an owned Arc, not a slot),
        // so a stream started on one version finishes on it, and the version is only
        // retired once the stream is gone.
        loop {
            let version = self.shared.current.load_full();
            if version.trial.flags() & FROZEN != 0 {
                drop(version);
                self.shared.wait_for_handoff()?;
                continue;
            }
            let mut stream = version.handle.call_stream(index, input)?;
            stream.keep_alive(Box::new(version));
            return Ok(stream);
        }
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

/// One version of a hot plugin, to run a check against before it serves or while it
/// is on probation ([`VersionCheck`](crate::VersionCheck)). A [`PluginCaller`], so
/// the interface's typed client works over it:
/// `MyPluginClient::new(version.clone())?.process(...)`. It keeps the version loaded
/// while it lives.
#[derive(Clone)]
pub struct VersionHandle {
    version: Arc<Version>,
}

impl std::fmt::Debug for VersionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionHandle")
            .field("generation", &self.version.generation)
            .finish()
    }
}

impl VersionHandle {
    pub(crate) fn new(version: Arc<Version>) -> Self {
        Self { version }
    }

    /// Its generation.
    pub fn generation(&self) -> u64 {
        self.version.generation
    }

    /// What it offers.
    pub fn info(&self) -> &PluginInfo {
        self.version.handle.info()
    }
}

impl PluginCaller for VersionHandle {
    fn call_with<R>(
        &self,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        self.version.handle.call_with(index, input, decode)
    }

    fn call_direct(
        &self,
        index: usize,
        call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
    ) -> Option<Result<(), CallError>> {
        self.version.handle.call_direct(index, call)
    }

    fn call_bytes(&self, index: usize, input: &[u8]) -> Option<Result<Vec<u8>, CallError>> {
        self.version.handle.call_bytes(index, input)
    }

    fn call_stream(&self, index: usize, input: &[u8]) -> Result<RawStream, CallError> {
        let mut stream = self.version.handle.call_stream(index, input)?;
        stream.keep_alive(Box::new(self.version.clone()));
        Ok(stream)
    }

    fn has_method(&self, index: usize) -> bool {
        self.version.handle.has_method(index)
    }

    fn check_interface(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch> {
        self.version.handle.check_interface(expected)
    }
}

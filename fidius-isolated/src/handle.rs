//! [`IsolatedHandle`]: calls into an isolated plugin, with a deadline or without.

use crate::plugin::Inner;
use crate::process::{Leased, NoLane, Reply};
use crate::protocol::{CALL, NEXT, OPEN_STREAM, RESTORE_STATE, SAVE_STATE};
use fidius::{
    CallError, InterfaceInfo, InterfaceMismatch, MethodInfo, PluginCaller, PluginInfo, RawStream,
    SavedState, StreamSource, Value,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A handle to an [`IsolatedPlugin`](crate::IsolatedPlugin): calls cross into its
/// process. Cheap to clone; usable from many threads at once (each call has a
/// connection of its own, up to the plugin's worker count).
///
/// It implements [`PluginCaller`], so the typed client of the plugin's interface
/// works over it as over an in-process handle. A call may end in three errors an
/// in-process call never gives: [`CallError::Timeout`] (this call passed its
/// deadline), [`CallError::Crashed`] (the process died under it) and
/// [`CallError::ProcessKilled`] (the process was killed for another call's deadline).
///
/// ```no_run
/// # use std::time::Duration;
/// # #[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
/// # pub trait Calculator: Send + Sync { fn add(&self, a: i64, b: i64) -> i64; }
/// use fidius_isolated::IsolatedPlugin;
///
/// let plugin = IsolatedPlugin::builder::<dyn Calculator>("plugins/libcalc.so", "BasicCalculator")
///     .deadline(Duration::from_secs(1))
///     .build()?;
/// let calc = CalculatorClient::new(plugin.handle())?;
/// assert_eq!(calc.add(2, 3)?, 5);
/// // One call with a deadline of its own: a client over a handle that carries it.
/// let quick = CalculatorClient::new(plugin.handle().with_deadline(Duration::from_millis(20)))?;
/// quick.add(1, 1)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct IsolatedHandle {
    inner: Arc<Inner>,
    deadline: Option<Duration>,
}

impl std::fmt::Debug for IsolatedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolatedHandle")
            .field("plugin", &self.inner.info().name)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl IsolatedHandle {
    pub(crate) fn new(inner: Arc<Inner>, deadline: Option<Duration>) -> Self {
        Self { inner, deadline }
    }

    /// The same plugin, each call through the returned handle limited to
    /// `deadline`. Build a client over it for calls that need their own deadline.
    #[must_use]
    pub fn with_deadline(&self, deadline: Duration) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline: Some(deadline),
        }
    }

    /// The same plugin, calls through the returned handle without a deadline.
    #[must_use]
    pub fn without_deadline(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline: None,
        }
    }

    /// The deadline of each call through this handle.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// What the plugin is and offers.
    pub fn info(&self) -> &PluginInfo {
        self.inner.info()
    }

    /// The method called `name`, or [`CallError::UnknownMethod`].
    pub fn method_info(&self, name: &str) -> Result<&MethodInfo, CallError> {
        fidius::dynamic::method_info(self.info(), name)
    }

    /// Calls method `index` with `args`, the argument tuple, and decodes the result
    /// as `R` (see [`PluginHandle::call_method`](fidius::PluginHandle::call_method)).
    pub fn call_method<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        index: usize,
        args: &A,
    ) -> Result<R, CallError> {
        fidius_core::caller::call_encoded(self, index, args, fidius_core::wire::decode_result::<R>)
    }

    /// Calls method `index` with already-encoded input and returns the encoded output.
    pub fn call_method_raw(&self, index: usize, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_with(index, input, |bytes| Ok(bytes.to_vec()))
    }

    /// Calls method `name` with `args` and returns its result as a [`Value`]; no
    /// interface crate needed.
    pub fn call_dynamic(&self, name: &str, args: &[Value]) -> Result<Value, CallError> {
        fidius::dynamic::call(self, self.info(), name, args)
    }

    /// Saves the plugin's state in its process, if it carries state across versions
    /// (`fidius::PluginState`); `None` if it does not. The state crosses as bytes.
    pub fn save_state(&self) -> Option<Result<SavedState, CallError>> {
        if !self.info().carries_state {
            return None;
        }
        Some(self.exchange(SAVE_STATE, 0, &[], |bytes| {
            SavedState::from_bytes(bytes).ok_or_else(|| {
                CallError::PluginSerialization("a saved state without its version".into())
            })
        }))
    }

    /// Hands `saved` to the plugin in its process; `None` if it carries no state.
    pub fn restore_state(&self, saved: &SavedState) -> Option<Result<(), CallError>> {
        if !self.info().carries_state {
            return None;
        }
        Some(self.exchange(RESTORE_STATE, 0, &saved.to_bytes(), |_| Ok(())))
    }

    /// Calls streaming method `name` with `args`; each item arrives as a [`Value`].
    pub fn call_dynamic_stream(
        &self,
        name: &str,
        args: &[Value],
    ) -> Result<impl Iterator<Item = Result<Value, CallError>> + Send, CallError> {
        fidius::dynamic::call_stream(self, self.info(), name, args)
    }

    fn method_name(&self, index: usize) -> String {
        self.info()
            .methods
            .get(index)
            .map_or_else(|| format!("#{index}"), |m| m.name.clone())
    }
}

impl IsolatedHandle {
    /// A lane of a process, for one call or one stream. Waiting for it (for a new
    /// process, for a free worker) counts against the deadline; a call whose deadline
    /// passed meanwhile is not sent at all.
    fn connect(&self, deadline: Option<Instant>) -> Result<Leased, CallError> {
        let mut process = self.inner.process(None, deadline)?;
        let leased = loop {
            match process.take_lane(deadline) {
                Ok(leased) => break leased,
                // It ended before the call reached it: the call goes to the next.
                Err(NoLane::Ended) => process = self.inner.process(Some(&process), deadline)?,
                Err(NoLane::Busy) => {
                    return Err(self.not_sent("every worker of its process stayed busy"))
                }
                Err(NoLane::Failed(e)) => return Err(e),
            }
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            leased.give_back();
            return Err(self.not_sent("it took that long to reach a worker of its process"));
        }
        Ok(leased)
    }

    fn not_sent(&self, why: &str) -> CallError {
        CallError::Unavailable {
            plugin: self.info().name.clone(),
            reason: format!(
                "{why} until the call's deadline of {:?}; the call was not made",
                self.deadline.unwrap_or_default()
            ),
        }
    }

    /// What a request that got `reply` gives: `Ok` for an answer (the lane goes back
    /// for the next call), the error otherwise. A request left without an answer
    /// gives its lane up (an answer may still come), and past its deadline kills the
    /// process: the only way to stop the call.
    fn settle(
        &self,
        leased: Leased,
        reply: &Reply,
        index: usize,
        deadline: Option<Instant>,
    ) -> Result<(), CallError> {
        match reply {
            Reply::Item | Reply::End | Reply::Error(_) => {
                leased.process().mark_served();
                leased.give_back();
                Ok(())
            }
            Reply::Lost => {
                let process = leased.process().clone();
                drop(leased);
                Err(process.call_failure(deadline))
            }
            Reply::Timeout => {
                let process = leased.process().clone();
                drop(leased);
                let method = self.method_name(index);
                let deadline = self.deadline.unwrap_or_default();
                process.kill(&format!(
                    "a call to `{method}` passed its deadline of {deadline:?}"
                ));
                Err(CallError::Timeout {
                    plugin: self.info().name.clone(),
                    method,
                    deadline,
                })
            }
        }
    }

    /// One request and its answer: operation `op` on method `index` (a call, or a
    /// state operation), within the handle's deadline.
    fn exchange<R>(
        &self,
        op: u8,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let deadline = self.call_deadline();
        let mut leased = self.connect(deadline)?;
        let reply = leased.lane().request(op, index, input, deadline);
        // Decoded before the lane goes back (the bytes are in its buffer).
        let result = match &reply {
            Reply::Item => decode(leased.lane().item()),
            Reply::Error(e) => Err(e.clone()),
            Reply::End => Err(CallError::Serialization(
                "the plugin process answered a call with the end of a stream".into(),
            )),
            Reply::Timeout | Reply::Lost => Err(CallError::Serialization(String::new())),
        };
        self.settle(leased, &reply, index, deadline)?;
        result
    }

    fn call_deadline(&self) -> Option<Instant> {
        self.deadline.map(|d| Instant::now() + d)
    }
}

impl PluginCaller for IsolatedHandle {
    fn call_with<R>(
        &self,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        self.exchange(CALL, index, input, decode)
    }

    fn has_method(&self, index: usize) -> bool {
        self.info().methods.get(index).is_some_and(|m| m.present)
    }

    fn check_interface(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch> {
        self.info().check_compatible(expected)
    }

    /// Streams cross item by item: the stream holds one of the process's workers
    /// until it ends, and each item must come within the handle's deadline.
    fn call_stream(&self, index: usize, input: &[u8]) -> Result<RawStream, CallError> {
        let deadline = self.call_deadline();
        let mut leased = self.connect(deadline)?;
        let reply = leased.lane().request(OPEN_STREAM, index, input, deadline);
        match reply {
            Reply::Item => Ok(RawStream::from_source(Box::new(IsolatedStream {
                handle: self.clone(),
                leased: Some(leased),
                index,
            }))),
            Reply::Error(e) => {
                leased.give_back();
                Err(e)
            }
            reply => {
                self.settle(leased, &reply, index, deadline)?;
                Err(CallError::Serialization(
                    "the plugin process answered a stream's start with its end".into(),
                ))
            }
        }
    }
}

/// A stream whose producer runs in the plugin's process. It holds its lane (and so
/// one of the process's workers) until it ends; dropping it early closes the lane,
/// and the process then drops the producer.
struct IsolatedStream {
    handle: IsolatedHandle,
    leased: Option<Leased>,
    index: usize,
}

impl StreamSource for IsolatedStream {
    fn next_item(&mut self) -> Option<Result<&[u8], CallError>> {
        let deadline = self.handle.call_deadline();
        let reply = self
            .leased
            .as_mut()?
            .lane()
            .request(NEXT, self.index, &[], deadline);
        if let Reply::Item = reply {
            return self.leased.as_mut().map(|leased| Ok(leased.lane().item()));
        }
        let leased = self.leased.take()?;
        match self.handle.settle(leased, &reply, self.index, deadline) {
            Err(e) => Some(Err(e)),
            Ok(()) => match reply {
                Reply::Error(e) => Some(Err(e)),
                _ => None,
            },
        }
    }

    fn cancel(&mut self) {
        // Dropping the lease closes the lane; the process drops the producer.
        self.leased = None;
    }
}

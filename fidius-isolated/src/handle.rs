//! [`IsolatedHandle`]: calls into an isolated plugin, with a deadline or without.

use crate::plugin::Inner;
use crate::process::{NoLane, Sent};
use fidius::{
    CallError, InterfaceInfo, InterfaceMismatch, MethodInfo, PluginCaller, PluginInfo, RawStream,
    Value,
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
        fidius_core::caller::call_encoded(self, index, args, fidius_core::call::decode_result::<R>)
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

    fn method_name(&self, index: usize) -> String {
        self.info()
            .methods
            .get(index)
            .map_or_else(|| format!("#{index}"), |m| m.name.clone())
    }
}

impl PluginCaller for IsolatedHandle {
    fn call_with<R>(
        &self,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let deadline = self.deadline.map(|d| Instant::now() + d);
        let mut process = self.inner.process(None, deadline)?;
        let mut lane = loop {
            match process.take_lane(deadline) {
                Ok(lane) => break lane,
                // It ended before the call reached it: the call goes to the next.
                Err(NoLane::Ended) => process = self.inner.process(Some(&process), deadline)?,
                Err(NoLane::Busy) => {
                    return Err(CallError::Unavailable {
                        plugin: self.info().name.clone(),
                        reason: format!(
                        "every worker of its process stayed busy until the call's deadline of {:?}",
                        self.deadline.unwrap_or_default()
                    ),
                    })
                }
                Err(NoLane::Failed(e)) => return Err(e),
            }
        };
        let outcome = match lane.call(index, input, deadline) {
            Sent::Answered(result) => Ok(result.and_then(decode)),
            Sent::Timeout => Err(true),
            Sent::Lost => Err(false),
        };
        match outcome {
            Ok(result) => {
                process.put_lane(lane);
                process.mark_served();
                result
            }
            Err(timed_out) => {
                // The lane is out of step (an answer may still come): never reused.
                drop(lane);
                process.lane_lost();
                if !timed_out {
                    return Err(process.call_failure());
                }
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

    fn has_method(&self, index: usize) -> bool {
        self.info().methods.get(index).is_some_and(|m| m.present)
    }

    fn check_interface(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch> {
        self.info().check_compatible(expected)
    }

    fn call_stream(&self, index: usize, _input: &[u8]) -> Result<RawStream, CallError> {
        Err(CallError::NotImplemented {
            plugin: self.info().name.clone(),
            method: format!(
                "{} (streams do not cross into an isolated plugin's process yet)",
                self.method_name(index)
            ),
        })
    }
}

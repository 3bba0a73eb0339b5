//! Dynamic calls on a loaded handle (see [`crate::dynamic`]).

use super::PluginHandle;
use crate::error::CallError;
use crate::info::MethodInfo;
use crate::value::Value;

impl PluginHandle {
    /// The method called `name`, or [`CallError::UnknownMethod`] listing the ones there
    /// are.
    pub fn method_info(&self, name: &str) -> Result<&MethodInfo, CallError> {
        crate::dynamic::method_info(self.info(), name)
    }

    /// Calls method `name` with `args` and returns its result as a [`Value`]; no
    /// interface crate needed.
    ///
    /// A `#[wire(raw)]` method takes one `Value::Binary` (or a string, taken as UTF-8)
    /// and returns `Value::Binary`. A streaming method is refused here; use
    /// [`call_dynamic_stream`](Self::call_dynamic_stream).
    pub fn call_dynamic(&self, name: &str, args: &[Value]) -> Result<Value, CallError> {
        crate::dynamic::call(self, self.info(), name, args)
    }

    /// Calls streaming method `name` with `args`; each item arrives as a [`Value`].
    pub fn call_dynamic_stream(
        &self,
        name: &str,
        args: &[Value],
    ) -> Result<impl Iterator<Item = Result<Value, CallError>> + Send, CallError> {
        crate::dynamic::call_stream(self, self.info(), name, args)
    }
}

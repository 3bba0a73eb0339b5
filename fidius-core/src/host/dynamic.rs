//! Calling a plugin without its interface crate: by method name, with [`Value`]
//! arguments, from the method table the library itself carries.

use super::PluginHandle;
use crate::error::CallError;
use crate::info::MethodInfo;
use crate::stream_reader::RawStream;
use crate::value::Value;

impl PluginHandle {
    /// The method called `name`, or [`CallError::UnknownMethod`] listing the ones there
    /// are.
    pub fn method_info(&self, name: &str) -> Result<&MethodInfo, CallError> {
        self.info()
            .method(name)
            .ok_or_else(|| CallError::UnknownMethod {
                plugin: self.info().name.clone(),
                method: name.to_string(),
                available: self.info().methods.iter().map(|m| m.name.clone()).collect(),
            })
    }

    /// Calls method `name` with `args` and returns its result as a [`Value`]; no
    /// interface crate needed.
    ///
    /// A `#[wire(raw)]` method takes one `Value::Binary` (or a string, taken as UTF-8)
    /// and returns `Value::Binary`. A streaming method is refused here; use
    /// [`call_dynamic_stream`](Self::call_dynamic_stream).
    pub fn call_dynamic(&self, name: &str, args: &[Value]) -> Result<Value, CallError> {
        let method = self.method_info(name)?;
        if method.streaming {
            return Err(CallError::StreamingMismatch {
                method: method.name.clone(),
                streaming: true,
            });
        }
        let input = dynamic_input(method, args)?;
        let output = self.call_method_raw(method.index, &input)?;
        if method.raw {
            return Ok(Value::Binary(output));
        }
        read_value(&output)
    }

    /// Calls streaming method `name` with `args`; each item arrives as a [`Value`].
    pub fn call_dynamic_stream(
        &self,
        name: &str,
        args: &[Value],
    ) -> Result<impl Iterator<Item = Result<Value, CallError>> + Send, CallError> {
        let method = self.method_info(name)?;
        if !method.streaming {
            return Err(CallError::StreamingMismatch {
                method: method.name.clone(),
                streaming: false,
            });
        }
        let input = dynamic_input(method, args)?;
        let mut stream: RawStream = crate::PluginCaller::call_stream(self, method.index, &input)?;
        Ok(std::iter::from_fn(move || stream.next_with(read_value)))
    }
}

/// The wire input for a dynamic call: the argument tuple, or the raw bytes.
fn dynamic_input(method: &MethodInfo, args: &[Value]) -> Result<Vec<u8>, CallError> {
    let expected = method.arguments().len();
    if args.len() != expected {
        return Err(CallError::ArgumentCount {
            signature: method.signature.clone(),
            expected,
            found: args.len(),
        });
    }
    if method.raw {
        return match &args[0] {
            Value::Binary(b) => Ok(b.clone()),
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            other => Err(CallError::Serialization(format!(
                "raw method `{}` takes bytes, not {other}",
                method.name
            ))),
        };
    }
    let mut input = Vec::new();
    rmpv::encode::write_value(&mut input, &Value::Array(args.to_vec()))
        .map_err(|e| CallError::Serialization(format!("encoding arguments: {e}")))?;
    Ok(input)
}

/// Decodes any encoded result as a [`Value`].
fn read_value(bytes: &[u8]) -> Result<Value, CallError> {
    let mut cursor = bytes;
    rmpv::decode::read_value(&mut cursor)
        .map_err(|e| CallError::Serialization(format!("decoding result as a Value: {e}")))
}

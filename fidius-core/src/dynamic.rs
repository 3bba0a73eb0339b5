//! Calling a plugin without its interface crate: by method name, with [`Value`]
//! arguments, from the method table the library itself carries. Works over any
//! [`PluginCaller`] that knows its plugin's [`PluginInfo`]: a loaded handle, a plugin
//! in another process.

use crate::caller::PluginCaller;
use crate::error::CallError;
use crate::info::{MethodInfo, PluginInfo};
use crate::stream::reader::RawStream;
use crate::value::Value;

/// The method of `info` called `name`, or [`CallError::UnknownMethod`] listing the ones
/// there are.
pub fn method_info<'a>(info: &'a PluginInfo, name: &str) -> Result<&'a MethodInfo, CallError> {
    info.method(name).ok_or_else(|| CallError::UnknownMethod {
        plugin: info.name.clone(),
        method: name.to_string(),
        available: info.methods.iter().map(|m| m.name.clone()).collect(),
    })
}

/// Calls method `name` of the plugin `info` describes, through `caller`, with `args`,
/// and returns its result as a [`Value`].
///
/// A `#[wire(raw)]` method takes one `Value::Binary` (or a string, taken as UTF-8)
/// and returns `Value::Binary`. A streaming method is refused here; use
/// [`call_stream`].
pub fn call(
    caller: &(impl PluginCaller + ?Sized),
    info: &PluginInfo,
    name: &str,
    args: &[Value],
) -> Result<Value, CallError> {
    let method = method_info(info, name)?;
    if method.streaming {
        return Err(CallError::StreamingMismatch {
            method: method.name.clone(),
            streaming: true,
        });
    }
    check_arity(method, args)?;
    if method.raw {
        let input = raw_input(method, args)?;
        return caller.call_with(method.index, input, |bytes| {
            Ok(Value::Binary(bytes.to_vec()))
        });
    }
    crate::caller::with_scratch(
        |buf| encode_values(args, buf),
        |input| caller.call_with(method.index, input, read_value),
    )
}

/// Calls streaming method `name` with `args`; each item arrives as a [`Value`].
pub fn call_stream(
    caller: &(impl PluginCaller + ?Sized),
    info: &PluginInfo,
    name: &str,
    args: &[Value],
) -> Result<impl Iterator<Item = Result<Value, CallError>> + Send, CallError> {
    let method = method_info(info, name)?;
    if !method.streaming {
        return Err(CallError::StreamingMismatch {
            method: method.name.clone(),
            streaming: false,
        });
    }
    let input = dynamic_input(method, args)?;
    let mut stream: RawStream = caller.call_stream(method.index, &input)?;
    Ok(std::iter::from_fn(move || stream.next_with(read_value)))
}

/// The wire input for a dynamic call: the argument tuple, or the raw bytes.
fn dynamic_input(method: &MethodInfo, args: &[Value]) -> Result<Vec<u8>, CallError> {
    check_arity(method, args)?;
    if method.raw {
        return raw_input(method, args).map(<[u8]>::to_vec);
    }
    let mut input = Vec::new();
    encode_values(args, &mut input)?;
    Ok(input)
}

fn check_arity(method: &MethodInfo, args: &[Value]) -> Result<(), CallError> {
    let expected = method.arity();
    if args.len() != expected {
        return Err(CallError::ArgumentCount {
            signature: method.signature.clone(),
            expected,
            found: args.len(),
        });
    }
    Ok(())
}

/// The bytes a raw method takes: a `Value::Binary`, or a string as UTF-8.
fn raw_input<'a>(method: &MethodInfo, args: &'a [Value]) -> Result<&'a [u8], CallError> {
    match &args[0] {
        Value::Binary(b) => Ok(b),
        Value::String(s) => Ok(s.as_bytes()),
        other => Err(CallError::Serialization(format!(
            "raw method `{}` takes bytes, not {other}",
            method.name
        ))),
    }
}

/// Appends `args` as the wire tuple.
fn encode_values(args: &[Value], out: &mut Vec<u8>) -> Result<(), CallError> {
    use crate::wire::arguments_error;
    crate::wire::write_array_header(out, args.len()).map_err(|e| arguments_error(&e))?;
    for arg in args {
        rmpv::encode::write_value(out, arg).map_err(|e| arguments_error(&e))?;
    }
    Ok(())
}

/// Decodes any encoded result as a [`Value`].
fn read_value(bytes: &[u8]) -> Result<Value, CallError> {
    let mut cursor = bytes;
    rmpv::decode::read_value(&mut cursor)
        .map_err(|e| CallError::Serialization(format!("decoding result as a Value: {e}")))
}

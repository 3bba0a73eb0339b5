//! `describe` and `call`: what a library offers, and calling it with JSON in and out,
//! without the plugin's interface crate.

use crate::Failure;
use fidius::host::PluginLibrary;
use fidius::{PluginInfo, Value};
use serde_json::{json, Map, Number, Value as Json};
use std::io::Write;
use std::sync::Arc;

fn open(path: &str) -> Result<Arc<PluginLibrary>, Failure> {
    PluginLibrary::open(path).map_err(|e| Failure::Usage(e.to_string()))
}

pub fn describe(path: &str) -> Result<(), Failure> {
    let library = open(path)?;
    let plugins: Vec<Json> = library.plugins().map(plugin_json).collect();
    let out = json!({ "path": path, "plugins": plugins });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).expect("JSON values serialize")
    );
    Ok(())
}

fn pairs(pairs: &[(String, String)]) -> Json {
    Json::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    )
}

pub fn plugin_json(p: &PluginInfo) -> Json {
    let methods: Vec<Json> = p
        .methods
        .iter()
        .map(|m| {
            json!({
                "index": m.index,
                "name": m.name,
                "signature": m.signature,
                "arguments": m.arguments(),
                "returns": m.returns(),
                "wire": if m.raw { "raw" } else { "messagepack" },
                "optional": m.optional,
                "since": m.since,
                "present": m.present,
                "fallible": m.fallible,
                "streaming": m.streaming,
                "metadata": pairs(&m.metadata),
            })
        })
        .collect();
    json!({
        "name": p.name,
        "interface": p.interface_name,
        "interface_hash": format!("{:#018x}", p.interface_hash),
        "interface_version": p.interface_version,
        "buffer_strategy": p.buffer_strategy.name(),
        "trait_metadata": pairs(&p.trait_metadata),
        "methods": methods,
    })
}

pub fn call(path: &str, plugin: &str, method: &str, args: &str) -> Result<(), Failure> {
    let args: Json = serde_json::from_str(args)
        .map_err(|e| Failure::Usage(format!("arguments are not valid JSON: {e}")))?;
    let Json::Array(args) = args else {
        return Err(Failure::Usage(
            "arguments must be a JSON array, e.g. '[\"text\", 3]'".into(),
        ));
    };
    let library = open(path)?;
    let handle = library
        .handle(plugin, None)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let info = handle.method_info(method)?;
    // Bytes, as the results print them: a JSON array of numbers (a string gives its
    // UTF-8 bytes), for a raw method's argument and every `Vec<u8>` one.
    let types = info.arguments();
    let args: Vec<Value> = args
        .iter()
        .enumerate()
        .map(|(i, arg)| {
            let bytes = info.raw || types.get(i).is_some_and(|t| *t == "Vec<u8>");
            match (bytes, as_bytes(arg)) {
                (true, Some(bytes)) => Value::Binary(bytes),
                _ => to_value(arg),
            }
        })
        .collect();
    if info.streaming {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for item in handle.call_dynamic_stream(method, &args)? {
            let _ = writeln!(out, "{}", to_json(&item?));
        }
    } else {
        println!("{}", to_json(&handle.call_dynamic(method, &args)?));
    }
    Ok(())
}

/// A JSON array of numbers 0 to 255, as bytes.
fn as_bytes(j: &Json) -> Option<Vec<u8>> {
    let Json::Array(items) = j else { return None };
    items
        .iter()
        .map(|n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect()
}

/// JSON to a MessagePack value: numbers stay integers when they are.
fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(i)) => Value::from(i),
            _ => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), to_value(v)))
                .collect(),
        ),
    }
}

/// A MessagePack value as JSON: bytes as arrays of numbers, non-string map keys as
/// their JSON text, extension values as `{"ext": type, "data": [...]}`.
fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => i
            .as_u64()
            .map(Json::from)
            .or_else(|| i.as_i64().map(Json::from))
            .unwrap_or(Json::Null),
        Value::F32(f) => Number::from_f64(*f as f64).map_or(Json::Null, Json::Number),
        Value::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.as_str().map_or_else(
            || String::from_utf8_lossy(s.as_bytes()).into_owned(),
            str::to_string,
        )),
        Value::Binary(b) => Json::Array(b.iter().map(|&x| Json::from(x)).collect()),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => {
            let mut obj = Map::new();
            for (k, v) in m {
                let key = match k {
                    Value::String(s) if s.as_str().is_some() => s.as_str().unwrap().to_string(),
                    other => to_json(other).to_string(),
                };
                obj.insert(key, to_json(v));
            }
            Json::Object(obj)
        }
        Value::Ext(t, data) => json!({ "ext": t, "data": data }),
    }
}

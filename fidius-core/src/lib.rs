//! The ABI contract between fidius hosts and plugins.
//!
//! Plugin authors and hosts use the [`fidius`](https://docs.rs/fidius) facade; this
//! crate holds what both sides link against:
//!
//! * [`descriptor`] and [`registry`]: the `#[repr(C)]` tables a plugin library exports;
//! * [`status`]: the codes every method slot returns;
//! * [`wire`]: the MessagePack wire format;
//! * [`hash`]: FNV-1a interface hashing;
//! * [`error`]: [`PluginError`] and [`CallError`];
//! * [`value`]: the self-describing [`Value`];
//! * [`caller`]: [`PluginCaller`], what typed clients call through;
//! * [`shared_alloc`]: [`SharedAllocator`], an opt-in that lets byte and string
//!   results change owner across the boundary instead of being copied;
//! * [`host`] (feature `host`): loading and validating libraries. Plugin builds never
//!   enable it, so plugins never link `libloading`.

#![warn(missing_docs)]

pub mod call;
pub mod caller;
pub mod descriptor;
pub mod dynamic;
pub mod error;
pub mod hash;
pub mod info;
pub mod interface;
pub mod python_descriptor;
pub mod registry;
pub mod shared_alloc;
#[doc(hidden)]
pub mod shim;
pub mod state;
pub mod status;
pub mod stream_ffi;
pub mod stream_marker;
pub mod stream_reader;
pub mod value;
pub mod wasm_descriptor;
pub mod wire;

#[cfg(feature = "host")]
pub mod host;

pub use inventory;

pub use caller::PluginCaller;
pub use descriptor::{BufferStrategyKind, PluginDescriptor, ABI_VERSION};
pub use error::{CallError, PluginError, ProcessExit};
pub use hash::{fnv1a, interface_hash};
pub use info::{FastPath, MethodInfo, PluginInfo};
pub use interface::{InterfaceInfo, InterfaceMismatch};
pub use registry::{PluginRegistry, FIDIUS_MAGIC, REGISTRY_VERSION};
pub use shared_alloc::SharedAllocator;
pub use stream_marker::Stream;
pub use stream_reader::{PluginStream, RawStream, StreamSource};
pub use value::{from_value, to_value, Value, ValueError};

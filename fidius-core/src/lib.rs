//! The ABI contract between fidius hosts and plugins.
//!
//! Plugin authors and hosts use the [`fidius`](https://docs.rs/fidius) facade; this
//! crate holds what both sides link against. Its modules, in the order a reader needs
//! them:
//!
//! **What an interface is**
//! * [`interface`]: [`InterfaceInfo`] and the traits `#[plugin_interface]` implements
//!   for `dyn Trait`, through which a host names what it expects;
//! * [`hash`]: FNV-1a interface hashing of the required methods' signatures;
//! * [`stream`]: [`Stream<T>`](Stream), what a streaming method returns, and both
//!   sides of a stream: how its items cross, one per pull;
//! * [`state`]: [`state::PluginState`], carrying a plugin's state to its next version.
//!
//! **What a plugin library exports**
//! * [`descriptor`]: the `#[repr(C)]` tables (`PluginDescriptor`, method table, entry
//!   point types), their layout pinned by tests;
//! * [`registry`]: the `fidius_get_registry` entry point listing a library's plugins;
//! * [`status`]: the codes every method slot returns;
//! * [`python_descriptor`] and [`wasm_descriptor`]: the same interface described for
//!   a Python loader and a WASM component loader (read by those loaders, not by the
//!   host in this crate).
//!
//! **How a call crosses**
//! * [`wire`]: the MessagePack wire format, and the direct readers and writers that
//!   keep it fast;
//! * [`invoke`]: [`invoke::CallTable`], the one place a call enters plugin code;
//! * [`caller`]: [`PluginCaller`], what typed clients call through;
//! * [`shared_alloc`]: [`SharedAllocator`], an opt-in that lets byte and string
//!   results change owner across the boundary instead of being copied;
//! * [`error`]: [`PluginError`] and [`CallError`].
//!
//! **What a host reads**
//! * [`info`]: [`PluginInfo`] and [`MethodInfo`], validated views of a descriptor, and
//!   the rules of compatibility between a plugin and an interface;
//! * [`signature`]: the argument and return types of a method's signature;
//! * [`value`]: the self-describing [`Value`];
//! * [`dynamic`]: calls by method name with `Value`s, no interface crate needed;
//! * `host` (feature `host`): loading and validating libraries. Plugin builds never
//!   enable it, so plugins never link `libloading`.
//!
//! The module `shim` holds what the macros' generated code calls on the plugin side;
//! it is not a public API.

#![warn(missing_docs)]

pub mod caller;
pub mod descriptor;
pub mod dynamic;
pub mod error;
pub mod hash;
pub mod info;
pub mod interface;
pub mod invoke;
pub mod panics;
pub mod python_descriptor;
pub mod registry;
pub mod shared_alloc;
#[doc(hidden)]
pub mod shim;
pub mod signature;
pub mod state;
pub mod status;
pub mod stream;
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
pub use interface::{InterfaceInfo, InterfaceMismatch, MethodChange, MethodSpec};
pub use registry::{PluginRegistry, FIDIUS_MAGIC, REGISTRY_VERSION};
pub use shared_alloc::SharedAllocator;
pub use stream::reader::{PluginStream, RawStream, StreamSource};
pub use stream::Stream;
pub use value::{from_value, to_value, Value, ValueError};

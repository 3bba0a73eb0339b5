//! # fidius
//!
//! Plugins as ordinary Rust traits: define an interface, implement it in a `cdylib`,
//! load it in a host and call it through a typed client. Three kinds of crate take
//! part; each section below starts with its `Cargo.toml`.
//!
//! Hot reloading (watch a plugin file, swap new builds in under running calls) is the
//! [`fidius-hotreload`](https://docs.rs/fidius-hotreload) crate; plugins in processes
//! of their own, [`fidius-isolated`](https://docs.rs/fidius-isolated); the `fidius`
//! command (describe, call, check, sign), the `fidius-cli` crate.
//!
//! ## An interface crate
//!
//! Depends on `fidius` only; no features, no `cfg`s.
//!
//! ```toml
//! [dependencies]
//! fidius = "0.1"
//! ```
//!
//! ```
//! pub use fidius::{plugin_impl, PluginError};
//!
//! #[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
//! pub trait MyPlugin: Send + Sync {
//!     fn process(&self, input: String) -> String;
//! }
//! # fn main() {}
//! ```
//!
//! ## A plugin crate
//!
//! A `cdylib` depending on the interface crate and `fidius`. Without
//! `crate-type = ["cdylib"]`, cargo builds no library a host could load; without
//! `fidius_plugin_registry!()`, a host finds no plugin in it (both errors say so).
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! my-interface = { path = "../my-interface" }
//! fidius = "0.1"
//! ```
//!
//! It imports the trait and nothing else:
//!
//! ```
//! # mod my_interface {
//! #     pub use fidius::{plugin_impl, PluginError};
//! #     #[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
//! #     pub trait MyPlugin: Send + Sync {
//! #         fn process(&self, input: String) -> String;
//! #     }
//! # }
//! use my_interface::{plugin_impl, MyPlugin};
//!
//! pub struct MyImpl;
//!
//! #[plugin_impl(MyPlugin)]
//! impl MyPlugin for MyImpl {
//!     fn process(&self, input: String) -> String {
//!         format!("processed: {input}")
//!     }
//! }
//!
//! fidius::fidius_plugin_registry!();
//! # fn main() {}
//! ```
//!
//! ## A host (feature `host`)
//!
//! ```toml
//! [dependencies]
//! my-interface = { path = "../my-interface" }
//! fidius = { version = "0.1", features = ["host"] }
//! ```
//!
//! [`host::platform::library_file_name`] names a plugin crate's library on this
//! platform (`libmy_plugin.so`, `libmy_plugin.dylib`, `my_plugin.dll`).
//!
//! ```no_run
//! # mod my_interface {
//! #     #[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
//! #     pub trait MyPlugin: Send + Sync {
//! #         fn process(&self, input: String) -> String;
//! #     }
//! # }
//! # #[cfg(feature = "host")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fidius::host::PluginHost;
//! use my_interface::{MyPlugin, MyPluginClient};
//!
//! let host = PluginHost::builder()
//!     .search_path("target/debug")
//!     .expect_interface::<dyn MyPlugin>()
//!     .build();
//! let client = MyPluginClient::new(host.load("MyImpl")?)?;
//! assert_eq!(client.process("hi".into())?, "processed: hi");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "host"))]
//! # fn main() {}
//! ```
//!
//! ## Trust and its limits
//!
//! A plugin runs in the host's process with the host's rights: loading a library
//! runs its code. Validation catches accidents (a file that is no library, another
//! architecture, ABI or interface version, a panicking plugin), never malice. A host
//! decides whom it trusts with [`host::trust::Trust`]: it then loads only builds
//! signed by its keys (`fidius sign`) or with pinned digests, judged on a private copy
//! before the loader sees it. Plugin panics are caught at the boundary and reported
//! as `CallError::Panic`; where else they go is the host's choice
//! ([`panics::route_plugin_panics`]). A library is closed when its last handle goes,
//! but the system may keep it mapped (see the repository's README, "Known
//! limitations").
//!
//! ## What the macros accept
//!
//! `#[plugin_interface(version = N, buffer = PluginAllocated | Arena)]` on a trait whose
//! methods take `&self` and owned serde arguments, and return a serde type, `()`, or
//! `Result<T, PluginError>`. `version` is required; `buffer` defaults to
//! `PluginAllocated`. `crate = "path"` names fidius for an interface crate that
//! re-exports it under another path (`crate = "my_sdk::fidius"`); the generated code
//! then goes through that path. Method attributes:
//!
//! * `#[optional(since = N)]`: plugins may leave the method out; the client's
//!   `has_<method>()` tells, and calling it anyway gives `CallError::NotImplemented`
//!   without crossing the boundary. Optional methods are not part of the interface
//!   hash, so adding one (at the end, with a version bump) keeps old plugins loadable.
//! * `#[method_meta("key", "value")]`, and `#[trait_meta("key", "value")]` on the trait:
//!   static metadata a host reads without calling anything.
//! * `#[wire(raw)]` on `fn f(&self, data: Vec<u8>) -> Vec<u8>`: bytes pass untouched.
//!
//! Arguments and results travel as MessagePack ([`wire`]), byte arguments as `bin`.
//! Three kinds of method also get an entry that skips it, used by the typed client and
//! by `PluginHandle::call_method` alike: all-scalar methods (`fn add(&self, a: i64, b:
//! i64) -> i64`: values passed as they are), `fn(Vec<u8>) -> Vec<u8>` (bytes unframed)
//! and `fn(String) -> String` (UTF-8 unframed, checked on both sides). When the host
//! and the plugin both declare [`SharedAllocator`] as their global allocator, the
//! results of the last two change owner instead of being copied (see
//! [`shared_alloc`]).
//!
//! A method may return [`Stream<T>`]: the plugin builds it from any iterator
//! ([`Stream::from_iter`], or [`Stream::from_results`] to end with an error), and the
//! client returns a [`PluginStream<T>`], an iterator of `Result<T, CallError>` that
//! pulls one item per `next()`. Dropping it cancels the producer.
//!
//! `#[plugin_impl(Trait)]` (optionally `buffer = ...`, checked against the interface,
//! and `crate = "path"`) on `impl Trait for Type`, where `Type` is a unit struct or
//! implements `Default`. The method attributes above may be written again on the
//! impl's methods, as some codebases do: they are checked to agree with the trait's
//! (which decide) and explained where they do not.
//! Methods are wired by name, so the order of the impl block does not matter. A panic
//! in a method is caught and reported as `CallError::Panic`.
//!
//! Methods may only be appended to an interface: the host checks, by index, that every
//! method both sides know has the same signature.
//!
//! `#[plugin_impl(Trait, state)]` makes a plugin carry its state across versions: the
//! type implements [`PluginState`], and a hot-reloading host hands the state of the
//! old version to the new one at each reload ([`state`] has the details):
//!
//! ```
//! # #[fidius::plugin_interface(version = 1, buffer = PluginAllocated)]
//! # pub trait Counter: Send + Sync { fn add(&self, n: u64) -> u64; }
//! use fidius::{plugin_impl, PluginError, PluginState, SavedState};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! #[derive(Default)]
//! pub struct Counting {
//!     total: AtomicU64,
//! }
//!
//! #[plugin_impl(Counter, state)]
//! impl Counter for Counting {
//!     fn add(&self, n: u64) -> u64 {
//!         self.total.fetch_add(n, Ordering::SeqCst) + n
//!     }
//! }
//!
//! impl PluginState for Counting {
//!     const STATE_VERSION: u32 = 1;
//!     type State = u64;
//!
//!     fn save_state(&self) -> u64 {
//!         self.total.load(Ordering::SeqCst)
//!     }
//!
//!     fn restore_state(&self, saved: SavedState) -> Result<(), PluginError> {
//!         if saved.version() != Self::STATE_VERSION {
//!             return Err(PluginError::new("STATE_VERSION", "unknown state layout"));
//!         }
//!         self.total.store(saved.decode()?, Ordering::SeqCst);
//!         Ok(())
//!     }
//! }
//! ```

#![warn(missing_docs)]

pub use fidius_core::interface::{interface_info, Interface};
pub use fidius_core::state::{PluginState, SavedState};
pub use fidius_core::{
    caller, from_value, inventory, to_value, BufferStrategyKind, CallError, FastPath,
    InterfaceInfo, InterfaceMismatch, MethodChange, MethodInfo, MethodSpec, PluginCaller,
    PluginDescriptor, PluginError, PluginInfo, PluginRegistry, PluginStream, ProcessExit,
    RawStream, SharedAllocator, Stream, StreamSource, Value, ValueError, ABI_VERSION, FIDIUS_MAGIC,
    REGISTRY_VERSION,
};
pub use fidius_core::{
    descriptor, dynamic, error, hash, panics, python_descriptor, registry, shared_alloc, state,
    status, stream, wasm_descriptor, wire,
};
pub use fidius_core::{fnv1a, interface_hash};
pub use fidius_macros::{plugin_impl, plugin_interface};

/// Host-side loading: `PluginHost`, `PluginHandle`, `LoadError`.
#[cfg(feature = "host")]
pub use fidius_core::host;
#[cfg(feature = "host")]
pub use fidius_core::host::{LoadError, PluginHandle, PluginHost};

/// Emits the `fidius_get_registry` function every plugin library exports. Invoke it
/// once, at the root of a plugin `cdylib`.
#[macro_export]
macro_rules! fidius_plugin_registry {
    () => {
        /// The fidius plugin registry of this library.
        #[unsafe(no_mangle)]
        pub extern "C" fn fidius_get_registry() -> *const $crate::PluginRegistry {
            $crate::registry::plugin_registry()
        }

        /// Which allocator this library's results come from (see
        /// `fidius::SharedAllocator`).
        #[unsafe(no_mangle)]
        pub extern "C" fn fidius_allocator() -> usize {
            $crate::shared_alloc::plugin_allocator_identity()
        }

        /// Installs this library's panic hook and routes its panics to the host's
        /// sink (see `fidius::panics`).
        #[unsafe(no_mangle)]
        pub extern "C" fn fidius_panic_sink(
            sink: ::core::option::Option<$crate::panics::PanicSink>,
            host_std: usize,
        ) {
            $crate::panics::plugin_set_panic_sink(sink, host_std)
        }
    };
}

/// Items the generated code refers to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use fidius_core::caller::{
        absent_as_not_implemented, bind_client, call_encoded, call_stream,
    };
    pub use fidius_core::descriptor::{
        CallOutput, ErasedFn, MetaEntry, MethodDescriptor, MethodFn, METHOD_DIRECT,
        METHOD_DIRECT_BYTES, METHOD_DIRECT_TEXT, METHOD_OPTIONAL, METHOD_RAW, METHOD_RESULT,
        METHOD_STREAMING,
    };
    pub use fidius_core::hash::interface_hash;
    pub use fidius_core::interface::{Interface, InterfaceInfo, MethodSpec, Vtable};
    pub use fidius_core::kebab_const;
    pub use fidius_core::registry::DescriptorRef;
    pub use fidius_core::shim::{
        assert_buffer, assert_impl_meta, assert_impl_optional, assert_impl_raw, descriptor,
        descriptor_with_state, run_direct, run_method, Ctor, PluginInstance, Reply, ViaDefault,
        ViaUnit,
    };
    pub use fidius_core::wire::{
        check_arg, decode_args, decode_bytes, decode_result, decode_scalar_args, explain_args,
        text_arg, text_result, ArgCheck, AsBin, BinVec,
    };
}

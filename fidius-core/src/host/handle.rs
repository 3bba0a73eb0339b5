//! [`PluginHandle`]: a callable plugin that keeps its library loaded.

use super::PluginLibrary;
use crate::caller::PluginCaller;
use crate::descriptor::{CallOutput, ErasedFn, PluginDescriptor};
use crate::error::CallError;
use crate::info::{FastPath, PluginInfo};
use crate::interface::{InterfaceInfo, InterfaceMismatch};
use crate::invoke::CallTable;
use crate::stream::reader::RawStream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// One plugin of a loaded library. Cheap to clone; usable from any thread.
///
/// The library stays loaded while any handle (or client built on one) is alive.
#[derive(Clone)]
pub struct PluginHandle {
    desc: *const PluginDescriptor,
    table: Arc<CallTable>,
    info: Arc<PluginInfo>,
    library: Arc<PluginLibrary>,
}

// SAFETY: the descriptor is immutable 'static data of a library kept loaded by
// `library`; plugin methods take `&self` of a `Send + Sync` plugin type.
unsafe impl Send for PluginHandle {}
// SAFETY: as above.
unsafe impl Sync for PluginHandle {}

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHandle")
            .field("plugin", &self.info.name)
            .field("interface", &self.info.interface_name)
            .field("path", &self.library.path())
            .finish()
    }
}

impl PluginHandle {
    /// # Safety
    /// `desc` must be a descriptor of `library`, validated by `PluginLibrary::open`.
    pub(crate) unsafe fn new(
        library: Arc<PluginLibrary>,
        desc: *const PluginDescriptor,
        info: PluginInfo,
    ) -> Self {
        Self {
            desc,
            // SAFETY: forwarded from this function's contract; `library`, kept with
            // the table, keeps the descriptor's library loaded; `shares_allocator`
            // was established by the library's own report, checked against ours.
            table: Arc::new(unsafe { CallTable::new(&*desc, library.shares_allocator()) }),
            info: Arc::new(info),
            library,
        }
    }

    /// What this plugin is and offers.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The file the plugin was loaded from.
    pub fn path(&self) -> &Path {
        self.library.path()
    }

    /// True when byte and string results of this plugin change owner instead of being
    /// copied: this host and the plugin's library both use
    /// [`SharedAllocator`](crate::SharedAllocator) over the same C library.
    pub fn shares_allocator(&self) -> bool {
        self.library.shares_allocator()
    }

    /// The library this plugin lives in.
    pub fn library(&self) -> &Arc<PluginLibrary> {
        &self.library
    }

    /// True when both handles call into the same loaded copy of the same plugin.
    ///
    /// The dynamic loader recognises a library it already has by path and by
    /// (device, inode), and then hands back the old copy; a hot reloader uses this to
    /// refuse such a "new" version.
    pub fn same_code(&self, other: &PluginHandle) -> bool {
        std::ptr::eq(self.desc, other.desc)
    }

    /// An address inside the plugin's library (its descriptor, in the library's
    /// data). After the library is closed, a tool can ask the system whether this
    /// address is still mapped, to learn cheaply whether the library left memory.
    pub fn library_address(&self) -> usize {
        self.desc as usize
    }

    /// Capability bits of the optional methods this plugin implements.
    pub fn capabilities(&self) -> u64 {
        self.info.capabilities
    }

    /// True when capability bit `bit` is set.
    pub fn has_capability(&self, bit: u32) -> bool {
        bit < 64 && self.info.capabilities >> bit & 1 == 1
    }

    /// The vtable index of method `name`.
    pub fn method_index(&self, name: &str) -> Option<usize> {
        self.info.method(name).map(|m| m.index)
    }

    /// The value of `#[method_meta(key, ...)]` on `method`.
    pub fn method_meta(&self, method: &str, key: &str) -> Option<&str> {
        self.info.method(method)?.meta(key)
    }

    /// The value of `#[trait_meta(key, ...)]`.
    pub fn trait_meta(&self, key: &str) -> Option<&str> {
        self.info.trait_meta(key)
    }

    /// Calls method `index` with `args`, the argument tuple (`(a,)`, `(a, b)`, `()`),
    /// and decodes the result as `R`.
    ///
    /// A method returning `Result<T, PluginError>` decodes as `T`; its errors arrive as
    /// [`CallError::Plugin`].
    ///
    /// A `fn(Vec<u8>) -> Vec<u8>` method called with one byte container and decoded as
    /// `Vec<u8>`, or a `fn(String) -> String` method called with one string and decoded
    /// as `String`, takes the method's unframed entry, as the typed client does.
    pub fn call_method<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        index: usize,
        args: &A,
    ) -> Result<R, CallError> {
        if let Some(result) = self.call_unframed(index, args) {
            return result;
        }
        crate::caller::call_encoded(self, index, args, crate::wire::decode_result::<R>)
    }

    /// [`call_method`](Self::call_method) through the unframed bytes or text entry,
    /// when the method, the arguments and the result type allow it.
    #[inline]
    fn call_unframed<A: ?Sized, R>(&self, index: usize, args: &A) -> Option<Result<R, CallError>> {
        match self.info.methods.get(index)?.fast_path {
            FastPath::Bytes if typeid_is::<R, Vec<u8>>() => {
                let bytes = crate::wire::single_bytes(args)?;
                let result = self.call_bytes(index, bytes)?;
                Some(result.map(|v| crate::wire::cast(v).unwrap_or_else(|_| unreachable!())))
            }
            FastPath::Text if typeid_is::<R, String>() => {
                let text = crate::wire::single_text(args)?;
                let result = self.call_bytes(index, text.as_bytes())?;
                Some(
                    result
                        .and_then(crate::wire::text_result)
                        .map(|s| crate::wire::cast(s).unwrap_or_else(|_| unreachable!())),
                )
            }
            _ => None,
        }
    }

    /// Calls streaming method `index` with `args` (the argument tuple) and returns the
    /// untyped stream of encoded items.
    pub fn call_stream_raw<A: Serialize + ?Sized>(
        &self,
        index: usize,
        args: &A,
    ) -> Result<RawStream, CallError> {
        let mut input = Vec::new();
        crate::wire::encode_call_args(args, &mut input)?;
        self.call_stream(index, &input)
    }

    /// Saves the plugin's state, if it carries state across versions
    /// ([`crate::state`]); `None` if it does not.
    pub fn save_state(&self) -> Option<Result<crate::state::SavedState, CallError>> {
        // SAFETY: the descriptor was validated when the library was opened, and
        // `self.library` keeps the library loaded for the whole call.
        let desc = unsafe { &*self.desc };
        let save = desc.save_state?;
        // SAFETY: as above; `save` is this descriptor's state function.
        let bytes = unsafe { self.table.call_fn(save, &[]) };
        Some(bytes.and_then(|bytes| {
            crate::state::SavedState::from_bytes(&bytes).ok_or_else(|| {
                CallError::PluginSerialization("a saved state without its version".into())
            })
        }))
    }

    /// Hands `saved` (from [`save_state`](Self::save_state) of another version) to
    /// the plugin; `None` if it does not carry state. The plugin may refuse it
    /// ([`CallError::Plugin`]).
    pub fn restore_state(&self, saved: &crate::state::SavedState) -> Option<Result<(), CallError>> {
        // SAFETY: as in `save_state`.
        let desc = unsafe { &*self.desc };
        let restore = desc.restore_state?;
        // SAFETY: as in `save_state`.
        Some(unsafe { self.table.call_fn(restore, &saved.to_bytes()) }.map(drop))
    }

    /// Calls method `index` with already-encoded input and returns the encoded output:
    /// the wire tuple and result for ordinary methods, the bytes themselves for
    /// `#[wire(raw)]` methods.
    pub fn call_method_raw(&self, index: usize, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_with(index, input, |bytes| Ok(bytes.to_vec()))
    }
}

/// True when `A` is `B` (lifetimes aside).
fn typeid_is<A: ?Sized, B: ?Sized>() -> bool {
    typeid::of::<A>() == typeid::of::<B>()
}

impl PluginCaller for PluginHandle {
    #[inline]
    fn call_with<R>(
        &self,
        index: usize,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        // SAFETY: `self.library` keeps the table's library loaded for the whole call.
        unsafe { self.table.call(index, input, decode) }
    }

    #[inline]
    fn call_direct(
        &self,
        index: usize,
        call: impl FnOnce(ErasedFn, *mut CallOutput) -> i32,
    ) -> Option<Result<(), CallError>> {
        // SAFETY: as in `call_with`; the generated client transmutes the entry to the
        // signature its interface declares, which the hash check made this plugin's.
        unsafe { self.table.call_direct(index, call) }
    }

    #[inline]
    fn call_bytes(&self, index: usize, input: &[u8]) -> Option<Result<Vec<u8>, CallError>> {
        // SAFETY: as in `call_with`.
        unsafe { self.table.call_bytes(index, input) }
    }

    fn call_stream(&self, index: usize, input: &[u8]) -> Result<RawStream, CallError> {
        // SAFETY: as in `call_with`.
        let desc = unsafe { &*self.desc };
        // SAFETY: as in `call_with`.
        let state = unsafe { self.table.call_stream(index, input) }?;
        let (Some(next), Some(free), Some(free_buffer)) =
            (desc.stream_next, desc.stream_free, desc.free_buffer)
        else {
            return Err(CallError::PluginSerialization(
                "the plugin returned a stream but has no stream functions".into(),
            ));
        };
        // SAFETY: the state came from this descriptor's streaming slot; the handle
        // clone keeps the library loaded for as long as the stream lives.
        Ok(unsafe { RawStream::new(state, next, free, free_buffer, Box::new(self.clone())) })
    }

    fn has_method(&self, index: usize) -> bool {
        self.info.methods.get(index).is_some_and(|m| m.present)
    }

    fn check_interface(&self, expected: &InterfaceInfo) -> Result<(), InterfaceMismatch> {
        self.info.check_compatible(expected)
    }
}

//! The one registry a plugin library exports, listing its plugin descriptors.
//!
//! A library exports `fidius_get_registry` (emitted by `fidius_plugin_registry!()`),
//! returning a pointer to a [`PluginRegistry`]. The host checks [`FIDIUS_MAGIC`] and
//! [`REGISTRY_VERSION`] before it reads anything else; both stay at the same offsets
//! in every future registry version.

use crate::descriptor::PluginDescriptor;
use std::sync::OnceLock;

/// The first eight bytes of every registry.
pub const FIDIUS_MAGIC: [u8; 8] = *b"FIDIUS\0\x01";

/// Version of the [`PluginRegistry`] layout.
pub const REGISTRY_VERSION: u32 = 1;

/// Name of the symbol every plugin library exports.
pub const REGISTRY_SYMBOL: &str = "fidius_get_registry";

/// Signature of the exported registry function.
pub type GetRegistryFn = unsafe extern "C" fn() -> *const PluginRegistry;

/// The table of plugins in one library.
#[repr(C)]
#[derive(Debug)]
pub struct PluginRegistry {
    /// Always [`FIDIUS_MAGIC`].
    pub magic: [u8; 8],
    /// Always [`REGISTRY_VERSION`] for this layout.
    pub registry_version: u32,
    /// Number of pointers at `descriptors`.
    pub plugin_count: u32,
    /// `plugin_count` descriptor pointers.
    pub descriptors: *const *const PluginDescriptor,
}

// SAFETY: a registry is built once, never mutated, and only points at 'static data.
unsafe impl Sync for PluginRegistry {}
// SAFETY: as above.
unsafe impl Send for PluginRegistry {}

/// A descriptor submitted by `#[plugin_impl]`, collected with `inventory`.
#[doc(hidden)]
pub struct DescriptorRef(pub &'static PluginDescriptor);

inventory::collect!(DescriptorRef);

struct Built {
    registry: PluginRegistry,
    // Owns the array `registry.descriptors` points into.
    _descriptors: Box<[*const PluginDescriptor]>,
}

// SAFETY: `Built` is immutable once created and only holds pointers to 'static data.
unsafe impl Sync for Built {}
// SAFETY: as above.
unsafe impl Send for Built {}

/// Builds (once) and returns this library's registry from every descriptor submitted
/// by `#[plugin_impl]`, sorted by plugin name.
///
/// Called by the `fidius_get_registry` function that `fidius_plugin_registry!()`
/// emits. Allocates once and never registers thread-local destructors, so it never
/// pins the library.
pub fn plugin_registry() -> &'static PluginRegistry {
    static BUILT: OnceLock<Built> = OnceLock::new();
    &BUILT
        .get_or_init(|| {
            let mut refs: Vec<&'static PluginDescriptor> = inventory::iter::<DescriptorRef>
                .into_iter()
                .map(|d| d.0)
                .collect();
            // SAFETY: every descriptor was built by `#[plugin_impl]` from string literals.
            refs.sort_by_key(|d| unsafe { crate::descriptor::read_c_str(d.plugin_name) });
            let descriptors: Box<[*const PluginDescriptor]> =
                refs.into_iter().map(|d| d as *const _).collect();
            Built {
                registry: PluginRegistry {
                    magic: FIDIUS_MAGIC,
                    registry_version: REGISTRY_VERSION,
                    plugin_count: descriptors.len() as u32,
                    descriptors: descriptors.as_ptr(),
                },
                _descriptors: descriptors,
            }
        })
        .registry
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn registry_layout() {
        assert_eq!(size_of::<PluginRegistry>(), 24);
        assert_eq!(offset_of!(PluginRegistry, magic), 0);
        assert_eq!(offset_of!(PluginRegistry, registry_version), 8);
        assert_eq!(offset_of!(PluginRegistry, plugin_count), 12);
        assert_eq!(offset_of!(PluginRegistry, descriptors), 16);
    }

    #[test]
    fn empty_registry_is_well_formed() {
        let reg = plugin_registry();
        assert_eq!(reg.magic, FIDIUS_MAGIC);
        assert_eq!(reg.registry_version, REGISTRY_VERSION);
        assert_eq!(reg.plugin_count, 0);
    }
}

//! Reading a plugin descriptor into a [`PluginInfo`], checking every pointer before it
//! is followed and every count before it is trusted.

use crate::descriptor::{
    read_c_str, MetaEntry, PluginDescriptor, METHOD_DIRECT, METHOD_DIRECT_BYTES,
    METHOD_DIRECT_TEXT, METHOD_OPTIONAL, METHOD_RAW, METHOD_RESULT, METHOD_STREAMING,
};
use crate::info::{FastPath, MethodInfo, PluginInfo};
use crate::BufferStrategyKind;

/// The most methods a descriptor may declare; more is treated as corruption.
pub const MAX_METHODS: u32 = 4096;
/// The most metadata pairs one list may hold; more is treated as corruption.
pub const MAX_METADATA: u32 = 4096;

impl PluginInfo {
    /// Reads and checks a descriptor, without calling into the plugin.
    ///
    /// Returns a description of the first problem found: null or non-UTF-8 names, a
    /// null vtable, an absurd method count, an unknown buffer strategy.
    ///
    /// # Safety
    /// `desc` must point at memory laid out as a [`PluginDescriptor`] whose pointers,
    /// where not null, point at data of the documented shapes. The caller has
    /// already checked `descriptor_size` and `abi_version`.
    pub unsafe fn from_descriptor(desc: &PluginDescriptor) -> Result<Self, String> {
        // SAFETY: the caller vouches that the plugin name, where not null, points at a
        // NUL-terminated string; read_c_str checks for null and for UTF-8.
        let name = unsafe { read_c_str(desc.plugin_name) }
            .ok_or("plugin name is null or not UTF-8")?
            .to_string();
        // SAFETY: as for the plugin name.
        let interface_name = unsafe { read_c_str(desc.interface_name) }
            .ok_or_else(|| format!("plugin `{name}`: interface name is null or not UTF-8"))?
            .to_string();
        let buffer_strategy =
            BufferStrategyKind::from_raw(desc.buffer_strategy).ok_or_else(|| {
                format!(
                    "plugin `{name}`: unknown buffer strategy {}",
                    desc.buffer_strategy
                )
            })?;
        if desc.method_count > MAX_METHODS {
            return Err(format!(
                "plugin `{name}`: method count {} exceeds the limit of {MAX_METHODS}",
                desc.method_count
            ));
        }
        if desc.method_count > 0 && (desc.vtable.is_null() || desc.methods.is_null()) {
            return Err(format!("plugin `{name}`: null vtable or method table"));
        }
        if desc.free_buffer.is_none() {
            return Err(format!("plugin `{name}`: null free_buffer function"));
        }
        let mut methods = Vec::with_capacity(desc.method_count as usize);
        for index in 0..desc.method_count as usize {
            // SAFETY: the method table is not null (checked above) and, as the caller
            // vouches, holds method_count entries; index is below that.
            let m = unsafe { &*desc.methods.add(index) };
            // SAFETY: the vtable is not null (checked above) and holds method_count
            // slots; a slot is read as a plain pointer first, since a null function
            // pointer would be invalid as a fn type.
            if unsafe { (*(desc.vtable as *const *const ()).add(index)).is_null() } {
                return Err(format!("plugin `{name}`: method {index} has a null slot"));
            }
            // SAFETY: a method's name, where not null, is a NUL-terminated string (the
            // caller's promise); read_c_str checks for null and UTF-8.
            let method_name = unsafe { read_c_str(m.name) }
                .ok_or_else(|| format!("plugin `{name}`: method {index} has no valid name"))?;
            // SAFETY: as for the method's name.
            let signature = unsafe { read_c_str(m.signature) }.ok_or_else(|| {
                format!("plugin `{name}`: method `{method_name}` has no valid signature")
            })?;
            let optional = m.flags & METHOD_OPTIONAL != 0;
            let present =
                !optional || (m.optional_bit < 64 && desc.capabilities >> m.optional_bit & 1 == 1);
            methods.push(MethodInfo {
                index,
                name: method_name.to_string(),
                signature: signature.to_string(),
                optional,
                since: m.since,
                present,
                raw: m.flags & METHOD_RAW != 0,
                fallible: m.flags & METHOD_RESULT != 0,
                streaming: m.flags & METHOD_STREAMING != 0,
                fast_path: if m.flags & METHOD_DIRECT != 0 {
                    FastPath::Scalar
                } else if m.flags & METHOD_DIRECT_BYTES != 0 {
                    FastPath::Bytes
                } else if m.flags & METHOD_DIRECT_TEXT != 0 {
                    FastPath::Text
                } else {
                    FastPath::None
                },
                // SAFETY: a method's metadata, where not null, holds metadata_count
                // entries of NUL-terminated strings (the caller's promise); read_meta
                // checks for null and bounds the count.
                metadata: unsafe { read_meta(m.metadata, m.metadata_count) }
                    .map_err(|e| format!("plugin `{name}`: method `{method_name}`: {e}"))?,
            });
        }
        // SAFETY: as for a method's metadata.
        let trait_metadata = unsafe { read_meta(desc.trait_metadata, desc.trait_metadata_count) }
            .map_err(|e| format!("plugin `{name}`: trait metadata: {e}"))?;
        Ok(Self {
            name,
            interface_name,
            interface_hash: desc.interface_hash,
            interface_version: desc.interface_version,
            buffer_strategy,
            capabilities: desc.capabilities,
            methods,
            trait_metadata,
            carries_state: desc.save_state.is_some() && desc.restore_state.is_some(),
        })
    }
}

/// # Safety
/// `ptr` must be null or point at `count` [`MetaEntry`] values.
unsafe fn read_meta(ptr: *const MetaEntry, count: u32) -> Result<Vec<(String, String)>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() || count > MAX_METADATA {
        return Err(format!("invalid metadata table ({count} entries)"));
    }
    (0..count as usize)
        .map(|i| {
            // SAFETY: `i < count` and the caller vouches for `count` entries at `ptr`.
            let e = unsafe { &*ptr.add(i) };
            // SAFETY: entries hold null or NUL-terminated strings.
            match unsafe { (read_c_str(e.key), read_c_str(e.value)) } {
                (Some(k), Some(v)) => Ok((k.to_string(), v.to_string())),
                _ => Err(format!("metadata entry {i} is null or not UTF-8")),
            }
        })
        .collect()
}

//! State carried from one version of a plugin to the next: opt-in.
//!
//! A plugin that holds state in memory (counters, caches, sessions) loses it at every
//! reload unless it carries it across. To do so it implements [`PluginState`] and says
//! so in its `#[plugin_impl]` (a compiled, tested example is the test fixture
//! `tests/plugins/counter-plugin`; this one is written against the `fidius` facade,
//! which this crate does not depend on):
//!
//! ```ignore
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
//!
//! A plugin that does not opt in changes nothing: its descriptor has no state
//! functions, and hosts reload it as before. Hosts move the state with
//! `PluginHandle::save_state` and `restore_state` (feature `host`); a hot-reloading
//! host does it at every reload of a plugin whose old and new versions both carry
//! state.

use crate::error::PluginError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A plugin whose state survives reloads; see the [module docs](self).
///
/// A host that moves state (a hot-reloading one does) calls `save_state` and
/// `restore_state` while no call is in either version, so a plugin need not guard
/// against calls meanwhile. `restore_state` should take the state whole or not at
/// all: after an `Err`, the version may still be used (a rollback target, say).
pub trait PluginState {
    /// The version of the state's layout. Bump it when `State` changes, and have
    /// `restore_state` migrate (or refuse) states of earlier versions.
    const STATE_VERSION: u32;
    /// The state, as saved.
    type State: Serialize + DeserializeOwned;

    /// The state, to hand to the next version.
    fn save_state(&self) -> Self::State;

    /// Takes over the state an earlier (or later) version saved. An `Err` refuses it:
    /// the new version is not swapped in, and the old one keeps serving with its
    /// state.
    fn restore_state(&self, saved: SavedState) -> Result<(), PluginError>;
}

/// A state as one version saved it: its layout version and its encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    version: u32,
    bytes: Vec<u8>,
}

impl SavedState {
    /// The saved state of layout `version` in `bytes` (the wire encoding).
    pub fn new(version: u32, bytes: Vec<u8>) -> Self {
        Self { version, bytes }
    }

    /// The layout version of the plugin that saved it.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The encoded state.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes the state as `T` (the current `State`, or an earlier layout to
    /// migrate from). A failure is a [`PluginError`] with code `STATE_UNREADABLE`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        crate::wire::decode(&self.bytes).map_err(|e| {
            PluginError::new(
                "STATE_UNREADABLE",
                format!(
                    "the saved state (layout {}) does not decode: {e}",
                    self.version
                ),
            )
        })
    }

    /// How it crosses the boundary: the version (`u32`, little-endian), then the
    /// bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.version.to_le_bytes().to_vec();
        out.extend_from_slice(&self.bytes);
        out
    }

    /// The inverse of [`to_bytes`](Self::to_bytes); `None` when too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (version, state) = bytes.split_first_chunk::<4>()?;
        Some(Self::new(u32::from_le_bytes(*version), state.to_vec()))
    }
}

/// What `save_state` hands over: the version, then `state` encoded.
pub(crate) fn encode_saved<T: Serialize>(
    version: u32,
    state: &T,
) -> Result<Vec<u8>, crate::wire::WireError> {
    let mut out = version.to_le_bytes().to_vec();
    crate::wire::encode_into(state, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_round_trips_through_bytes() {
        let bytes = encode_saved(3, &("counter", 42u64)).unwrap();
        let saved = SavedState::from_bytes(&bytes).unwrap();
        assert_eq!(saved.version(), 3);
        assert_eq!(
            saved.decode::<(String, u64)>().unwrap(),
            ("counter".into(), 42)
        );
        assert_eq!(saved.to_bytes(), bytes);
        assert!(SavedState::from_bytes(&[1, 2]).is_none());
        let wrong = saved.decode::<Vec<bool>>().unwrap_err();
        assert_eq!(wrong.code, "STATE_UNREADABLE");
    }
}

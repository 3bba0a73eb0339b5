//! Counters in memory, carried from one version to the next.

use counter_interface::{plugin_impl, Counter, PluginError, PluginState, SavedState};
use std::collections::BTreeMap;
use std::sync::Mutex;

const BUILD: &str = if cfg!(feature = "panics") {
    "panics"
} else if cfg!(feature = "refuse") {
    "refuse"
} else if cfg!(feature = "stateless") {
    "stateless"
} else if cfg!(feature = "v2") {
    "v2"
} else {
    "v1"
};

#[derive(Default)]
pub struct Counting {
    counters: Mutex<BTreeMap<u32, u64>>,
    ballast: Mutex<Vec<u8>>,
}

impl Counting {
    fn bump_impl(&self, key: u32, by: u64) -> u64 {
        if cfg!(feature = "panics") {
            panic!("a broken build: bump panics");
        }
        let mut counters = self.counters.lock().unwrap();
        let value = counters.entry(key).or_default();
        *value += by;
        *value
    }
}

// The same impl, carrying its state or (build "stateless") not.
#[cfg_attr(not(feature = "stateless"), plugin_impl(Counter, state))]
#[cfg_attr(feature = "stateless", plugin_impl(Counter))]
impl Counter for Counting {
    fn bump(&self, key: u32, by: u64) -> u64 {
        self.bump_impl(key, by)
    }
    fn value(&self, key: u32) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or(0)
    }
    fn build(&self) -> String {
        BUILD.to_string()
    }
    fn ballast(&self, bytes: u64) {
        *self.ballast.lock().unwrap() = vec![7; bytes as usize];
    }
}

impl PluginState for Counting {
    const STATE_VERSION: u32 = 1;
    type State = (BTreeMap<u32, u64>, Vec<u8>);

    fn save_state(&self) -> Self::State {
        (
            self.counters.lock().unwrap().clone(),
            self.ballast.lock().unwrap().clone(),
        )
    }

    fn restore_state(&self, saved: SavedState) -> Result<(), PluginError> {
        if cfg!(feature = "refuse") {
            return Err(PluginError::new(
                "STATE_REFUSED",
                format!(
                    "this build takes no state (offered layout {})",
                    saved.version()
                ),
            ));
        }
        if saved.version() != Self::STATE_VERSION {
            return Err(PluginError::new(
                "STATE_VERSION",
                format!("unknown state layout {}", saved.version()),
            ));
        }
        let (counters, ballast) = saved.decode()?;
        *self.counters.lock().unwrap() = counters;
        *self.ballast.lock().unwrap() = ballast;
        Ok(())
    }
}

fidius::fidius_plugin_registry!();

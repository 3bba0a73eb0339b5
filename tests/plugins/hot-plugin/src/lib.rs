//! One plugin, `Hot`, in several versions chosen by feature: the hot-reload tests swap
//! these builds under a running host.

#[cfg(not(any(feature = "other-interface", feature = "newer-interface")))]
mod versioned {
    use hot_interface::{plugin_impl, Versioned};
    use std::time::{Duration, Instant};

    const VERSION: u32 = if cfg!(feature = "v3") {
        3
    } else if cfg!(feature = "v2") {
        2
    } else {
        1
    };

    pub struct Hot;

    #[inline(never)]
    fn origin_marker() {}

    #[plugin_impl(Versioned)]
    impl Versioned for Hot {
        fn version(&self) -> u32 {
            if cfg!(feature = "panics") {
                panic!("a broken build: version {VERSION} panics");
            }
            VERSION
        }
        fn work(&self, x: u64) -> u64 {
            if cfg!(feature = "panics") {
                panic!("a broken build: version {VERSION} panics");
            }
            #[cfg(feature = "pin")]
            {
                // A thread-local whose type needs dropping registers a destructor on
                // the calling (host) thread: glibc then cannot unmap this library
                // while that thread lives.
                thread_local!(static LAST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) });
                LAST.with(|l| *l.borrow_mut() = x.to_string());
            }
            x.wrapping_mul(16).wrapping_add(VERSION as u64)
        }
        fn tag(&self, s: String) -> String {
            format!("v{VERSION}:{s}")
        }
        fn origin(&self) -> String {
            let me = origin_marker as *const () as usize;
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
            for line in maps.lines() {
                let mut parts = line.split_whitespace();
                let (Some(range), Some(path)) = (parts.next(), parts.nth(4)) else {
                    continue;
                };
                let Some((lo, hi)) = range.split_once('-') else {
                    continue;
                };
                let lo = usize::from_str_radix(lo, 16).unwrap_or(usize::MAX);
                let hi = usize::from_str_radix(hi, 16).unwrap_or(0);
                if (lo..hi).contains(&me) {
                    return path.to_string();
                }
            }
            String::new()
        }
        fn gated(&self, n: u64, gate: String) -> fidius::Stream<u32> {
            fidius::Stream::from_iter((0..n).map(move |i| {
                let path = format!("{gate}.{i}");
                let deadline = Instant::now() + Duration::from_secs(60);
                while !std::path::Path::new(&path).exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                VERSION
            }))
        }
        fn wait_for(&self, path: String) -> u32 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !std::path::Path::new(&path).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            VERSION
        }
    }
}

/// The same plugin name, implementing a different interface: a reload must refuse it.
#[cfg(feature = "other-interface")]
mod other {
    #[fidius::plugin_interface(version = 1)]
    pub trait Unrelated: Send + Sync {
        fn version(&self) -> String;
    }

    pub struct Hot;

    #[fidius::plugin_impl(Unrelated)]
    impl Unrelated for Hot {
        fn version(&self) -> String {
            "unrelated".into()
        }
    }
}

/// The same interface at version 2, as a newer interface crate would declare it.
#[cfg(feature = "newer-interface")]
mod newer {
    #[fidius::plugin_interface(version = 2, buffer = PluginAllocated)]
    pub trait Versioned: Send + Sync {
        fn version(&self) -> u32;
        fn work(&self, x: u64) -> u64;
        fn tag(&self, s: String) -> String;
        fn origin(&self) -> String;
        fn gated(&self, n: u64, gate: String) -> fidius::Stream<u32>;
        fn wait_for(&self, path: String) -> u32;
    }

    pub struct Hot;

    #[fidius::plugin_impl(Versioned)]
    impl Versioned for Hot {
        fn version(&self) -> u32 {
            9
        }
        fn work(&self, x: u64) -> u64 {
            x
        }
        fn tag(&self, s: String) -> String {
            s
        }
        fn origin(&self) -> String {
            String::new()
        }
        fn gated(&self, _n: u64, _gate: String) -> fidius::Stream<u32> {
            fidius::Stream::empty()
        }
        fn wait_for(&self, _path: String) -> u32 {
            9
        }
    }
}

fidius::fidius_plugin_registry!();

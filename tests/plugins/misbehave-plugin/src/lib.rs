//! A plugin that crashes, hangs and hogs memory on request.

use misbehave_interface::{plugin_impl, Misbehave, PluginError};

pub struct Misbehaving;

#[plugin_impl(Misbehave)]
impl Misbehave for Misbehaving {
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    fn echo(&self, text: String) -> String {
        text
    }

    fn divide(&self, a: i64, b: i64) -> Result<i64, PluginError> {
        a.checked_div(b)
            .ok_or_else(|| PluginError::new("DIVIDE_BY_ZERO", format!("{a} / {b}")))
    }

    fn crash(&self, how: String) -> String {
        match how.as_str() {
            // SAFETY: none; this is the point. A write through null is a
            // segmentation fault on every platform the tests run on.
            "segfault" => unsafe {
                std::ptr::null_mut::<u8>().write_volatile(1);
                unreachable!()
            },
            "abort" => {
                eprintln!("misbehave: aborting on request");
                std::process::abort()
            }
            "exit" => std::process::exit(7),
            // A copy of the process, forked without exec, holding every descriptor
            // the process has (its connections to the host too), then a crash.
            "fork-then-segfault" => {
                // SAFETY: the child only sleeps and leaves with `_exit`, both
                // async-signal-safe.
                if unsafe { libc::fork() } == 0 {
                    std::thread::sleep(std::time::Duration::from_secs(60));
                    unsafe { libc::_exit(0) }
                }
                self.crash("segfault".into())
            }
            "panic" => panic!("misbehave: panicking on request"),
            "print" => {
                println!("misbehave: to standard output");
                eprintln!("misbehave: to standard error");
                how
            }
            _ => how,
        }
    }

    fn spin(&self) -> u32 {
        loop {
            std::hint::spin_loop();
        }
    }

    fn sleep_ms(&self, ms: u64) -> u64 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        ms
    }

    fn hog(&self) -> u64 {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            // 64 MiB at a time, reserved but never touched: only address space.
            kept.push(Vec::with_capacity(64 << 20));
            std::hint::black_box(&kept);
        }
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }
}

fidius::fidius_plugin_registry!();

//! Plugin panics: where they go.
//!
//! A plugin library carries its own copy of the standard library, so the host's
//! `std::panic::set_hook` has no effect on it: left alone, every panic in a plugin,
//! caught at the boundary or not, is printed by the plugin's default hook to standard
//! error (with a backtrace under `RUST_BACKTRACE`), and on some standard library
//! versions printing registers thread-local destructors on the calling host thread,
//! which keeps the library from ever leaving memory.
//!
//! So a plugin library installs a hook of its own when the host loads it
//! (`fidius_plugin_registry!` exports `fidius_panic_sink`, which the host calls). The
//! hook prints nothing and touches no thread-local: it hands the message and location
//! to the host, which routes it as [`route_plugin_panics`] says (by default a
//! `tracing` event at debug level, target `fidius::plugin_panic`). A panic inside a
//! call also reaches the caller as `CallError::Panic`, with its message.
//!
//! A panic in a plugin built with `panic = "abort"` ends the process: that one is
//! always reported on standard error and at error level (unless the route is
//! `Nowhere`). Panics in threads the plugin starts follow the route like the others,
//! at its level: route at a level your logs show if your plugins start threads.
//!
//! A plugin that wants a hook of its own may set one after it is loaded; the last
//! `set_hook` in the plugin wins. A plugin sharing the host's standard library (built
//! with `-C prefer-dynamic`) installs none: the host's own hook sees its panics.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What a host is told of a plugin's panic: its message and its location in the
/// plugin's source (`file` may be empty, `line` 0, when unknown), and `flags`
/// ([`PANIC_FATAL`]). The pointers are valid for the call only.
pub type PanicSink = unsafe extern "C" fn(
    message: *const u8,
    message_len: usize,
    file: *const u8,
    file_len: usize,
    line: u32,
    flags: u32,
);

/// In a [`PanicSink`]'s `flags`: the plugin is built with `panic = "abort"`, so the
/// process ends right after this report. The host reports it whatever the route
/// (except `PanicRoute::Nowhere`): on standard error and as an error-level event.
pub const PANIC_FATAL: u32 = 1;

/// What a host passes [`plugin_set_panic_sink`] to tell its standard library apart:
/// the address of its `std::panic::set_hook`. A plugin that shares it (built with
/// `-C prefer-dynamic`) installs no hook of its own: the host's sees its panics.
pub fn std_identity() -> usize {
    type SetHook = fn(Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>);
    std::panic::set_hook as SetHook as usize
}

/// The name of the symbol of [`plugin_set_panic_sink`] in a plugin library.
pub const PANIC_SINK_SYMBOL: &str = "fidius_panic_sink";

/// The sink of this library's panics, as an address (0: nowhere).
static SINK: AtomicUsize = AtomicUsize::new(0);

/// What `fidius_plugin_registry!` exports as `fidius_panic_sink`: installs this
/// library's panic hook (once) and sends its panics to `sink` (`None`: nowhere).
/// `host_std` is the host's [`std_identity`]: a plugin sharing the host's standard
/// library leaves the host's hook in place.
pub extern "C" fn plugin_set_panic_sink(sink: Option<PanicSink>, host_std: usize) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    if host_std == std_identity() {
        return;
    }
    SINK.store(sink.map_or(0, |f| f as usize), Ordering::Release);
    // `set_hook` refuses to run on a panicking thread; a host loads libraries from
    // threads that are not panicking.
    INSTALL.call_once(|| std::panic::set_hook(Box::new(hook)));
}

/// The plugin's panic hook: the message and location to the host's sink, nothing
/// printed, no thread-local touched.
fn hook(info: &std::panic::PanicHookInfo<'_>) {
    let sink = SINK.load(Ordering::Acquire);
    if sink == 0 {
        return;
    }
    // SAFETY: only `plugin_set_panic_sink` stores, and it stores a `PanicSink`.
    let sink: PanicSink = unsafe { std::mem::transmute::<usize, PanicSink>(sink) };
    let message = crate::shim::panic_message(info.payload());
    let (file, line) = info.location().map_or(("", 0), |l| (l.file(), l.line()));
    let flags = if cfg!(panic = "abort") {
        PANIC_FATAL
    } else {
        0
    };
    // SAFETY: the pointers and lengths describe live strings for the whole call, as
    // the sink's contract asks.
    unsafe {
        sink(
            message.as_ptr(),
            message.len(),
            file.as_ptr(),
            file.len(),
            line,
            flags,
        )
    };
}

#[cfg(feature = "host")]
pub use host::{route_plugin_panics, PanicRoute};

#[cfg(feature = "host")]
mod host {
    use std::sync::atomic::{AtomicU8, Ordering};

    /// Where the panics of plugin libraries go, process-wide: see
    /// [`route_plugin_panics`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum PanicRoute {
        /// Nowhere: a panic inside a call still reaches its caller as
        /// `CallError::Panic`.
        Nowhere,
        /// A `tracing` event at this level, target `fidius::plugin_panic`, with the
        /// fields `panic` (the message), `file` and `line`.
        Trace(tracing::Level),
        /// One line on the host's standard error: `plugin panicked at FILE:LINE:
        /// MESSAGE` (no backtrace). What a plugin process of fidius-isolated does, so
        /// that a crash report carries the message.
        Stderr,
    }

    impl Default for PanicRoute {
        /// Debug-level `tracing` events.
        fn default() -> Self {
            PanicRoute::Trace(tracing::Level::DEBUG)
        }
    }

    static ROUTE: AtomicU8 = AtomicU8::new(2);

    fn code(route: PanicRoute) -> u8 {
        match route {
            PanicRoute::Nowhere => 0,
            PanicRoute::Stderr => 6,
            PanicRoute::Trace(level) if level == tracing::Level::TRACE => 1,
            PanicRoute::Trace(level) if level == tracing::Level::DEBUG => 2,
            PanicRoute::Trace(level) if level == tracing::Level::INFO => 3,
            PanicRoute::Trace(level) if level == tracing::Level::WARN => 4,
            PanicRoute::Trace(_) => 5,
        }
    }

    /// Sends the panics of every plugin library loaded by this process to `route`,
    /// from now on (libraries loaded before included). Caught panics are also
    /// returned to their callers as `CallError::Panic`; this is where the plugin's
    /// own report of them goes, instead of its standard error.
    pub fn route_plugin_panics(route: PanicRoute) {
        ROUTE.store(code(route), Ordering::Relaxed);
    }

    /// The host's [`PanicSink`](super::PanicSink), handed to every library it loads.
    /// Nothing unwinds out of it: a subscriber that panics is ignored.
    ///
    /// # Safety
    /// `message` and `file` must point at `message_len` and `file_len` readable bytes.
    pub(crate) unsafe extern "C" fn host_sink(
        message: *const u8,
        message_len: usize,
        file: *const u8,
        file_len: usize,
        line: u32,
        flags: u32,
    ) {
        let text = |ptr: *const u8, len: usize| {
            if ptr.is_null() || len == 0 {
                return std::borrow::Cow::Borrowed("");
            }
            // SAFETY: the caller passes `len` readable bytes at `ptr`.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr, len) })
        };
        let (message, file) = (text(message, message_len), text(file, file_len));
        let _ = std::panic::catch_unwind(|| route(&message, &file, line, flags));
    }

    /// Reports one plugin panic where [`route_plugin_panics`] says.
    fn route(message: &str, file: &str, line: u32, flags: u32) {
        let to_stderr = |note: &str| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "plugin panicked at {file}:{line}: {message}{note}"
            );
        };
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "fidius::plugin_panic", $level, panic = %message, %file, line, "a plugin panicked")
            };
        }
        let route = ROUTE.load(Ordering::Relaxed);
        if flags & super::PANIC_FATAL != 0 && route != 0 {
            // The process ends right after this: say it where it will be seen.
            to_stderr(" (the plugin aborts on panic)");
            emit!(tracing::Level::ERROR);
            return;
        }
        match route {
            1 => emit!(tracing::Level::TRACE),
            2 => emit!(tracing::Level::DEBUG),
            3 => emit!(tracing::Level::INFO),
            4 => emit!(tracing::Level::WARN),
            5 => emit!(tracing::Level::ERROR),
            6 => to_stderr(""),
            _ => {}
        }
    }
}

#[cfg(feature = "host")]
pub(crate) use host::host_sink;

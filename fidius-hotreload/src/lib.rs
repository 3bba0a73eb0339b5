//! # fidius-hotreload
//!
//! Swap fidius plugins in a running host. A [`HotPlugin`] follows one plugin library
//! file: when a new build appears it is copied, loaded, checked against the interface
//! and swapped in atomically. Calls already running finish on the version they started
//! on, and the old library is closed when its last call returns. A build that fails any
//! check is refused and the running version keeps serving.
//!
//! ```no_run
//! # mod my_interface {
//! #     #[fidius::plugin_interface(version = 1)]
//! #     pub trait MyPlugin: Send + Sync { fn process(&self, input: String) -> String; }
//! # }
//! use fidius_hotreload::{HotPlugin, ReloadEvent};
//! use my_interface::{MyPlugin, MyPluginClient};
//!
//! let hot = HotPlugin::builder::<dyn MyPlugin>("target/debug/libmy_plugin.so", "MyImpl")
//!     .on_event(|event| eprintln!("{event:?}"))
//!     .build()?;
//! let client = MyPluginClient::new(hot.handle())?;
//! loop {
//!     // Rebuild the plugin: the next call goes to the new build.
//!     println!("{}", client.process("tick".into())?);
//!     std::thread::sleep(std::time::Duration::from_secs(1));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`HotDirectory`] does the same for every plugin library in a directory: libraries
//! that appear are loaded, replaced ones reloaded, removed ones reported (and
//! forgotten when the [`RemovalPolicy`] says so).
//!
//! ## The model: versions, drain, unload
//!
//! Each load of the file is a *version* with a *generation* number (1, 2, ...). The
//! current version serves new calls. A call holds the version it started on until it
//! returns, so after a swap the old version *drains*: it stays loaded while anything
//! still uses it. When the last user goes, its library is closed, and the process's
//! memory map is read to report honestly whether it was really
//! [unmapped](UnloadState::Unmapped) or stayed [pinned](UnloadState::Pinned).
//!
//! ## The reload pipeline
//!
//! 1. **Watch and debounce.** The file's directory is watched (a watch on the file
//!    itself dies when it is replaced). After the events stop for a debounce, the file
//!    must keep the same size and modification time for half a debounce more. Cargo's
//!    remove-then-link and a `cp` that writes in many pieces each give one reload.
//! 2. **Copy** to a path never used before in the shadow directory, under a temporary
//!    name first. Nothing is ever written to a path that is or was loaded. A file whose
//!    content equals the running version's is not reloaded.
//! 3. **Load and validate** the copy: library format and architecture, registry magic
//!    and versions, ABI version, interface name, hash, version and buffer strategy, the
//!    plugin's presence, and that the loader did not hand back a library already loaded.
//! 4. **Swap** atomically (arc-swap). No call fails or waits because of a swap.
//! 5. **Drain** and **unload**, as above. The shadow copy is removed after the close.
//!
//! Any failure in steps 1–3 leaves the current version serving and is reported as a
//! [`ReloadEvent::Rejected`] naming the file, the [`Stage`] and the reason. A later
//! build that fixes the problem reloads normally.
//!
//! ## What pins a library, and how to avoid it
//!
//! glibc cannot unload a library while one of its thread-local destructors is still
//! registered on a running thread: a plugin that uses `thread_local!` with a type that
//! needs dropping (a `String`, a `Vec`, a `RefCell<HashMap>`...) on host threads pins
//! itself, and each reload then leaves its old copy in memory. So does a thread the
//! plugin spawns and never joins. Keep plugin state in the plugin struct (behind a
//! `Mutex` or atomics), and stop plugin threads before a reload. A pinned version is
//! reported as such; its memory is not reclaimed until the process exits. Printing a
//! panic message from a plugin uses its own thread-locals too, so a plugin that panicked
//! on a host thread may end up pinned.
//!
//! ## Deploying a new version in production
//!
//! Write the new build next to the watched file and **rename** it into place (`mv`,
//! `install`, or what cargo does), so the file is complete the instant it appears.
//! Never `cp` over a file that is loaded: writing into a mapped library crashes the
//! process that maps it. fidius itself never maps the watched file (it loads a private
//! copy), so a `cp` over the watched file cannot crash a fidius host, but the file is
//! half-written while the copy runs and other tools that load it directly are not as
//! careful.
//! Use [`HotPluginBuilder::watch`]`(false)` and [`HotPlugin::reload_now`] when reloads
//! should only happen on command, and [`HotPlugin::hold`] around work that must not see
//! a swap.
//!
//! ## Concurrency: how the swap and drain are checked
//!
//! The guarantee that matters (a call never runs on a version that was freed, and a
//! swap never blocks or fails a call) rests on arc-swap: a call holds an arc-swap
//! guard, and a swap pays the guard's debt by taking a reference, so the old version
//! lives until the guard drops. Everything fidius adds around it (the draining list,
//! the retire messages, the counters) is behind a mutex or a channel, and a version is
//! retired from its `Drop`, which Rust runs exactly once.
//!
//! This is not model-checked with loom or shuttle. Both check only code whose
//! atomics and locks they instrument, and arc-swap's are not. A model would have to
//! replace the one part whose correctness matters with a stand-in, and would then
//! check the stand-in. The protocol is exercised instead by real threads: four
//! threads calling through 210 consecutive swaps, checking that every result comes
//! from a generation at least as new as the one current when the call began
//! (`tests/tests/hot_reload.rs`), and by the soak benchmark (1.3 billion calls through
//! 866 reloads, no failure; BENCHMARKS.md).
//!
//! ## Known limitations
//!
//! * Unloading is best-effort everywhere, and the unload check reads
//!   `/proc/self/maps`, so only Linux reports [`UnloadState::Unmapped`] or
//!   [`UnloadState::Pinned`]; elsewhere the state is [`UnloadState::Unknown`]. macOS
//!   never unloads images that use thread-locals; musl never unloads at all.
//! * At most [`HotPluginBuilder::max_retained`] old versions may drain at once; past
//!   that, new builds are refused (stage [`Stage::Retention`]) until some finish.
//! * State inside the plugin is not carried over: a new version starts fresh.
//! * A plugin's code runs in the host process with the host's privileges; reloading
//!   validates interfaces, it does not sandbox.

#![warn(missing_docs)]

mod directory;
mod events;
mod handle;
mod hot_plugin;
mod shadow;
mod unload;
mod version;
mod watch;

pub use directory::{DirectoryEvent, HotDirectory, HotDirectoryBuilder, RemovalPolicy};
pub use events::{Rejection, ReloadEvent, Stage, VersionInfo};
pub use handle::HotHandle;
pub use hot_plugin::{
    DrainingVersion, HotPlugin, HotPluginBuilder, HotStatus, ReloadHold, ReloadOutcome,
    DEFAULT_DEBOUNCE, DEFAULT_MAX_RETAINED,
};
pub use shadow::default_shadow_dir;
pub use unload::{mapped, UnloadState};

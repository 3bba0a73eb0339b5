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
//!     .on_event(|event| eprintln!("{event}"))
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
//! 1. **Watch** (`watcher.rs`). One watcher serves the whole process, however many
//!    hot plugins and hot directories it has: one native watcher (one inotify
//!    instance on Linux) with one watch per directory, and events routed by directory
//!    and file name. Directories are watched, not files (a watch on a file dies when
//!    the file is replaced). A plugin file is known by its path as configured (made
//!    absolute), whatever directory that resolves to: the kernel watches the
//!    directory it resolves to now, and every half second (at once when the watched
//!    directory itself is removed or renamed) the path is resolved again. When it
//!    names another directory (a deploy tool switched a `current` link, or the
//!    directory was replaced at its path), the watch moves there, the old one is
//!    unwatched, a [`ReloadEvent::Retargeted`] is reported and the file is loaded
//!    from its new place; while the path names nothing, status says it is not
//!    watching. Where
//!    the native watcher cannot be had (its limit is reached, the platform or file
//!    system has none) the directory is polled every [`POLL_INTERVAL`] instead
//!    (`poll.rs`), reported by a [`ReloadEvent::WatcherFallback`] and in
//!    [`HotStatus::watcher`]; the host always starts. The environment variable
//!    `FIDIUS_HOTRELOAD_POLL` asks for polling everywhere (for network file systems
//!    whose changes the kernel does not see).
//! 2. **Debounce and settle** (`debounce.rs`), the same rule for a file and for each
//!    library of a directory: after the events stop for a debounce, the file must keep
//!    the same size and modification time for half a debounce more. Cargo's
//!    remove-then-link and a `cp` that writes in many pieces each give one reload.
//!
//! All the waiting is done by timers, and all the work by a small pool of threads
//! shared by the process (`pool.rs`, at most eight workers and one timer): the number
//! of threads does not grow with the number of plugins, and a plugin waiting for its
//! file to settle holds no thread. The pipeline proper (`pipeline.rs`):
//!
//! 1. **Copy** the file into a private copy that only this process can reach (see
//!    *Where versions are loaded from* below). The file is opened once and read
//!    through that one descriptor; it must be a regular file. A file whose content
//!    equals the running version's is not reloaded.
//! 2. **Trust**, when the host set one ([`HotPluginBuilder::trust`]): the copy's
//!    SHA-256, taken as it was written, must be pinned or carry a signature by a
//!    trusted key (see *Trusted builds* below), before anything loads it.
//! 3. **Load and validate** the copy: library format and architecture, registry magic
//!    and versions, ABI version, interface name, hash, version and buffer strategy, the
//!    plugin's presence, and that the loader did not hand back a library already loaded.
//! 4. **Swap** atomically: one pointer exchange. No call fails or waits because of a
//!    swap (see *Concurrency* below for how calls and swaps meet).
//! 5. **Drain** and **unload**, as above (`drain.rs`).
//!
//! Any failure before the swap leaves the current version serving and is reported as a
//! [`ReloadEvent::Rejected`] naming the file, the [`Stage`] and the reason. A later
//! build that fixes the problem reloads normally. A watched file that fails to load is
//! tried again a few times (it may still be settling); every failed attempt is
//! reported as a [`ReloadEvent::Retrying`], even one a later attempt recovers from.
//!
//! Events are emitted with no lock held, in order: an event callback may call any
//! method of the hot plugin or directory, `reload_now` and `hold` included. Events it
//! causes are delivered after it returns.
//!
//! ## Where versions are loaded from
//!
//! The dynamic loader runs a library's initialisers while it loads it, before any
//! check can look at it. So the bytes it loads must be bytes nobody else can change
//! or replace between the copy and the load:
//!
//! * **On Linux (the default)** each version is an anonymous in-memory file
//!   (`memfd_create`): filled from the watched file, sealed so that nothing can change
//!   it any more, and loaded through its own descriptor. It has no path in any
//!   directory, nothing is left behind after a crash, and it cannot be hard-linked or
//!   written over. The memory map shows it as `/memfd:fidius:<file>:<hash>:g<N>:…`,
//!   and [`VersionInfo::shadow`] gives that name.
//! * **Elsewhere**, where memfd is unavailable (filtered, or not executable), with
//!   [`HotPluginBuilder::copies_in_memory`]`(false)`, or with the environment variable
//!   `FIDIUS_HOTRELOAD_NO_MEMFD` set, copies are files in a private directory:
//!   [`default_shadow_dir`] or the one given to [`HotPluginBuilder::shadow_dir`]. It
//!   must be a real directory (not a symbolic link) owned by this process's user and
//!   writable by no one else, checked on every copy; the default is created with mode
//!   0700. On Unix each copy is created new (`O_EXCL`, never following a link),
//!   checked to still be the file written just before it is loaded, and unlinked as
//!   soon as it is loaded. A directory or copy that fails a check is refused at the
//!   [`Stage::Security`] stage and nothing is loaded. Copies left by a crash between
//!   copy and load are removed at the next start.
//!
//! What this alone does not protect against: whoever can write the watched file can
//! deploy code into the host. Watch only paths that only your deployers can write, or
//! require signed builds:
//!
//! ## Trusted builds
//!
//! With [`HotPluginBuilder::trust`] (or [`HotDirectoryBuilder::trust`]) a host loads
//! only builds signed by a key it names, or whose SHA-256 it pins (`fidius::host::trust`
//! has the formats and rules; `fidius keygen`, `fidius sign` and `fidius verify` from
//! the `fidius-cli` crate make and check them). The signature of `libx.so` is the file
//! `libx.so.sig` beside it.
//!
//! * **What is judged is what is loaded**: the private copy, hashed while it is
//!   written (and sealed, or private, before anyone loads it), never the watched path.
//!   Replacing the watched file after the check changes nothing that was checked.
//! * **Before the loader**: the check runs before the dynamic loader sees the copy, so
//!   none of an untrusted build's code runs, initialisers included.
//! * **The library and its signature are read as a pair**: the signature is read
//!   before and after the library is copied, and a signature that changed meanwhile
//!   is read again with a new copy, never judged against the wrong library.
//! * **A new signature is a change**: the signature file is watched with its library,
//!   so a deploy may put the signature first (the careful order) or last: a build
//!   rejected for lack of its signature is loaded when the signature arrives.
//! * **Refusals**: an untrusted build is a [`ReloadEvent::Rejected`] at the
//!   [`Stage::Trust`] stage, traced at error level, with `LoadError::Untrusted` naming
//!   the file and the reason (unsigned, unknown key, a signature that does not match,
//!   not pinned); the current version keeps serving. An untrusted first build fails
//!   [`HotPluginBuilder::build`]; in a directory, an untrusted new library is a
//!   [`DirectoryEvent::Rejected`] and is not loaded.
//! * Isolated versions are judged the same way in the host, and their process loads
//!   the judged copy.
//!
//! ## What pins a library, and how to avoid it
//!
//! glibc cannot unload a library while one of its thread-local destructors is still
//! registered on a running thread: a plugin that uses `thread_local!` with a type that
//! needs dropping (a `String`, a `Vec`, a `RefCell<HashMap>`...) on host threads pins
//! itself, and each reload then leaves its old copy in memory. So does a thread the
//! plugin spawns and never joins. Keep plugin state in the plugin struct (behind a
//! `Mutex` or atomics), and stop plugin threads before a reload. A pinned version is
//! reported as such; its memory is not reclaimed until the process exits. Pinned
//! versions count against [`HotPluginBuilder::max_pinned`] (default 8): past it each
//! further one is reported as a [`ReloadEvent::PinnedLimit`], and with
//! [`PinnedPolicy::Refuse`] new builds are refused so memory stops growing. Printing a
//! panic message from a plugin uses its own thread-locals too, so a plugin that panicked
//! on a host thread may end up pinned.
//!
//! ## Probation, rollback and pre-swap checks
//!
//! A build that loads and validates can still fail on real traffic. With
//! [`HotPluginBuilder::probation`], each new version is on probation for a window
//! (time, or a number of calls): the version it replaced stays loaded beside it
//! instead of draining. Its calls are counted (only while on probation: one relaxed
//! load per call otherwise), and when failures cross the threshold (panics, its
//! process crashing or killed for a deadline, unreadable answers; the plugin's own
//! errors only if asked), or a health check at the end of the window fails, the
//! previous version is swapped back in ([`ReloadEvent::RolledBack`], with the reason
//! and counts) and the failed build is quarantined by content: refused at
//! [`Stage::Quarantine`] until the file holds another build. Passing, the previous
//! version drains as after any swap ([`ReloadEvent::ProbationPassed`]).
//! [`HotPlugin::rollback`] does the same on request while the previous version is
//! kept. [`HotPluginBuilder::pre_swap_check`] runs a check (a canary call, through a
//! [`VersionHandle`]) against a new version before it serves; a failure rejects the
//! build at [`Stage::Check`]. A rollback waits for holds like a reload, but not for a
//! hot directory's hold. When a newer build replaces a version still on probation,
//! that version drains unproven, and the newer one is on trial against the last
//! version that proved itself. A rolled-back build stays quarantined until a
//! different build is swapped in. Calls through a [`VersionHandle`] and streams are
//! not counted by probation; checks run with the reload lock held, so keep them
//! quick.
//!
//! ## State handoff
//!
//! A plugin that carries state (`fidius::PluginState`, opted in with
//! `#[plugin_impl(Trait, state)]`) keeps it across reloads: when the current version
//! and a new build both carry state, the old version is frozen (calls that reach it
//! wait, bounded by [`HANDOFF_WAIT`]), the calls already in it finish, its state is
//! saved and restored into the new version, and only then is the new version swapped
//! in; the waiting calls proceed on it ([`ReloadEvent::StateHandedOver`], with how
//! long calls were held off). No update made to the old version is lost. If the calls
//! do not leave within [`DRAIN_LIMIT`], or saving fails, or the new version refuses
//! the state (a layout it cannot migrate), the build is rejected at [`Stage::State`]
//! and the old version serves on with its state. A rollback carries the state back.
//! A plugin that does not opt in is reloaded as before, starting afresh. Isolated
//! versions hand state over too, as bytes from one process to the other. Calls that stay long in the old version, and
//! open streams, hold a handoff up; so does a call the plugin makes back into the
//! same hot plugin from inside a call (it waits for the handoff, which waits for the
//! outer call): after [`DRAIN_LIMIT`] the handoff gives up, the old version is
//! thawed and serves on, and the build is rejected. A rollback waits only 100 ms
//! before it goes back without the failing version's state.
//!
//! ## Isolated versions
//!
//! With `HotPluginBuilder::isolated` (feature `isolated`, off by default; Linux), each
//! version runs in a plugin process of its own (the `fidius-isolated` crate) instead
//! of in the host:
//!
//! * a new build's copy is handed to a new process through its descriptor, loaded
//!   and validated there (the same checks, the same [`Rejection`] stages), and only
//!   then swapped in; nothing of it is ever mapped into the host;
//! * calls in flight finish in the old process, which is then ended and waited for:
//!   [`ReloadEvent::Unloaded`] reports [`UnloadState::Exited`], an exact unload even
//!   for a build that would pin itself in-process;
//! * a crash or a call past its deadline costs that call (`CallError::Crashed`,
//!   `CallError::Timeout`), and the version's process restarts on the same bytes;
//!   [`HotStatus::process`] shows its id and restarts.
//!
//! Calls then cost a round trip between two processes (about 10 µs) instead of a
//! function call. `HotDirectoryBuilder::isolated` does the same for a directory,
//! where a new library's plugins are listed by a process of its own as well.
//!
//! ```no_run
//! # mod my_interface {
//! #     #[fidius::plugin_interface(version = 1)]
//! #     pub trait MyPlugin: Send + Sync { fn process(&self, input: String) -> String; }
//! # }
//! # #[cfg(all(feature = "isolated", target_os = "linux"))] {
//! use fidius_hotreload::{HotPlugin, Isolation};
//! use my_interface::{MyPlugin, MyPluginClient};
//! use std::time::Duration;
//!
//! let hot = HotPlugin::builder::<dyn MyPlugin>("plugins/libmy_plugin.so", "MyImpl")
//!     .isolated(Isolation::default().deadline(Duration::from_millis(200)))
//!     .build()?;
//! let client = MyPluginClient::new(hot.handle())?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Controls: reload now, hold, pause
//!
//! * [`HotPlugin::reload_now`] reloads on the calling thread, whatever the watcher saw;
//!   [`HotPlugin::reload_within`] gives up (at the [`Stage::Held`] stage, having done
//!   nothing) when a hold keeps it waiting longer than it is told. A reload that must
//!   wait for a hold says so first, with a [`ReloadEvent::WaitingForHold`].
//! * [`HotPlugin::hold`] keeps **every** reload off, `reload_now` included, while its
//!   guard lives: for a short piece of work that must not see a swap.
//! * [`HotPlugin::pause`] stops the **watcher's** reloads only, until
//!   [`HotPlugin::resume`]; `reload_now` still works. Without a watcher
//!   ([`HotPluginBuilder::watch`]`(false)`) there is nothing to pause.
//! * [`HotPlugin::status`] is a snapshot: the version serving, those draining and
//!   pinned, counters, the watcher, a probation under way.
//!
//! ## What an operator sees: events, traces, metrics
//!
//! * **Events** ([`ReloadEvent`], [`DirectoryEvent`]), to a callback
//!   ([`HotPluginBuilder::on_event`]) or a channel ([`HotPlugin::subscribe`]). Each
//!   prints as one line meant for a log (`Display`), as does [`HotStatus`]:
//!   `swapped in g2 (xxh3 0x…, interface v1), replacing g1`.
//! * **Traces** (`tracing`), under this crate's module paths as targets
//!   (`fidius_hotreload::…`), a reload inside a span `fidius_reload` with the field
//!   `plugin`. Levels follow severity:
//!
//!   | level | what |
//!   |---|---|
//!   | error | a build refused at the security or trust stage; a rollback |
//!   | warn | any other refusal, a retry, a version pinned in memory, a pinned-version limit reached, polling instead of watching, a removed plugin file, a start from the last good build |
//!   | info | a swap (with `copy_ms`, `load_ms` and `total_ms`), an unload, a library added to or removed from a directory, a state handoff, a probation passed, a reload waiting for a hold |
//!   | debug | the pipeline's steps: what started it, a new version loaded, content unchanged, draining |
//!
//!   Plugin panics go where `fidius::panics::route_plugin_panics` says (by default
//!   debug-level events with target `fidius::plugin_panic`).
//! * **Metrics** ([`HotMetrics`], from [`HotPlugin::metrics`] or
//!   [`HotDirectory::metrics`]): counters (reloads, rejections, retries, rollbacks,
//!   unloads...) and gauges (versions draining and pinned), atomics read at any time.
//!
//! ## Examples
//!
//! Complete programs, built by CI, in this crate's `examples/`; each takes the path of
//! a plugin built from the demo's `text-interface` (`cargo build -p uppercase` builds
//! one):
//!
//! * `reload_on_sighup`: no watcher, a reload on `SIGHUP` after an `mv` deploy;
//! * `directory`: a directory of plugins, each served by name;
//! * `controls`: hold, pause and status;
//! * `events`: matching on events, and the metrics.
//!
//! ```sh
//! cargo build -p uppercase
//! cargo run -p fidius-hotreload --example reload_on_sighup -- target/debug/libuppercase.so
//! ```
//!
//! ## Running it in production: a checklist
//!
//! * **Deploy by rename.** Write the new build (and, with a trust, its signature
//!   first) next to the watched file and **rename** it into place (`mv` on one file
//!   system, or what cargo does: remove, then hard-link the finished build), so the
//!   file is complete the instant it appears. GNU `install` does not rename: it
//!   writes the target itself, so `install` to a name beside the watched file and
//!   `mv` it over. Never `cp` over a library another program has loaded: writing into
//!   a mapped library crashes the process that maps it. fidius itself never maps the
//!   watched file, so a `cp` cannot crash a fidius host, but the file is half-written
//!   while the copy runs (the load is retried).
//! * **Reload on command**, if you prefer: [`HotPluginBuilder::watch`]`(false)`, then
//!   [`HotPlugin::reload_now`] from your deploy signal (see `reload_on_sighup`).
//! * **Keep the last good build** ([`HotPluginBuilder::last_known_good`]): a bad
//!   deploy followed by a restart then starts from the last build that worked,
//!   instead of failing.
//! * **Require signed builds** ([`HotPluginBuilder::trust`]) when others can write the
//!   plugin directory.
//! * **Private copies**: on Linux they live in memory and nothing is left after a
//!   crash; elsewhere they are files in the shadow directory (by default
//!   `$TMPDIR/fidius-shadow-<uid>`), unlinked once loaded, and those a crash leaves
//!   behind are removed at the next start.
//! * **Plugin panics** are caught and reported; route them with
//!   `fidius::panics::route_plugin_panics`. A plugin that uses `thread_local!` with
//!   a destructor on host threads (or starts threads of its own) pins its versions
//!   in memory: watch the `pinned` gauge and [`ReloadEvent::PinnedLimit`], and set
//!   [`HotPluginBuilder::max_pinned`] with [`PinnedPolicy::Refuse`] to bound it.
//! * **Bounds**: at most [`HotPluginBuilder::max_retained`] old versions drain at
//!   once (new builds wait past it), [`HotPluginBuilder::max_file_size`] per build,
//!   one file descriptor per loaded version on Linux.
//! * **Probation** ([`HotPluginBuilder::probation`]) rolls a new build back when its
//!   calls fail, and quarantines it until the file changes.
//!
//! ## Known limitations
//!
//! * Calls through a [`HotHandle`] are not async-signal-safe: a thread's first call
//!   takes a lock to get its hazard record, and deep nesting takes a read lock. Do not
//!   call a hot plugin from a signal handler.
//! * `fork` without `exec` is not supported in a process that uses hot plugins. In
//!   the child only the forking thread exists: a version another thread was calling
//!   into stays announced in that thread's slots and is never freed, a lock held by
//!   another thread at the fork is never released, and the watcher and the pool's
//!   threads are gone, so nothing reloads or drains. A child that only `exec`s (as
//!   `std::process::Command` does) is fine.
//! * Unloading is best-effort everywhere, and the unload check reads
//!   `/proc/self/maps`, so only Linux reports [`UnloadState::Unmapped`] or
//!   [`UnloadState::Pinned`]; elsewhere the state is [`UnloadState::Unknown`]. macOS
//!   never unloads images that use thread-locals; musl never unloads at all.
//! * At most [`HotPluginBuilder::max_retained`] old versions may drain at once; past
//!   that, new builds are refused (stage [`Stage::Retention`]) until some finish.
//! * A library file larger than [`HotPluginBuilder::max_file_size`] (default
//!   512 MiB) is refused from its size; one whose header is no library of this host
//!   is refused from its first 64 KiB. Neither is copied.
//! * An old version is closed up to 100 ms after its last call returns (it is polled
//!   for, so that calls need not report their end), not at that instant. After the
//!   [`HotPlugin`] is dropped, the timer keeps polling for versions still in calls
//!   until they are closed or the last handle goes.
//! * A switched or replaced directory is noticed within half a second (at once when
//!   the watched directory itself is renamed or removed). Each distinct configured
//!   directory is resolved again every half second: a few system calls per path
//!   component, so the idle cost grows with the number of distinct directories, not
//!   of plugins (the repository's `BENCHMARKS.md` measures a thousand of each).
//! * At most eight reloads run at once in a process (one per plugin at a time);
//!   more wait for a worker. A directory that is polled sees a change up to
//!   [`POLL_INTERVAL`] late.
//! * Dropping a hot plugin or directory stops its watching and waits for a pipeline
//!   run in progress, but events of that run may still be delivered just after the
//!   drop returns.
//! * A hot directory reloads a library's plugins together: when one of them must be
//!   tried again (its load failed, or it was busy), all are, and those already
//!   reloaded report `Unchanged`.
//! * Each thread that makes hot calls takes one record of hazard slots (128 bytes). A
//!   thread that exits hands its record on; records are never freed, so there are as
//!   many as threads that ever called at the same time.
//! * Only Linux runs the tests. macOS and Windows builds are type-checked and linted
//!   in CI; there, calls use one memory fence each (no `membarrier`).
//! * Calls nested more than four deep on one thread (a plugin calling the host calling
//!   a hot plugin, and so on), and calls made from thread-local destructors, take a
//!   read lock instead of a slot. A swap holds that lock for one pointer exchange, so
//!   such a call can wait that long.
//! * State inside the plugin is carried over only for plugins that opt in
//!   (`fidius::PluginState`); any other new version starts fresh.
//! * A plugin's code runs in the host process with the host's privileges; reloading
//!   validates interfaces, it does not sandbox. Anyone who can write the watched file
//!   can deploy code, unless the host requires signed builds
//!   ([`HotPluginBuilder::trust`]); even then, any build ever signed by a trusted key
//!   can be deployed again.
//! * The last-known-good store ([`HotPluginBuilder::last_known_good`]) serves hot
//!   plugins; a [`HotDirectory`] does not use one yet.
//! * On Linux each loaded version holds one file descriptor (its in-memory copy) until
//!   its library has left memory: the loader and backtraces know the library by the
//!   path `/proc/self/fd/N`, which must not come to name another file. A
//!   [pinned](UnloadState::Pinned) version keeps its descriptor for the life of the
//!   process. Count one descriptor per plugin (more while old versions drain) against
//!   the process's limit.
//! * Where copies are files, the directory's parents must not be writable by others
//!   (a sticky directory such as `/tmp` is fine): the checks look at the directory
//!   itself, and the path is resolved again for each step. Missing parents are created
//!   with mode 0700. If another user has taken the default directory's name, file
//!   copies are refused until it is removed or another directory is configured.
//! * On Windows only the shadow directory's existence is checked, and a file copy is
//!   removed when its version is closed rather than as soon as it is loaded; a crash
//!   leaves copies behind there.
//!
//! ## Internals: how calls and swaps meet, and how it is checked
//!
//! The guarantee that matters is that a call never runs on a version that was freed,
//! and a swap never blocks or fails a call. It rests on *hazard slots*
//! (this crate's `src/hazard.rs` in the repository, where the argument is written
//! out):
//!
//! * A call announces the version it uses in a slot of its own thread and clears the
//!   slot when it returns. These are two plain stores: no shared counter, no locked
//!   instruction, so calls on different threads never contend.
//! * A swap only exchanges the current pointer. The old version waits in a retiring
//!   list, and the reload gives it up once no slot names it: at once when no call is
//!   in it, otherwise a timer polls (1 ms at first, backing off to 100 ms). Streams
//!   and other things that outlive a call hold an ordinary `Arc` of the version, so
//!   after that the last of them closes it.
//! * On Linux the announcing call needs no fence, because the reclaiming side issues
//!   `membarrier` before it looks at the slots; elsewhere each call uses one fence
//!   (see [`uses_membarrier`]).
//! * If `membarrier` starts failing after start-up (a seccomp filter applied later),
//!   the process switches to one fence per call for good. The versions current or
//!   draining at that moment may have been announced without a fence, so no check can
//!   tell when their calls end: they stay loaded until their plugin is dropped
//!   ([`ReloadEvent::Stranded`], for those versions only), and every later version
//!   drains as usual. The error is logged once.
//!
//! Why not arc-swap: its guard avoids a shared counter too, but takes its per-thread
//! slot with locked read-modify-write instructions, two per call, and those make up
//! nearly all of what a hot call would cost over a plain handle. arc-swap remains a
//! dev-dependency of the benchmarks, which measure both side by side (the
//! repository's `BENCHMARKS.md`).
//!
//! Everything around the slots (the draining list, the event queues, the counters)
//! is behind a mutex or a channel, and a version is retired from its `Drop`, which
//! Rust runs exactly once.
//!
//! How the protocol is checked, and that each check can fail:
//!
//! * **A loom model** (this crate's `tests/hazard_loom.rs`): loom explores every interleaving and
//!   every reordering the memory model allows of a reader, a swap and a reclaim that
//!   mirror the real steps, with the asymmetric pair modelled as a sequentially
//!   consistent fence on each side (what `membarrier` guarantees). Each value is a
//!   loom `UnsafeCell` that calls read and the reclaim writes when it frees, so loom
//!   also checks the orderings that publish and clear the slots. Five models: a call
//!   against a swap and reclaim; swap and reclaim on different threads; a nested
//!   call; a thread that exits and hands its record to the next; and membarrier lost
//!   (calls fence by the mode they read, the writer switches the mode, frees only
//!   values made current after the switch and strands the others). `.ci/run` runs it.
//! * **A stress test that can fail** (the hazard unit test
//!   `lock_free_readers_never_see_a_value_reclaimed_under_them`): readers take no lock
//!   (a lock is a fence and would hide a missing barrier) and check, inside every
//!   call, that their value is alive; the writer swaps and reclaims as fast as it can
//!   and marks each reclaimed value dead instead of freeing it, so a use after reclaim
//!   is observed, not undefined. `.ci/run` runs it with membarrier, with plain fences,
//!   and pinned to one CPU.
//! * **Membarrier lost for real** (the hazard unit test
//!   `a_membarrier_lost_midway_strands_a_few_and_frees_the_rest`): the same readers
//!   and writer, and partway through, a seccomp filter makes `membarrier` fail in every
//!   thread. It runs in a child process (a filter cannot be taken back), and says
//!   SKIPPED where membarrier is not in use or no filter can be installed. It checks
//!   that no call sees a dead value, that only the values current or retiring at the
//!   loss are stranded, and that all the rest are freed.
//! * **Mutants that must fail.** Deliberately broken builds:
//!   `RUSTFLAGS='--cfg fidius_mutant="no_barriers"'` (no fence on either side) and
//!   `RUSTFLAGS='--cfg fidius_mutant="ignore_slots"'` (reclaim frees values still
//!   announced). `no_barriers` must fail the loom models (a causality violation) and
//!   the stress test on more than one CPU (pinned to one, no reordering can be seen);
//!   `ignore_slots` must fail the stress test, pinned or not. Two more break the step
//!   after membarrier is lost: `fidius_mutant="no_switch"` (calls keep relying on the
//!   lost membarrier) must fail the loom model and the membarrier-lost test;
//!   `fidius_mutant="free_stranded"` (the values announced before the switch are freed
//!   too) must fail the loom model (the test cannot reach its window: only a few values
//!   cross the switch). Clearing a slot with a relaxed store instead of a release store
//!   also fails the loom models. The repository's `BENCHMARKS.md` ("The hazard cell's
//!   proofs") records how
//!   often each failed.
//!   Reading the current pointer with relaxed instead of acquire before the fence
//!   mode also fails that model (tried by hand).
//! * **Miri** runs the hazard unit tests (the stress tests shortened) with the fence
//!   fallback, since it cannot execute `membarrier`: it checks the pointer
//!   arithmetic, provenance and the `Arc` bookkeeping of each step.
//! * four threads calling through 210 consecutive swaps of real plugin builds, checking
//!   that every result comes from a generation at least as new as the one current when
//!   the call began (the repository's `tests/tests/hot_reload.rs`), with and without
//!   membarrier;
//! * the soak benchmark (the repository's `BENCHMARKS.md`).
//!

#![warn(missing_docs)]

// The machinery, in the order a reload runs through it (rustfmt sorts the list):
//
// - `watcher` (one per process; `poll` is its fallback) signals changes to
// - `debounce`, which waits for a file to settle, then runs
// - `pipeline`: `shadow` copy, load, validate, swap (`version`, `hazard`), then
// - `drain` gives old versions up and `unload` checks they left memory.
//
// All of it runs on the shared threads of `pool`; `hold` keeps reloads off.
mod debounce;
mod drain;
mod handoff;
mod hazard;
mod hold;
mod last_good;
mod metrics;
mod pipeline;
mod poll;
mod pool;
mod probation;
mod shadow;
mod unload;
mod version;
mod watcher;

// The facade: what users touch.
mod directory;
mod display;
mod events;
mod handle;
mod hot_plugin;
mod status;

pub use directory::{
    DirectoryEvent, DirectoryStatus, HotDirectory, HotDirectoryBuilder, LibraryReload,
    RemovalPolicy,
};
pub use events::{Cause, PinnedPolicy, Rejection, ReloadEvent, ReloadOutcome, Stage, VersionInfo};
/// Settings of isolated versions ([`HotPluginBuilder::isolated`]).
#[cfg(all(feature = "isolated", target_os = "linux"))]
pub use fidius_isolated::Isolation;
pub use handle::{HotHandle, VersionHandle};
pub use handoff::{DRAIN_LIMIT, HANDOFF_WAIT};
pub use hold::ReloadHold;
pub use hot_plugin::{HotPlugin, HotPluginBuilder};
pub use metrics::{HotMetrics, MetricsSnapshot};
pub use pipeline::{
    DEFAULT_DEBOUNCE, DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_PINNED, DEFAULT_MAX_RETAINED,
};
pub use probation::{
    Probation, ProbationStatus, Quarantined, VersionCheck, DEFAULT_MAX_FAILURES,
    DEFAULT_PROBATION_WINDOW,
};
pub use shadow::default_shadow_dir;
pub use status::{DrainingVersion, HotStatus, VersionProcess};
pub use unload::{mapped, UnloadState};
pub use watcher::{WatcherKind, POLL_INTERVAL};

/// Whether hot plugins in this process load each version from an anonymous in-memory
/// file (Linux `memfd_create`, sealed, loaded through its descriptor), unless told not
/// to with [`HotPluginBuilder::copies_in_memory`]. `false` where the platform has no
/// such files, where they are filtered or not executable, or when the environment
/// variable `FIDIUS_HOTRELOAD_NO_MEMFD` is set: copies are then files in the private
/// shadow directory. Probed once per process.
pub fn in_memory_copies() -> bool {
    shadow::Store::new().uses_memory()
}

/// Whether calls through a [`HotHandle`] run without any fence instruction.
///
/// A call announces the version it uses in a per-thread slot and re-reads the current
/// version; those two steps must not be reordered by the processor. On Linux 4.14 and
/// later, the rare side (a reload giving an old version up) calls `membarrier`, which
/// orders every thread of the process at once, so calls need no fence: `true`. Where
/// membarrier is missing or filtered (other systems, some sandboxes), or when the
/// environment variable `FIDIUS_HOTRELOAD_NO_MEMBARRIER` is set, each call uses one
/// full fence instead: `false`. Both are safe; the first is faster.
pub fn uses_membarrier() -> bool {
    hazard::asymmetric()
}

//! [`IsolatedPlugin`]: a plugin in a process of its own, restarted when it ends.

use crate::error::StartError;
use crate::handle::IsolatedHandle;
use crate::process::{absolute, Ended, Launch, Process};
use arc_swap::ArcSwapOption;
use fidius::host::LoadError;
use fidius::Interface;
use fidius::{CallError, InterfaceInfo, PluginInfo, ProcessExit};
use parking_lot::{Condvar, Mutex};
use rustix::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Default number of calls one plugin process serves at the same time.
pub const DEFAULT_WORKERS: usize = 4;
/// Default time a plugin process has to load its library and report.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between restarts of a plugin process that keeps ending before it
/// completes a call.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);

/// A plugin running in a child process of its own: a crash, an abort or an endless
/// loop in it cannot take the host down, a call can have a deadline, and letting it
/// go unloads it exactly (the process exits).
///
/// Calls go through [`IsolatedHandle`]s, which work with the typed clients
/// `#[plugin_interface]` generates like an in-process handle. When the process ends
/// (a crash, or a kill for a deadline), the calls in it fail with a
/// [`CallError`] that says how, and a new process starts: at once after a deadline or
/// after a process that served calls, with a growing pause (up to
/// [`MAX_RESTART_BACKOFF`]) while processes keep ending before completing any.
///
/// The process lives as long as the plugin or any of its handles; it never outlives
/// the host, even one killed with `SIGKILL` (it exits when its connection to the host
/// closes).
pub struct IsolatedPlugin {
    inner: Arc<Inner>,
}

/// What an isolated plugin's process is doing and has done.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IsolatedStatus {
    /// The plugin's name.
    pub plugin: String,
    /// The running process's id; `None` while none runs (restarting).
    pub pid: Option<u32>,
    /// Processes started after the first.
    pub restarts: u64,
    /// How the last process that ended did, and when.
    pub last_end: Option<(ProcessEnd, SystemTime)>,
    /// Why the last start failed, while restarting fails.
    pub start_failure: Option<String>,
}

/// How a plugin process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessEnd {
    /// The host killed it: a call passed its deadline, or the plugin was let go.
    Killed {
        /// Why.
        reason: String,
    },
    /// It ended on its own: a crash, an abort, an exit, its memory limit.
    Crashed {
        /// How.
        exit: ProcessExit,
        /// Its last lines of standard error.
        stderr: Vec<String>,
    },
}

impl std::fmt::Display for ProcessEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcessEnd::Killed { reason } => write!(f, "killed: {reason}"),
            ProcessEnd::Crashed { exit, .. } => write!(f, "{exit}"),
        }
    }
}

/// What happens to an isolated plugin's processes, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IsolatedEvent {
    /// A process started and loaded the plugin; it serves from now on.
    Started {
        /// Its process id.
        pid: u32,
        /// Processes started after the first, this one included.
        restarts: u64,
    },
    /// A process ended.
    Ended {
        /// Its process id.
        pid: u32,
        /// How.
        end: ProcessEnd,
    },
    /// Starting a new process failed; another attempt follows after `retry_in`.
    StartFailed {
        /// Why.
        reason: String,
        /// The pause before the next attempt.
        retry_in: Duration,
    },
}

/// How an isolated plugin runs: each call's deadline, its worker count, memory
/// limit, runner and start timeout. Shared by [`IsolatedBuilder`] and by hot
/// reloading (fidius-hotreload's `HotPluginBuilder::isolated`), which starts each new
/// build with these settings.
///
/// ```
/// use fidius_isolated::Isolation;
/// use std::time::Duration;
///
/// let settings = Isolation::default()
///     .deadline(Duration::from_millis(200))
///     .workers(8)
///     .memory_limit(2 << 30);
/// assert_eq!(settings.deadline, Some(Duration::from_millis(200)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Isolation {
    /// Each call's deadline unless its handle sets another.
    pub deadline: Option<Duration>,
    /// Calls the process serves at the same time.
    pub workers: usize,
    /// The process's address-space limit, in bytes.
    pub memory_limit: Option<u64>,
    /// The executable started as the plugin process; `None`: this program.
    pub runner: Option<PathBuf>,
    /// How long a process has to load the plugin and report.
    pub start_timeout: Duration,
}

impl Default for Isolation {
    fn default() -> Self {
        Self {
            deadline: None,
            workers: DEFAULT_WORKERS,
            memory_limit: None,
            runner: None,
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }
}

impl Isolation {
    /// Every call's deadline unless its handle sets another
    /// ([`IsolatedHandle::with_deadline`]). A call that passes it returns
    /// [`CallError::Timeout`], and its process is killed and replaced: other calls
    /// in that process at the time fail with [`CallError::ProcessKilled`]. Default:
    /// none.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// How many calls the process serves at the same time, each on a thread of its
    /// own (more wait for one to finish). Default [`DEFAULT_WORKERS`].
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Limits the process's address space to `bytes` (`RLIMIT_AS`): an allocation
    /// past it fails, the process aborts, and calls get [`CallError::Crashed`] with
    /// [`ProcessExit::MemoryLimit`]. It counts reserved address space, not memory
    /// in use: each thread reserves its stack and the allocator its arenas, so leave
    /// a few hundred MiB above what the plugin needs. Default: none.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// The executable to start as the plugin process, instead of this program
    /// itself. It must link fidius-isolated (see the crate docs, *How the plugin
    /// process starts*).
    pub fn runner(mut self, executable: impl AsRef<Path>) -> Self {
        self.runner = Some(executable.as_ref().to_path_buf());
        self
    }

    /// How long a process has to load the plugin and report. Default
    /// [`DEFAULT_START_TIMEOUT`].
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }
}

/// Builds an [`IsolatedPlugin`].
#[derive(Debug, Clone)]
#[must_use]
pub struct IsolatedBuilder {
    library: PathBuf,
    library_fd: Option<Arc<OwnedFd>>,
    trust: Option<Arc<fidius::host::trust::Trust>>,
    plugin: String,
    expected: Option<InterfaceInfo>,
    settings: Isolation,
}

impl IsolatedBuilder {
    /// All settings at once.
    pub fn isolation(mut self, settings: Isolation) -> Self {
        self.settings = settings;
        self
    }

    /// See [`Isolation::deadline`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings = self.settings.deadline(deadline);
        self
    }

    /// See [`Isolation::workers`].
    pub fn workers(mut self, workers: usize) -> Self {
        self.settings = self.settings.workers(workers);
        self
    }

    /// See [`Isolation::memory_limit`].
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.settings = self.settings.memory_limit(bytes);
        self
    }

    /// See [`Isolation::runner`].
    pub fn runner(mut self, executable: impl AsRef<Path>) -> Self {
        self.settings = self.settings.runner(executable);
        self
    }

    /// See [`Isolation::start_timeout`].
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.settings = self.settings.start_timeout(timeout);
        self
    }

    /// Loads the library from `file`, an open descriptor of it (a sealed in-memory
    /// copy, say), instead of opening the path; the path then only names it in
    /// messages. Without it, `build` opens the path once: either way every process,
    /// restarts included, loads the very same file, whatever the path names later.
    pub fn library_descriptor(mut self, file: Arc<OwnedFd>) -> Self {
        self.library_fd = Some(file);
        self
    }

    /// Loads only a build that `trust` accepts: signed by one of its keys (the
    /// signature file beside the library, named as it plus `.sig`) or with one of its
    /// pinned digests. `build` then copies the library to a private copy nobody can
    /// change, judges the copy, and hands the plugin process that copy: every
    /// process, restarts included, loads the bytes that were judged. An untrusted
    /// build is `StartError::Load(LoadError::Untrusted)`, and no process starts.
    ///
    /// It cannot be combined with
    /// [`library_descriptor`](Self::library_descriptor), whose content is the caller's
    /// to judge (fidius-hotreload judges its copies itself): `build` refuses both.
    pub fn trust(mut self, trust: fidius::host::trust::Trust) -> Self {
        self.trust = Some(Arc::new(trust));
        self
    }

    /// Lists the library's plugins without loading it in this process: a process
    /// started for the purpose opens it, reports what it offers, and exits. The
    /// builder's plugin name and interface are not used.
    pub fn list_plugins(self) -> Result<Vec<PluginInfo>, StartError> {
        crate::process::list(&self.launch()?)
    }

    /// The launch of a process, opening the library unless a descriptor was given.
    fn launch(self) -> Result<Launch, StartError> {
        let io = |source| LoadError::Io {
            path: self.library.clone(),
            source,
        };
        let library_fd = match (self.library_fd, &self.trust) {
            (Some(_), Some(_)) => {
                return Err(StartError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a trust and a library descriptor were both given: the descriptor's \
                     content cannot be judged; give the path with the trust, or judge the \
                     content yourself (fidius::host::TrustedCopy) and give its descriptor",
                )))
            }
            (Some(fd), None) => fd,
            (None, Some(trust)) => {
                // The copy's own descriptor keeps it alive after `copy` goes.
                let copy = fidius::host::TrustedCopy::make(&self.library, trust)?;
                Arc::new(copy.open().map_err(io)?.into())
            }
            (None, None) => Arc::new(
                std::fs::File::open(&self.library)
                    .map_err(|source| LoadError::Io {
                        path: self.library.clone(),
                        source,
                    })?
                    .into(),
            ),
        };
        Ok(Launch {
            library: self.library,
            library_fd,
            plugin: self.plugin,
            expected: self.expected,
            settings: self.settings,
        })
    }

    /// Starts the process, loads the plugin in it and checks it: a refused library
    /// or plugin gives the same [`LoadError`](fidius::host::LoadError) as an
    /// in-process load, inside [`StartError::Load`].
    pub fn build(self) -> Result<IsolatedPlugin, StartError> {
        let launch = self.launch()?;
        let owner: Owner = Arc::new(OnceLock::new());
        let first = Process::start(&launch, on_end(owner.clone()))?;
        let inner = Arc::new(Inner {
            info: first.info().clone(),
            deadline: launch.settings.deadline,
            launch,
            current: ArcSwapOption::new(Some(first.clone())),
            slot: Mutex::new(Slot::default()),
            changed: Condvar::new(),
            subscribers: Mutex::new(Vec::new()),
            callbacks: Mutex::new(Vec::new()),
            restarts: AtomicU64::new(0),
            owner: owner.clone(),
            stopped: AtomicBool::new(false),
        });
        let _ = owner.set(Arc::downgrade(&inner));
        // It may have ended before it could be told whom to report to: replaced on a
        // thread of its own, as its watcher would have.
        if first.ended().is_some() {
            let weak = Arc::downgrade(&inner);
            std::thread::spawn(move || Inner::replace(weak, &first));
        }
        Ok(IsolatedPlugin { inner })
    }
}

impl IsolatedPlugin {
    /// Starts building an isolated plugin: plugin `plugin` of the library at
    /// `library`, which must implement interface `I` (write `dyn YourTrait`).
    pub fn builder<I: Interface + ?Sized>(
        library: impl AsRef<Path>,
        plugin: &str,
    ) -> IsolatedBuilder {
        Self::builder_for(library, plugin, Some(I::INFO))
    }

    /// As [`builder`](Self::builder), checking the plugin against `expected`, or
    /// against nothing (for dynamic calls, without an interface crate).
    pub fn builder_for(
        library: impl AsRef<Path>,
        plugin: &str,
        expected: Option<InterfaceInfo>,
    ) -> IsolatedBuilder {
        IsolatedBuilder {
            library: absolute(library.as_ref()),
            library_fd: None,
            trust: None,
            plugin: plugin.to_string(),
            expected,
            settings: Isolation::default(),
        }
    }

    /// Ends the plugin's process now and waits (at most five seconds) until it has
    /// exited; no new process starts. Calls in it end with
    /// [`CallError::ProcessKilled`], later ones with [`CallError::Unavailable`].
    /// Returns whether no process of it is left (`false` only if the wait ran out).
    /// Dropping the plugin and every handle does the same without waiting.
    pub fn stop(&self) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        self.inner.stopped.store(true, Ordering::SeqCst);
        let process = {
            let _slot = self.inner.slot.lock();
            self.inner.current.swap(None)
        };
        self.inner.changed.notify_all();
        let mut gone = match process {
            Some(process) => {
                process.kill("the plugin was stopped");
                process.wait_ended(until.saturating_duration_since(Instant::now()))
            }
            None => true,
        };
        // A restart under way ends its process itself once it sees the stop.
        let mut slot = self.inner.slot.lock();
        while slot.starting {
            if self.inner.changed.wait_until(&mut slot, until).timed_out() {
                gone = false;
                break;
            }
        }
        gone
    }

    /// A handle to call the plugin through, with the builder's deadline.
    pub fn handle(&self) -> IsolatedHandle {
        IsolatedHandle::new(self.inner.clone(), self.inner.deadline)
    }

    /// What the plugin is and offers (as its first process loaded it).
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// What its process is doing and has done.
    pub fn status(&self) -> IsolatedStatus {
        let slot = self.inner.slot.lock();
        IsolatedStatus {
            plugin: self.inner.info.name.clone(),
            pid: self
                .inner
                .current
                .load()
                .as_ref()
                .filter(|p| p.ended().is_none())
                .map(|p| p.pid()),
            restarts: self.inner.restarts.load(Ordering::Relaxed),
            last_end: slot.last_end.clone(),
            start_failure: slot.start_failure.clone(),
        }
    }

    /// Calls `f` for every event from now on, on the thread that noticed it (no lock
    /// of the plugin's is held then).
    pub fn on_event(&self, f: impl Fn(&IsolatedEvent) + Send + Sync + 'static) {
        self.inner.callbacks.lock().push(Arc::new(f));
    }

    /// Events from now on: processes starting and ending. Also traced.
    pub fn subscribe(&self) -> Receiver<IsolatedEvent> {
        let (tx, rx) = channel();
        self.inner.subscribers.lock().push(tx);
        rx
    }
}

impl std::fmt::Debug for IsolatedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolatedPlugin")
            .field("plugin", &self.inner.info.name)
            .field("library", &self.inner.launch.library)
            .finish_non_exhaustive()
    }
}

type Callback = Arc<dyn Fn(&IsolatedEvent) + Send + Sync>;

/// Where a process's watcher finds the plugin to report its end to: set once the
/// plugin exists (the first process starts before it does).
type Owner = Arc<OnceLock<Weak<Inner>>>;

fn on_end(owner: Owner) -> impl FnOnce(&Arc<Process>) + Send + 'static {
    move |process| {
        if let Some(inner) = owner.get() {
            Inner::replace(inner.clone(), process);
        }
    }
}

/// State shared by an isolated plugin, its handles, and the threads that watch and
/// restart its processes.
pub(crate) struct Inner {
    launch: Launch,
    /// What the first process loaded; every later one must load the same.
    info: PluginInfo,
    deadline: Option<Duration>,
    /// The serving process; `None` while a new one starts.
    current: ArcSwapOption<Process>,
    /// Changes of `current` happen under this lock, and are announced on `changed`.
    slot: Mutex<Slot>,
    changed: Condvar,
    subscribers: Mutex<Vec<Sender<IsolatedEvent>>>,
    callbacks: Mutex<Vec<Callback>>,
    restarts: AtomicU64,
    owner: Owner,
    /// [`IsolatedPlugin::stop`] was called: no process starts any more.
    stopped: AtomicBool,
}

#[derive(Default)]
struct Slot {
    /// A process is being started (by `replace_once`).
    starting: bool,
    start_failure: Option<String>,
    last_end: Option<(ProcessEnd, SystemTime)>,
    /// Consecutive processes that ended before completing a call.
    fruitless: u32,
}

impl Inner {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// A process to call into, other than `not` (one the caller found ended): the
    /// current one, or the next to start, waiting at most until `deadline` (or the
    /// start timeout and the longest backoff, without one).
    pub fn process(
        &self,
        not: Option<&Arc<Process>>,
        deadline: Option<Instant>,
    ) -> Result<Arc<Process>, CallError> {
        let usable = |p: &Option<Arc<Process>>| match (p, not) {
            (Some(p), Some(not)) if Arc::ptr_eq(p, not) => None,
            (p, _) => p.clone(),
        };
        if let Some(p) = usable(&self.current.load_full()) {
            return Ok(p);
        }
        let until = deadline.unwrap_or_else(|| {
            Instant::now() + self.launch.settings.start_timeout + MAX_RESTART_BACKOFF
        });
        let mut slot = self.slot.lock();
        loop {
            let current = self.current.load_full();
            if let Some(p) = usable(&current) {
                return Ok(p);
            }
            if self.stopped.load(Ordering::SeqCst) {
                return Err(self.unavailable("the plugin was stopped".into()));
            }
            if current.is_none() {
                if let Some(failure) = &slot.start_failure {
                    return Err(self.unavailable(format!(
                        "its process ended and a new one failed to start: {failure}"
                    )));
                }
            }
            if self.changed.wait_until(&mut slot, until).timed_out() {
                return Err(self.unavailable(format!(
                    "its process ended and no new one was ready within {:?}",
                    until.saturating_duration_since(Instant::now())
                )));
            }
        }
    }

    fn unavailable(&self, reason: String) -> CallError {
        CallError::Unavailable {
            plugin: self.info.name.clone(),
            reason,
        }
    }

    fn emit(&self, event: IsolatedEvent) {
        self.subscribers
            .lock()
            .retain(|s| s.send(event.clone()).is_ok());
        let callbacks = self.callbacks.lock().clone();
        for callback in callbacks {
            callback(&event);
        }
    }

    /// Replaces `ended` with a new process, if it is still the current one (its
    /// watcher and the builder may both ask). Runs on the ended process's watching
    /// thread; holds the plugin only between attempts, not while it waits.
    fn replace(weak: Weak<Inner>, ended: &Arc<Process>) {
        let mut ended = ended.clone();
        // Until a replacement is current and still running.
        while let Some(next) = Self::replace_once(&weak, &ended) {
            ended = next;
        }
    }

    /// Replaces `ended` once; returns the replacement if it too has ended already,
    /// before anyone could see it current.
    fn replace_once(weak: &Weak<Inner>, ended: &Arc<Process>) -> Option<Arc<Process>> {
        let inner = weak.upgrade()?;
        let end = match ended.ended()? {
            Ended::Killed(reason) => ProcessEnd::Killed { reason },
            Ended::Crashed { exit, stderr } => ProcessEnd::Crashed { exit, stderr },
        };
        let mut fruitless = {
            let mut slot = inner.slot.lock();
            let current = inner.current.load();
            if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, ended)) {
                return None;
            }
            inner.current.store(None);
            slot.last_end = Some((end.clone(), SystemTime::now()));
            // A kill for a deadline, or a process that completed calls, restarts at
            // once; a process that keeps ending before completing any, ever slower.
            slot.fruitless = match &end {
                ProcessEnd::Crashed { .. } if !ended.served() => slot.fruitless + 1,
                _ => 0,
            };
            slot.fruitless
        };
        inner.emit(IsolatedEvent::Ended {
            pid: ended.pid(),
            end,
        });
        inner.changed.notify_all();
        drop(inner);
        loop {
            let pause = backoff(fruitless);
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let inner = weak.upgrade()?;
            {
                let mut slot = inner.slot.lock();
                if inner.stopped.load(Ordering::SeqCst) {
                    return None;
                }
                slot.starting = true;
            }
            let started = Process::start(&inner.launch, on_end(inner.owner.clone()));
            let mut slot = inner.slot.lock();
            slot.starting = false;
            if inner.stopped.load(Ordering::SeqCst) {
                drop(slot);
                if let Ok(process) = started {
                    process.kill("the plugin was stopped");
                    process.wait_ended(Duration::from_secs(5));
                }
                inner.changed.notify_all();
                return None;
            }
            drop(slot);
            let failure = match started {
                Ok(process) if process.info() == &inner.info => {
                    {
                        let mut slot = inner.slot.lock();
                        inner.current.store(Some(process.clone()));
                        slot.start_failure = None;
                    }
                    let restarts = inner.restarts.fetch_add(1, Ordering::Relaxed) + 1;
                    inner.changed.notify_all();
                    tracing::info!(plugin = %inner.info.name, pid = process.pid(), restarts, "plugin process restarted");
                    inner.emit(IsolatedEvent::Started {
                        pid: process.pid(),
                        restarts,
                    });
                    return process.ended().is_some().then_some(process);
                }
                Ok(process) => {
                    process.kill("it loaded a plugin other than the first process did");
                    format!(
                        "{} now holds a plugin other than the one first loaded (the file changed on disk; a HotPlugin follows new builds)",
                        inner.launch.library.display()
                    )
                }
                Err(e) => e.to_string(),
            };
            fruitless += 1;
            let retry_in = backoff(fruitless);
            tracing::error!(plugin = %inner.info.name, retry_in = ?retry_in, "plugin process failed to start: {failure}");
            {
                let mut slot = inner.slot.lock();
                slot.start_failure = Some(failure.clone());
                slot.fruitless = fruitless;
            }
            inner.changed.notify_all();
            inner.emit(IsolatedEvent::StartFailed {
                reason: failure,
                retry_in,
            });
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Nothing can call into it any more.
        if let Some(process) = self.current.swap(None) {
            process.kill("the plugin was let go");
        }
    }
}

/// The pause before starting a process after `fruitless` consecutive ones ended
/// without completing a call: none after the first, then 10 ms doubling up to
/// [`MAX_RESTART_BACKOFF`].
fn backoff(fruitless: u32) -> Duration {
    match fruitless {
        0 | 1 => Duration::ZERO,
        n => (Duration::from_millis(10) * 2u32.saturating_pow(n - 2)).min(MAX_RESTART_BACKOFF),
    }
}

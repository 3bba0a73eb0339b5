//! One plugin process, as the host sees it: starting it, its lanes, killing it, and
//! learning how it ended.

use crate::error::StartError;
use crate::plugin::Isolation;
use crate::protocol::{
    begin_frame, decode_response, finish_frame, read_message, send_with_descriptor,
    write_all_until, Control, FrameReader, ReadError, Ready, Start, PROTOCOL, RUNNER_ENV,
};
use fidius::{CallError, InterfaceInfo, PluginInfo, ProcessExit};
use parking_lot::{Condvar, Mutex};
use rustix::fd::{AsFd, OwnedFd};
use std::collections::VecDeque;
use std::io::BufRead;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines of a process's standard error kept for crash reports.
const STDERR_TAIL: usize = 20;

/// What starting a process needs.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The library's path as its user knows it (for messages).
    pub library: PathBuf,
    /// The library, open: every process loads these very bytes, whatever the path
    /// names by then.
    pub library_fd: Arc<OwnedFd>,
    pub plugin: String,
    pub expected: Option<InterfaceInfo>,
    pub settings: Isolation,
}

/// How a process ended, once it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The host killed it on purpose, for this reason.
    Killed(String),
    /// It ended on its own (crashed, aborted, exited, or hit its memory limit).
    Crashed {
        exit: ProcessExit,
        stderr: Vec<String>,
    },
}

/// One running plugin process.
pub(crate) struct Process {
    plugin: String,
    pid: u32,
    info: PluginInfo,
    /// Kill and reap go through this lock, so a kill never reaches a reused pid.
    child: Mutex<Child>,
    control: OwnedFd,
    lanes: Mutex<Lanes>,
    lane_free: Condvar,
    /// Every lane's socket, to shut down when the process ends: a process the
    /// plugin started may hold the other ends open.
    sockets: Mutex<Vec<std::sync::Weak<OwnedFd>>>,
    max_lanes: usize,
    /// Why the host killed it, if it did (set before the kill).
    kill_reason: Mutex<Option<String>>,
    ended: Mutex<Option<Ended>>,
    ended_changed: Condvar,
    stderr: Arc<Stderr>,
    memory_limit: Option<u64>,
    /// It completed a call.
    served: AtomicBool,
}

/// Why no lane could be had.
pub(crate) enum NoLane {
    /// The process has ended.
    Ended,
    /// Every lane stayed busy until the deadline.
    Busy,
    /// Opening a lane failed.
    Failed(CallError),
}

/// What a process wrote to its standard error, as far as reports need it.
#[derive(Default)]
struct Stderr {
    /// The last lines.
    tail: Mutex<VecDeque<String>>,
    /// A line said an allocation failed (Rust's handler writes it, then aborts).
    allocation_failed: AtomicBool,
}

impl Stderr {
    fn tail(&self) -> Vec<String> {
        self.tail.lock().iter().cloned().collect()
    }
}

struct Lanes {
    free: Vec<Lane>,
    open: usize,
}

/// One connection to a thread of the plugin process; carries one call at a time.
pub(crate) struct Lane {
    socket: Arc<OwnedFd>,
    reader: FrameReader,
    out: Vec<u8>,
}

/// A lane taken for one call: given back with [`give_back`](Self::give_back) after
/// an answer, or else (no answer, a panic in between) forgotten when dropped, so the
/// process's count of open lanes stays right.
pub(crate) struct Leased {
    lane: Option<Lane>,
    process: Arc<Process>,
}

impl Leased {
    pub fn lane(&mut self) -> &mut Lane {
        self.lane
            .as_mut()
            .expect("a leased lane is there until given back")
    }

    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }

    /// Back to the free lanes, for the next call.
    pub fn give_back(mut self) {
        if let Some(lane) = self.lane.take() {
            self.process.lanes.lock().free.push(lane);
            self.process.lane_free.notify_one();
        }
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        if self.lane.take().is_some() {
            // Out of step (an answer may still come): closed, never reused.
            self.process.lanes.lock().open -= 1;
            self.process.lane_free.notify_one();
        }
    }
}

/// A process started and told what to load, with its answer in hand.
struct Started {
    child: Child,
    control: OwnedFd,
    output_threads: Vec<std::thread::JoinHandle<()>>,
    stderr: Arc<Stderr>,
    pid: u32,
    runner: PathBuf,
}

impl Started {
    /// Starts a process, sends it the library (and `plugin` to load, or none to list
    /// them), and reads its answer.
    fn new(launch: &Launch, plugin: Option<&str>) -> Result<(Started, Ready), StartError> {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        if std::env::var_os(RUNNER_ENV).is_some() {
            // A plugin process whose runner did not take over would run the host's
            // `main`, which would start plugin processes of its own, and so on.
            return Err(StartError::Runner {
                runner: runner_path(launch)?,
                reason: format!(
                    "this process was itself started as a plugin process ({RUNNER_ENV} is set) but ran `main`: its fidius-isolated runner did not take over"
                ),
            });
        }
        let (host_end, child_end) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| StartError::Io(e.into()))?;
        let runner = runner_path(launch)?;
        // A process group of its own: whatever the plugin starts goes with it, and
        // the terminal's signals (Ctrl-C) reach the host, not the plugin.
        let mut child = Command::new(&runner)
            .process_group(0)
            .env(RUNNER_ENV, PROTOCOL)
            .stdin(Stdio::from(child_end))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StartError::Runner {
                runner: runner.clone(),
                reason: format!("cannot start it: {e}"),
            })?;
        let pid = child.id();
        let stderr = Arc::new(Stderr::default());
        let mut output_threads = Vec::new();
        let outputs = [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
        ];
        for (output, errors) in outputs.into_iter().zip([None, Some(stderr.clone())]) {
            let Some(output) = output else { continue };
            match forward_output(output, &launch.plugin, pid, errors) {
                Ok(thread) => output_threads.push(thread),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(StartError::Io(e));
                }
            }
        }
        let mut started = Started {
            child,
            control: host_end,
            output_threads,
            stderr,
            pid,
            runner,
        };
        let start = Start {
            library: launch.library.as_os_str().as_bytes().to_vec(),
            plugin: plugin.map(str::to_string),
            memory_limit: launch.settings.memory_limit,
        };
        if let Err(e) =
            send_with_descriptor(started.control.as_fd(), &start, launch.library_fd.as_fd())
        {
            return Err(started.fail(format!("it did not take the start message ({e})")));
        }
        let deadline = Instant::now() + launch.settings.start_timeout;
        let mut reader = FrameReader::default();
        match read_message::<Ready>(&mut reader, &started.control, Some(deadline)) {
            Ok(ready) => Ok((started, ready)),
            Err(ReadError::Timeout) => Err(started.fail(format!(
                "it did not report within {:?}",
                launch.settings.start_timeout
            ))),
            Err(e) => Err(started.fail(format!(
                "it ended or answered wrongly before reporting ({e})"
            ))),
        }
    }

    /// Ends it, and explains why it is not a plugin process.
    fn fail(&mut self, reason: String) -> StartError {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        wait_for_output(&self.output_threads, Duration::from_millis(500));
        StartError::Runner {
            runner: self.runner.clone(),
            reason: format!(
                "{reason}{}{}",
                status.map_or(String::new(), |s| format!(" ({})", describe(s))),
                stderr_note(&self.stderr.tail())
            ),
        }
    }
}

/// What the library offers, read by a process started for the purpose (which then
/// exits): nothing of it is loaded in this process.
pub(crate) fn list(launch: &Launch) -> Result<Vec<PluginInfo>, StartError> {
    let (mut started, ready) = Started::new(launch, None)?;
    let _ = started.child.kill();
    let _ = started.child.wait();
    match ready {
        Ready::Listed(plugins) => Ok(plugins),
        Ready::Failed(e) => Err(StartError::Load(e)),
        Ready::Loaded(_) => Err(started.fail("it loaded a plugin instead of listing them".into())),
    }
}

impl Process {
    /// Starts a process, loads and checks the plugin in it. The returned process has
    /// a thread watching for its end, which calls `on_end` once it has.
    pub fn start(
        launch: &Launch,
        on_end: impl FnOnce(&Arc<Process>) + Send + 'static,
    ) -> Result<Arc<Process>, StartError> {
        let (mut started, ready) = Started::new(launch, Some(&launch.plugin))?;
        let info = match ready {
            Ready::Loaded(info) => info,
            Ready::Listed(_) => {
                return Err(started.fail("it listed plugins instead of loading one".into()))
            }
            Ready::Failed(e) => {
                let _ = started.child.wait();
                return Err(StartError::Load(e));
            }
        };
        let Started {
            mut child,
            control: host_end,
            output_threads,
            stderr,
            pid,
            ..
        } = started;
        if let Some(expected) = &launch.expected {
            if let Err(m) = info.check_compatible(expected) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::Load(fidius::host::LoadError::from_mismatch(
                    launch.library.clone(),
                    info.name.clone(),
                    m,
                )));
            }
        }
        tracing::debug!(plugin = %launch.plugin, pid, "plugin process started");
        let process = Arc::new(Process {
            plugin: launch.plugin.clone(),
            pid,
            info,
            child: Mutex::new(child),
            control: host_end,
            lanes: Mutex::new(Lanes {
                free: Vec::new(),
                open: 0,
            }),
            lane_free: Condvar::new(),
            sockets: Mutex::new(Vec::new()),
            max_lanes: launch.settings.workers.max(1),
            kill_reason: Mutex::new(None),
            ended: Mutex::new(None),
            ended_changed: Condvar::new(),
            stderr,
            memory_limit: launch.settings.memory_limit,
            served: AtomicBool::new(false),
        });
        let watched = process.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("fidius-watch-{pid}"))
            .spawn(move || {
                watched.watch(output_threads);
                on_end(&watched);
            });
        if let Err(e) = spawned {
            process.kill("no thread could be started to watch it");
            return Err(StartError::Io(e));
        }
        Ok(process)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Whether it completed a call.
    pub fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    pub fn mark_served(&self) {
        if !self.served() {
            self.served.store(true, Ordering::Relaxed);
        }
    }

    /// How it ended, if it has.
    pub fn ended(&self) -> Option<Ended> {
        self.ended.lock().clone()
    }

    /// Waits until its watcher learned how it ended (it has exited and was reaped),
    /// at most `limit`; returns whether it did.
    pub fn wait_ended(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        let mut ended = self.ended.lock();
        while ended.is_none() && !self.ended_changed.wait_until(&mut ended, until).timed_out() {}
        ended.is_some()
    }

    /// Kills it (at most once; later reasons are ignored). Calls in it end with
    /// [`CallError::ProcessKilled`] naming `reason`, unless it had already ended.
    pub fn kill(&self, reason: &str) {
        {
            let mut kill_reason = self.kill_reason.lock();
            if kill_reason.is_none() {
                *kill_reason = Some(reason.to_string());
            }
        }
        // std does not signal a child it has already reaped, and reaping happens
        // under this lock too: the pid cannot have been reused.
        let _ = self.child.lock().kill();
    }

    /// Waits for the end (noticed by the watching thread), then reports it.
    fn watch(&self, output_threads: Vec<std::thread::JoinHandle<()>>) {
        use rustix::process::{kill_process_group, waitid, Pid, Signal, WaitId, WaitIdOptions};
        // Waits for its exit without reaping it: as a zombie it keeps its pid and
        // process group, so neither can be reused while we finish it off.
        let pid = Pid::from_raw(self.pid as i32).expect("a child's pid is positive");
        while let Err(rustix::io::Errno::INTR) = waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {}
        // What the plugin started goes too (it would hold the lanes and the output
        // open), and every call blocked on a lane wakes.
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = rustix::net::shutdown(&self.control, rustix::net::Shutdown::Both);
        for socket in self.sockets.lock().drain(..) {
            if let Some(socket) = socket.upgrade() {
                let _ = rustix::net::shutdown(&*socket, rustix::net::Shutdown::Both);
            }
        }
        let status = self.child.lock().wait();
        // Its last words, for the report.
        wait_for_output(&output_threads, Duration::from_secs(1));
        let ended = match self.kill_reason.lock().clone() {
            Some(reason) => Ended::Killed(reason),
            None => {
                let stderr = self.stderr.tail();
                let out_of_memory = self.stderr.allocation_failed.load(Ordering::Relaxed);
                let exit = match status {
                    Ok(status) => exit_of(status, self.memory_limit.filter(|_| out_of_memory)),
                    Err(e) => ProcessExit::Exited {
                        code: e.raw_os_error().unwrap_or(-1),
                    },
                };
                Ended::Crashed { exit, stderr }
            }
        };
        match &ended {
            Ended::Killed(reason) => {
                tracing::info!(plugin = %self.plugin, pid = self.pid, reason = %reason, "plugin process killed")
            }
            Ended::Crashed { exit, .. } => {
                tracing::error!(plugin = %self.plugin, pid = self.pid, "plugin process {exit}")
            }
        }
        *self.ended.lock() = Some(ended);
        self.ended_changed.notify_all();
        // Wake callers waiting for a lane: there will be none.
        let _lanes = self.lanes.lock();
        self.lane_free.notify_all();
    }

    /// The error a call whose lane broke gets: how the process ended, once the
    /// watching thread knows (waiting for it until `deadline`, at most 2 s). A
    /// process still running then broke the protocol: it is killed.
    pub fn call_failure(&self, deadline: Option<Instant>) -> CallError {
        let mut ended = self.ended.lock();
        let until = (Instant::now() + Duration::from_secs(2))
            .min(deadline.unwrap_or(Instant::now() + Duration::from_secs(2)));
        while ended.is_none() {
            if self.ended_changed.wait_until(&mut ended, until).timed_out() {
                break;
            }
        }
        if ended.is_none() {
            drop(ended);
            let reason = "it stopped answering on a connection while still running";
            self.kill(reason);
            return CallError::ProcessKilled {
                plugin: self.plugin.clone(),
                reason: reason.into(),
            };
        }
        match ended.clone() {
            Some(Ended::Killed(reason)) => CallError::ProcessKilled {
                plugin: self.plugin.clone(),
                reason,
            },
            Some(Ended::Crashed { exit, stderr }) => CallError::Crashed {
                plugin: self.plugin.clone(),
                exit,
                stderr,
            },
            None => CallError::ProcessKilled {
                plugin: self.plugin.clone(),
                reason: "its connection closed, and it could not be told how it ended".into(),
            },
        }
    }

    /// A lane for one call: a free one, a new one (up to the bound), or the next to
    /// be freed, waiting at most until `deadline`.
    pub fn take_lane(self: &Arc<Self>, deadline: Option<Instant>) -> Result<Leased, NoLane> {
        let leased = |lane| Leased {
            lane: Some(lane),
            process: self.clone(),
        };
        let mut lanes = self.lanes.lock();
        loop {
            // Killed counts as ended: a call made after the kill goes to the next
            // process, not into one about to die.
            if self.ended.lock().is_some() || self.kill_reason.lock().is_some() {
                return Err(NoLane::Ended);
            }
            if let Some(lane) = lanes.free.pop() {
                return Ok(leased(lane));
            }
            if lanes.open < self.max_lanes {
                lanes.open += 1;
                drop(lanes);
                return self.open_lane().map(leased).map_err(|e| {
                    self.lane_lost();
                    if e.kind() == std::io::ErrorKind::BrokenPipe
                        || e.raw_os_error() == Some(libc::ECONNRESET)
                    {
                        NoLane::Ended
                    } else {
                        NoLane::Failed(CallError::Unavailable {
                            plugin: self.plugin.clone(),
                            reason: format!("cannot open a connection to its process: {e}"),
                        })
                    }
                });
            }
            match deadline {
                Some(deadline) => {
                    if self.lane_free.wait_until(&mut lanes, deadline).timed_out() {
                        return Err(NoLane::Busy);
                    }
                }
                None => self.lane_free.wait(&mut lanes),
            }
        }
    }

    /// Forgets a lane that was never opened.
    fn lane_lost(&self) {
        self.lanes.lock().open -= 1;
        self.lane_free.notify_one();
    }

    fn open_lane(&self) -> std::io::Result<Lane> {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (host_end, child_end) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        if let Err(e) =
            send_with_descriptor(self.control.as_fd(), &Control::OpenLane, child_end.as_fd())
        {
            // A process still there whose control connection took part of a message
            // is out of step for good; one that is gone is reported as it ended.
            if !matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) {
                self.kill("a message to it could not be sent whole");
            }
            return Err(e);
        }
        let socket = Arc::new(host_end);
        self.sockets.lock().push(Arc::downgrade(&socket));
        Ok(Lane {
            socket,
            reader: FrameReader::default(),
            out: Vec::new(),
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The last reference: nobody can call into it any more.
        self.kill("the plugin was let go");
    }
}

/// How one request on a lane went.
pub(crate) enum Reply {
    /// An item: a call's result, a stream's next item, or a stream opened. Its bytes
    /// are [`Lane::item`].
    Item,
    /// The end of a stream.
    End,
    /// The plugin answered with an error.
    Error(CallError),
    /// The deadline passed first; the lane is out of step.
    Timeout,
    /// The process ended under the request (or broke the protocol).
    Lost,
}

impl Lane {
    /// Sends one request and reads its answer, waiting at most until `deadline`.
    pub fn request(
        &mut self,
        op: u8,
        index: usize,
        input: &[u8],
        deadline: Option<Instant>,
    ) -> Reply {
        begin_frame(&mut self.out);
        self.out.push(op);
        self.out.extend_from_slice(&(index as u32).to_le_bytes());
        self.out.extend_from_slice(input);
        finish_frame(&mut self.out);
        let written = write_all_until(self.socket.as_fd(), &self.out, deadline);
        if self.out.capacity() > 1 << 20 {
            self.out = Vec::new();
        }
        match written {
            Ok(()) => {}
            Err(ReadError::Timeout) => return Reply::Timeout,
            Err(_) => return Reply::Lost,
        }
        match self.reader.read(self.socket.as_fd(), deadline) {
            Ok(body) => match decode_response(body) {
                Ok(Some(_)) => Reply::Item,
                Ok(None) => Reply::End,
                Err(e) => Reply::Error(e),
            },
            Err(ReadError::Timeout) => Reply::Timeout,
            Err(ReadError::Closed | ReadError::Io(_) | ReadError::Corrupt(_)) => Reply::Lost,
        }
    }

    /// The bytes of the last [`Reply::Item`].
    pub fn item(&self) -> &[u8] {
        self.reader.last().get(1..).unwrap_or_default()
    }
}

fn runner_path(launch: &Launch) -> Result<PathBuf, StartError> {
    match &launch.settings.runner {
        Some(runner) => Ok(runner.clone()),
        None => std::env::current_exe().map_err(|e| StartError::Runner {
            runner: PathBuf::from("(this program)"),
            reason: format!("cannot find this program's executable to start it again: {e}"),
        }),
    }
}

/// Forwards a process's output to `tracing`, line by line; standard error is also
/// kept in `tail`.
fn forward_output(
    output: Box<dyn std::io::Read + Send>,
    plugin: &str,
    pid: u32,
    errors: Option<Arc<Stderr>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let plugin = plugin.to_string();
    std::thread::Builder::new()
        .name(format!("fidius-output-{pid}"))
        .spawn(move || {
            let mut lines = std::io::BufReader::new(output);
            let mut line = Vec::new();
            loop {
                line.clear();
                match lines.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                match &errors {
                    Some(errors) => {
                        tracing::warn!(plugin = %plugin, pid, stream = "stderr", "{text}");
                        if text.starts_with("memory allocation of") {
                            errors.allocation_failed.store(true, Ordering::Relaxed);
                        }
                        let mut tail = errors.tail.lock();
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(text.to_string());
                    }
                    None => tracing::info!(plugin = %plugin, pid, stream = "stdout", "{text}"),
                }
            }
        })
}

/// Waits for the output threads to reach the end of their streams, at most `limit`
/// (a process the plugin started may hold them open).
fn wait_for_output(threads: &[std::thread::JoinHandle<()>], limit: Duration) {
    let until = Instant::now() + limit;
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How an exit status reads in an error.
fn describe(status: std::process::ExitStatus) -> String {
    match status.signal() {
        Some(signal) => format!("killed by signal {signal} ({})", signal_name(signal)),
        None => format!("exited with status {}", status.code().unwrap_or(-1)),
    }
}

/// How a process ended; `memory_limit` is its limit if it said an allocation
/// failed (Rust's handler writes so to standard error, then aborts).
fn exit_of(status: std::process::ExitStatus, memory_limit: Option<u64>) -> ProcessExit {
    if let Some(limit) = memory_limit {
        return ProcessExit::MemoryLimit { limit };
    }
    match status.signal() {
        Some(signal) => ProcessExit::Signal {
            signal,
            name: signal_name(signal).to_string(),
        },
        None => ProcessExit::Exited {
            code: status.code().unwrap_or(-1),
        },
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGPIPE => "SIGPIPE",
        _ => "another signal",
    }
}

fn stderr_note(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its standard error ended with:\n  {}", lines.join("\n  "))
    }
}

/// The library path as the plugin process will open it: absolute, so that the
/// process's working directory does not matter.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

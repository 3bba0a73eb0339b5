//! The plugin process's side: load the plugin, report, then serve each lane on a
//! thread of its own until the host goes away.
//!
//! A plugin process is the host's own executable (or the runner the host names),
//! started with [`RUNNER_ENV`] set. With the default feature `auto-runner`, a
//! constructor that runs before `main` notices the variable and serves instead of
//! letting `main` run; without it, the program calls [`run_if_plugin_process`] first
//! thing in `main`.

use crate::protocol::{
    begin_frame, finish_frame, receive_with_descriptor, send_message, write_all, Control,
    FrameReader, ReadError, Ready, Start, CALL, END, ERR, NEXT, OK, OPEN_STREAM, PROTOCOL,
    RESTORE_STATE, RUNNER_ENV, SAVE_STATE,
};
use fidius::host::{LoadError, PluginHandle, PluginLibrary};
use fidius::PluginCaller;
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

/// Serves as a plugin process if this process was started as one, and never returns
/// then; returns at once otherwise.
///
/// Only needed without the default feature `auto-runner` (which does the same before
/// `main`): call it first thing in `main`, before anything else runs.
///
/// ```no_run
/// // The first line of `main`:
/// fidius_isolated::run_if_plugin_process();
/// // ... the host program ...
/// ```
pub fn run_if_plugin_process() {
    match std::env::var_os(RUNNER_ENV) {
        None => {}
        Some(version) if version == PROTOCOL => serve(),
        Some(version) => {
            eprintln!(
                "fidius-isolated: this program was started as a plugin process speaking protocol {:?}, but it links a fidius-isolated speaking {PROTOCOL}: build the host and the runner from the same fidius version",
                version
            );
            exit(3)
        }
    }
}

#[cfg(feature = "auto-runner")]
// SAFETY (of running before `main`): the constructor only reads one environment
// variable, which libc has set up by then, and returns at once unless it is set. When
// it is set, the process is a plugin process that never reaches `main`: it serves
// with ordinary std threads and system calls and leaves through `_exit`. The std
// services that are not ready before `main` (the main thread's name and stack guard,
// the program's arguments) are not used.
#[ctor::ctor(unsafe)]
fn serve_before_main() {
    if std::env::var_os(RUNNER_ENV).is_some() {
        run_if_plugin_process();
    }
}

/// Leaves at once: no destructor, no atexit handler (a plugin's may hang), no flush.
fn exit(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

fn serve() -> ! {
    // The variable must not reach processes the plugin starts.
    std::env::remove_var(RUNNER_ENV);
    // As Rust's own start-up does before `main` (which a plugin process never
    // reaches): a write to a closed pipe is an error, not the end of the process.
    // SAFETY: setting a signal's disposition to "ignore" installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // The control connection arrived as standard input; move it to a descriptor of
    // its own, and give the plugin an empty standard input instead.
    let control = match take_control() {
        Ok(control) => control,
        Err(e) => {
            eprintln!("fidius-isolated: cannot take over the control connection: {e}");
            exit(3)
        }
    };
    let (start, library) = match receive_with_descriptor::<Start>(control.as_fd()) {
        Ok(Some(start)) => start,
        Ok(None) => exit(0),
        Err(e) => {
            eprintln!("fidius-isolated: no start message from the host: {e}");
            exit(3)
        }
    };
    // The plugin's panics, one line each on standard error, which the host reads: a
    // plugin built to abort on panic then leaves its message in the crash report.
    fidius::panics::route_plugin_panics(fidius::panics::PanicRoute::Stderr);
    if let Some(limit) = start.memory_limit {
        use rustix::process::{setrlimit, Resource, Rlimit};
        let rlimit = Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        };
        if let Err(e) = setrlimit(Resource::As, rlimit) {
            eprintln!("fidius-isolated: cannot set the memory limit: {e}");
            exit(3)
        }
    }
    let Some(plugin) = &start.plugin else {
        let listed = match open(&start, &library) {
            Ok(opened) => Ready::Listed(opened.plugins().cloned().collect()),
            Err(e) => Ready::Failed(e),
        };
        let _ = send_message(control.as_fd(), &listed);
        exit(0)
    };
    let handle = match open(&start, &library).and_then(|opened| {
        opened
            .handle(plugin, None)
            .map_err(|e| e.with_path(known_path(&start)))
    }) {
        Ok(handle) => handle,
        Err(e) => {
            let _ = send_message(control.as_fd(), &Ready::Failed(e));
            exit(0)
        }
    };
    if send_message(control.as_fd(), &Ready::Loaded(handle.info().clone())).is_err() {
        exit(0)
    }
    // Lanes, until the host closes the control connection.
    loop {
        match receive_with_descriptor::<Control>(control.as_fd()) {
            Ok(Some((Control::OpenLane, lane))) => {
                let handle = handle.clone();
                let spawned = std::thread::Builder::new()
                    .name("fidius-lane".into())
                    .spawn(move || serve_lane(&handle, lane));
                if let Err(e) = spawned {
                    eprintln!("fidius-isolated: cannot start a lane thread: {e}");
                }
            }
            Ok(None) => exit(0),
            Err(e) => {
                eprintln!("fidius-isolated: control connection failed: {e}");
                exit(3)
            }
        }
    }
}

fn take_control() -> std::io::Result<OwnedFd> {
    let stdin = rustix::stdio::stdin();
    let control = rustix::io::fcntl_dupfd_cloexec(stdin, 3)?;
    let null = std::fs::File::open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    Ok(control)
}

/// The library's path as the host's user knows it.
fn known_path(start: &Start) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&start.library))
}

/// Opens the library from the descriptor the host sent: the very file the host
/// opened, whatever its path names now. Errors name the path the user knows.
fn open(start: &Start, library: &OwnedFd) -> Result<Arc<PluginLibrary>, LoadError> {
    let known_as = known_path(start);
    let known_as = known_as.as_path();
    let loaded_as = std::path::PathBuf::from(format!("/proc/self/fd/{}", library.as_raw_fd()));
    PluginLibrary::open(&loaded_as).map_err(|e| match e {
        LoadError::LibraryLoad { reason, .. } => LoadError::LibraryLoad {
            path: known_as.to_path_buf(),
            reason: reason.replace(
                &loaded_as.display().to_string(),
                &known_as.display().to_string(),
            ),
        },
        e => e.with_path(known_as),
    })
}

/// Serves calls and streams on one lane until the host closes it.
fn serve_lane(handle: &PluginHandle, lane: OwnedFd) {
    let mut reader = FrameReader::default();
    let mut out = Vec::new();
    loop {
        let (op, index, input) = match reader.read(lane.as_fd(), None) {
            Ok(request) => match parse_request(request) {
                Some(request) => request,
                None => {
                    eprintln!("fidius-isolated: a malformed request");
                    return;
                }
            },
            Err(ReadError::Closed) => return,
            Err(e) => {
                eprintln!("fidius-isolated: a lane failed: {e}");
                return;
            }
        };
        begin_frame(&mut out);
        match op {
            CALL => {
                let result = handle.call_with(index, input, |output| {
                    out.push(OK);
                    out.extend_from_slice(output);
                    Ok(())
                });
                if let Err(error) = result {
                    error_frame(&mut out, &error);
                }
            }
            SAVE_STATE => match handle.save_state() {
                Some(Ok(saved)) => {
                    out.push(OK);
                    out.extend_from_slice(&saved.to_bytes());
                }
                Some(Err(error)) => error_frame(&mut out, &error),
                None => error_frame(&mut out, &no_state(handle)),
            },
            RESTORE_STATE => {
                let result = match fidius::SavedState::from_bytes(input) {
                    None => Some(Err(fidius::CallError::Serialization(
                        "a saved state without its version".into(),
                    ))),
                    Some(saved) => handle.restore_state(&saved),
                };
                match result {
                    Some(Ok(())) => out.push(OK),
                    Some(Err(error)) => error_frame(&mut out, &error),
                    None => error_frame(&mut out, &no_state(handle)),
                }
            }
            OPEN_STREAM => match handle.call_stream(index, input) {
                Ok(stream) => {
                    out.push(OK);
                    finish_frame(&mut out);
                    if write_all(lane.as_fd(), &out).is_err()
                        || !serve_stream(stream, &lane, &mut reader, &mut out)
                    {
                        return;
                    }
                    continue;
                }
                Err(error) => error_frame(&mut out, &error),
            },
            _ => {
                eprintln!("fidius-isolated: an unknown request {op}");
                return;
            }
        }
        finish_frame(&mut out);
        if write_all(lane.as_fd(), &out).is_err() {
            return;
        }
        if out.capacity() > 1 << 20 {
            out = Vec::new();
        }
    }
}

/// The error for a state operation on a plugin that carries no state.
fn no_state(handle: &PluginHandle) -> fidius::CallError {
    fidius::CallError::NotImplemented {
        plugin: handle.info().name.clone(),
        method: "state handoff (the plugin does not implement PluginState)".into(),
    }
}

/// A request's operation, method index and input.
fn parse_request(request: &[u8]) -> Option<(u8, usize, &[u8])> {
    let (&op, rest) = request.split_first()?;
    let (index, input) = rest.split_first_chunk::<4>()?;
    Some((op, u32::from_le_bytes(*index) as usize, input))
}

/// Fills `out` (begun) with an error response.
fn error_frame(out: &mut Vec<u8>, error: &fidius::CallError) {
    begin_frame(out);
    out.push(ERR);
    if let Err(e) = rmp_serde::encode::write_named(out, error) {
        begin_frame(out);
        out.push(ERR);
        let fallback = fidius::CallError::Serialization(format!("encoding an error: {e}"));
        rmp_serde::encode::write_named(out, &fallback).expect("a plain error encodes");
    }
}

/// Answers `NEXT` requests from `stream` until it ends (`true`: the lane serves
/// calls again) or the host closes the lane (`false`). Dropping the stream on the
/// way out frees the producer, which is how the host cancels it.
fn serve_stream(
    mut stream: fidius::RawStream,
    lane: &OwnedFd,
    reader: &mut FrameReader,
    out: &mut Vec<u8>,
) -> bool {
    loop {
        match reader.read(lane.as_fd(), None).ok().and_then(parse_request) {
            Some((NEXT, _, _)) => {}
            _ => return false,
        }
        begin_frame(out);
        let item = stream.next_with(|bytes| {
            out.push(OK);
            out.extend_from_slice(bytes);
            Ok(())
        });
        let over = match item {
            Some(Ok(())) => false,
            Some(Err(error)) => {
                error_frame(out, &error);
                true
            }
            None => {
                out.push(END);
                true
            }
        };
        finish_frame(out);
        if write_all(lane.as_fd(), out).is_err() {
            return false;
        }
        if over {
            return true;
        }
    }
}

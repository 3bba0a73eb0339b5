//! What a host and its plugin process say to each other, and how it is framed.
//!
//! Two kinds of connection, both Unix stream sockets:
//!
//! * **Control**, one per process, the child's standard input at start (the child
//!   moves it out of the way at once). The host sends [`Start`]; the child answers
//!   [`Ready`]. Later the host opens each *lane* by sending [`Control::OpenLane`]
//!   with the lane's socket attached (`SCM_RIGHTS`). When the host's end closes (the
//!   host exited, was killed, or let the plugin go), the child exits: the control
//!   connection is its lifeline.
//! * **Lanes**, one per concurrent call, each served by a thread of its own in the
//!   child. A call is one request frame and one response frame on a lane, so a
//!   calling thread writes its request and reads its own answer, with no thread in
//!   between on either side.
//!
//! Every frame is a little-endian `u32` length, then that many bytes. A request is
//! an operation byte ([`CALL`], [`OPEN_STREAM`], [`NEXT`]), the method index (`u32`)
//! and the encoded input, exactly as an in-process call passes them; a response is a
//! tag byte ([`OK`] and the encoded output, [`ERR`] and a [`CallError`] in
//! MessagePack, [`END`] of a stream) and its body. Control messages are MessagePack.
//!
//! A stream holds its lane: after [`OPEN_STREAM`] is answered [`OK`], each [`NEXT`]
//! is answered with an item, an error or [`END`]. The host closes the lane to cancel
//! it, and the child then drops (and so stops) the producer.

use fidius::host::LoadError;
use fidius::{CallError, PluginInfo};
use rustix::fd::{AsFd, BorrowedFd};
use serde::{Deserialize, Serialize};
use std::io;
use std::time::Instant;

/// The version of this protocol; a host and a plugin process must agree. Sent in the
/// environment variable [`RUNNER_ENV`].
pub(crate) const PROTOCOL: &str = "1";

/// Set in a plugin process's environment (to the protocol version): it serves the plugin
/// instead of running the program's `main`.
pub const RUNNER_ENV: &str = "FIDIUS_ISOLATED_RUNNER";

/// The largest frame either side accepts: 1 GiB. A length beyond it is corruption.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// Request operations.
pub(crate) const CALL: u8 = 0;
pub(crate) const OPEN_STREAM: u8 = 1;
pub(crate) const NEXT: u8 = 2;
/// Saves the plugin's state (`fidius::PluginState`); the answer is the saved state's
/// bytes (`SavedState::to_bytes`).
pub(crate) const SAVE_STATE: u8 = 3;
/// Restores a saved state (the input, as `SavedState::to_bytes`).
pub(crate) const RESTORE_STATE: u8 = 4;

/// Response tags.
pub(crate) const OK: u8 = 0;
pub(crate) const ERR: u8 = 1;
pub(crate) const END: u8 = 2;

/// The host's first message: what to load.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Start {
    /// The library's path as its user knows it, as bytes (it need not be UTF-8). The
    /// library itself is opened from the descriptor that travels with this message.
    pub library: Vec<u8>,
    /// The plugin to load; `None`: list the library's plugins, then exit.
    pub plugin: Option<String>,
    /// Address-space limit for the process, in bytes.
    pub memory_limit: Option<u64>,
}

/// The child's answer: what it loaded, or why it could not.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Ready {
    Loaded(PluginInfo),
    /// What the library offers (when no plugin was named).
    Listed(Vec<PluginInfo>),
    Failed(LoadError),
}

/// Later control messages from the host.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Control {
    /// A lane; its socket travels with the message.
    OpenLane,
}

/// How reading a frame failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The deadline passed first.
    Timeout,
    /// The other side closed its end (it exited, or was killed).
    Closed,
    /// The frame was malformed.
    Corrupt(String),
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Timeout => f.write_str("timed out"),
            ReadError::Closed => f.write_str("the connection closed"),
            ReadError::Corrupt(what) => write!(f, "malformed data: {what}"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<rustix::io::Errno> for ReadError {
    fn from(e: rustix::io::Errno) -> Self {
        match e {
            rustix::io::Errno::CONNRESET | rustix::io::Errno::PIPE => ReadError::Closed,
            e => ReadError::Io(e.into()),
        }
    }
}

/// Writes all of `bytes` to a socket. Never raises `SIGPIPE` when the other side is
/// gone (a plugin process never reaches `main`, where Rust would ignore it).
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(fd, bytes, rustix::net::SendFlags::NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// As [`write_all`], giving up when `deadline` passes ([`ReadError::Timeout`]): a
/// process that stopped reading (stopped, frozen, stuck) cannot hold a caller past
/// its deadline.
pub(crate) fn write_all_until(
    fd: BorrowedFd<'_>,
    mut bytes: &[u8],
    deadline: Option<Instant>,
) -> Result<(), ReadError> {
    use rustix::net::{send, SendFlags};
    let Some(deadline) = deadline else {
        return write_all(fd, bytes).map_err(ReadError::Io);
    };
    while !bytes.is_empty() {
        match send(fd, bytes, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(0) => return Err(ReadError::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => wait_for(fd, deadline, rustix::event::PollFlags::OUT)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Starts a frame in `buf`: room for the length, filled in by [`finish_frame`].
pub(crate) fn begin_frame(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
}

/// Writes the frame's length into its first four bytes.
pub(crate) fn finish_frame(buf: &mut [u8]) {
    let len = u32::try_from(buf.len() - 4).expect("frames are under 4 GiB");
    buf[..4].copy_from_slice(&len.to_le_bytes());
}

/// Serializes `message` as one frame and writes it.
pub(crate) fn send_message(fd: BorrowedFd<'_>, message: &impl Serialize) -> io::Result<()> {
    let mut buf = Vec::new();
    begin_frame(&mut buf);
    rmp_serde::encode::write_named(&mut buf, message).map_err(io::Error::other)?;
    finish_frame(&mut buf);
    write_all(fd, &buf)
}

/// The largest control message that carries a descriptor.
const MAX_CONTROL: usize = 64 * 1024;

/// Sends `message` as one frame in one `sendmsg`, with `attached` (`SCM_RIGHTS`).
pub(crate) fn send_with_descriptor(
    control: BorrowedFd<'_>,
    message: &impl Serialize,
    attached: BorrowedFd<'_>,
) -> io::Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut frame = Vec::new();
    begin_frame(&mut frame);
    rmp_serde::encode::write_named(&mut frame, message).map_err(io::Error::other)?;
    finish_frame(&mut frame);
    if frame.len() > MAX_CONTROL {
        return Err(io::Error::other("a control message over 64 KiB"));
    }
    let fds = [attached];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    let sent = loop {
        match sendmsg(
            control,
            &[io::IoSlice::new(&frame)],
            &mut ancillary,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            other => break other?,
        }
    };
    if sent != frame.len() {
        return Err(io::Error::other("a control message went out in part"));
    }
    Ok(())
}

/// Receives one message sent with [`send_with_descriptor`], and its descriptor;
/// `None` once the other side closed the connection.
pub(crate) fn receive_with_descriptor<T: for<'de> Deserialize<'de>>(
    control: BorrowedFd<'_>,
) -> io::Result<Option<(T, rustix::fd::OwnedFd)>> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let mut buf = vec![0u8; MAX_CONTROL];
    let received = loop {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        match recvmsg(control, &mut iov, &mut ancillary, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => {}
            other => break other?,
        }
    };
    if received.bytes == 0 {
        return Ok(None);
    }
    if received.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::other(
            "a control message's descriptor was cut off",
        ));
    }
    let mut attached = None;
    for message in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            attached = attached.or(fds.into_iter().next());
        }
    }
    // One message per read: each is sent with its descriptor in one `sendmsg`, and
    // on Linux a read stops at a descriptor. Checked all the same.
    let frame = &buf[..received.bytes];
    let body = frame.get(4..).unwrap_or_default();
    let len = frame
        .get(..4)
        .map(|l| u32::from_le_bytes(l.try_into().unwrap()) as usize);
    if len != Some(body.len()) {
        return Err(io::Error::other(format!(
            "a control message of {} bytes, not one whole frame",
            received.bytes
        )));
    }
    let message = rmp_serde::from_slice(body)
        .map_err(|e| io::Error::other(format!("a malformed control message: {e}")))?;
    let attached = attached
        .ok_or_else(|| io::Error::other("a control message came without its descriptor"))?;
    Ok(Some((message, attached)))
}

/// Reads frames from one connection, reusing its buffer. A frame and the next may
/// arrive in one read; the rest is kept for the next call.
#[derive(Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as frames.
    start: usize,
    /// Bytes of `buf` filled.
    end: usize,
    /// Where the last frame's body is in `buf`.
    last: std::ops::Range<usize>,
}

impl FrameReader {
    /// The next frame's body, waiting at most until `deadline` (forever if `None`).
    pub(crate) fn read(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
    ) -> Result<&[u8], ReadError> {
        let len = loop {
            if self.end - self.start >= 4 {
                let head = &self.buf[self.start..self.start + 4];
                let len = u32::from_le_bytes(head.try_into().unwrap()) as usize;
                if len > MAX_FRAME {
                    return Err(ReadError::Corrupt(format!(
                        "a frame of {len} bytes (the limit is {MAX_FRAME})"
                    )));
                }
                if self.end - self.start >= 4 + len {
                    break len;
                }
                self.fill(fd, deadline, 4 + len)?;
            } else {
                self.fill(fd, deadline, 4)?;
            }
        };
        let body = self.start + 4..self.start + 4 + len;
        self.start = body.end;
        self.last = body.clone();
        Ok(&self.buf[body])
    }

    /// The body of the frame [`read`](Self::read) returned last.
    pub(crate) fn last(&self) -> &[u8] {
        &self.buf[self.last.clone()]
    }

    /// Reads more, so that at least `want` bytes from `start` can be held.
    fn fill(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        want: usize,
    ) -> Result<(), ReadError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.start + want > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = (self.start + want).max(self.buf.len()).max(64 * 1024);
        if self.buf.len() < room {
            self.buf.resize(room, 0);
        }
        if let Some(deadline) = deadline {
            wait_for(fd, deadline, rustix::event::PollFlags::IN)?;
        }
        loop {
            match rustix::io::read(fd, &mut self.buf[self.end..]) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Waits until `fd` is ready for `what`, or `deadline` passes.
fn wait_for(
    fd: BorrowedFd<'_>,
    deadline: Instant,
    what: rustix::event::PollFlags,
) -> Result<(), ReadError> {
    use rustix::event::{poll, PollFd, Timespec};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = Timespec::try_from(left).map_err(|e| ReadError::Io(io::Error::other(e)))?;
        let mut fds = [PollFd::new(&fd, what)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return Err(ReadError::Timeout),
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads one control message.
pub(crate) fn read_message<T: for<'de> Deserialize<'de>>(
    reader: &mut FrameReader,
    fd: impl AsFd,
    deadline: Option<Instant>,
) -> Result<T, ReadError> {
    let body = reader.read(fd.as_fd(), deadline)?;
    rmp_serde::from_slice(body).map_err(|e| ReadError::Corrupt(e.to_string()))
}

/// Decodes a response frame's body: `Ok(None)` is the end of a stream.
pub(crate) fn decode_response(body: &[u8]) -> Result<Option<&[u8]>, CallError> {
    match body.split_first() {
        Some((&OK, output)) => Ok(Some(output)),
        Some((&END, _)) => Ok(None),
        Some((&ERR, error)) => Err(rmp_serde::from_slice(error).unwrap_or_else(|e| {
            CallError::Serialization(format!("decoding the plugin process's error: {e}"))
        })),
        _ => Err(CallError::Serialization(
            "the plugin process sent a malformed response".into(),
        )),
    }
}

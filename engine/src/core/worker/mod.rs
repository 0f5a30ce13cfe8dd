//! Worker processes: functions the engine cannot run itself (pickled Python functions and
//! classes) run in processes the node starts with [`crate::Config::worker_command`] and reuses.
//!
//! ```text
//!  node (task T's call) ──Call──────────────────► worker process, call channel k
//!        │ serves the worker's requests ◄─Request─┤ (nested submit / get / put / wait ...)
//!        │ ─────────────────────Reply──────────►  │
//!        ◄────────────────────Done(outputs)───────┘
//! ```
//!
//! - **Protocol**: frames of a little-endian `u32` length and a bincode message over one
//!   Unix socket per channel. A worker opens `channels` call channels plus one client
//!   channel (requests from threads that are not running a call, e.g. an async actor's
//!   event loop), each starting with [`FromWorker::Hello`].
//! - **Calls** hold the task's (or actor's) resources while they run, and the worker's
//!   requests are served as the task (its context set), so a worker blocked in `get` hands
//!   its CPU back exactly like a Rust task does, and nested tasks never deadlock. A task's
//!   call is a [`CallInFlight`]: the scheduler's thread writes it and waits a moment; a
//!   longer call is parked and the node's I/O runtime watches its socket
//!   (`core::foreign::dispatch`), so no thread waits on a running task. Actor calls and
//!   the engine's direct calls are read by the thread that made them. The client channel
//!   is watched the same way: no thread per worker process either.
//! - **Lifetimes**: task workers return to an idle list after each call and are reused (the
//!   pool, `pool.rs`, stops those idle past `idle_worker_killing_time_threshold` beyond
//!   `num_workers_soft_limit` idle ones); an actor has a worker of its own for its life. A worker's stdin is a pipe the node never
//!   writes: when the node's process dies, the worker reads EOF and exits, so even a
//!   SIGKILLed driver leaves no workers behind. Shutdown kills and reaps every worker.
//! - **Generator calls** ([`STREAMING_RETURNS`]): the worker sends each value its function
//!   yields as an `Emit` request, which the node thread stores as the task's next streamed
//!   output, and finishes with no outputs.
//! - **Cancel**: while a task's call runs, its process takes SIGUSR2 (the worker raises
//!   `KeyboardInterrupt` in the task's code and goes on serving) or, forced, SIGKILL.
//! - **Failures**: a worker that dies fails its call with [`UserError::worker_died`], which
//!   tasks retry (`max_retries`) and actors answer with a restart (`max_restarts`).
//! - **Refs held by a worker** are counted on the node, per worker process: refs the node
//!   hands out (submit, put) count at once; refs the worker deserializes and drops are
//!   reported in the [`RefSync`] of its next message.

mod pool;

pub(crate) use pool::WorkerPool;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::core::api::RawRef;
use crate::core::foreign::{Reply, Request, serve_request};
use crate::core::ids::ObjectId;
use crate::core::node::NodeInner;
use crate::core::shm::Arena;
use crate::error::{Error, Result, UserError};

/// An object id on the wire.
pub type WireId = [u8; ObjectId::LEN];

/// The environment variable that tells a worker where to write the segments it hands over
/// (a path prefix: the node's shared-memory directory and session prefix, and the worker's
/// token), so that the node's sweep of its session frees what a dead worker left.
pub(crate) const HANDOFF_PREFIX_ENV: &str = "VOLLEY_WORKER_SHM_PREFIX";
/// The node's `max_inline_object_size`, for its workers (the config's own variable).
pub(crate) const INLINE_MAX_ENV: &str = "VOLLEY_MAX_INLINE_OBJECT_SIZE";

/// Object data on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireData {
    /// A pickled value, inline.
    Pickle(Vec<u8>),
    /// An Arrow IPC stream, inline (an Arrow object, or a bytes object in its IPC form).
    Ipc(Vec<u8>),
    /// A sealed shared-memory segment holding the object's Arrow IPC stream: map it.
    Segment {
        /// The segment file.
        path: String,
        /// Its length.
        len: u64,
    },
    /// An argument of a direct call in the call channel's arena (see
    /// `shm::Arena`, where the protocol is written): map the file once per channel, decode
    /// `offset..offset + len`, and let go of every value of it before the call is done (or
    /// say so in [`FromWorker::Done::arena_kept`]).
    Arena {
        /// The arena file.
        path: String,
        /// Where the argument's encoding starts.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A sealed segment a worker wrote for the node (a result, a `put`), whose ownership
    /// passes to the node: it maps the file and unlinks it.
    Handoff {
        /// The segment file, under the node's shared-memory directory and session prefix.
        path: String,
    },
    /// Arrow data laid out buffer by buffer, its buffers referring to the call's argument
    /// segments where they lie in them (a worker's result; see [`crate::core::layout`]).
    Buffers(crate::core::layout::WireArrow),
}

/// An object a worker made (a result or a `put`): its data and the refs inside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireValue {
    /// The data (`Pickle` or `Ipc`).
    pub data: WireData,
    /// Refs serialized inside it (the worker holds them while it sends).
    pub nested: Vec<WireId>,
}

/// What a call runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CallKind {
    /// A task: call the function.
    Task,
    /// An actor's constructor: instantiate the class.
    ActorNew,
    /// An actor method, by name.
    ActorMethod(String),
}

/// A call sent to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    /// Task, constructor or method.
    pub kind: CallKind,
    /// `name (task id)`, for errors and the runtime context.
    pub name: String,
    /// The function's (or class's) id in the function table.
    pub function: u64,
    /// The function's bytes when this worker has not seen it yet.
    pub function_bytes: Option<Vec<u8>>,
    /// Arguments: the pickled argument structure first, then the resolved ref arguments.
    pub args: Vec<WireData>,
    /// Outputs expected ([`STREAMING_RETURNS`]: a generator call).
    pub num_returns: u32,
}

/// `num_returns` of a generator call: the worker sends each output as an `Emit` request
/// while the call runs and finishes with none.
pub const STREAMING_RETURNS: u32 = u32::MAX;

/// How a call ended, as the worker reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CallOutcome {
    /// The outputs.
    Ok(Vec<WireValue>),
    /// The user's code raised: the message (with its traceback) and the pickled exception.
    Err {
        /// Shown to the user.
        message: String,
        /// The exception, pickled, if it could be.
        payload: Option<Vec<u8>>,
    },
}

/// Refs a worker took or dropped since its last message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RefSync {
    /// Deserialized refs the worker now holds (one count each).
    pub acquired: Vec<WireId>,
    /// Refs the worker dropped (one count each).
    pub released: Vec<WireId>,
}

/// Node → worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run this.
    Call(Call),
    /// The answer to the worker's last request.
    Reply(std::result::Result<Reply, Error>),
}

/// Worker → node.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// The first frame on each connection.
    Hello {
        /// The token the node gave the process.
        token: u64,
        /// Which channel (`0..channels` call channels, `channels` the client channel).
        channel: u32,
    },
    /// The call is finished.
    Done {
        /// Refs taken and dropped.
        sync: RefSync,
        /// Its outcome.
        outcome: CallOutcome,
        /// Values of the call's arena arguments are still alive in the worker: the node
        /// must not rewrite that arena (it takes a new one).
        arena_kept: bool,
    },
    /// A request on behalf of the running call (or of the client channel).
    Request {
        /// Refs taken and dropped.
        sync: RefSync,
        /// The request.
        req: Request,
    },
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    w.write_all(&encode_frame(msg)?)?;
    w.flush()
}

/// One frame: the body's length (u32, little-endian), then the body.
fn encode_frame<T: Serialize>(msg: &T) -> std::io::Result<Vec<u8>> {
    let body = bincode::serialize(msg).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::other("a message larger than 4 GiB"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Bytes of calls sent ahead that may wait unread in a worker's socket. Below the socket's
/// buffer (Linux: 208 KiB), so that sending never blocks: a node blocked writing while the
/// worker blocks writing results the node does not read would be a deadlock.
const SEND_AHEAD_BYTES: usize = 64 << 10;

/// Calls [`WorkerProc::send`] took: those written (their frame sizes, oldest first) and
/// those waiting for room (their frames).
#[derive(Default)]
struct SendAhead {
    written: VecDeque<usize>,
    written_bytes: usize,
    waiting: VecDeque<(Vec<u8>, String)>,
}

/// How long the node spins for a lone call's outcome before it blocks: a trivial call's
/// reply usually comes within it, and waking from a blocking read costs more than the call.
/// (Workers never spin for their next call: on a small machine a spinning worker takes the
/// CPU of the threads that would send it, and pipelined calls slow down by half.)
pub(crate) const READ_SPIN: Duration = Duration::from_micros(50);

/// Reads one frame from a socket, spinning (yielding) for at most `spin` while nothing has
/// arrived before blocking.
fn read_frame_spinning<T: DeserializeOwned>(
    s: &mut UnixStream,
    spin: Duration,
) -> std::io::Result<T> {
    if !spin.is_zero() {
        arrives_within(s, spin);
    }
    read_frame(s)
}

/// Whether a frame (or the end of the stream, or an error) can be read from `s` without
/// blocking, spinning (yielding) for at most `spin` until it can; nothing is consumed.
fn arrives_within(s: &UnixStream, spin: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let until = Instant::now() + spin;
    let mut byte = 0u8;
    loop {
        // SAFETY: a one-byte peek into a local buffer on an open socket; nothing is consumed.
        let n = unsafe {
            libc::recv(
                s.as_raw_fd(),
                (&raw mut byte).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        let again = n < 0 && std::io::Error::last_os_error().kind() == ErrorKind::WouldBlock;
        if !again {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::yield_now();
    }
}

/// [`arrives_within`] `spin`, then waits (sleeping in `poll`) at most `wait` more.
fn arrives_waiting(s: &UnixStream, spin: Duration, wait: Duration) -> bool {
    use std::os::fd::AsRawFd;
    if arrives_within(s, spin) {
        return true;
    }
    if wait.is_zero() {
        return false;
    }
    let mut pfd = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for an open socket, for the duration of the call.
    let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
    n != 0
}

/// Waits until `fd`, a socket its caller keeps open while this runs, is readable; false
/// when it cannot be watched (the caller then reads blocking). Call it on the node's I/O
/// runtime. The registration ends before this returns, so the socket may be read and
/// closed anywhere afterwards.
pub(crate) async fn readable(fd: std::os::fd::RawFd) -> bool {
    struct Fd(std::os::fd::RawFd);
    impl std::os::fd::AsRawFd for Fd {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            self.0
        }
    }
    // SAFETY: the caller keeps the socket open while this runs (its owner is held across
    // the await), and `watched` is dropped (deregistered) when this returns.
    let Ok(watched) = (unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(Fd(fd), tokio::io::Interest::READABLE)
    }) else {
        return false;
    };
    match watched.readable().await {
        Ok(mut ready) => {
            ready.clear_ready();
            true
        }
        Err(_) => false,
    }
}

/// Reads one frame.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut body)?;
    bincode::deserialize(&body).map_err(std::io::Error::other)
}

// ---------------------------------------------------------------------------------------------
// Node side
// ---------------------------------------------------------------------------------------------

/// What the node keeps per worker process, shared by its channels.
pub(crate) struct WorkerShared {
    pub(crate) pid: u32,
    /// Refs the worker holds, with their counts.
    held: Mutex<HashMap<ObjectId, (RawRef, u32)>>,
    /// Functions the worker has been sent.
    seen: Mutex<HashSet<u64>>,
}

impl WorkerShared {
    /// Counts `r` as held by the worker (it was handed to it).
    pub(crate) fn hold(&self, r: RawRef) {
        let mut held = self.held.lock();
        held.entry(r.id()).or_insert((r, 0)).1 += 1;
    }

    fn apply(&self, node: &NodeInner, sync: RefSync) {
        if sync.acquired.is_empty() && sync.released.is_empty() {
            return;
        }
        self.acquire(node, &sync.acquired);
        self.release(&sync.released);
    }

    fn acquire(&self, node: &NodeInner, ids: &[WireId]) {
        if ids.is_empty() {
            return;
        }
        let mut held = self.held.lock();
        for id in ids.iter().filter_map(|b| ObjectId::from_bytes(b)) {
            match held.get_mut(&id) {
                Some(e) => e.1 += 1,
                None => {
                    if node.store.add_ref(id) {
                        held.insert(id, (RawRef::adopt(node, id), 1));
                    }
                }
            }
        }
    }

    fn release(&self, ids: &[WireId]) {
        if ids.is_empty() {
            return;
        }
        let mut held = self.held.lock();
        for id in ids.iter().filter_map(|b| ObjectId::from_bytes(b)) {
            if let Some(e) = held.get_mut(&id) {
                e.1 -= 1;
                if e.1 == 0 {
                    held.remove(&id);
                }
            }
        }
    }

    /// The function's bytes if this worker has not been sent them yet.
    fn function_bytes(&self, id: u64) -> Result<Option<Vec<u8>>> {
        if self.seen.lock().insert(id) {
            Ok(Some(crate::core::foreign::function_bytes(id)?.to_vec()))
        } else {
            Ok(None)
        }
    }
}

/// The refs a worker dropped before it reported a call done: released when this drops,
/// once the call's outputs (which may contain them) hold references of their own.
pub(crate) struct ReleaseLater {
    shared: Arc<WorkerShared>,
    ids: Vec<WireId>,
}

impl Drop for ReleaseLater {
    fn drop(&mut self) {
        self.shared.release(&self.ids);
    }
}

/// A call channel as the node holds it: its socket, and the arena of its direct calls'
/// arguments (made on the first one).
struct CallChannel {
    stream: UnixStream,
    arena: Option<Arena>,
}

/// How a call on a channel ended: its outcome, the worker's released refs (keep them until
/// the outcome's values are stored), and what the call's preparation returned.
pub(crate) type Ran<T> = (CallOutcome, ReleaseLater, T);

/// Where a generator call's emitted outputs go.
pub(crate) type Emit<'a> = &'a dyn Fn(WireValue) -> crate::error::Result<()>;

/// A running worker process: its call channels and what the node keeps for it.
pub(crate) struct WorkerProc {
    token: u64,
    child: Child,
    calls: Mutex<Vec<CallChannel>>,
    /// Calls [`WorkerProc::send`] took whose outcome was not received yet.
    ahead: Mutex<SendAhead>,
    pub(crate) shared: Arc<WorkerShared>,
    live: Arc<Mutex<HashMap<u64, u32>>>,
}

impl WorkerProc {
    /// Runs `call` on a free call channel, serving the worker's requests on this thread.
    /// `Err` means the worker died (the message says how). Keep the [`ReleaseLater`] until
    /// the outcome's values are stored.
    pub(crate) fn run(
        &self,
        node: &Arc<NodeInner>,
        call: Call,
    ) -> std::result::Result<(CallOutcome, ReleaseLater), UserError> {
        self.run_emitting(node, call, None)
    }

    /// [`WorkerProc::run`], with the outputs a generator call emits going to `emit`.
    pub(crate) fn run_emitting(
        &self,
        node: &Arc<NodeInner>,
        call: Call,
        emit: Option<Emit<'_>>,
    ) -> std::result::Result<(CallOutcome, ReleaseLater), UserError> {
        self.run_inner(node, |_| Ok((call, ())), emit)
            .map(|(outcome, later, ())| (outcome, later))
    }

    /// [`WorkerProc::run`] for the call `prepare` makes on the free channel it is given the
    /// arena of: it may write the call's arguments there (creating or replacing the arena).
    /// Whatever it returns beside the call comes back with the outcome. An arena whose
    /// values the worker kept past the call is dropped here (a new one is made next time).
    pub(crate) fn run_with<T>(
        &self,
        node: &Arc<NodeInner>,
        prepare: impl FnOnce(&mut Option<Arena>) -> std::result::Result<(Call, T), UserError>,
    ) -> std::result::Result<Ran<T>, UserError> {
        self.run_inner(node, prepare, None)
    }

    fn run_inner<T>(
        &self,
        node: &Arc<NodeInner>,
        prepare: impl FnOnce(&mut Option<Arena>) -> std::result::Result<(Call, T), UserError>,
        emit: Option<Emit<'_>>,
    ) -> std::result::Result<Ran<T>, UserError> {
        let mut ch = self.free_channel()?;
        let (call, prepared) = match prepare(&mut ch.arena) {
            Ok(p) => p,
            Err(e) => {
                self.calls.lock().push(ch);
                return Err(e);
            }
        };
        let (outcome, later, kept) = self
            .write_call(&mut ch.stream, call)
            .and_then(|name| self.outcome(node, &mut ch.stream, &name, true, emit))?;
        if kept {
            ch.arena = None;
        }
        self.calls.lock().push(ch);
        Ok((outcome, later, prepared))
    }

    /// Sends `call` on the worker's first channel without waiting for it (it waits in line,
    /// unwritten, while [`SEND_AHEAD_BYTES`] of earlier calls are unanswered);
    /// [`WorkerProc::receive`] reads the outcomes in the order the calls were sent. For a
    /// worker with one channel whose calls all come from one thread (a one-at-a-time actor).
    pub(crate) fn send(&self, call: Call) -> std::result::Result<(), UserError> {
        let (frame, name) = self.encode_call(call)?;
        let mut calls = self.calls.lock();
        let ch = &mut calls
            .first_mut()
            .ok_or_else(|| UserError::msg("internal: no channel to the worker process (a bug)"))?
            .stream;
        let mut ahead = self.ahead.lock();
        ahead.waiting.push_back((frame, name));
        self.write_waiting(ch, &mut ahead)
    }

    /// Writes the waiting calls that fit (the first one always, when none is unanswered).
    fn write_waiting(
        &self,
        ch: &mut UnixStream,
        ahead: &mut SendAhead,
    ) -> std::result::Result<(), UserError> {
        while let Some((frame, _)) = ahead.waiting.front() {
            let fits =
                ahead.written.is_empty() || ahead.written_bytes + frame.len() <= SEND_AHEAD_BYTES;
            if !fits {
                break;
            }
            let (frame, name) = ahead.waiting.pop_front().expect("a waiting call");
            ch.write_all(&frame)
                .and_then(|()| ch.flush())
                .map_err(|e| self.died(&name, e))?;
            ahead.written_bytes += frame.len();
            ahead.written.push_back(frame.len());
        }
        Ok(())
    }

    /// The outcome of the oldest call [`WorkerProc::send`] took, serving the worker's
    /// requests meanwhile.
    pub(crate) fn receive(
        &self,
        node: &Arc<NodeInner>,
        name: &str,
    ) -> std::result::Result<(CallOutcome, ReleaseLater), UserError> {
        let mut calls = self.calls.lock();
        let ch = &mut calls
            .first_mut()
            .ok_or_else(|| UserError::msg("internal: no channel to the worker process (a bug)"))?
            .stream;
        // Spin only for a lone call: with calls queued behind it the worker is busy for a
        // while, and a spinning reader would take its CPU.
        let alone = {
            let mut ahead = self.ahead.lock();
            self.write_waiting(ch, &mut ahead)?;
            ahead.written.len() + ahead.waiting.len() <= 1
        };
        let out = self.outcome(node, ch, name, alone, None);
        let mut ahead = self.ahead.lock();
        if let Some(n) = ahead.written.pop_front() {
            ahead.written_bytes -= n;
        }
        // Pipelined calls send no arena arguments.
        out.map(|(outcome, later, _)| (outcome, later))
    }

    /// A call channel no call is using (give it back to `calls` after the call).
    fn free_channel(&self) -> std::result::Result<CallChannel, UserError> {
        self.calls.lock().pop().ok_or_else(|| {
            UserError::msg("internal: no free channel to the worker process (a bug)")
        })
    }

    fn died(&self, name: &str, e: std::io::Error) -> UserError {
        UserError::worker_died(format!(
            "the worker process (pid {}) running {name} died: {e}",
            self.shared.pid
        ))
    }

    /// `call`'s frame (with its function's bytes the first time) and its name.
    fn encode_call(&self, mut call: Call) -> std::result::Result<(Vec<u8>, String), UserError> {
        call.function_bytes = self
            .shared
            .function_bytes(call.function)
            .map_err(|e| UserError::msg(e.to_string()))?;
        let name = call.name.clone();
        let frame = encode_frame(&ToWorker::Call(call)).map_err(|e| self.died(&name, e))?;
        Ok((frame, name))
    }

    /// Writes `call`; returns its name.
    fn write_call(
        &self,
        ch: &mut UnixStream,
        call: Call,
    ) -> std::result::Result<String, UserError> {
        let (frame, name) = self.encode_call(call)?;
        ch.write_all(&frame)
            .and_then(|()| ch.flush())
            .map_err(|e| self.died(&name, e))?;
        Ok(name)
    }

    /// Reads frames until the running call's outcome, serving the worker's requests;
    /// `spin`: spin a while before blocking for each. True beside the outcome: the worker
    /// kept values of the call's arena.
    fn outcome(
        &self,
        node: &Arc<NodeInner>,
        ch: &mut UnixStream,
        name: &str,
        spin: bool,
        emit: Option<Emit<'_>>,
    ) -> std::result::Result<Ran<bool>, UserError> {
        let spin = if spin { READ_SPIN } else { Duration::ZERO };
        loop {
            let frame =
                read_frame_spinning::<FromWorker>(ch, spin).map_err(|e| self.died(name, e))?;
            if let Some(ran) = self.on_frame(node, ch, name, frame, emit)? {
                return Ok(ran);
            }
        }
    }

    /// Handles one frame of the running call `name`: its outcome, or a request of the
    /// worker's, served and answered (`None`).
    fn on_frame(
        &self,
        node: &Arc<NodeInner>,
        ch: &mut UnixStream,
        name: &str,
        frame: FromWorker,
        emit: Option<Emit<'_>>,
    ) -> std::result::Result<Option<Ran<bool>>, UserError> {
        match frame {
            FromWorker::Done {
                sync,
                outcome,
                arena_kept,
            } => {
                self.shared.acquire(node, &sync.acquired);
                let later = ReleaseLater {
                    shared: self.shared.clone(),
                    ids: sync.released,
                };
                Ok(Some((outcome, later, arena_kept)))
            }
            FromWorker::Request { sync, req } => {
                self.shared.apply(node, sync);
                let reply = match (req, emit) {
                    (Request::Emit(v), Some(emit)) => emit(v).map(|()| Reply::Unit),
                    (req, _) => serve_request(node, &self.shared, req),
                };
                write_frame(ch, &ToWorker::Reply(reply)).map_err(|e| self.died(name, e))?;
                Ok(None)
            }
            FromWorker::Hello { .. } => Err(UserError::worker_died(format!(
                "the worker process (pid {}) broke the protocol",
                self.shared.pid
            ))),
        }
    }
}

/// A task's call written to a worker process whose outcome has not been read yet: what
/// reading it takes, off any thread's stack. The thread that wrote it need not wait for
/// it: whichever thread sees the socket readable reads the next frames
/// ([`CallInFlight::advance`]), serving the worker's requests, until the outcome.
pub(crate) struct CallInFlight {
    worker: WorkerProc,
    ch: Option<CallChannel>,
    name: String,
}

impl CallInFlight {
    /// Writes `call` on a free channel of `worker` (a leased task worker). An error means
    /// the worker died; it is dropped (killed and reaped).
    pub(crate) fn start(worker: WorkerProc, call: Call) -> std::result::Result<Self, UserError> {
        let mut ch = worker.free_channel()?;
        let name = worker.write_call(&mut ch.stream, call)?;
        Ok(CallInFlight {
            worker,
            ch: Some(ch),
            name,
        })
    }

    /// The socket the call's frames come on (to wait for it to be readable).
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.ch.as_ref().map_or(-1, |ch| ch.stream.as_raw_fd())
    }

    /// Reads and serves the worker's frames until the call's outcome (`Some`), or until
    /// no frame has come after spinning `spin` and then sleeping `wait` (`None`; `wait`
    /// `None`: as long as it takes). Keep the [`ReleaseLater`] until the outcome's values
    /// are stored. `Err`: the worker died.
    pub(crate) fn advance(
        &mut self,
        node: &Arc<NodeInner>,
        spin: Duration,
        wait: Option<Duration>,
        emit: Option<Emit<'_>>,
    ) -> std::result::Result<Option<(CallOutcome, ReleaseLater)>, UserError> {
        let ch = self
            .ch
            .as_mut()
            .ok_or_else(|| UserError::msg("internal: a finished call read again (a bug)"))?;
        loop {
            if let Some(wait) = wait
                && !arrives_waiting(&ch.stream, spin, wait)
            {
                return Ok(None);
            }
            let frame = read_frame::<FromWorker>(&mut ch.stream)
                .map_err(|e| self.worker.died(&self.name, e))?;
            if let Some((outcome, later, kept)) =
                self.worker
                    .on_frame(node, &mut ch.stream, &self.name, frame, emit)?
            {
                if kept {
                    ch.arena = None;
                }
                return Ok(Some((outcome, later)));
            }
        }
    }

    /// The worker, its channel free again: after the outcome, to give it back.
    pub(crate) fn into_worker(mut self) -> WorkerProc {
        if let Some(ch) = self.ch.take() {
            self.worker.calls.lock().push(ch);
        }
        self.worker
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        {
            // Reaped under the lock, so shutdown never signals a recycled pid.
            let mut live = self.live.lock();
            live.remove(&self.token);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.calls.lock().clear();
        // The refs it held go now (its client channel's server notices the end later).
        let held = std::mem::take(&mut *self.shared.held.lock());
        drop(held);
    }
}

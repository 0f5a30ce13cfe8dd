//! The worker process's side: its connection to its node, the core API as requests over
//! it, and the loop's primitives (next call, emit, finish) the worker's entry point uses.

use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::buffer::Buffer;
use memmap2::Mmap;
use parking_lot::Mutex;

use super::ObjectCopies;
use super::actors::{ForeignActor, actor_wire};
use super::node_api::ForeignGenerator;
use super::serve::{Reply, Request, unexpected};
use super::value::{ArgSegments, ForeignValue, PutValue, ids_from_wire, to_wire_ids};
use super::{
    CoreApi, DatasetCall, DatasetReply, ForeignActorOptions, ForeignArgs, ForeignRef, ForeignTask,
    FunctionId, function_bytes, register_function,
};
use crate::core::ids::{ActorId, ObjectId};
use crate::core::worker::{
    Call, CallKind, CallOutcome, FromWorker, RefSync, ToWorker, WireData, WireId, WireValue,
    read_frame, write_frame,
};
use crate::error::{Error, Result};

/// A worker process's connection to its node.
pub struct WorkerClient {
    calls: Vec<Mutex<UnixStream>>,
    /// Per call channel: calls the node sent ahead, read while a request awaited its reply.
    ahead: Vec<Mutex<VecDeque<Call>>>,
    /// Per call channel: the address ranges of the running call's argument segments (by
    /// argument; `None` for inline ones), which its results may refer to.
    arg_ranges: Vec<Mutex<Vec<Option<Range<usize>>>>>,
    /// Per call channel: the node's argument arena for it, mapped (path and mapping).
    arenas: Vec<Mutex<Option<(String, Arc<Mmap>)>>>,
    client: Mutex<UnixStream>,
    sync: Mutex<RefSync>,
    sent: Mutex<HashSet<FunctionId>>,
    /// Where this worker writes the segments it hands to the node, and their counter.
    pub(super) handoff_prefix: Option<String>,
    /// The node's `max_inline_object_size`: values up to it travel inline in messages.
    pub(super) inline_max: usize,
    handoff_seq: AtomicU64,
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerClient({} call channels)", self.calls.len())
    }
}

static CLIENT: OnceLock<WorkerClient> = OnceLock::new();

thread_local! {
    /// The call channel whose call runs on this thread.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

pub(super) fn client() -> Option<&'static WorkerClient> {
    CLIENT.get()
}

/// True in a worker process (after [`worker_connect`]).
pub fn is_worker() -> bool {
    client().is_some()
}

impl WorkerClient {
    /// Writes `bufs` (concatenated) into a new sealed segment for the node to adopt; its
    /// path.
    pub(super) fn hand_off(&self, bufs: &[Buffer]) -> Result<String> {
        let prefix = self
            .handoff_prefix
            .as_ref()
            .ok_or_else(|| Error::Internal("no shared-memory prefix for results".into()))?;
        let seq = self.handoff_seq.fetch_add(1, Ordering::Relaxed);
        let path = format!("{prefix}{seq}");
        crate::core::shm::write_sealed(std::path::Path::new(&path), bufs)?;
        Ok(path)
    }

    /// Bytes `offset..offset + len` of the arena at `path`, the argument arena of call
    /// channel `channel` (mapped once; a new path replaces the node's previous arena).
    fn arena_bytes(&self, channel: usize, path: &str, offset: u64, len: u64) -> Result<Buffer> {
        let mut slot = self.arenas[channel].lock();
        let map = match &*slot {
            Some((p, map)) if p == path => map.clone(),
            _ => {
                *slot = None;
                let map = crate::core::shm::map_arena(std::path::Path::new(path))
                    .map_err(|e| Error::io(format!("mapping the argument arena {path}"), e))?;
                slot.insert((path.to_string(), map)).1.clone()
            }
        };
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .filter(|(o, l)| o.checked_add(*l).is_some_and(|end| end <= map.len()));
        let Some((offset, len)) = range else {
            return Err(Error::Internal(format!(
                "an argument at {offset}+{len} outside the {}-byte arena {path}",
                map.len()
            )));
        };
        Ok(crate::core::shm::mapping_buffer(&map).slice_with_length(offset, len))
    }

    /// True when values of the arena of `channel` outlived the call that just ended: the
    /// node must not rewrite it, and this worker lets go of its mapping (the values keep
    /// it). Called once the call's arguments and results are dropped.
    fn arena_kept(&self, channel: usize) -> bool {
        let mut slot = self.arenas[channel].lock();
        let kept = slot
            .as_ref()
            .is_some_and(|(_, map)| Arc::strong_count(map) > 1);
        if kept {
            *slot = None;
        }
        kept
    }

    /// A reference this process took on `id` (the node hears of it with the next message).
    pub(super) fn acquired(&self, id: ObjectId) {
        self.sync.lock().acquired.push(id.to_bytes());
    }

    /// A reference this process dropped on `id`.
    pub(super) fn released(&self, id: ObjectId) {
        self.sync.lock().released.push(id.to_bytes());
    }

    fn take_sync(&self) -> RefSync {
        std::mem::take(&mut *self.sync.lock())
    }

    fn first_send(&self, f: FunctionId) -> Result<Option<Vec<u8>>> {
        if self.sent.lock().insert(f) {
            Ok(Some(function_bytes(f)?.to_vec()))
        } else {
            Ok(None)
        }
    }

    fn request(&self, req: Request) -> Result<Reply> {
        let io = |e: std::io::Error| Error::io("talking to the node", e);
        let exchange = |ch: &mut UnixStream, ahead: Option<&Mutex<VecDeque<Call>>>| {
            let msg = FromWorker::Request {
                sync: self.take_sync(),
                req,
            };
            write_frame(ch, &msg).map_err(io)?;
            loop {
                match (read_frame::<ToWorker>(ch).map_err(io)?, ahead) {
                    (ToWorker::Reply(r), _) => return r,
                    (ToWorker::Call(c), Some(ahead)) => ahead.lock().push_back(c),
                    (ToWorker::Call(_), None) => {
                        return Err(Error::Internal(
                            "the node sent a call on the client channel".into(),
                        ));
                    }
                }
            }
        };
        match CURRENT.with(|c| c.get()) {
            Some(i) => exchange(&mut self.calls[i].lock(), Some(&self.ahead[i])),
            None => exchange(&mut self.client.lock(), None),
        }
    }
}

fn adopt_all(ids: &[WireId]) -> Result<Vec<ForeignRef>> {
    Ok(ids_from_wire(ids)?
        .into_iter()
        .map(ForeignRef::adopt)
        .collect())
}

fn timeout_ms(t: Option<Duration>) -> Option<u64> {
    t.map(|t| t.as_millis() as u64)
}

impl CoreApi for WorkerClient {
    fn put(&self, value: PutValue) -> Result<ForeignRef> {
        let wire = WireValue {
            data: value.data.to_wire_from_worker(self, &[])?,
            nested: to_wire_ids(value.nested),
        };
        match self.request(Request::Put(wire))? {
            Reply::Refs(ids) => adopt_all(&ids)?
                .pop()
                .ok_or_else(|| Error::Internal("the node stored no object".into())),
            other => Err(unexpected(&other)),
        }
    }

    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<ForeignValue>> {
        let req = Request::Get {
            ids: to_wire_ids(ids.iter().copied()),
            timeout_ms: timeout_ms(timeout),
        };
        match self.request(req)? {
            Reply::Values(v) => v
                .into_iter()
                .map(|w| ForeignValue::from_wire(w, None, &ArgSegments::default()))
                .collect(),
            other => Err(unexpected(&other)),
        }
    }

    fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        let req = Request::Wait {
            ids: to_wire_ids(ids.iter().copied()),
            num_returns: num_returns as u32,
            timeout_ms: timeout_ms(timeout),
        };
        match self.request(req)? {
            Reply::Ready(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    fn borrow(&self, id: ObjectId) -> Result<ForeignRef> {
        self.acquired(id);
        Ok(ForeignRef::adopt(id))
    }

    fn submit_task(&self, task: ForeignTask) -> Result<Vec<ForeignRef>> {
        let req = Request::Submit {
            function_bytes: self.first_send(task.function)?,
            task,
        };
        match self.request(req)? {
            Reply::Refs(ids) => adopt_all(&ids),
            other => Err(unexpected(&other)),
        }
    }

    fn submit_streaming_task(&self, task: ForeignTask) -> Result<ForeignGenerator> {
        Err(Error::InvalidArgument(format!(
            "{}: a generator task submitted from inside a task or actor is not supported yet",
            task.opts.name
        )))
    }

    fn cancel(&self, id: ObjectId, force: bool, recursive: bool) -> Result<()> {
        self.request(Request::Cancel {
            id: id.to_bytes(),
            force,
            recursive,
        })
        .map(|_| ())
    }

    fn create_actor(
        &self,
        class: FunctionId,
        args: ForeignArgs,
        opts: ForeignActorOptions,
    ) -> Result<ForeignActor> {
        let req = Request::CreateActor {
            class,
            class_bytes: self.first_send(class)?,
            args,
            opts,
        };
        match self.request(req)? {
            Reply::Actor { id, opts, anchor } => {
                let mut actor = ForeignActor::from_id_bytes(&id, opts)?;
                if let Some(a) = anchor {
                    actor.anchor = adopt_all(&[a])?.pop();
                }
                Ok(actor)
            }
            other => Err(unexpected(&other)),
        }
    }

    fn call_actor(
        &self,
        actor: ActorId,
        method: &str,
        args: ForeignArgs,
        num_returns: u32,
    ) -> Result<Vec<ForeignRef>> {
        let req = Request::CallActor {
            actor: actor_wire(actor),
            method: method.to_string(),
            args,
            num_returns,
        };
        match self.request(req)? {
            Reply::Refs(ids) => adopt_all(&ids),
            other => Err(unexpected(&other)),
        }
    }

    fn kill_actor(&self, actor: ActorId, no_restart: bool) -> Result<()> {
        let req = Request::KillActor {
            actor: actor_wire(actor),
            no_restart,
        };
        self.request(req).map(|_| ())
    }

    fn exit_actor(&self) -> Result<()> {
        self.request(Request::ExitActor).map(|_| ())
    }

    fn get_actor(&self, name: &str) -> Result<ForeignActor> {
        match self.request(Request::GetActor {
            name: name.to_string(),
        })? {
            Reply::Actor { id, opts, .. } => ForeignActor::from_id_bytes(&id, opts),
            other => Err(unexpected(&other)),
        }
    }

    fn actor_state(&self, actor: ActorId) -> Result<(bool, i32)> {
        match self.request(Request::ActorState {
            actor: actor_wire(actor),
        })? {
            Reply::ActorState { alive, restarts } => Ok((alive, restarts)),
            other => Err(unexpected(&other)),
        }
    }

    fn actor_anchor(&self, actor: ActorId) -> Result<Option<ForeignRef>> {
        match self.request(Request::ActorAnchor {
            actor: actor_wire(actor),
        })? {
            Reply::Refs(ids) => Ok(adopt_all(&ids)?.pop()),
            other => Err(unexpected(&other)),
        }
    }

    fn resources(&self, available: bool) -> Result<Vec<(String, f64)>> {
        match self.request(Request::Resources { available })? {
            Reply::Resources(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    fn copies(&self, ids: &[ObjectId]) -> Result<Vec<Option<ObjectCopies>>> {
        match self.request(Request::Copies {
            ids: to_wire_ids(ids.iter().copied()),
        })? {
            Reply::Copies(c) => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    fn next_lent(&self, anchor: ObjectId) -> Result<Option<ForeignRef>> {
        match self.request(Request::NextLent {
            anchor: anchor.to_bytes(),
        })? {
            Reply::Refs(ids) => Ok(adopt_all(&ids)?.pop()),
            other => Err(unexpected(&other)),
        }
    }

    fn run_dataset(&self, call: DatasetCall) -> Result<DatasetReply> {
        let functions = call
            .functions
            .iter()
            .map(|f| Ok((*f, self.first_send(*f)?)))
            .collect::<Result<_>>()?;
        match self.request(Request::Dataset {
            op: call.op,
            refs: to_wire_ids(call.refs.iter().copied()),
            functions,
        })? {
            Reply::Dataset { data, refs } => Ok(DatasetReply {
                data,
                refs: adopt_all(&refs)?,
            }),
            other => Err(unexpected(&other)),
        }
    }

    fn node_and_job(&self) -> Result<(String, String)> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                Error::InvalidArgument(format!("a worker process started without {name}"))
            })
        };
        Ok((var("VOLLEY_NODE_ID")?, var("VOLLEY_JOB_ID")?))
    }
}

/// Connects this process to its node as a worker (from `VOLLEY_WORKER_SOCKET`,
/// `VOLLEY_WORKER_TOKEN`, `VOLLEY_WORKER_CHANNELS`) and returns the number of call
/// channels. Starts a thread that exits the process when the node goes away (stdin EOF).
pub fn worker_connect() -> Result<usize> {
    if let Some(c) = client() {
        return Ok(c.calls.len());
    }
    let var =
        |k: &str| std::env::var(k).map_err(|_| Error::InvalidArgument(format!("{k} is not set")));
    let socket = var("VOLLEY_WORKER_SOCKET")?;
    let token: u64 = var("VOLLEY_WORKER_TOKEN")?
        .parse()
        .map_err(|_| Error::InvalidArgument("bad VOLLEY_WORKER_TOKEN".into()))?;
    let channels: u32 = var("VOLLEY_WORKER_CHANNELS")?
        .parse()
        .map_err(|_| Error::InvalidArgument("bad VOLLEY_WORKER_CHANNELS".into()))?;
    let connect = |channel: u32| -> Result<UnixStream> {
        let mut s = UnixStream::connect(&socket)
            .map_err(|e| Error::io(format!("connecting to {socket}"), e))?;
        write_frame(&mut s, &FromWorker::Hello { token, channel })
            .map_err(|e| Error::io(format!("greeting {socket}"), e))?;
        Ok(s)
    };
    let calls = (0..channels)
        .map(|i| connect(i).map(Mutex::new))
        .collect::<Result<Vec<_>>>()?;
    let client = Mutex::new(connect(channels)?);
    std::thread::Builder::new()
        .name("volley-lifeline".into())
        .spawn(|| {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            // The node never writes: only EOF (or an error) ends this read.
            while matches!(std::io::Read::read(&mut stdin, &mut buf), Ok(n) if n > 0) {}
            std::process::exit(1);
        })
        .map_err(|e| Error::io("starting the lifeline thread", e))?;
    let _ = CLIENT.set(WorkerClient {
        ahead: calls.iter().map(|_| Mutex::new(VecDeque::new())).collect(),
        arg_ranges: calls.iter().map(|_| Mutex::new(Vec::new())).collect(),
        arenas: calls.iter().map(|_| Mutex::new(None)).collect(),
        calls,
        client,
        sync: Mutex::new(RefSync::default()),
        sent: Mutex::new(HashSet::new()),
        handoff_prefix: std::env::var(crate::core::worker::HANDOFF_PREFIX_ENV).ok(),
        inline_max: inline_max()?,
        handoff_seq: AtomicU64::new(0),
    });
    Ok(channels as usize)
}

/// The node's inline threshold, as it started this worker (`VOLLEY_MAX_INLINE_OBJECT_SIZE`,
/// which the node always sets).
fn inline_max() -> Result<usize> {
    let var = crate::core::worker::INLINE_MAX_ENV;
    let v = std::env::var(var).map_err(|_| Error::InvalidArgument(format!("{var} is not set")))?;
    v.parse()
        .map_err(|_| Error::InvalidArgument(format!("{var}={v:?} is not a number of bytes")))
}

/// A call for the worker to run, received on call channel `channel`.
#[derive(Debug)]
pub struct WorkerCall {
    /// Task, constructor or method.
    pub kind: CallKind,
    /// `name (task id)`.
    pub name: String,
    /// The function's id.
    pub function: FunctionId,
    /// Arguments: the pickled structure first, then the resolved ref arguments.
    pub args: Vec<ForeignValue>,
    /// Outputs expected.
    pub num_returns: u32,
}

/// Waits for the next call on `channel` and makes this thread the one that runs it;
/// `None` when the node closed the channel.
pub fn worker_next_call(channel: usize) -> Result<Option<WorkerCall>> {
    let c = client().ok_or_else(|| Error::InvalidArgument("not a worker process".into()))?;
    let ch = c
        .calls
        .get(channel)
        .ok_or_else(|| Error::InvalidArgument(format!("no call channel {channel}")))?;
    let ahead = c.ahead[channel].lock().pop_front();
    let msg = match ahead {
        Some(call) => Ok(ToWorker::Call(call)),
        None => read_frame::<ToWorker>(&mut *ch.lock()),
    };
    let call = match msg {
        Ok(ToWorker::Call(call)) => call,
        Ok(ToWorker::Reply(_)) => {
            return Err(Error::Internal("a reply without a request".into()));
        }
        Err(_) => return Ok(None),
    };
    if let Some(b) = call.function_bytes {
        register_function(b);
    }
    CURRENT.with(|cur| cur.set(Some(channel)));
    let mut ranges = Vec::with_capacity(call.args.len());
    let mut args = Vec::with_capacity(call.args.len());
    for w in call.args {
        match w {
            WireData::Segment { path, .. } => {
                let seg = crate::core::shm::map_store_segment(std::path::Path::new(&path))?;
                ranges.push(Some(seg.address_range()));
                args.push(ForeignValue::from_data(seg.data().clone())?);
            }
            WireData::Arena { path, offset, len } => {
                let bytes = c.arena_bytes(channel, &path, offset, len)?;
                let start = bytes.as_ptr() as usize;
                ranges.push(Some(start..start + bytes.len()));
                let data = crate::core::object::decode_ipc_written_by_node(bytes)?;
                args.push(ForeignValue::from_data(data)?);
            }
            w => {
                ranges.push(None);
                args.push(ForeignValue::from_wire(w, None, &ArgSegments::default())?);
            }
        }
    }
    *c.arg_ranges[channel].lock() = ranges;
    Ok(Some(WorkerCall {
        kind: call.kind,
        name: call.name,
        function: call.function,
        args,
        num_returns: call.num_returns,
    }))
}

/// What a worker's call produced.
#[derive(Debug)]
pub enum WorkerOutcome {
    /// The outputs.
    Ok(Vec<PutValue>),
    /// The user's code raised.
    Err {
        /// The message with its traceback.
        message: String,
        /// The pickled exception.
        payload: Option<Vec<u8>>,
    },
}

/// Sends one output of the running generator call (on this thread's call channel) to the
/// node, which streams it to the caller.
pub fn worker_emit(value: PutValue) -> Result<()> {
    let c = client().ok_or_else(|| Error::InvalidArgument("not a worker process".into()))?;
    let wire = WireValue {
        data: value.data.to_wire_from_worker(c, &[])?,
        nested: to_wire_ids(value.nested),
    };
    c.request(Request::Emit(wire)).map(|_| ())
}

/// Reports the end of the call running on `channel`.
pub fn worker_finish(channel: usize, outcome: WorkerOutcome) -> Result<()> {
    let c = client().ok_or_else(|| Error::InvalidArgument("not a worker process".into()))?;
    CURRENT.with(|cur| cur.set(None));
    let ranges = std::mem::take(&mut *c.arg_ranges[channel].lock());
    let outcome = match outcome {
        WorkerOutcome::Ok(values) => CallOutcome::Ok(
            values
                .into_iter()
                .map(|v| {
                    Ok(WireValue {
                        data: v.data.to_wire_from_worker(c, &ranges)?,
                        nested: to_wire_ids(v.nested),
                    })
                })
                .collect::<Result<_>>()?,
        ),
        WorkerOutcome::Err { message, payload } => CallOutcome::Err { message, payload },
    };
    let msg = FromWorker::Done {
        sync: c.take_sync(),
        outcome,
        arena_kept: c.arena_kept(channel),
    };
    let ch = c
        .calls
        .get(channel)
        .ok_or_else(|| Error::InvalidArgument(format!("no call channel {channel}")))?;
    write_frame(&mut *ch.lock(), &msg).map_err(|e| Error::io("reporting to the node", e))
}

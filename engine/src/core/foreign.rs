//! Foreign functions, actors and values: the core API for front ends whose code the engine
//! cannot run itself (the Python package). Functions and classes are opaque bytes (pickled)
//! kept in a function table; their tasks and actor calls run in worker processes
//! ([`crate::core::worker`]); values are pickled bytes or Arrow blocks.
//!
//! Every function here works in two places:
//! - in the driver (local mode) it calls the in-process node;
//! - in a worker process (after [`worker_connect`]) it sends a [`Request`] to the node over
//!   the channel of the call running on this thread (or the worker's client channel), and
//!   the node serves it with the same functions ([`serve_request`]).

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use arrow::buffer::Buffer;
use bytes::Bytes;
use memmap2::Mmap;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::core::actor::{ActorHandle, ActorOptions, try_actor};
use crate::core::api::{ObjectRef, RawRef};
use crate::core::generator::ObjectRefGenerator;
use crate::core::ids::{ActorId, ObjectId};
use crate::core::layout::{ArgBytes, WireBody};
use crate::core::node::Submitted;
use crate::core::node::{NodeInner, current};
use crate::core::object::{
    Block, BytesFormat, ObjectData, Value, decode_ipc, encode_ipc, note_nested_ref,
};
pub use crate::core::options::{ForeignActorOptions, ForeignStrategy, ForeignTaskOptions};
use crate::core::shm::{Arena, Segment};
use crate::core::task::{Arg, CallCtx, CallError, EmitSink, ErasedFn, Func, Multi, Output};
use crate::core::worker::{
    Call, CallKind, CallOutcome, Emit, FromWorker, RefSync, ReleaseLater, STREAMING_RETURNS,
    ToWorker, WireData, WireId, WireValue, WorkerProc, WorkerShared, read_frame, write_frame,
};
use crate::error::{Error, Result, TaskResult, UserError};

/// A function's (or class's) id in the function table: a hash of its bytes.
pub type FunctionId = u64;

static FUNCTIONS: LazyLock<RwLock<HashMap<FunctionId, Arc<Vec<u8>>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Stores a pickled function or class once per process and returns its id.
pub fn register_function(bytes: Vec<u8>) -> FunctionId {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let id = h.finish();
    FUNCTIONS
        .write()
        .entry(id)
        .or_insert_with(|| Arc::new(bytes));
    id
}

/// The bytes of a registered function.
pub fn function_bytes(id: FunctionId) -> Result<Arc<Vec<u8>>> {
    FUNCTIONS
        .read()
        .get(&id)
        .cloned()
        .ok_or_else(|| Error::NotFound(format!("function {id:#x} is not registered")))
}

/// Objects up to this size travel inline in messages; larger ones through shared memory.
const INLINE_BYTES: usize = 100 << 10;

// ---------------------------------------------------------------------------------------------
// Values and refs
// ---------------------------------------------------------------------------------------------

/// A value a front end stores: pickled bytes or an Arrow block, and the refs inside it.
#[derive(Debug, Clone)]
pub struct PutValue {
    /// The data.
    pub data: ForeignValue,
    /// Ids of the refs serialized inside it (alive while it is stored).
    pub nested: Vec<ObjectId>,
}

/// A value as a front end reads it.
#[derive(Debug, Clone)]
pub enum ForeignValue {
    /// Pickled bytes.
    Pickle(Bytes),
    /// Arrow data (a table, or a pickle with out-of-band buffers): zero-copy, read from the
    /// store's memory or a mapped shared-memory segment.
    Arrow(Block),
}

impl ForeignValue {
    fn into_data(self) -> ObjectData {
        match self {
            ForeignValue::Pickle(data) => ObjectData::Bytes {
                format: BytesFormat::Pickle,
                data,
            },
            ForeignValue::Arrow(b) => ObjectData::Arrow(b),
        }
    }

    fn from_data(data: ObjectData) -> Result<Self> {
        match data {
            ObjectData::Arrow(b) => Ok(ForeignValue::Arrow(b)),
            ObjectData::Bytes {
                format: BytesFormat::Pickle,
                data,
            } => Ok(ForeignValue::Pickle(data)),
            ObjectData::Bytes { .. } => Err(Error::InvalidArgument(
                "the object was stored by Rust code (bincode), not by Python".into(),
            )),
        }
    }

    fn to_wire(&self) -> Result<WireData> {
        Ok(match self {
            ForeignValue::Pickle(b) => WireData::Pickle(b.to_vec()),
            ForeignValue::Arrow(_) => inline_ipc(&encode_ipc(&self.clone().into_data())?),
        })
    }

    /// The wire form of a value a worker sends to the node. Arrow data that shares buffers
    /// with the call's argument segments (`args`, their address ranges here) is laid out
    /// buffer by buffer, the shared ones as references ([`crate::core::layout`]); other
    /// Arrow data larger than [`INLINE_BYTES`] goes into a segment of its own that the node
    /// adopts (one copy, and none on the node's side); the rest inline.
    fn to_wire_from_worker(
        &self,
        client: &WorkerClient,
        args: &[Option<Range<usize>>],
    ) -> Result<WireData> {
        let (ForeignValue::Arrow(block), Some(_)) = (self, &client.handoff_prefix) else {
            return self.to_wire();
        };
        if let Some(layout) = crate::core::layout::lay_out(block, args)? {
            let mut wire = layout.wire;
            wire.body = if layout.body_len <= INLINE_BYTES {
                WireBody::Inline(concat_bytes(&layout.body))
            } else {
                WireBody::Handoff {
                    path: client.hand_off(&layout.body)?,
                }
            };
            return Ok(WireData::Buffers(wire));
        }
        let bufs = encode_ipc(&self.clone().into_data())?;
        if crate::core::object::encoded_len(&bufs) <= INLINE_BYTES {
            return Ok(inline_ipc(&bufs));
        }
        Ok(WireData::Handoff {
            path: client.hand_off(&bufs)?,
        })
    }

    /// The value of a wire form. `node`: the node receiving a worker's value, which adopts
    /// handed-over segments (only under its own session prefix); `args`: the mappings of
    /// the call's argument segments, which a worker's result may refer to.
    fn from_wire(w: WireData, node: Option<&NodeInner>, args: &ArgSegments) -> Result<Self> {
        match w {
            WireData::Pickle(b) => Ok(ForeignValue::Pickle(Bytes::from(b))),
            WireData::Ipc(b) => Self::from_data(decode_ipc(Buffer::from_vec(b))?),
            WireData::Segment { path, .. } => {
                let path = std::path::Path::new(&path);
                // In a worker, the node named one of its store's segments.
                let seg = match node {
                    None => crate::core::shm::map_store_segment(path)?,
                    Some(_) => crate::core::shm::map_segment(path)?,
                };
                Self::from_data(seg.data().clone())
            }
            WireData::Arena { path, .. } => Err(Error::Internal(format!(
                "an argument arena ({path}) named outside the call it was written for"
            ))),
            WireData::Handoff { path } => {
                check_handoff(node, &path)?;
                Self::from_data(crate::core::shm::adopt_segment(std::path::Path::new(
                    &path,
                ))?)
            }
            WireData::Buffers(wire) => {
                let body = match &wire.body {
                    WireBody::Inline(b) => Buffer::from(b.as_slice()),
                    WireBody::Handoff { path } => {
                        check_handoff(node, path)?;
                        crate::core::shm::adopt_file(std::path::Path::new(path))?
                    }
                };
                let segs = args
                    .0
                    .iter()
                    .map(|a| {
                        a.as_ref()
                            .map(|a| match &a.data {
                                // Only Arrow data keeps its own buffers in the encoding.
                                ObjectData::Arrow(block) => {
                                    ArgBytes::of_block(a.whole.clone(), block)
                                }
                                ObjectData::Bytes { .. } => {
                                    Ok(ArgBytes::new(a.whole.clone(), Vec::new()))
                                }
                            })
                            .transpose()
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ForeignValue::Arrow(crate::core::layout::rebuild(
                    &wire, &segs, &body,
                )?))
            }
        }
    }
}

/// A handed-over segment must lie under the receiving node's session prefix.
fn check_handoff(node: Option<&NodeInner>, path: &str) -> Result<()> {
    let ours = node.is_some_and(|n| {
        let prefix = n.shm_dir.join(&n.shm_prefix);
        path.starts_with(prefix.to_string_lossy().as_ref()) && !path.contains("/../")
    });
    if ours {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "a handed-over segment outside this node's session: {path}"
        )))
    }
}

/// The segments of a call's arguments and the data they encode, by position (`None` for
/// arguments sent inline), which the node holds until it has read the call's outputs: they
/// may refer to them (resolved to the data's own buffers where the encoding shares them).
#[derive(Default)]
pub(crate) struct ArgSegments(Vec<Option<ArgSegment>>);

/// An argument the worker maps rather than reads from the message.
pub(crate) struct ArgSegment {
    /// Its encoding as the node maps it: a store segment's mapping, or a view of the call
    /// channel's arena (which is not rewritten while the view lives).
    whole: Buffer,
    /// The data it encodes.
    data: ObjectData,
    /// The store's segment, held until the call is done (`None` for an arena's).
    _segment: Option<Arc<Segment>>,
}

/// An IPC encoding inline in a message.
fn inline_ipc(bufs: &[Buffer]) -> WireData {
    WireData::Ipc(concat_bytes(bufs))
}

/// The concatenation of `bufs`, for a message.
fn concat_bytes(bufs: &[Buffer]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crate::core::object::encoded_len(bufs));
    for b in bufs {
        out.extend_from_slice(b.as_slice());
    }
    out
}

/// What the store holds for a foreign value.
pub(crate) struct ForeignObject {
    data: ObjectData,
    nested: Vec<ObjectId>,
    /// The worker's references to the nested refs, released once they are referenced here.
    hold: Option<ReleaseLater>,
}

impl Value for ForeignObject {
    fn into_data(self) -> Result<ObjectData> {
        for id in self.nested {
            note_nested_ref(id);
        }
        drop(self.hold);
        Ok(self.data)
    }

    fn from_data(data: &ObjectData) -> Result<Self> {
        Ok(ForeignObject {
            data: data.clone(),
            nested: Vec::new(),
            hold: None,
        })
    }
}

/// A front end's reference to an object. In the driver it owns a count on the object; in a
/// worker the node counts it for the worker, and dropping it tells the node.
#[derive(Debug)]
pub struct ForeignRef {
    id: ObjectId,
    local: Option<RawRef>,
}

impl ForeignRef {
    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// A new reference to an object another reference keeps alive now (e.g. one just
    /// deserialized from a value).
    pub fn borrow(id: ObjectId) -> Result<Self> {
        if let Some(c) = client() {
            c.sync.lock().acquired.push(id.to_bytes());
            return Ok(ForeignRef { id, local: None });
        }
        let node = current()?;
        if !node.store.add_ref(id) {
            return Err(Error::ObjectLost {
                object: id.to_string(),
                reason: "it was freed before this reference to it was made".into(),
            });
        }
        Ok(ForeignRef {
            id,
            local: Some(RawRef::adopt(&node, id)),
        })
    }

    /// A reference the node already counted for this process.
    fn adopt(id: ObjectId) -> Self {
        ForeignRef { id, local: None }
    }

    fn from_raw(raw: RawRef) -> Self {
        ForeignRef {
            id: raw.id(),
            local: Some(raw),
        }
    }
}

impl Clone for ForeignRef {
    fn clone(&self) -> Self {
        if self.local.is_none()
            && let Some(c) = client()
        {
            c.sync.lock().acquired.push(self.id.to_bytes());
        }
        ForeignRef {
            id: self.id,
            local: self.local.clone(),
        }
    }
}

impl Drop for ForeignRef {
    fn drop(&mut self) {
        if self.local.is_none()
            && let Some(c) = client()
        {
            c.sync.lock().released.push(self.id.to_bytes());
        }
    }
}

fn ids_from_wire(ids: &[WireId]) -> Result<Vec<ObjectId>> {
    ids.iter()
        .map(|b| {
            ObjectId::from_bytes(b)
                .ok_or_else(|| Error::InvalidArgument("a malformed object id".into()))
        })
        .collect()
}

fn to_wire_ids(ids: impl IntoIterator<Item = ObjectId>) -> Vec<WireId> {
    ids.into_iter().map(ObjectId::to_bytes).collect()
}

// ---------------------------------------------------------------------------------------------
// Options and arguments
// ---------------------------------------------------------------------------------------------

/// The arguments of a call: the pickled `(args, kwargs)` structure with placeholders for
/// the top-level refs, the refs nested deeper inside it, and the top-level refs, which are
/// resolved to their values before the call runs.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ForeignArgs {
    /// The pickled structure.
    pub structure: Vec<u8>,
    /// Refs nested in the structure (kept alive for the call).
    pub nested: Vec<WireId>,
    /// Top-level ref arguments.
    pub refs: Vec<WireId>,
}

impl ForeignArgs {
    /// References on every ref they name (top-level and nested), to keep them alive for
    /// a call that runs later.
    fn hold(&self) -> Result<Vec<ForeignRef>> {
        ids_from_wire(&self.refs)?
            .into_iter()
            .chain(ids_from_wire(&self.nested)?)
            .map(ForeignRef::borrow)
            .collect()
    }

    /// Builds the arguments from ids.
    pub fn new(structure: Vec<u8>, nested: &[ObjectId], refs: &[ObjectId]) -> Self {
        ForeignArgs {
            structure,
            nested: to_wire_ids(nested.iter().copied()),
            refs: to_wire_ids(refs.iter().copied()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The API (driver or worker)
// ---------------------------------------------------------------------------------------------

/// Stores a value.
pub fn put(value: PutValue) -> Result<ForeignRef> {
    if let Some(c) = client() {
        let wire = WireValue {
            data: value.data.to_wire_from_worker(c, &[])?,
            nested: to_wire_ids(value.nested),
        };
        return match c.request(Request::Put(wire))? {
            Reply::Refs(ids) => Ok(adopt_all(&ids)?.remove(0)),
            other => Err(unexpected(&other)),
        };
    }
    local_put(value).map(ForeignRef::from_raw)
}

fn local_put(value: PutValue) -> Result<RawRef> {
    let r = crate::put(ForeignObject {
        data: value.data.into_data(),
        nested: value.nested,
        hold: None,
    })?;
    Ok(r.raw().clone())
}

/// Waits for the objects and returns their values; `timeout` bounds the whole wait.
pub fn get(refs: &[ForeignRef], timeout: Option<Duration>) -> Result<Vec<ForeignValue>> {
    let ids: Vec<ObjectId> = refs.iter().map(|r| r.id).collect();
    if let Some(c) = client() {
        let req = Request::Get {
            ids: to_wire_ids(ids),
            timeout_ms: timeout.map(|t| t.as_millis() as u64),
        };
        return match c.request(req)? {
            Reply::Values(v) => v
                .into_iter()
                .map(|w| ForeignValue::from_wire(w, None, &ArgSegments::default()))
                .collect(),
            other => Err(unexpected(&other)),
        };
    }
    let node = current()?;
    let refs: Vec<ObjectRef<ForeignObject>> = ids
        .iter()
        .map(|id| typed_ref(&node, *id))
        .collect::<Result<_>>()?;
    crate::get_all(&refs, timeout)?
        .into_iter()
        .map(|o| ForeignValue::from_data(o.data))
        .collect()
}

/// Waits until `num_returns` of the objects are ready or `timeout` passes; which are ready.
pub fn wait(
    refs: &[ForeignRef],
    num_returns: usize,
    timeout: Option<Duration>,
) -> Result<Vec<bool>> {
    let ids: Vec<ObjectId> = refs.iter().map(|r| r.id).collect();
    if let Some(c) = client() {
        let req = Request::Wait {
            ids: to_wire_ids(ids),
            num_returns: num_returns as u32,
            timeout_ms: timeout.map(|t| t.as_millis() as u64),
        };
        return match c.request(req)? {
            Reply::Ready(r) => Ok(r),
            other => Err(unexpected(&other)),
        };
    }
    local_wait(&ids, num_returns, timeout)
}

fn local_wait(
    ids: &[ObjectId],
    num_returns: usize,
    timeout: Option<Duration>,
) -> Result<Vec<bool>> {
    let node = current()?;
    let refs: Vec<ObjectRef<ForeignObject>> = ids
        .iter()
        .map(|id| typed_ref(&node, *id))
        .collect::<Result<_>>()?;
    let (ready, _) = crate::wait(&refs, num_returns, timeout)?;
    let ready: HashSet<ObjectId> = ready.iter().map(|r| r.id()).collect();
    Ok(ids.iter().map(|id| ready.contains(id)).collect())
}

/// Submits a task running the registered function `function` in a worker process.
pub fn submit_task(
    function: FunctionId,
    args: ForeignArgs,
    opts: ForeignTaskOptions,
) -> Result<Vec<ForeignRef>> {
    if let Some(c) = client() {
        let req = Request::Submit {
            function,
            function_bytes: c.first_send(function)?,
            args,
            opts,
        };
        return match c.request(req)? {
            Reply::Refs(ids) => adopt_all(&ids),
            other => Err(unexpected(&other)),
        };
    }
    local_submit(function, args, opts).map(|v| v.into_iter().map(ForeignRef::from_raw).collect())
}

/// Refs to a generator task's outputs, in order, as the worker yields them (Ray's
/// `ObjectRefGenerator`).
pub struct ForeignGenerator(ObjectRefGenerator<ForeignObject>);

impl std::fmt::Debug for ForeignGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ForeignGenerator(task {})", self.0.task_id())
    }
}

impl ForeignGenerator {
    /// The next output's ref, waiting at most `timeout`; `None` once the task has ended
    /// (its error, if it failed).
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<ForeignRef>> {
        Ok(self
            .0
            .next_timeout(timeout)?
            .map(|r| ForeignRef::from_raw(r.raw().clone())))
    }
}

/// Submits a generator task (`opts.streaming`): the function's outputs stream back as it
/// yields them.
pub fn submit_streaming_task(
    function: FunctionId,
    args: ForeignArgs,
    opts: ForeignTaskOptions,
) -> Result<ForeignGenerator> {
    if client().is_some() {
        return Err(Error::InvalidArgument(format!(
            "{}: a generator task submitted from inside a task or actor is not supported yet",
            opts.name
        )));
    }
    let node = current()?;
    let shared = local_submit_task(function, args, opts)?.streaming()?;
    Ok(ForeignGenerator(ObjectRefGenerator::new(shared, node)))
}

fn local_submit(
    function: FunctionId,
    args: ForeignArgs,
    opts: ForeignTaskOptions,
) -> Result<Vec<RawRef>> {
    if opts.streaming {
        return Err(Error::InvalidArgument(format!(
            "{}: a generator task is submitted with submit_streaming_task",
            opts.name
        )));
    }
    let node = current()?;
    let ids = local_submit_task(function, args, opts)?.fixed();
    Ok(ids.into_iter().map(|id| RawRef::adopt(&node, id)).collect())
}

fn local_submit_task(
    function: FunctionId,
    args: ForeignArgs,
    opts: ForeignTaskOptions,
) -> Result<Submitted> {
    let node = current()?;
    function_bytes(function)?;
    let nested = ids_from_wire(&args.nested)?;
    let refs = ids_from_wire(&args.refs)?;
    // The nested refs are held for the task's life (released with its value argument).
    for id in &nested {
        if !node.store.add_ref(*id) {
            return Err(lost_arg(*id, &opts.name));
        }
    }
    let mut core_args = vec![Arg::Value {
        data: ObjectData::Bytes {
            format: BytesFormat::Pickle,
            data: Bytes::from(args.structure),
        },
        nested,
    }];
    core_args.extend(refs.iter().map(|id| Arg::Ref(*id)));
    let num_returns = opts.num_returns.max(1);
    let task_opts = opts.to_core()?;
    let streaming = opts.streaming;
    let func = task_fn(function, refs, num_returns, streaming);
    node.submit_task(crate::core::task::TaskRequest {
        name: Arc::from(opts.name.as_str()),
        func: Func::Closure(func),
        args: core_args,
        num_returns: num_returns as usize,
        streaming: streaming.then_some(None),
        opts: task_opts,
    })
}

fn lost_arg(id: ObjectId, task: &str) -> Error {
    Error::ObjectLost {
        object: id.to_string(),
        reason: format!("argument of task {task} was freed"),
    }
}

/// The core task body of a foreign task: lease a worker, run the call, collect outputs
/// (`streaming`: each output the worker emits goes to the task's stream as it comes).
fn task_fn(
    function: FunctionId,
    refs: Vec<ObjectId>,
    num_returns: u32,
    streaming: bool,
) -> Arc<ErasedFn> {
    Arc::new(move |ctx: &mut CallCtx<'_>| {
        let node = current().map_err(CallError::Setup)?;
        let (args, segs) = wire_args(&node, &ctx.args, &refs).map_err(CallError::Setup)?;
        let call = Call {
            kind: CallKind::Task,
            name: ctx.task_name(),
            function,
            function_bytes: None,
            args,
            num_returns: if streaming {
                STREAMING_RETURNS
            } else {
                num_returns
            },
        };
        let emitter = ctx.emitter;
        let emit = |v: WireValue| emit_output(&node, emitter, v);
        let emit: Option<Emit<'_>> = if streaming { Some(&emit) } else { None };
        let worker = node.workers.lease(&node).map_err(CallError::Setup)?;
        let ran = match as_current_call(&worker, &ctx.task_name(), || {
            worker.run_emitting(&node, call, emit)
        }) {
            Ok(ran) => ran,
            Err(cancelled) => {
                node.workers.give_back(worker);
                return Err(CallError::User(cancelled));
            }
        };
        // A worker that died is dropped (killed and reaped), never reused.
        let (outcome, _later) = ran.map_err(CallError::User)?;
        node.workers.give_back(worker);
        let expected = if streaming { 0 } else { num_returns };
        outputs(&node, outcome, expected, true, &segs).map_err(CallError::User)
    })
}

/// Stores one output a generator task's worker emitted, as the next of the task's stream.
fn emit_output(node: &NodeInner, emitter: Option<&dyn EmitSink>, v: WireValue) -> Result<()> {
    let emitter = emitter.ok_or_else(|| {
        Error::InvalidArgument("an output emitted by a call that is not a generator task".into())
    })?;
    let data = ForeignValue::from_wire(v.data, Some(node), &ArgSegments::default())?.into_data();
    let nested = ids_from_wire(&v.nested)?;
    // The stored output holds its nested refs (the store releases them with it).
    for (i, id) in nested.iter().enumerate() {
        if !node.store.add_ref(*id) {
            node.store.release_many(nested[..i].to_vec());
            return Err(Error::ObjectLost {
                object: id.to_string(),
                reason: "a ref inside a generator's output was freed before it was stored".into(),
            });
        }
    }
    emitter
        .emit(data, nested.clone())
        .inspect_err(|_| node.store.release_many(nested))
}

/// The arguments as the worker gets them: the structure inline, each ref argument inline
/// when small, else as its shared-memory segment (mapped, not copied).
fn wire_args(
    node: &NodeInner,
    args: &[ObjectData],
    refs: &[ObjectId],
) -> Result<(Vec<WireData>, ArgSegments)> {
    let mut out = Vec::with_capacity(args.len());
    let mut segs = ArgSegments::default();
    for (i, data) in args.iter().enumerate() {
        let id = i.checked_sub(1).and_then(|j| refs.get(j)).copied();
        out.push(wire_data(node, data, id, &mut segs)?);
    }
    Ok((out, segs))
}

/// One argument in wire form; its segment (or `None`) is pushed to `segs`.
fn wire_data(
    node: &NodeInner,
    data: &ObjectData,
    id: Option<ObjectId>,
    segs: &mut ArgSegments,
) -> Result<WireData> {
    let mut seg = None;
    let wire = match (data, id) {
        (
            ObjectData::Bytes {
                format: BytesFormat::Pickle,
                data,
            },
            _,
        ) if data.len() <= INLINE_BYTES || id.is_none() => WireData::Pickle(data.to_vec()),
        (_, Some(id)) => {
            let s = node.store.segment(id)?;
            let w = segment_wire(&s);
            seg = Some(ArgSegment {
                whole: s.buffer(),
                data: data.clone(),
                _segment: Some(s),
            });
            w
        }
        (other, None) => ForeignValue::from_data(other.clone())?.to_wire()?,
    };
    segs.0.push(seg);
    Ok(wire)
}

fn segment_wire(seg: &crate::core::shm::Segment) -> WireData {
    WireData::Segment {
        path: seg.path().to_string_lossy().into_owned(),
        len: seg.len() as u64,
    }
}

/// Turns a worker's outcome into outputs; `reference`: take a reference on each nested ref
/// (for task outputs, which the store adopts when it seals them).
fn outputs(
    node: &NodeInner,
    outcome: CallOutcome,
    num_returns: u32,
    reference: bool,
    args: &ArgSegments,
) -> TaskResult<Vec<Output>> {
    let values = match outcome {
        CallOutcome::Ok(v) => v,
        CallOutcome::Err { message, payload } => {
            return Err(match payload {
                Some(p) => UserError::with_payload(message, Arc::new(p)),
                None => UserError::msg(message),
            });
        }
    };
    // Adopt every value first (handed-over segments are unlinked), whatever comes next.
    let values = values
        .into_iter()
        .map(|v| Ok((ForeignValue::from_wire(v.data, Some(node), args)?, v.nested)))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| UserError::msg(e.to_string()))?;
    if values.len() != num_returns as usize {
        return Err(UserError::msg(format!(
            "the function returned {} values but num_returns={num_returns}",
            values.len()
        )));
    }
    values
        .into_iter()
        .map(|(value, nested)| {
            let nested = ids_from_wire(&nested).map_err(|e| UserError::msg(e.to_string()))?;
            if reference {
                for id in &nested {
                    node.store.add_ref(*id);
                }
            }
            Ok((value.into_data(), nested))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Calls from the engine itself (user functions inside data operators)
// ---------------------------------------------------------------------------------------------

/// A call's arguments larger than this (together) go through store segments rather than
/// the call channel's arena, which stays allocated while its worker lives.
const ARENA_MAX: usize = 256 << 20;

/// What [`direct_args`] prepared: the wire form, the segments (held until the outputs are
/// read) and refs that keep store segments until the call is done.
type DirectArgs = (Vec<WireData>, ArgSegments, Vec<RawRef>);

/// The arguments of a direct call in wire form: inline values inline, Arrow data written
/// into the call channel's arena `slot` (made or replaced as needed; the worker maps it
/// without copying), or through store segments when larger than [`ARENA_MAX`].
fn direct_args(
    node: &NodeInner,
    args: Vec<ForeignValue>,
    slot: &mut Option<Arena>,
) -> Result<DirectArgs> {
    let encoded = args
        .iter()
        .map(|a| match a {
            ForeignValue::Arrow(b) => encode_ipc(&ObjectData::Arrow(b.clone())).map(Some),
            ForeignValue::Pickle(_) => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let bufs: Vec<&[Buffer]> = encoded.iter().flatten().map(Vec::as_slice).collect();
    if bufs.is_empty() || Arena::needed(&bufs) > ARENA_MAX {
        return segment_args(node, args);
    }
    let fits = slot.as_mut().and_then(|a| a.write(&bufs));
    let placed = match fits {
        Some(p) => p,
        None => {
            // Too small, or a view of its last call still alive: a new one (the old pages
            // go first).
            *slot = None;
            let prefix = node.shm_dir.join(format!("{}a-", node.shm_prefix));
            let arena = slot.insert(Arena::create(&prefix, Arena::needed(&bufs))?);
            arena
                .write(&bufs)
                .ok_or_else(|| Error::Internal("a new argument arena is too small".into()))?
        }
    };
    let arena = slot
        .as_ref()
        .ok_or_else(|| Error::Internal("no argument arena".into()))?;
    let path = arena.path().to_string_lossy().into_owned();
    let mut placed = placed.into_iter();
    let (wire, segs) = wire_direct(args, |block| {
        let (offset, len) = placed
            .next()
            .ok_or_else(|| Error::Internal("an argument missing from its arena".into()))?;
        let wire = WireData::Arena {
            path: path.clone(),
            offset: offset as u64,
            len: len as u64,
        };
        let seg = ArgSegment {
            whole: arena.view(offset, len),
            data: ObjectData::Arrow(block),
            _segment: None,
        };
        Ok((wire, seg))
    })?;
    Ok((wire, segs, Vec::new()))
}

/// [`direct_args`] through store segments: each Arrow argument is put in the store and
/// mapped from its segment; the returned refs keep the segments until the call is done.
fn segment_args(node: &NodeInner, args: Vec<ForeignValue>) -> Result<DirectArgs> {
    let mut keep = Vec::new();
    let (wire, segs) = wire_direct(args, |block| {
        let r = local_put(PutValue {
            data: ForeignValue::Arrow(block.clone()),
            nested: Vec::new(),
        })?;
        let seg = node.store.segment(r.id())?;
        keep.push(r);
        let wire = segment_wire(&seg);
        let arg = ArgSegment {
            whole: seg.buffer(),
            data: ObjectData::Arrow(block),
            _segment: Some(seg),
        };
        Ok((wire, arg))
    })?;
    Ok((wire, segs, keep))
}

/// A direct call's arguments in wire form: pickles inline, each Arrow argument where
/// `place` puts it (its wire form and the segment the node holds for it).
fn wire_direct(
    args: Vec<ForeignValue>,
    mut place: impl FnMut(Block) -> Result<(WireData, ArgSegment)>,
) -> Result<(Vec<WireData>, ArgSegments)> {
    let mut wire = Vec::with_capacity(args.len());
    let mut segs = ArgSegments::default();
    for a in args {
        match a {
            ForeignValue::Pickle(b) => {
                wire.push(WireData::Pickle(b.to_vec()));
                segs.0.push(None);
            }
            ForeignValue::Arrow(block) => {
                let (w, seg) = place(block)?;
                wire.push(w);
                segs.0.push(Some(seg));
            }
        }
    }
    Ok((wire, segs))
}

fn values_of(
    node: &NodeInner,
    outcome: CallOutcome,
    n: u32,
    args: &ArgSegments,
) -> TaskResult<Vec<ForeignValue>> {
    outputs(node, outcome, n, false, args)?
        .into_iter()
        .map(|(data, _)| ForeignValue::from_data(data).map_err(|e| UserError::msg(e.to_string())))
        .collect()
}

/// Calls the registered function `function` with `args` in a pooled worker process, on this
/// thread (which serves the worker's requests), and returns its `num_returns` results.
/// Arguments follow the task convention: the pickled argument structure, then the values
/// it refers to. A worker that dies fails the call with [`UserError::worker_died`].
pub fn call_function(
    function: FunctionId,
    name: &str,
    args: Vec<ForeignValue>,
    num_returns: u32,
) -> TaskResult<Vec<ForeignValue>> {
    let node = current().map_err(|e| UserError::msg(e.to_string()))?;
    let worker = node
        .workers
        .lease(&node)
        .map_err(|e| UserError::msg(e.to_string()))?;
    let ran = as_current_call(&worker, name, || {
        worker.run_with(&node, |arena| {
            let (wire, segs, keep) =
                direct_args(&node, args, arena).map_err(|e| UserError::msg(e.to_string()))?;
            let call = Call {
                kind: CallKind::Task,
                name: name.to_string(),
                function,
                function_bytes: None,
                args: wire,
                num_returns,
            };
            Ok((call, (segs, keep)))
        })
    });
    let ran = match ran {
        Ok(ran) => ran,
        Err(cancelled) => {
            node.workers.give_back(worker);
            return Err(cancelled);
        }
    };
    let (outcome, _later, (segs, _keep)) = ran?;
    node.workers.give_back(worker);
    values_of(&node, outcome, num_returns, &segs)
}

/// Runs `f`, a call on `worker`, as the current task's (named `task`): meanwhile `cancel`
/// interrupts (or, forced, kills) the worker process. The task's cancellation error,
/// without running `f`, when it was cancelled before it started.
fn as_current_call<R>(
    worker: &WorkerProc,
    task: &str,
    f: impl FnOnce() -> R,
) -> std::result::Result<R, UserError> {
    let state = crate::core::node::current_task().and_then(|c| c.state);
    if let Some(state) = &state
        && !state.set_running_pid(Some(worker.shared.pid))
    {
        return Err(UserError::msg(format!("task {task} was cancelled")));
    }
    let r = f();
    if let Some(state) = &state {
        state.set_running_pid(None);
    }
    Ok(r)
}

/// An instance of a registered class in a worker process of its own (e.g. a callable class
/// in an actor-pool `map_batches`), called directly from the thread that owns it. Dropping
/// it ends the process.
pub struct ForeignInstance {
    worker: WorkerProc,
    class: FunctionId,
    name: String,
}

impl std::fmt::Debug for ForeignInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ForeignInstance({}, pid {})",
            self.name, self.worker.shared.pid
        )
    }
}

impl ForeignInstance {
    /// Starts a worker and constructs the class there with `args` (task convention).
    pub fn new(class: FunctionId, name: &str, args: Vec<ForeignValue>) -> TaskResult<Self> {
        let node = current().map_err(|e| UserError::msg(e.to_string()))?;
        let worker = node
            .workers
            .spawn(&node, 1)
            .map_err(|e| UserError::msg(e.to_string()))?;
        let this = ForeignInstance {
            worker,
            class,
            name: name.to_string(),
        };
        this.run(&node, CallKind::ActorNew, args, 1)?;
        Ok(this)
    }

    /// Calls `method` on the instance.
    pub fn call(
        &self,
        method: &str,
        args: Vec<ForeignValue>,
        num_returns: u32,
    ) -> TaskResult<Vec<ForeignValue>> {
        let node = current().map_err(|e| UserError::msg(e.to_string()))?;
        self.run(
            &node,
            CallKind::ActorMethod(method.to_string()),
            args,
            num_returns,
        )
    }

    fn run(
        &self,
        node: &Arc<NodeInner>,
        kind: CallKind,
        args: Vec<ForeignValue>,
        num_returns: u32,
    ) -> TaskResult<Vec<ForeignValue>> {
        let (outcome, _later, (segs, _keep)) = self.worker.run_with(node, |arena| {
            let (wire, segs, keep) =
                direct_args(node, args, arena).map_err(|e| UserError::msg(e.to_string()))?;
            let call = Call {
                kind,
                name: self.name.clone(),
                function: self.class,
                function_bytes: None,
                args: wire,
                num_returns,
            };
            Ok((call, (segs, keep)))
        })?;
        values_of(node, outcome, num_returns, &segs)
    }
}

// ---------------------------------------------------------------------------------------------
// Actors
// ---------------------------------------------------------------------------------------------

/// A foreign actor's instance on the node: its worker process.
pub(crate) struct ActorProxy {
    /// Shared with the calls started on it (see [`ActorHandle::call_pipelined`]).
    worker: Arc<WorkerProc>,
    class: FunctionId,
}

/// The node's table of foreign actors (handles counted for the driver).
#[derive(Default)]
pub(crate) struct ForeignActors {
    actors: Mutex<HashMap<ActorId, ActorEntry>>,
}

impl ForeignActors {
    /// Drops every actor (at shutdown).
    pub(crate) fn clear(&self) {
        let all: Vec<ActorEntry> = self.actors.lock().drain().map(|(_, e)| e).collect();
        drop(all);
    }
}

struct ActorEntry {
    handle: ActorHandle<ActorProxy>,
    opts: ForeignActorOptions,
    /// Driver-side handles (and anchors); at 0 a non-detached actor stops.
    handles: Arc<AtomicUsize>,
}

impl ActorEntry {
    /// A new handle on the actor `id`, counted among its handles.
    fn new_handle(&self, id: ActorId) -> ForeignActor {
        self.handles.fetch_add(1, Ordering::Relaxed);
        ForeignActor {
            id,
            opts: self.opts.clone(),
            counted: Some(self.handles.clone()),
            anchor: None,
        }
    }
}

/// A front end's handle on a foreign actor.
#[derive(Debug)]
pub struct ForeignActor {
    id: ActorId,
    opts: ForeignActorOptions,
    counted: Option<Arc<AtomicUsize>>,
    /// In a worker, the anchor that keeps an actor this worker created alive while the
    /// worker holds it (the node releases it when the worker ends).
    anchor: Option<ForeignRef>,
}

impl ForeignActor {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// Its options.
    pub fn options(&self) -> &ForeignActorOptions {
        &self.opts
    }

    /// The id as bytes (to pickle a handle).
    pub fn id_bytes(&self) -> WireId {
        actor_wire(self.id)
    }

    /// A handle from pickled id bytes. In the driver it counts as a handle of a live actor
    /// (as one from [`get_actor`] does); in a worker it does not keep the actor alive (the
    /// handle's anchor does, see [`actor_anchor`]).
    pub fn from_id_bytes(b: &[u8], opts: ForeignActorOptions) -> Result<Self> {
        let id = ObjectId::from_bytes(b)
            .map(|o| ActorId(o.task))
            .ok_or_else(|| Error::InvalidArgument("a malformed actor id".into()))?;
        if client().is_none()
            && let Some(handle) = current()?
                .foreign_actors
                .actors
                .lock()
                .get(&id)
                .map(|e| e.new_handle(id))
        {
            return Ok(handle);
        }
        Ok(ForeignActor {
            id,
            opts,
            counted: None,
            anchor: None,
        })
    }
}

/// An anchor of `actor`: a new object that holds a handle on the actor for as long as the
/// object lives. A pickled actor handle carries one as a nested ref, so the actor outlives
/// the handles it was sent as (in a pending task's arguments, inside a stored value, in a
/// worker). `None` when the actor is gone.
pub fn actor_anchor(actor: &ForeignActor) -> Result<Option<ForeignRef>> {
    if let Some(c) = client() {
        return match c.request(Request::ActorAnchor {
            actor: actor_wire(actor.id),
        })? {
            Reply::Refs(ids) => Ok(adopt_all(&ids)?.pop()),
            other => Err(unexpected(&other)),
        };
    }
    Ok(local_actor_anchor(actor.id)?.map(ForeignRef::from_raw))
}

fn local_actor_anchor(actor: ActorId) -> Result<Option<RawRef>> {
    let node = current()?;
    let Some(handle) = node
        .foreign_actors
        .actors
        .lock()
        .get(&actor)
        .map(|e| e.new_handle(actor))
    else {
        return Ok(None);
    };
    anchor_holding(&node, handle).map(Some)
}

/// A new object that holds `handle` (a counted one) until it is freed.
fn anchor_holding(node: &NodeInner, handle: ForeignActor) -> Result<RawRef> {
    let anchor = local_put(PutValue {
        data: ForeignValue::Pickle(Bytes::new()),
        nested: Vec::new(),
    })?;
    node.store.attach(anchor.id(), Box::new(handle));
    Ok(anchor)
}

impl Clone for ForeignActor {
    fn clone(&self) -> Self {
        if let Some(c) = &self.counted {
            c.fetch_add(1, Ordering::Relaxed);
        }
        ForeignActor {
            id: self.id,
            opts: self.opts.clone(),
            counted: self.counted.clone(),
            anchor: self.anchor.clone(),
        }
    }
}

impl Drop for ForeignActor {
    fn drop(&mut self) {
        let Some(c) = &self.counted else { return };
        if c.fetch_sub(1, Ordering::AcqRel) == 1
            && !self.opts.detached
            && let Ok(node) = current()
        {
            // The last driver handle: let the actor finish its queued calls and stop.
            node.foreign_actors.actors.lock().remove(&self.id);
        }
    }
}

fn actor_wire(id: ActorId) -> WireId {
    ObjectId {
        task: id.0,
        index: 0,
    }
    .to_bytes()
}

/// Creates an actor of the registered class `class` in a worker process of its own.
pub fn create_actor(
    class: FunctionId,
    args: ForeignArgs,
    opts: ForeignActorOptions,
) -> Result<ForeignActor> {
    if let Some(c) = client() {
        let req = Request::CreateActor {
            class,
            class_bytes: c.first_send(class)?,
            args,
            opts: opts.clone(),
        };
        return match c.request(req)? {
            Reply::Actor { id, opts, anchor } => {
                let mut actor = ForeignActor::from_id_bytes(&id, opts)?;
                if let Some(a) = anchor {
                    actor.anchor = adopt_all(&[a])?.pop();
                }
                Ok(actor)
            }
            other => Err(unexpected(&other)),
        };
    }
    let (id, handles) = local_create_actor(class, args, opts.clone())?;
    Ok(ForeignActor {
        id,
        opts,
        counted: Some(handles),
        anchor: None,
    })
}

fn local_create_actor(
    class: FunctionId,
    args: ForeignArgs,
    opts: ForeignActorOptions,
) -> Result<(ActorId, Arc<AtomicUsize>)> {
    let node = current()?;
    function_bytes(class)?;
    // The constructor's arguments are kept for restarts.
    let refs = args.hold()?;
    let concurrency = opts.max_concurrency.max(1);
    let class_name = opts.class_name.clone();
    let held = (args.clone(), refs);
    let factory = move || -> TaskResult<ActorProxy> {
        let node = current().map_err(|e| UserError::msg(e.to_string()))?;
        let worker = node
            .workers
            .spawn(&node, concurrency)
            .map_err(|e| UserError::msg(e.to_string()))?;
        let (args, _keep) = &held;
        let call = Call {
            kind: CallKind::ActorNew,
            name: format!("{class_name}.__init__"),
            function: class,
            function_bytes: None,
            args: resolve_args(&node, args)
                .map_err(|e| UserError::msg(e.to_string()))?
                .0,
            num_returns: 1,
        };
        match worker.run(&node, call)?.0 {
            CallOutcome::Ok(_) => Ok(ActorProxy {
                worker: Arc::new(worker),
                class,
            }),
            CallOutcome::Err { message, .. } => Err(UserError::msg(format!(
                "the constructor of {class_name} raised:\n{message}"
            ))),
        }
    };
    let core_opts = ActorOptions {
        name: opts.name.clone(),
        max_concurrency: concurrency as usize,
        max_restarts: opts.max_restarts,
        max_task_retries: opts.max_task_retries,
        task: opts.to_core()?,
        detached: opts.detached,
    };
    let handle = try_actor(factory).options(core_opts).spawn()?;
    let id = handle.id();
    let handles = Arc::new(AtomicUsize::new(1));
    node.foreign_actors.actors.lock().insert(
        id,
        ActorEntry {
            handle,
            opts,
            handles: handles.clone(),
        },
    );
    Ok((id, handles))
}

/// Resolves an actor call's arguments (waiting for ref arguments) into wire form.
fn resolve_args(node: &Arc<NodeInner>, args: &ForeignArgs) -> Result<(Vec<WireData>, ArgSegments)> {
    let refs = ids_from_wire(&args.refs)?;
    let typed: Vec<ObjectRef<ForeignObject>> = refs
        .iter()
        .map(|id| typed_ref(node, *id))
        .collect::<Result<_>>()?;
    let values = crate::get_all(&typed, None)?;
    let mut out = vec![WireData::Pickle(args.structure.clone())];
    let mut segs = ArgSegments(vec![None]);
    for (v, id) in values.into_iter().zip(&refs) {
        out.push(wire_data(node, &v.data, Some(*id), &mut segs)?);
    }
    Ok((out, segs))
}

/// Calls `method` on the actor; returns a ref to its result.
pub fn call_actor(
    actor: &ForeignActor,
    method: &str,
    args: ForeignArgs,
    num_returns: u32,
) -> Result<Vec<ForeignRef>> {
    if let Some(c) = client() {
        let req = Request::CallActor {
            actor: actor_wire(actor.id),
            method: method.to_string(),
            args,
            num_returns,
        };
        return match c.request(req)? {
            Reply::Refs(ids) => adopt_all(&ids),
            other => Err(unexpected(&other)),
        };
    }
    local_call_actor(actor.id, method, args, num_returns)
        .map(|v| v.into_iter().map(ForeignRef::from_raw).collect())
}

fn local_call_actor(
    actor: ActorId,
    method: &str,
    args: ForeignArgs,
    num_returns: u32,
) -> Result<Vec<RawRef>> {
    let node = current()?;
    let (handle, one_at_a_time) = node
        .foreign_actors
        .actors
        .lock()
        .get(&actor)
        .map(|e| (e.handle.clone(), e.opts.max_concurrency <= 1))
        .ok_or_else(|| Error::ActorDied {
            actor: actor.to_string(),
            reason: "it was killed, or all its handles were dropped".into(),
        })?;
    // Keep the argument refs alive until the call runs.
    let keep = Arc::new(args.hold()?);
    let method = method.to_string();
    let node_of = || current().map_err(|e| UserError::msg(e.to_string()));
    let refs = handle.call_pipelined(num_returns as usize, move |proxy: &ActorProxy| {
        let keep = keep.clone();
        let node = node_of()?;
        let (wire, segs) = resolve_args(&node, &args).map_err(|e| UserError::msg(e.to_string()))?;
        let call = Call {
            kind: CallKind::ActorMethod(method.clone()),
            name: method.clone(),
            function: proxy.class,
            function_bytes: None,
            args: wire,
            num_returns,
        };
        let worker = proxy.worker.clone();
        // One at a time: sent now, ahead of the calls before it finishing (the worker runs
        // them in order); else run on a free channel when finished.
        let sent = if one_at_a_time {
            let name = call.name.clone();
            worker.send(call)?;
            Err(name)
        } else {
            Ok(call)
        };
        Ok(move || {
            let _keep = keep;
            let (outcome, later) = match sent {
                Err(name) => worker.receive(&node, &name)?,
                Ok(call) => worker.run(&node, call)?,
            };
            let mut objects: Vec<ForeignObject> =
                outputs(&node, outcome, num_returns, false, &segs)?
                    .into_iter()
                    .map(|(data, nested)| ForeignObject {
                        data,
                        nested,
                        hold: None,
                    })
                    .collect();
            if let Some(last) = objects.last_mut() {
                last.hold = Some(later);
            }
            Ok(Multi(objects))
        })
    })?;
    Ok(refs.into_iter().map(|r| r.raw().clone()).collect())
}

/// Kills the actor (`no_restart = false` lets it restart if it has restarts left).
pub fn kill_actor(actor: &ForeignActor, no_restart: bool) -> Result<()> {
    if let Some(c) = client() {
        let req = Request::KillActor {
            actor: actor_wire(actor.id),
            no_restart,
        };
        return c.request(req).map(|_| ());
    }
    local_kill(actor.id, no_restart)
}

fn local_kill(actor: ActorId, no_restart: bool) -> Result<()> {
    let node = current()?;
    let mut table = node.foreign_actors.actors.lock();
    let Some(entry) = table.get(&actor) else {
        return Ok(());
    };
    if no_restart {
        entry.handle.kill();
        table.remove(&actor);
    } else {
        // Kill the process: the actor restarts per max_restarts.
        if let Some(pid) = entry.handle.peek(|p| p.worker.shared.pid) {
            // SAFETY: kill(2) on the pid of the actor's live worker process.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
    Ok(())
}

/// Ends the actor whose method calls this (from its worker process): it is not restarted,
/// and its queued and later calls fail with `ActorDied`. The worker exits after it.
pub fn exit_actor() -> Result<()> {
    match client() {
        Some(c) => c.request(Request::ExitActor).map(|_| ()),
        None => Err(Error::InvalidArgument(
            "exit_actor is called from an actor's own method".into(),
        )),
    }
}

/// The live actor named `name`.
pub fn get_actor(name: &str) -> Result<ForeignActor> {
    if let Some(c) = client() {
        return match c.request(Request::GetActor {
            name: name.to_string(),
        })? {
            Reply::Actor { id, opts, .. } => ForeignActor::from_id_bytes(&id, opts),
            other => Err(unexpected(&other)),
        };
    }
    let (id, opts, handles) = local_get_actor(name)?;
    handles.fetch_add(1, Ordering::Relaxed);
    Ok(ForeignActor {
        id,
        opts,
        counted: Some(handles),
        anchor: None,
    })
}

fn local_get_actor(name: &str) -> Result<(ActorId, ForeignActorOptions, Arc<AtomicUsize>)> {
    let node = current()?;
    let table = node.foreign_actors.actors.lock();
    table
        .iter()
        .find(|(_, e)| e.opts.name.as_deref() == Some(name) && e.handle.is_alive())
        .map(|(id, e)| (*id, e.opts.clone(), e.handles.clone()))
        .ok_or_else(|| Error::NotFound(format!("no live actor named {name:?}")))
}

/// Whether the actor is alive, and how often it restarted.
pub fn actor_state(actor: &ForeignActor) -> Result<(bool, i32)> {
    if let Some(c) = client() {
        return match c.request(Request::ActorState {
            actor: actor_wire(actor.id),
        })? {
            Reply::ActorState { alive, restarts } => Ok((alive, restarts)),
            other => Err(unexpected(&other)),
        };
    }
    local_actor_state(actor.id)
}

fn local_actor_state(actor: ActorId) -> Result<(bool, i32)> {
    let node = current()?;
    Ok(node
        .foreign_actors
        .actors
        .lock()
        .get(&actor)
        .map_or((false, 0), |e| {
            (e.handle.is_alive(), e.handle.num_restarts())
        }))
}

/// Cancels the task producing `r`.
pub fn cancel(r: &ForeignRef, force: bool, recursive: bool) -> Result<()> {
    if let Some(c) = client() {
        return c
            .request(Request::Cancel {
                id: r.id.to_bytes(),
                force,
                recursive,
            })
            .map(|_| ());
    }
    local_cancel(r.id, force, recursive)
}

fn local_cancel(id: ObjectId, force: bool, recursive: bool) -> Result<()> {
    crate::cancel_task(id.task, crate::CancelOptions { force, recursive })
}

/// The cluster's resources (`available`: those free now), by name.
pub fn resources(available: bool) -> Result<Vec<(String, f64)>> {
    if let Some(c) = client() {
        return match c.request(Request::Resources { available })? {
            Reply::Resources(r) => Ok(r),
            other => Err(unexpected(&other)),
        };
    }
    local_resources(available)
}

/// The ids (hex) of the node this process belongs to and of its job.
pub fn node_and_job() -> Result<(String, String)> {
    if client().is_some() {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                Error::InvalidArgument(format!("a worker process started without {name}"))
            })
        };
        return Ok((var("VOLLEY_NODE_ID")?, var("VOLLEY_JOB_ID")?));
    }
    let node = current()?;
    Ok((node.id.to_string(), node.job.to_string()))
}

fn local_resources(available: bool) -> Result<Vec<(String, f64)>> {
    let set = if available {
        crate::available_resources()?
    } else {
        crate::cluster_resources()?
    };
    Ok(set.iter().map(|(n, v)| (n.to_string(), v)).collect())
}

fn typed_ref(node: &NodeInner, id: ObjectId) -> Result<ObjectRef<ForeignObject>> {
    if !node.store.add_ref(id) {
        return Err(Error::ObjectLost {
            object: id.to_string(),
            reason: "it was freed".into(),
        });
    }
    Ok(ObjectRef::from_raw(RawRef::adopt(node, id)))
}

// ---------------------------------------------------------------------------------------------
// Requests from workers, served by the node
// ---------------------------------------------------------------------------------------------

/// A worker's request to its node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// [`submit_task`].
    Submit {
        /// The function.
        function: FunctionId,
        /// Its bytes, the first time this worker submits it.
        function_bytes: Option<Vec<u8>>,
        /// Arguments.
        args: ForeignArgs,
        /// Options.
        opts: ForeignTaskOptions,
    },
    /// [`put`].
    Put(WireValue),
    /// [`get`].
    Get {
        /// The objects.
        ids: Vec<WireId>,
        /// Bound of the wait.
        timeout_ms: Option<u64>,
    },
    /// [`wait`].
    Wait {
        /// The objects.
        ids: Vec<WireId>,
        /// How many to wait for.
        num_returns: u32,
        /// Bound of the wait.
        timeout_ms: Option<u64>,
    },
    /// [`create_actor`].
    CreateActor {
        /// The class.
        class: FunctionId,
        /// Its bytes, the first time.
        class_bytes: Option<Vec<u8>>,
        /// Constructor arguments.
        args: ForeignArgs,
        /// Options.
        opts: ForeignActorOptions,
    },
    /// [`call_actor`].
    CallActor {
        /// The actor.
        actor: WireId,
        /// The method.
        method: String,
        /// Arguments.
        args: ForeignArgs,
        /// Outputs.
        num_returns: u32,
    },
    /// [`kill_actor`].
    KillActor {
        /// The actor.
        actor: WireId,
        /// No restart.
        no_restart: bool,
    },
    /// [`get_actor`].
    GetActor {
        /// Its name.
        name: String,
    },
    /// [`actor_state`].
    ActorState {
        /// The actor.
        actor: WireId,
    },
    /// [`exit_actor`].
    ExitActor,
    /// [`worker_emit`]: an output of the running generator call.
    Emit(WireValue),
    /// [`actor_anchor`].
    ActorAnchor {
        /// The actor.
        actor: WireId,
    },
    /// [`cancel`].
    Cancel {
        /// An output of the task.
        id: WireId,
        /// Ray's `force`.
        force: bool,
        /// Also its children.
        recursive: bool,
    },
    /// [`resources`].
    Resources {
        /// Free now, or all.
        available: bool,
    },
}

/// The node's answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// New refs (counted for the worker).
    Refs(Vec<WireId>),
    /// Values.
    Values(Vec<WireData>),
    /// Which objects are ready.
    Ready(Vec<bool>),
    /// An actor.
    Actor {
        /// Its id.
        id: WireId,
        /// Its options.
        opts: ForeignActorOptions,
        /// For an actor the worker created: the anchor it holds for it.
        anchor: Option<WireId>,
    },
    /// An actor's state.
    ActorState {
        /// Alive.
        alive: bool,
        /// Restarts so far.
        restarts: i32,
    },
    /// Resources by name.
    Resources(Vec<(String, f64)>),
    /// Done.
    Unit,
}

fn unexpected(r: &Reply) -> Error {
    Error::Internal(format!("unexpected reply from the node: {r:?}"))
}

fn wire_actor(b: &WireId) -> Result<ActorId> {
    ObjectId::from_bytes(b)
        .map(|o| ActorId(o.task))
        .ok_or_else(|| Error::InvalidArgument("a malformed actor id".into()))
}

fn hand_out(shared: &WorkerShared, refs: Vec<RawRef>) -> Reply {
    let ids = to_wire_ids(refs.iter().map(RawRef::id));
    for r in refs {
        shared.hold(r);
    }
    Reply::Refs(ids)
}

/// Serves a worker's request on the node.
pub(crate) fn serve_request(
    node: &Arc<NodeInner>,
    shared: &WorkerShared,
    req: Request,
) -> Result<Reply> {
    let timeout = |ms: Option<u64>| ms.map(Duration::from_millis);
    Ok(match req {
        Request::Submit {
            function,
            function_bytes,
            args,
            opts,
        } => {
            if let Some(b) = function_bytes {
                register_function(b);
            }
            hand_out(shared, local_submit(function, args, opts)?)
        }
        Request::Put(v) => {
            let value = PutValue {
                data: ForeignValue::from_wire(v.data, Some(node), &ArgSegments::default())?,
                nested: ids_from_wire(&v.nested)?,
            };
            hand_out(shared, vec![local_put(value)?])
        }
        Request::Get { ids, timeout_ms } => {
            let ids = ids_from_wire(&ids)?;
            let refs: Vec<ObjectRef<ForeignObject>> = ids
                .iter()
                .map(|id| typed_ref(node, *id))
                .collect::<Result<_>>()?;
            let values = crate::get_all(&refs, timeout(timeout_ms))?;
            let mut out = Vec::with_capacity(values.len());
            // The worker maps these itself: they are no argument of its call.
            let mut segs = ArgSegments::default();
            for (v, id) in values.into_iter().zip(ids) {
                out.push(wire_data(node, &v.data, Some(id), &mut segs)?);
            }
            Reply::Values(out)
        }
        Request::Wait {
            ids,
            num_returns,
            timeout_ms,
        } => Reply::Ready(local_wait(
            &ids_from_wire(&ids)?,
            num_returns as usize,
            timeout(timeout_ms),
        )?),
        Request::CreateActor {
            class,
            class_bytes,
            args,
            opts,
        } => {
            if let Some(b) = class_bytes {
                register_function(b);
            }
            let (id, handles) = local_create_actor(class, args, opts.clone())?;
            // The creating worker's handle is an anchor it holds: the actor stops when the
            // worker drops it, or ends.
            let creator = ForeignActor {
                id,
                opts: opts.clone(),
                counted: Some(handles),
                anchor: None,
            };
            let anchor = anchor_holding(node, creator)?;
            let anchor_id = anchor.id().to_bytes();
            shared.hold(anchor);
            Reply::Actor {
                id: actor_wire(id),
                opts,
                anchor: Some(anchor_id),
            }
        }
        Request::CallActor {
            actor,
            method,
            args,
            num_returns,
        } => hand_out(
            shared,
            local_call_actor(wire_actor(&actor)?, &method, args, num_returns)?,
        ),
        Request::KillActor { actor, no_restart } => {
            local_kill(wire_actor(&actor)?, no_restart)?;
            Reply::Unit
        }
        Request::Emit(v) => {
            emit_output(node, None, v)?;
            Reply::Unit
        }
        Request::ExitActor => {
            let actor = crate::core::node::current_task()
                .and_then(|c| c.actor)
                .ok_or_else(|| Error::InvalidArgument("exit_actor outside an actor".into()))?;
            local_kill(actor, true)?;
            Reply::Unit
        }
        Request::GetActor { name } => {
            let (id, opts, _) = local_get_actor(&name)?;
            Reply::Actor {
                id: actor_wire(id),
                opts,
                anchor: None,
            }
        }
        Request::ActorState { actor } => {
            let (alive, restarts) = local_actor_state(wire_actor(&actor)?)?;
            Reply::ActorState { alive, restarts }
        }
        Request::ActorAnchor { actor } => hand_out(
            shared,
            local_actor_anchor(wire_actor(&actor)?)?
                .into_iter()
                .collect(),
        ),
        Request::Cancel {
            id,
            force,
            recursive,
        } => {
            let id = ObjectId::from_bytes(&id)
                .ok_or_else(|| Error::InvalidArgument("a malformed object id".into()))?;
            local_cancel(id, force, recursive)?;
            Reply::Unit
        }
        Request::Resources { available } => Reply::Resources(local_resources(available)?),
    })
}

fn adopt_all(ids: &[WireId]) -> Result<Vec<ForeignRef>> {
    Ok(ids_from_wire(ids)?
        .into_iter()
        .map(ForeignRef::adopt)
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The worker side
// ---------------------------------------------------------------------------------------------

/// A worker process's connection to its node.
struct WorkerClient {
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
    handoff_prefix: Option<String>,
    handoff_seq: AtomicU64,
}

static CLIENT: OnceLock<WorkerClient> = OnceLock::new();

thread_local! {
    /// The call channel whose call runs on this thread.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

fn client() -> Option<&'static WorkerClient> {
    CLIENT.get()
}

/// True in a worker process (after [`worker_connect`]).
pub fn is_worker() -> bool {
    client().is_some()
}

impl WorkerClient {
    /// Writes `bufs` (concatenated) into a new sealed segment for the node to adopt; its
    /// path.
    fn hand_off(&self, bufs: &[Buffer]) -> Result<String> {
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
                let map = crate::core::shm::map_file(std::path::Path::new(path))
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
        handoff_seq: AtomicU64::new(0),
    });
    Ok(channels as usize)
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

//! Foreign functions, actors and values: the core API for front ends whose code the engine
//! cannot run itself (the Python package). Functions and classes are opaque bytes (pickled)
//! kept in a function table; their tasks and actor calls run in worker processes
//! ([`crate::core::worker`]); values are pickled bytes or Arrow blocks.
//!
//! ```text
//!  front end (PyO3)  ──►  put / get / submit_task / ... (this module: the facade)
//!                              │  api(): the CoreApi of the place this process stands
//!              ┌───────────────┴────────────────┐
//!   driver: NodeApi (node_api.rs)      worker process: WorkerClient (client.rs)
//!     the in-process node                 a Request over the Unix socket ──┐
//!              ▲                                                            │
//!              └──────────── serve_request (serve.rs) on the node ◄────────┘
//! ```
//!
//! Each operation of [`CoreApi`] is written once per implementation: [`NodeApi`] runs it on
//! the in-process node; [`WorkerClient`] sends it as a [`Request`] to its node, whose
//! `serve_request` dispatches to the node's [`NodeApi`]. A driver connected to a remote
//! node is a third implementation. Work is data: a task is a [`ForeignTask`] (function id,
//! arguments, options), serializable, so it can be shipped to the node that runs it.
//!
//! Files: `value.rs` (values, refs, arguments and their wire forms), `node_api.rs` (the
//! node's implementation: objects and tasks), `actors.rs` (the node's actor table and
//! handles), `direct.rs` (calls the engine itself makes: `map_batches` UDFs), `running.rs`
//! (tasks' calls in flight, parked off any thread), `serve.rs` (requests from workers),
//! `client.rs` (the worker process's side).

mod actors;
mod client;
mod direct;
mod lent;
mod node_api;
mod running;
mod serve;
mod value;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::core::ids::{ActorId, ObjectId};
use crate::core::node::current;
use crate::error::{Error, Result};

pub use crate::core::options::{ForeignActorOptions, ForeignTaskOptions};
pub use crate::core::owners::ObjectCopies;
pub use actors::ForeignActor;
pub(crate) use actors::ForeignActors;
pub use client::{
    WorkerCall, WorkerClient, WorkerOutcome, is_worker, worker_connect, worker_emit, worker_finish,
    worker_next_call,
};
pub use direct::{ForeignInstance, call_function};
pub(crate) use lent::LentTable;
pub use lent::{LentBatches, LentValue};
pub use node_api::{ForeignGenerator, NodeApi};
pub(crate) use running::dispatch;
pub(crate) use serve::serve_request;
pub use serve::{Reply, Request};
pub use value::{ForeignArgs, ForeignRef, ForeignValue, PutValue};

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

/// A foreign task as data: which function, its arguments and options. It is what a worker
/// sends its node to submit a task, and what a node will send another to run one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignTask {
    /// The function, in the function table.
    pub function: FunctionId,
    /// Its arguments.
    pub args: ForeignArgs,
    /// Its options (Ray's names).
    pub opts: ForeignTaskOptions,
}

/// The operations a front end needs, written once per place a front end can stand: the
/// in-process node ([`NodeApi`]) and a worker process talking to its node
/// ([`WorkerClient`]). Refs returned are counted for the caller: dropping the
/// [`ForeignRef`] releases them.
pub trait CoreApi {
    /// Stores a value.
    fn put(&self, value: PutValue) -> Result<ForeignRef>;
    /// Waits for the objects and returns their values; `timeout` bounds the whole wait.
    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<ForeignValue>>;
    /// Waits until `num_returns` of the objects are ready or `timeout` passes; which are.
    fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>>;
    /// A new reference to an object another reference keeps alive now (e.g. one just
    /// deserialized from a value).
    fn borrow(&self, id: ObjectId) -> Result<ForeignRef>;
    /// Submits a task (not a generator task): refs to its outputs.
    fn submit_task(&self, task: ForeignTask) -> Result<Vec<ForeignRef>>;
    /// Submits a generator task (`opts.streaming`): its outputs' refs as it yields them.
    fn submit_streaming_task(&self, task: ForeignTask) -> Result<ForeignGenerator>;
    /// Cancels the task producing the object `id`.
    fn cancel(&self, id: ObjectId, force: bool, recursive: bool) -> Result<()>;
    /// Creates an actor of the registered class `class` in a worker process of its own.
    fn create_actor(
        &self,
        class: FunctionId,
        args: ForeignArgs,
        opts: ForeignActorOptions,
    ) -> Result<ForeignActor>;
    /// Calls `method` on the actor; refs to its results.
    fn call_actor(
        &self,
        actor: ActorId,
        method: &str,
        args: ForeignArgs,
        num_returns: u32,
    ) -> Result<Vec<ForeignRef>>;
    /// Kills the actor (`no_restart = false` lets it restart if it has restarts left).
    fn kill_actor(&self, actor: ActorId, no_restart: bool) -> Result<()>;
    /// Ends the actor whose method calls this: no restart; the worker exits after it.
    fn exit_actor(&self) -> Result<()>;
    /// The live actor named `name`.
    fn get_actor(&self, name: &str) -> Result<ForeignActor>;
    /// Whether the actor is alive, and how often it restarted.
    fn actor_state(&self, actor: ActorId) -> Result<(bool, i32)>;
    /// An anchor of the actor (see [`actor_anchor`]); `None` when it is gone.
    fn actor_anchor(&self, actor: ActorId) -> Result<Option<ForeignRef>>;
    /// The cluster's resources (`available`: those free now), by name.
    fn resources(&self, available: bool) -> Result<Vec<(String, f64)>>;
    /// The ids (hex) of the node this process belongs to and of its job.
    fn node_and_job(&self) -> Result<(String, String)>;
    /// Where the objects' copies are, in order (`None`: unknown to their owner).
    fn copies(&self, ids: &[ObjectId]) -> Result<Vec<Option<ObjectCopies>>>;
    /// The next batch of the dataset iterator lent under `anchor` ([`lend_batches`]), as an
    /// object; `None` once it is exhausted.
    fn next_lent(&self, anchor: ObjectId) -> Result<Option<ForeignRef>>;
    /// Runs a dataset operation on the node's dataset service ([`serve_datasets`]): how a
    /// front end outside the node builds and runs datasets.
    fn run_dataset(&self, call: DatasetCall) -> Result<DatasetReply>;
}

/// A dataset operation for the node's dataset service. The core carries it without
/// reading it: the data layer encodes `op` and decodes it on the node.
#[derive(Debug, Clone)]
pub struct DatasetCall {
    /// The operation, as the data layer encoded it.
    pub op: Vec<u8>,
    /// Objects it names (anchors of lent datasets, stored tables), held by the caller.
    pub refs: Vec<ObjectId>,
    /// Functions it names (user functions of `map_batches`): the node must know them.
    pub functions: Vec<FunctionId>,
}

/// The dataset service's answer.
#[derive(Debug)]
pub struct DatasetReply {
    /// The outcome, as the data layer encoded it.
    pub data: Vec<u8>,
    /// New objects for the caller (anchors of lent datasets and iterators, batches).
    pub refs: Vec<ForeignRef>,
}

/// The node's dataset service: runs an encoded operation on the node, with the objects it
/// names. The data layer provides it ([`serve_datasets`]); the core knows nothing of data.
pub type DatasetService = fn(op: &[u8], refs: &[ObjectId]) -> Result<DatasetReply>;

static DATASET_SERVICE: std::sync::OnceLock<DatasetService> = std::sync::OnceLock::new();

/// Installs the dataset service of this process's nodes (the first call wins; the data
/// layer's is the only one).
pub fn serve_datasets(service: DatasetService) {
    let _ = DATASET_SERVICE.set(service);
}

fn dataset_service() -> Result<DatasetService> {
    DATASET_SERVICE.get().copied().ok_or_else(|| {
        Error::Internal("this node runs no dataset service (none was installed)".into())
    })
}

/// The one inline threshold (the node's `max_inline_object_size`): values up to this many
/// bytes travel inline in messages, larger ones through shared memory. Front ends decide
/// with it too (Python frames small out-of-band buffers beside their pickle).
pub fn max_inline_object_size() -> Result<usize> {
    match client::client() {
        Some(c) => Ok(c.inline_max),
        None => Ok(current()?.config.max_inline_object_size as usize),
    }
}

/// Runs `f` on the core API of this process: its worker client in a worker process, else
/// the in-process node.
fn api<R>(f: impl FnOnce(&dyn CoreApi) -> Result<R>) -> Result<R> {
    match client::client() {
        Some(c) => f(c),
        None => f(&NodeApi::new(current()?)),
    }
}

/// Stores a value.
pub fn put(value: PutValue) -> Result<ForeignRef> {
    api(|a| a.put(value))
}

/// Waits for the objects and returns their values; `timeout` bounds the whole wait.
pub fn get(refs: &[ForeignRef], timeout: Option<Duration>) -> Result<Vec<ForeignValue>> {
    let ids: Vec<ObjectId> = refs.iter().map(ForeignRef::id).collect();
    api(|a| a.get(&ids, timeout))
}

/// Waits until `num_returns` of the objects are ready or `timeout` passes; which are ready.
pub fn wait(
    refs: &[ForeignRef],
    num_returns: usize,
    timeout: Option<Duration>,
) -> Result<Vec<bool>> {
    let ids: Vec<ObjectId> = refs.iter().map(ForeignRef::id).collect();
    api(|a| a.wait(&ids, num_returns, timeout))
}

/// Submits a task running the registered function `function` in a worker process.
pub fn submit_task(
    function: FunctionId,
    args: ForeignArgs,
    opts: ForeignTaskOptions,
) -> Result<Vec<ForeignRef>> {
    api(|a| {
        a.submit_task(ForeignTask {
            function,
            args,
            opts,
        })
    })
}

/// Submits a generator task (`opts.streaming`): the function's outputs stream back as it
/// yields them.
pub fn submit_streaming_task(
    function: FunctionId,
    args: ForeignArgs,
    opts: ForeignTaskOptions,
) -> Result<ForeignGenerator> {
    api(|a| {
        a.submit_streaming_task(ForeignTask {
            function,
            args,
            opts,
        })
    })
}

/// Cancels the task producing `r`.
pub fn cancel(r: &ForeignRef, force: bool, recursive: bool) -> Result<()> {
    api(|a| a.cancel(r.id(), force, recursive))
}

/// Creates an actor of the registered class `class` in a worker process of its own.
pub fn create_actor(
    class: FunctionId,
    args: ForeignArgs,
    opts: ForeignActorOptions,
) -> Result<ForeignActor> {
    api(|a| a.create_actor(class, args, opts))
}

/// Calls `method` on the actor; returns refs to its results.
pub fn call_actor(
    actor: &ForeignActor,
    method: &str,
    args: ForeignArgs,
    num_returns: u32,
) -> Result<Vec<ForeignRef>> {
    api(|a| a.call_actor(actor.id(), method, args, num_returns))
}

/// Kills the actor (`no_restart = false` lets it restart if it has restarts left).
pub fn kill_actor(actor: &ForeignActor, no_restart: bool) -> Result<()> {
    api(|a| a.kill_actor(actor.id(), no_restart))
}

/// Ends the actor whose method calls this (from its worker process): it is not restarted,
/// and its queued and later calls fail with `ActorDied`. The worker exits after it.
pub fn exit_actor() -> Result<()> {
    api(|a| a.exit_actor())
}

/// The live actor named `name`.
pub fn get_actor(name: &str) -> Result<ForeignActor> {
    api(|a| a.get_actor(name))
}

/// Whether the actor is alive, and how often it restarted.
pub fn actor_state(actor: &ForeignActor) -> Result<(bool, i32)> {
    api(|a| a.actor_state(actor.id()))
}

/// An anchor of `actor`: a new object that holds a handle on the actor for as long as the
/// object lives. A pickled actor handle carries one as a nested ref, so the actor outlives
/// the handles it was sent as (in a pending task's arguments, inside a stored value, in a
/// worker). `None` when the actor is gone.
pub fn actor_anchor(actor: &ForeignActor) -> Result<Option<ForeignRef>> {
    api(|a| a.actor_anchor(actor.id()))
}

/// The cluster's resources (`available`: those free now), by name.
pub fn resources(available: bool) -> Result<Vec<(String, f64)>> {
    api(|a| a.resources(available))
}

/// Lends a stream of batches made in the driver, for a consumer in any process of the node
/// (see [`CoreApi::next_lent`]): the ref to its anchor, which keeps it while it lives.
pub fn lend_batches(batches: LentBatches) -> Result<ForeignRef> {
    node_side("lending a dataset iterator")?
        .lend(batches)
        .map(ForeignRef::from_raw)
}

/// The next batch of the iterator lent under `anchor`; `None` once it is exhausted.
pub fn next_lent(anchor: &ForeignRef) -> Result<Option<ForeignRef>> {
    api(|a| a.next_lent(anchor.id()))
}

/// Runs a dataset operation on this process's node (see [`CoreApi::run_dataset`]).
pub fn run_dataset(call: DatasetCall) -> Result<DatasetReply> {
    api(|a| a.run_dataset(call))
}

/// Keeps `value` in the node for front ends in any of its processes: the ref to its anchor,
/// which keeps it while it lives. On the node's process only (its dataset service, a
/// driver).
pub fn lend_value(value: LentValue) -> Result<ForeignRef> {
    node_side("lend_value")?
        .lend_value(value)
        .map(ForeignRef::from_raw)
}

/// The value lent under `anchor` ([`lend_value`]); on the node's process only.
pub fn lent_value(anchor: ObjectId) -> Result<LentValue> {
    node_side("lent_value")?.lent_value(anchor)
}

fn node_side(what: &str) -> Result<NodeApi> {
    if client::client().is_some() {
        return Err(Error::InvalidArgument(format!(
            "{what} runs where the node is, not in a worker process"
        )));
    }
    Ok(NodeApi::new(current()?))
}

/// The ids (hex) of the node this process belongs to and of its job.
pub fn node_and_job() -> Result<(String, String)> {
    api(|a| a.node_and_job())
}

/// Where the objects' copies are (Ray's `get_object_locations`), in order; `None` for an
/// object its owner knows nothing of (freed, failed).
pub fn object_copies(refs: &[ForeignRef]) -> Result<Vec<Option<ObjectCopies>>> {
    let ids: Vec<ObjectId> = refs.iter().map(ForeignRef::id).collect();
    api(|a| a.copies(&ids))
}

//! The core API on the in-process node: the driver's in local mode, and what the node runs
//! when it serves a worker's request.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::actors::{ActorEntry, ForeignActor, anchor_holding, call_actor, create_actor, kill};
use super::value::{ArgSegment, ArgSegments, ForeignObject, ids_from_wire};
use super::{
    CoreApi, DatasetCall, DatasetReply, ForeignActorOptions, ForeignArgs, ForeignRef, ForeignTask,
    ForeignValue, FunctionId, ObjectCopies, PutValue, function_bytes,
};
use crate::core::api::{ObjectRef, RawRef};
use crate::core::generator::ObjectRefGenerator;
use crate::core::ids::{ActorId, ObjectId};
use crate::core::node::{NodeInner, Submitted};
use crate::core::object::{BytesFormat, ObjectData};
use crate::core::task::{Arg, EmitSink, Func, Output};
use crate::core::worker::{CallOutcome, WireData, WireValue};
use crate::error::{Error, Result, TaskResult, UserError};

/// The core API of an in-process node.
pub struct NodeApi {
    pub(crate) node: Arc<NodeInner>,
}

impl std::fmt::Debug for NodeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeApi(node {})", self.node.id)
    }
}

impl NodeApi {
    pub(crate) fn new(node: Arc<NodeInner>) -> Self {
        NodeApi { node }
    }

    /// Stores a value; the node's reference to it.
    pub(super) fn put_raw(&self, value: PutValue) -> Result<RawRef> {
        // The stored value holds its nested refs (the store releases them with it).
        add_refs(&self.node, &value.nested).map_err(|id| Error::ObjectLost {
            object: id.to_string(),
            reason: "a ref inside the value was freed before the value was stored".into(),
        })?;
        crate::core::api::put_data(&self.node, value.data.into_data(), value.nested)
    }

    /// The objects' data, waiting at most `timeout` for all of them.
    pub(super) fn get_data(
        &self,
        ids: &[ObjectId],
        timeout: Option<Duration>,
    ) -> Result<Vec<ObjectData>> {
        let refs = typed_refs(&self.node, ids)?;
        Ok(crate::get_all(&refs, timeout)?
            .into_iter()
            .map(|o| o.data)
            .collect())
    }

    /// Submits a task; its outputs as the node tracks them.
    pub(super) fn submit(&self, task: ForeignTask) -> Result<Submitted> {
        let ForeignTask {
            function,
            args,
            opts,
        } = task;
        let node = &self.node;
        function_bytes(function)?;
        let nested = ids_from_wire(&args.nested)?;
        let refs = ids_from_wire(&args.refs)?;
        let task_opts = opts.to_core();
        // The nested refs are held for the task's life (released with its value argument,
        // or by `submit_task` when it refuses the task).
        add_refs(node, &nested).map_err(|id| lost_arg(id, &opts.name))?;
        let mut core_args = vec![Arg::Value {
            data: ObjectData::Bytes {
                format: BytesFormat::Pickle,
                data: Bytes::from(args.structure),
            },
            nested,
        }];
        core_args.extend(refs.iter().map(|id| Arg::Ref(*id)));
        node.submit_task(crate::core::task::TaskRequest {
            name: Arc::from(opts.name.as_str()),
            func: Func::Foreign(function),
            args: core_args,
            num_returns: opts.num_returns.max(1) as usize,
            streaming: opts.streaming.then_some(None),
            opts: task_opts,
        })
    }

    /// Runs `f` on the actor's entry in the node's table, if it is there.
    pub(super) fn actor_entry<R>(
        &self,
        actor: ActorId,
        f: impl FnOnce(&ActorEntry) -> R,
    ) -> Option<R> {
        self.node.foreign_actors.actors.lock().get(&actor).map(f)
    }

    /// The live actor named `name`: its id and options (no handle counted).
    pub(super) fn find_actor(&self, name: &str) -> Result<(ActorId, ForeignActorOptions)> {
        let table = self.node.foreign_actors.actors.lock();
        table
            .iter()
            .find(|(_, e)| e.opts.name.as_deref() == Some(name) && e.handle.is_alive())
            .map(|(id, e)| (*id, e.opts.clone()))
            .ok_or_else(|| Error::NotFound(format!("no live actor named {name:?}")))
    }

    /// A counted handle on the actor, if it is in the node's table.
    pub(super) fn counted_handle(&self, actor: ActorId) -> Option<ForeignActor> {
        self.actor_entry(actor, |e| e.new_handle(actor))
    }
}

impl CoreApi for NodeApi {
    fn put(&self, value: PutValue) -> Result<ForeignRef> {
        self.put_raw(value).map(ForeignRef::from_raw)
    }

    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<ForeignValue>> {
        self.get_data(ids, timeout)?
            .into_iter()
            .map(ForeignValue::from_data)
            .collect()
    }

    fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        let refs = typed_refs(&self.node, ids)?;
        let (ready, _) = crate::wait(&refs, num_returns, timeout)?;
        let ready: HashSet<ObjectId> = ready.iter().map(|r| r.id()).collect();
        Ok(ids.iter().map(|id| ready.contains(id)).collect())
    }

    fn borrow(&self, id: ObjectId) -> Result<ForeignRef> {
        if !self.node.store.add_ref(id) {
            return Err(self
                .node
                .missing(id, "it was freed before this reference to it was made"));
        }
        Ok(ForeignRef::from_raw(RawRef::adopt(&self.node, id)))
    }

    fn submit_task(&self, task: ForeignTask) -> Result<Vec<ForeignRef>> {
        if task.opts.streaming {
            return Err(Error::InvalidArgument(format!(
                "{}: a generator task is submitted with submit_streaming_task",
                task.opts.name
            )));
        }
        let ids = self.submit(task)?.fixed();
        Ok(ids
            .into_iter()
            .map(|id| ForeignRef::from_raw(RawRef::adopt(&self.node, id)))
            .collect())
    }

    fn submit_streaming_task(&self, task: ForeignTask) -> Result<ForeignGenerator> {
        let shared = self.submit(task)?.streaming()?;
        Ok(ForeignGenerator(ObjectRefGenerator::new(
            shared,
            self.node.clone(),
        )))
    }

    fn cancel(&self, id: ObjectId, force: bool, recursive: bool) -> Result<()> {
        self.node.cancel_task(id.task, recursive, force);
        Ok(())
    }

    fn create_actor(
        &self,
        class: FunctionId,
        args: ForeignArgs,
        opts: ForeignActorOptions,
    ) -> Result<ForeignActor> {
        create_actor(&self.node, class, args, opts)
    }

    fn call_actor(
        &self,
        actor: ActorId,
        method: &str,
        args: ForeignArgs,
        num_returns: u32,
    ) -> Result<Vec<ForeignRef>> {
        Ok(call_actor(self, actor, method, args, num_returns)?
            .into_iter()
            .map(ForeignRef::from_raw)
            .collect())
    }

    fn kill_actor(&self, actor: ActorId, no_restart: bool) -> Result<()> {
        kill(&self.node, actor, no_restart);
        Ok(())
    }

    fn exit_actor(&self) -> Result<()> {
        // Served for a worker: the actor whose call is running on this thread.
        let actor = crate::core::node::current_task()
            .and_then(|c| c.actor)
            .ok_or_else(|| {
                Error::InvalidArgument("exit_actor is called from an actor's own method".into())
            })?;
        kill(&self.node, actor, true);
        Ok(())
    }

    fn get_actor(&self, name: &str) -> Result<ForeignActor> {
        let (id, _) = self.find_actor(name)?;
        self.counted_handle(id)
            .ok_or_else(|| Error::NotFound(format!("no live actor named {name:?}")))
    }

    fn actor_state(&self, actor: ActorId) -> Result<(bool, i32)> {
        Ok(self
            .actor_entry(actor, |e| (e.handle.is_alive(), e.handle.num_restarts()))
            .unwrap_or((false, 0)))
    }

    fn actor_anchor(&self, actor: ActorId) -> Result<Option<ForeignRef>> {
        let Some(handle) = self.counted_handle(actor) else {
            return Ok(None);
        };
        Ok(Some(ForeignRef::from_raw(anchor_holding(self, handle)?)))
    }

    fn resources(&self, available: bool) -> Result<Vec<(String, f64)>> {
        let set = if available {
            self.node.sched.available()
        } else {
            self.node.sched.total()
        };
        Ok(set.iter().map(|(n, v)| (n.to_string(), v)).collect())
    }

    fn node_and_job(&self) -> Result<(String, String)> {
        Ok((self.node.id.to_string(), self.node.job.to_string()))
    }

    fn copies(&self, ids: &[ObjectId]) -> Result<Vec<Option<ObjectCopies>>> {
        let node = &self.node;
        Ok(ids
            .iter()
            .map(|id| node.owners.copies(*id, &node.store))
            .collect())
    }

    fn next_lent(&self, anchor: ObjectId) -> Result<Option<ForeignRef>> {
        self.next_lent_raw(anchor)
    }

    fn run_dataset(&self, call: DatasetCall) -> Result<DatasetReply> {
        for f in &call.functions {
            function_bytes(*f)?;
        }
        let service = super::dataset_service()?;
        // A pipeline run for a task waits for its own tasks' outputs with `get`, which hands
        // the caller's resources back to the node meanwhile.
        crate::core::node::enter(&self.node, || service(&call.op, &call.refs))
    }
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

/// Takes a reference on each of `ids`, all or none: the first that was already freed.
fn add_refs(node: &NodeInner, ids: &[ObjectId]) -> std::result::Result<(), ObjectId> {
    for (i, id) in ids.iter().enumerate() {
        if !node.store.add_ref(*id) {
            node.store.release_many(ids[..i].to_vec());
            return Err(*id);
        }
    }
    Ok(())
}

fn lost_arg(id: ObjectId, task: &str) -> Error {
    Error::ObjectLost {
        object: id.to_string(),
        reason: format!("argument of task {task} was freed"),
    }
}

/// Stores one output a generator task's worker emitted, as the next of the task's stream.
pub(super) fn emit_output(
    node: &NodeInner,
    emitter: Option<&dyn EmitSink>,
    v: WireValue,
) -> Result<()> {
    let emitter = emitter.ok_or_else(|| {
        Error::InvalidArgument("an output emitted by a call that is not a generator task".into())
    })?;
    let data = ForeignValue::from_wire(v.data, Some(node), &ArgSegments::default())?.into_data();
    let nested = ids_from_wire(&v.nested)?;
    // The stored output holds its nested refs (the store releases them with it).
    add_refs(node, &nested).map_err(|id| Error::ObjectLost {
        object: id.to_string(),
        reason: "a ref inside a generator's output was freed before it was stored".into(),
    })?;
    emitter
        .emit(data, nested.clone())
        .inspect_err(|_| node.store.release_many(nested))
}

/// The arguments as the worker gets them: the structure inline, each ref argument inline
/// when small, else as its shared-memory segment (mapped, not copied).
pub(super) fn wire_args(
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
pub(super) fn wire_data(
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
        ) if data.len() as u64 <= node.config.max_inline_object_size || id.is_none() => {
            WireData::Pickle(data.to_vec())
        }
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

pub(super) fn segment_wire(seg: &crate::core::shm::Segment) -> WireData {
    WireData::Segment {
        path: seg.path().to_string_lossy().into_owned(),
        len: seg.len() as u64,
    }
}

/// Turns a worker's outcome into outputs; `reference`: take a reference on each nested ref
/// (for task outputs, which the store adopts when it seals them).
pub(super) fn outputs(
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

/// New refs to the objects `ids`, which must be alive.
pub(super) fn typed_refs(
    node: &NodeInner,
    ids: &[ObjectId],
) -> Result<Vec<ObjectRef<ForeignObject>>> {
    ids.iter().map(|id| typed_ref(node, *id)).collect()
}

fn typed_ref(node: &NodeInner, id: ObjectId) -> Result<ObjectRef<ForeignObject>> {
    if !node.store.add_ref(id) {
        return Err(node.missing(id, "it was freed"));
    }
    Ok(ObjectRef::from_raw(RawRef::adopt(node, id)))
}

//! Calls the engine itself makes to foreign code (user functions inside data operators):
//! run on the calling thread, with Arrow arguments written into the call channel's
//! argument arena.

use std::sync::Arc;

use arrow::buffer::Buffer;

use super::FunctionId;
use super::node_api::{outputs, segment_wire};
use super::value::{ArgSegment, ArgSegments, ForeignValue};
use crate::core::api::RawRef;
use crate::core::node::{NodeInner, current};
use crate::core::object::{Block, ObjectData, encode_ipc};
use crate::core::shm::Arena;
use crate::core::worker::{Call, CallKind, CallOutcome, WireData, WorkerProc};
use crate::error::{Error, Result, TaskResult, UserError};

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
        let r = crate::core::api::put_data(node, ObjectData::Arrow(block.clone()), Vec::new())?;
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
/// it refers to. A call whose worker dies is a system failure: it is run again on another
/// worker, up to the config's `task_max_retries` times (as Ray retries a task), then fails
/// with [`UserError::worker_died`].
pub fn call_function(
    function: FunctionId,
    name: &str,
    args: Vec<ForeignValue>,
    num_returns: u32,
) -> TaskResult<Vec<ForeignValue>> {
    let node = current().map_err(|e| UserError::msg(e.to_string()))?;
    with_retries(&node, |_| {
        call_pooled(&node, function, name, args.clone(), num_returns)
    })
}

/// Runs `attempt` (told whether it is a retry) until it succeeds, fails otherwise than by
/// its worker dying, or has run again `task_max_retries` times; the final error of a call
/// that ran more than once says how often.
fn with_retries<T>(
    node: &NodeInner,
    mut attempt: impl FnMut(bool) -> TaskResult<T>,
) -> TaskResult<T> {
    let max = node.config.task_max_retries;
    let mut retries = 0;
    loop {
        match attempt(retries > 0) {
            Err(e) if e.is_worker_died() && (max < 0 || retries < max) => retries += 1,
            Err(e) if e.is_worker_died() && retries > 0 => {
                return Err(UserError::worker_died(format!(
                    "{e} (ran {} times)",
                    retries + 1
                )));
            }
            r => return r,
        }
    }
}

/// One attempt of [`call_function`].
fn call_pooled(
    node: &Arc<NodeInner>,
    function: FunctionId,
    name: &str,
    args: Vec<ForeignValue>,
    num_returns: u32,
) -> TaskResult<Vec<ForeignValue>> {
    let worker = node
        .workers
        .lease(node)
        .map_err(|e| UserError::msg(e.to_string()))?;
    let call = DirectCall {
        kind: CallKind::Task,
        function,
        name,
        num_returns,
    };
    let ran = as_current_call(
        &worker,
        || name.to_string(),
        || call.run(node, &worker, args),
    );
    let ran = match ran {
        Ok(ran) => ran,
        Err(cancelled) => {
            node.workers.give_back(worker);
            return Err(cancelled);
        }
    };
    // A worker that died is dropped (killed and reaped), never reused.
    if !matches!(&ran, Err(e) if e.is_worker_died()) {
        node.workers.give_back(worker);
    }
    ran
}

/// A call the engine makes on a worker it holds.
struct DirectCall<'a> {
    kind: CallKind,
    function: FunctionId,
    name: &'a str,
    num_returns: u32,
}

impl DirectCall<'_> {
    /// Runs the call on `worker` with `args` (Arrow ones through its channel's arena).
    fn run(
        self,
        node: &Arc<NodeInner>,
        worker: &WorkerProc,
        args: Vec<ForeignValue>,
    ) -> TaskResult<Vec<ForeignValue>> {
        let num_returns = self.num_returns;
        let (outcome, _later, (segs, _keep)) = worker.run_with(node, |arena| {
            let (wire, segs, keep) =
                direct_args(node, args, arena).map_err(|e| UserError::msg(e.to_string()))?;
            let call = Call {
                kind: self.kind,
                name: self.name.to_string(),
                function: self.function,
                function_bytes: None,
                args: wire,
                num_returns,
            };
            Ok((call, (segs, keep)))
        })?;
        values_of(node, outcome, num_returns, &segs)
    }
}

/// Runs `f`, a call on `worker`, as the current task's (named by `task`): meanwhile `cancel`
/// interrupts (or, forced, kills) the worker process. The task's cancellation error,
/// without running `f`, when it was cancelled before it started.
pub(super) fn as_current_call<R>(
    worker: &WorkerProc,
    task: impl FnOnce() -> String,
    f: impl FnOnce() -> R,
) -> std::result::Result<R, UserError> {
    let state = crate::core::node::current_task().and_then(|c| c.state);
    if let Some(state) = &state
        && !state.set_running_pid(Some(worker.shared.pid))
    {
        return Err(UserError::msg(format!("task {} was cancelled", task())));
    }
    let r = f();
    if let Some(state) = &state {
        state.set_running_pid(None);
    }
    Ok(r)
}

/// An instance of a registered class in a worker process of its own (e.g. a callable class
/// in an actor-pool `map_batches`), called directly from the thread that owns it. Dropping
/// it ends the process. When the process dies during a call, a new one is started, the
/// class constructed there again, and the call retried (up to the config's
/// `task_max_retries` times a call), as Ray restarts an actor-pool actor.
pub struct ForeignInstance {
    worker: WorkerProc,
    class: FunctionId,
    name: String,
    /// The constructor's arguments, for a restart.
    ctor: Vec<ForeignValue>,
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
        let worker = Self::start(&node, class, name, args.clone())?;
        Ok(ForeignInstance {
            worker,
            class,
            name: name.to_string(),
            ctor: args,
        })
    }

    /// A new worker process with the class constructed in it.
    fn start(
        node: &Arc<NodeInner>,
        class: FunctionId,
        name: &str,
        args: Vec<ForeignValue>,
    ) -> TaskResult<WorkerProc> {
        let worker = node
            .workers
            .spawn(node, 1)
            .map_err(|e| UserError::msg(e.to_string()))?;
        DirectCall {
            kind: CallKind::ActorNew,
            function: class,
            name,
            num_returns: 1,
        }
        .run(node, &worker, args)?;
        Ok(worker)
    }

    /// Calls `method` on the instance.
    pub fn call(
        &mut self,
        method: &str,
        args: Vec<ForeignValue>,
        num_returns: u32,
    ) -> TaskResult<Vec<ForeignValue>> {
        let node = current().map_err(|e| UserError::msg(e.to_string()))?;
        with_retries(&node, |retry| {
            if retry {
                // A new process, the instance constructed again.
                self.worker = Self::start(&node, self.class, &self.name, self.ctor.clone())?;
            }
            let call = DirectCall {
                kind: CallKind::ActorMethod(method.to_string()),
                function: self.class,
                name: &self.name,
                num_returns,
            };
            call.run(&node, &self.worker, args.clone())
        })
    }
}

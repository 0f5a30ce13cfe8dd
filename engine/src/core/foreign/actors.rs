//! Foreign actors on the node: the table of actors whose code runs in worker processes,
//! their counted handles, and how the node creates, calls and kills them.
//!
//! Lifetime: an actor lives while a counted handle on it does (a driver's handle, or an
//! anchor: a store object holding one, see [`super::actor_anchor`]), or for good when it
//! is detached; the last counted handle dropped removes it from the table, which lets its
//! queued calls finish and stops it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;

use super::client::client;
use super::node_api::{NodeApi, outputs, typed_refs, wire_data};
use super::value::{ArgSegments, ForeignObject, ids_from_wire};
use super::{
    ForeignActorOptions, ForeignArgs, ForeignRef, ForeignValue, FunctionId, PutValue,
    function_bytes,
};
use crate::core::actor::{ActorHandle, ActorOptions, try_actor};
use crate::core::api::RawRef;
use crate::core::ids::{ActorId, ObjectId};
use crate::core::node::{NodeInner, current};
use crate::core::task::Multi;
use crate::core::worker::{Call, CallKind, CallOutcome, WireData, WireId, WorkerProc};
use crate::error::{Error, Result, TaskResult, UserError};

/// A foreign actor's instance on the node: its worker process.
pub(crate) struct ActorProxy {
    /// Shared with the calls started on it (see [`ActorHandle::call_pipelined`]).
    worker: Arc<WorkerProc>,
    class: FunctionId,
}

/// The node's table of foreign actors (handles counted for the driver).
#[derive(Default)]
pub(crate) struct ForeignActors {
    pub(super) actors: Mutex<HashMap<ActorId, ActorEntry>>,
}

impl ForeignActors {
    /// Drops every actor (at shutdown).
    pub(crate) fn clear(&self) {
        let all: Vec<ActorEntry> = self.actors.lock().drain().map(|(_, e)| e).collect();
        drop(all);
    }
}

pub(super) struct ActorEntry {
    pub(super) handle: ActorHandle<ActorProxy>,
    pub(super) opts: ForeignActorOptions,
    /// Counted handles (driver handles and anchors); at 0 a non-detached actor stops.
    handles: Arc<AtomicUsize>,
    node: Weak<NodeInner>,
}

impl ActorEntry {
    /// A new handle on the actor `id`, counted among its handles.
    pub(super) fn new_handle(&self, id: ActorId) -> ForeignActor {
        self.handles.fetch_add(1, Ordering::Relaxed);
        ForeignActor {
            id,
            opts: self.opts.clone(),
            counted: Some(Counted {
                handles: self.handles.clone(),
                node: self.node.clone(),
            }),
            anchor: None,
        }
    }
}

/// A handle's count on its actor, and the node whose table holds the actor.
#[derive(Debug, Clone)]
struct Counted {
    handles: Arc<AtomicUsize>,
    node: Weak<NodeInner>,
}

/// A front end's handle on a foreign actor.
#[derive(Debug)]
pub struct ForeignActor {
    id: ActorId,
    opts: ForeignActorOptions,
    counted: Option<Counted>,
    /// In a worker, the anchor that keeps an actor this worker created alive while the
    /// worker holds it (the node releases it when the worker ends).
    pub(super) anchor: Option<ForeignRef>,
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
    /// (as one from [`super::get_actor`] does); in a worker it does not keep the actor
    /// alive (the handle's anchor does, see [`super::actor_anchor`]).
    pub fn from_id_bytes(b: &[u8], opts: ForeignActorOptions) -> Result<Self> {
        let id = wire_actor(b)?;
        if client().is_none()
            && let Some(handle) = NodeApi::new(current()?).counted_handle(id)
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

impl Clone for ForeignActor {
    fn clone(&self) -> Self {
        if let Some(c) = &self.counted {
            c.handles.fetch_add(1, Ordering::Relaxed);
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
        if c.handles.fetch_sub(1, Ordering::AcqRel) == 1
            && !self.opts.detached
            && let Some(node) = c.node.upgrade()
        {
            // The last counted handle: let the actor finish its queued calls and stop.
            node.foreign_actors.actors.lock().remove(&self.id);
        }
    }
}

/// An actor id in wire form (that of an object id of its creation task).
pub(super) fn actor_wire(id: ActorId) -> WireId {
    ObjectId {
        task: id.0,
        index: 0,
    }
    .to_bytes()
}

/// [`actor_wire`]'s inverse.
pub(super) fn wire_actor(b: &[u8]) -> Result<ActorId> {
    ObjectId::from_bytes(b)
        .map(|o| ActorId(o.task))
        .ok_or_else(|| Error::InvalidArgument("a malformed actor id".into()))
}

/// A new object that holds `handle` (a counted one) until it is freed.
pub(super) fn anchor_holding(api: &NodeApi, handle: ForeignActor) -> Result<RawRef> {
    let anchor = api.put_raw(PutValue {
        data: ForeignValue::Pickle(Bytes::new()),
        nested: Vec::new(),
    })?;
    api.node.store.attach(anchor.id(), Box::new(handle));
    Ok(anchor)
}

/// Creates an actor of the registered class `class` on `node`: a counted handle on it.
pub(super) fn create_actor(
    node: &Arc<NodeInner>,
    class: FunctionId,
    args: ForeignArgs,
    opts: ForeignActorOptions,
) -> Result<ForeignActor> {
    function_bytes(class)?;
    // The constructor's arguments are kept for restarts.
    let refs = args.hold()?;
    let concurrency = opts.max_concurrency.max(1);
    let class_name = opts.class_name.clone();
    let held = (args, refs);
    let weak = Arc::downgrade(node);
    let factory = move || -> TaskResult<ActorProxy> {
        let node = weak
            .upgrade()
            .ok_or_else(|| UserError::msg(Error::NotInitialized.to_string()))?;
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
        task: opts.to_core(),
        detached: opts.detached,
    };
    let handle = try_actor(factory).options(core_opts).spawn()?;
    let id = handle.id();
    let handles = Arc::new(AtomicUsize::new(1));
    node.foreign_actors.actors.lock().insert(
        id,
        ActorEntry {
            handle,
            opts: opts.clone(),
            handles: handles.clone(),
            node: Arc::downgrade(node),
        },
    );
    Ok(ForeignActor {
        id,
        opts,
        counted: Some(Counted {
            handles,
            node: Arc::downgrade(node),
        }),
        anchor: None,
    })
}

/// Resolves an actor call's arguments (waiting for ref arguments) into wire form.
fn resolve_args(node: &Arc<NodeInner>, args: &ForeignArgs) -> Result<(Vec<WireData>, ArgSegments)> {
    let refs = ids_from_wire(&args.refs)?;
    let values = crate::get_all(&typed_refs(node, &refs)?, None)?;
    let mut out = vec![WireData::Pickle(args.structure.clone())];
    let mut segs = ArgSegments(vec![None]);
    for (v, id) in values.into_iter().zip(&refs) {
        out.push(wire_data(node, &v.data, Some(*id), &mut segs)?);
    }
    Ok((out, segs))
}

/// Calls `method` on the actor; the node's refs to its results.
pub(super) fn call_actor(
    api: &NodeApi,
    actor: ActorId,
    method: &str,
    args: ForeignArgs,
    num_returns: u32,
) -> Result<Vec<RawRef>> {
    let (handle, one_at_a_time) = api
        .actor_entry(actor, |e| (e.handle.clone(), e.opts.max_concurrency <= 1))
        .ok_or_else(|| Error::ActorDied {
            actor: actor.to_string(),
            reason: "it was killed, or all its handles were dropped".into(),
        })?;
    // Keep the argument refs alive until the call runs.
    let keep = Arc::new(args.hold()?);
    let method = method.to_string();
    let weak = Arc::downgrade(&api.node);
    let refs = handle.call_pipelined(num_returns as usize, move |proxy: &ActorProxy| {
        let keep = keep.clone();
        let node = weak
            .upgrade()
            .ok_or_else(|| UserError::msg(Error::NotInitialized.to_string()))?;
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
                        store: Arc::downgrade(&node.store),
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

/// Kills the actor: for good (`no_restart`), or its process, so that it restarts per its
/// `max_restarts`. An actor not in the table is left alone.
pub(super) fn kill(node: &NodeInner, actor: ActorId, no_restart: bool) {
    let mut table = node.foreign_actors.actors.lock();
    let Some(entry) = table.get(&actor) else {
        return;
    };
    if no_restart {
        entry.handle.kill();
        table.remove(&actor);
    } else if let Some(pid) = entry.handle.peek(|p| p.worker.shared.pid) {
        // SAFETY: kill(2) on the pid of the actor's live worker process.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

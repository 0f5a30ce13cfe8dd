//! Requests from worker processes to their node, and how the node serves them: each is
//! one operation of [`CoreApi`], run by the node's implementation ([`NodeApi`]), its
//! result turned into wire form (refs handed out are counted for the worker).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::actors::{actor_wire, anchor_holding, wire_actor};
use super::node_api::{NodeApi, emit_output, wire_data};
use super::value::{ArgSegments, ForeignValue, ids_from_wire, to_wire_ids};
use super::{
    CoreApi, DatasetCall, ForeignActorOptions, ForeignArgs, ForeignRef, ForeignTask, FunctionId,
    PutValue, register_function,
};
use crate::core::node::NodeInner;
use crate::core::owners::ObjectCopies;
use crate::core::worker::{WireData, WireId, WireValue, WorkerShared};
use crate::error::{Error, Result};

/// A worker's request to its node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// [`CoreApi::submit_task`].
    Submit {
        /// The task.
        task: ForeignTask,
        /// Its function's bytes, the first time this worker submits it.
        function_bytes: Option<Vec<u8>>,
    },
    /// [`CoreApi::put`].
    Put(WireValue),
    /// [`CoreApi::get`].
    Get {
        /// The objects.
        ids: Vec<WireId>,
        /// Bound of the wait.
        timeout_ms: Option<u64>,
    },
    /// [`CoreApi::wait`].
    Wait {
        /// The objects.
        ids: Vec<WireId>,
        /// How many to wait for.
        num_returns: u32,
        /// Bound of the wait.
        timeout_ms: Option<u64>,
    },
    /// [`CoreApi::create_actor`].
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
    /// [`CoreApi::call_actor`].
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
    /// [`CoreApi::kill_actor`].
    KillActor {
        /// The actor.
        actor: WireId,
        /// No restart.
        no_restart: bool,
    },
    /// [`CoreApi::get_actor`].
    GetActor {
        /// Its name.
        name: String,
    },
    /// [`CoreApi::actor_state`].
    ActorState {
        /// The actor.
        actor: WireId,
    },
    /// [`CoreApi::exit_actor`].
    ExitActor,
    /// [`super::worker_emit`]: an output of the running generator call.
    Emit(WireValue),
    /// [`CoreApi::actor_anchor`].
    ActorAnchor {
        /// The actor.
        actor: WireId,
    },
    /// [`CoreApi::cancel`].
    Cancel {
        /// An output of the task.
        id: WireId,
        /// Ray's `force`.
        force: bool,
        /// Also its children.
        recursive: bool,
    },
    /// [`CoreApi::next_lent`].
    NextLent {
        /// The iterator's anchor.
        anchor: WireId,
    },
    /// [`CoreApi::resources`].
    Resources {
        /// Free now, or all.
        available: bool,
    },
    /// [`CoreApi::copies`].
    Copies {
        /// The objects.
        ids: Vec<WireId>,
    },
    /// [`CoreApi::run_dataset`].
    Dataset {
        /// The operation, as the data layer encoded it.
        op: Vec<u8>,
        /// Objects it names.
        refs: Vec<WireId>,
        /// Functions it names, with their bytes the first time this worker sends them.
        functions: Vec<(FunctionId, Option<Vec<u8>>)>,
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
    /// Where objects' copies are, in the order asked.
    Copies(Vec<Option<ObjectCopies>>),
    /// A dataset operation's outcome, and new refs (counted for the worker).
    Dataset {
        /// As the data layer encoded it.
        data: Vec<u8>,
        /// New refs.
        refs: Vec<WireId>,
    },
    /// Done.
    Unit,
}

pub(super) fn unexpected(r: &Reply) -> Error {
    Error::Internal(format!("unexpected reply from the node: {r:?}"))
}

/// Refs the node made for a worker: held for it until it releases them.
fn hand_out(shared: &WorkerShared, refs: Vec<ForeignRef>) -> Result<Reply> {
    let ids = to_wire_ids(refs.iter().map(ForeignRef::id));
    for r in refs {
        let raw = r
            .into_raw()
            .ok_or_else(|| Error::Internal("a worker's ref handed out by its node".into()))?;
        shared.hold(raw);
    }
    Ok(Reply::Refs(ids))
}

/// Serves a worker's request on the node.
pub(crate) fn serve_request(
    node: &Arc<NodeInner>,
    shared: &WorkerShared,
    req: Request,
) -> Result<Reply> {
    let api = NodeApi::new(node.clone());
    let timeout = |ms: Option<u64>| ms.map(Duration::from_millis);
    match req {
        Request::Submit {
            task,
            function_bytes,
        } => {
            if let Some(b) = function_bytes {
                register_function(b);
            }
            hand_out(shared, api.submit_task(task)?)
        }
        Request::Put(v) => {
            let value = PutValue {
                data: ForeignValue::from_wire(v.data, Some(node), &ArgSegments::default())?,
                nested: ids_from_wire(&v.nested)?,
            };
            hand_out(shared, vec![api.put(value)?])
        }
        Request::Get { ids, timeout_ms } => {
            let ids = ids_from_wire(&ids)?;
            let values = api.get_data(&ids, timeout(timeout_ms))?;
            // The worker maps these itself: they are no argument of its call.
            let mut segs = ArgSegments::default();
            let out = values
                .iter()
                .zip(ids)
                .map(|(data, id)| wire_data(node, data, Some(id), &mut segs))
                .collect::<Result<_>>()?;
            Ok(Reply::Values(out))
        }
        Request::Wait {
            ids,
            num_returns,
            timeout_ms,
        } => Ok(Reply::Ready(api.wait(
            &ids_from_wire(&ids)?,
            num_returns as usize,
            timeout(timeout_ms),
        )?)),
        Request::CreateActor {
            class,
            class_bytes,
            args,
            opts,
        } => {
            if let Some(b) = class_bytes {
                register_function(b);
            }
            // The creating worker's handle is an anchor it holds: the actor stops when the
            // worker drops it, or ends.
            let creator = api.create_actor(class, args, opts)?;
            let (id, opts) = (creator.id(), creator.options().clone());
            let anchor = anchor_holding(&api, creator)?;
            let anchor_id = anchor.id().to_bytes();
            shared.hold(anchor);
            Ok(Reply::Actor {
                id: actor_wire(id),
                opts,
                anchor: Some(anchor_id),
            })
        }
        Request::CallActor {
            actor,
            method,
            args,
            num_returns,
        } => hand_out(
            shared,
            api.call_actor(wire_actor(&actor)?, &method, args, num_returns)?,
        ),
        Request::KillActor { actor, no_restart } => {
            api.kill_actor(wire_actor(&actor)?, no_restart)?;
            Ok(Reply::Unit)
        }
        Request::Emit(v) => {
            emit_output(node, None, v)?;
            Ok(Reply::Unit)
        }
        Request::ExitActor => {
            api.exit_actor()?;
            Ok(Reply::Unit)
        }
        Request::GetActor { name } => {
            // A worker's handle by name is not counted: it does not keep the actor alive.
            let (id, opts) = api.find_actor(&name)?;
            Ok(Reply::Actor {
                id: actor_wire(id),
                opts,
                anchor: None,
            })
        }
        Request::ActorState { actor } => {
            let (alive, restarts) = api.actor_state(wire_actor(&actor)?)?;
            Ok(Reply::ActorState { alive, restarts })
        }
        Request::ActorAnchor { actor } => hand_out(
            shared,
            api.actor_anchor(wire_actor(&actor)?)?.into_iter().collect(),
        ),
        Request::Cancel {
            id,
            force,
            recursive,
        } => {
            let id = ids_from_wire(&[id])?.remove(0);
            api.cancel(id, force, recursive)?;
            Ok(Reply::Unit)
        }
        Request::NextLent { anchor } => {
            let anchor = ids_from_wire(&[anchor])?.remove(0);
            hand_out(shared, api.next_lent(anchor)?.into_iter().collect())
        }
        Request::Resources { available } => Ok(Reply::Resources(api.resources(available)?)),
        Request::Copies { ids } => Ok(Reply::Copies(api.copies(&ids_from_wire(&ids)?)?)),
        Request::Dataset {
            op,
            refs,
            functions,
        } => {
            let functions = functions
                .into_iter()
                .map(|(f, bytes)| {
                    if let Some(b) = bytes {
                        register_function(b);
                    }
                    f
                })
                .collect();
            let reply = api.run_dataset(DatasetCall {
                op,
                refs: ids_from_wire(&refs)?,
                functions,
            })?;
            match hand_out(shared, reply.refs)? {
                Reply::Refs(refs) => Ok(Reply::Dataset {
                    data: reply.data,
                    refs,
                }),
                other => Err(unexpected(&other)),
            }
        }
    }
}

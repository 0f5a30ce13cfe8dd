//! Work as data: a task's spec in the form that crosses processes and nodes.
//!
//! A [`ShippedTask`] names its function by a descriptor any process can resolve (a
//! registered Rust function's name, or a foreign function's id in the function table),
//! carries its value arguments as bytes (Arrow values as an IPC stream) and its ref
//! arguments by id, and its options as [`TaskOptions`]. It is what the owner of a task
//! keeps as lineage ([`crate::Runtime::task_spec`]) and what a node runs for another
//! ([`crate::Runtime::run_task_spec`]): under the spec's task id, so its outputs are the
//! objects the owner expects. A closure is the local-mode fast path and is not shipped.
//!
//! ```text
//!  owner node ── lineage (Func, args, options) ──► ShippedTask ──bytes──► another node
//!                                                                     run_task_spec: same
//!                                                                     task id, same outputs
//! ```

use std::sync::Arc;

use arrow::buffer::Buffer;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::core::ids::{ObjectId, TaskId};
use crate::core::node::NodeInner;
use crate::core::object::{BytesFormat, ObjectData, decode_ipc, encode_ipc};
use crate::core::owners::{Lineage, LineageArg};
use crate::core::resources::{ResourceName, ResourceSet};
use crate::core::task::{Arg, Func, TaskOptions, TaskRequest, lookup_registered};
use crate::error::{Error, Result};

/// How a shipped task names its function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FunctionDescriptor {
    /// A Rust function registered under this name ([`crate::register`]) in the process
    /// that runs it.
    Registered(String),
    /// A foreign (pickled) function, by its id in the function table
    /// ([`crate::core::foreign::register_function`]).
    Foreign(u64),
}

/// A value argument's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShippedData {
    /// Serialized bytes, in `format`.
    Bytes {
        /// Their encoding.
        format: BytesFormat,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Arrow record batches, as an Arrow IPC stream.
    ArrowIpc(Vec<u8>),
}

/// An argument of a shipped task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShippedArg {
    /// A value; `nested` are the refs inside it (the running node must hold them).
    Value {
        /// Its data.
        data: ShippedData,
        /// Refs inside it.
        nested: Vec<ObjectId>,
    },
    /// An object, by id.
    Ref(ObjectId),
}

/// A task as data: everything a node needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShippedTask {
    /// The task's id: its owner, and so its outputs' ids.
    pub id: TaskId,
    /// Its function.
    pub function: FunctionDescriptor,
    /// Its arguments.
    pub args: Vec<ShippedArg>,
    /// Its options: name, resources, retries, returns, strategy.
    pub opts: TaskOptions,
    /// Which run of the task this is (1 for the first).
    pub attempt: u32,
}

impl ShippedTask {
    /// The objects the task makes.
    pub fn outputs(&self) -> Vec<ObjectId> {
        (0..self.opts.num_returns.max(1) as u32)
            .map(|index| ObjectId {
                task: self.id,
                index,
            })
            .collect()
    }

    /// Its bytes (bincode).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        bincode::serialize(self)
            .map_err(|e| Error::Internal(format!("cannot encode the spec of {}: {e}", self.id)))
    }

    /// A spec from [`ShippedTask::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        bincode::deserialize(bytes)
            .map_err(|e| Error::InvalidArgument(format!("not a task spec: {e}")))
    }
}

fn ship_data(data: &ObjectData) -> Result<ShippedData> {
    Ok(match data {
        ObjectData::Bytes { format, data } => ShippedData::Bytes {
            format: *format,
            data: data.to_vec(),
        },
        ObjectData::Arrow(_) => ShippedData::ArrowIpc(
            encode_ipc(data)?
                .iter()
                .flat_map(|b| b.as_slice().iter().copied())
                .collect(),
        ),
    })
}

fn unship_data(data: ShippedData) -> Result<ObjectData> {
    Ok(match data {
        ShippedData::Bytes { format, data } => ObjectData::Bytes {
            format,
            data: Bytes::from(data),
        },
        // Validated: the bytes come from another process.
        ShippedData::ArrowIpc(ipc) => decode_ipc(Buffer::from_vec(ipc))?,
    })
}

/// The options of a task that reserves `resources`.
fn options_for(resources: &ResourceSet) -> TaskOptions {
    let mut opts = TaskOptions {
        num_cpus: resources.get(&ResourceName::Cpu),
        num_gpus: resources.get(&ResourceName::Gpu),
        memory: resources.get(&ResourceName::Memory) as u64,
        ..TaskOptions::default()
    };
    opts.resources = resources
        .iter()
        .filter(|(name, _)| matches!(name, ResourceName::Custom(_)))
        .map(|(name, amount)| (name.to_string(), amount))
        .collect();
    opts
}

impl Lineage {
    /// The spec of the task this lineage runs again, as data.
    pub(crate) fn ship(&self) -> Result<ShippedTask> {
        let function = match &self.func {
            Func::Registered(name) => FunctionDescriptor::Registered(name.to_string()),
            Func::Foreign(id) => FunctionDescriptor::Foreign(*id),
            Func::Closure(_) => {
                return Err(Error::InvalidArgument(format!(
                    "task {} runs a closure, which cannot be shipped to another process: \
                     register its function (volley::register) to make its spec data",
                    self.name
                )));
            }
        };
        let id = self.outputs.first().map(|o| o.task).ok_or_else(|| {
            Error::Internal(format!("the lineage of {} has no outputs", self.name))
        })?;
        let args = self
            .args
            .iter()
            .map(|a| {
                Ok(match a {
                    LineageArg::Value(data, nested) => ShippedArg::Value {
                        data: ship_data(data)?,
                        nested: nested.clone(),
                    },
                    LineageArg::Ref(id) => ShippedArg::Ref(*id),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = TaskOptions {
            name: Some(self.name.to_string()),
            max_retries: Some(self.max_retries),
            retry_exceptions: self.retry_exceptions,
            num_returns: self.outputs.len(),
            scheduling_strategy: self.strategy.clone(),
            ..options_for(&self.resources)
        };
        Ok(ShippedTask {
            id,
            function,
            args,
            opts,
            attempt: 1,
        })
    }
}

impl NodeInner {
    /// The spec of the task that made `object`, from the lineage this node (its owner)
    /// keeps.
    pub(crate) fn task_spec(&self, object: ObjectId) -> Result<ShippedTask> {
        self.owners
            .lineage(object, &self.store)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no spec is kept for the task that made {object}: it is not an output of \
                     this node's retryable tasks (a put, max_retries=0, past max_lineage_bytes, \
                     or freed)"
                ))
            })?
            .ship()
    }

    /// Runs a shipped task here, under its own id: its outputs' ids (one reference each,
    /// for the caller). Its function must resolve here; the objects it names (ref
    /// arguments and refs nested in values) must be here.
    pub(crate) fn run_shipped(self: &Arc<Self>, task: ShippedTask) -> Result<Vec<ObjectId>> {
        let name = task
            .opts
            .name
            .clone()
            .unwrap_or_else(|| format!("task {}", task.id));
        if task.id.owner.node == self.id {
            // Its outputs would collide with those of this node's own tasks.
            return Err(Error::InvalidArgument(format!(
                "{name}: a spec of this node's own task runs with its lineage, not shipped back"
            )));
        }
        let func = match task.function {
            FunctionDescriptor::Registered(f) => {
                lookup_registered(&f)?;
                Func::Registered(Arc::from(f))
            }
            FunctionDescriptor::Foreign(id) => {
                crate::core::foreign::function_bytes(id)?;
                Func::Foreign(id)
            }
        };
        let mut args = Vec::with_capacity(task.args.len());
        for a in task.args {
            args.push(match a {
                ShippedArg::Value { data, nested } => Arg::Value {
                    data: unship_data(data)?,
                    nested,
                },
                ShippedArg::Ref(id) => Arg::Ref(id),
            });
        }
        // A value argument holds the refs inside it for the task's life (as one serialized
        // here does): take them, all or none.
        let mut taken = Vec::new();
        for id in args.iter().flat_map(|a| match a {
            Arg::Value { nested, .. } => nested.as_slice(),
            Arg::Ref(_) => &[],
        }) {
            if !self.store.add_ref(*id) {
                self.store.release_many(taken);
                return Err(self.missing(*id, format!("a ref inside an argument of {name}")));
            }
            taken.push(*id);
        }
        let num_returns = task.opts.num_returns.max(1);
        let submitted = self.submit_task_as(
            task.id,
            task.attempt,
            TaskRequest {
                name: Arc::from(name),
                func,
                args,
                num_returns,
                streaming: None,
                opts: task.opts,
            },
        )?;
        Ok(submitted.fixed())
    }
}

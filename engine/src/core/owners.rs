//! The owner table: what this node knows of the objects it owns beyond their bytes (which
//! the store keeps) — who owns an object, and how to rebuild it.
//!
//! - **Owner.** An object's id names the worker that created it (its task's owner), and so
//!   its node: an object this node does not hold and does not own is *elsewhere*
//!   ([`Location::Elsewhere`]), which is not the same as *lost*.
//! - **Copies.** Where an object's bytes are ([`OwnerTable::copies`], Ray's
//!   `get_object_locations`): in this node's memory, in its spill file. One node holds the
//!   only copy today; the cluster adds the copies other nodes fetched.
//! - **Lineage.** For every retryable task with fixed outputs, the node keeps the task's
//!   spec (function, arguments, options) while any of its outputs lives: when the task
//!   finishes, [`OwnerTable::keep`] turns its spec into the lineage and the store keeps it
//!   with each output (`seal_rebuildable`), so it goes with the last of them — no copy at
//!   submission and no table to lock on every task. When an output is
//!   lost (its spill file is gone), the node runs the task again to rebuild it
//!   (`core::rebuild`). Lineage is bounded by `max_lineage_bytes` (the specs' value
//!   arguments): past it, outputs of new tasks cannot be rebuilt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::core::ids::{NodeId, ObjectId};
use crate::core::resources::ResourceSet;
use crate::core::store::{Store, StoreCopy};
use crate::core::task::{Arg, Func, Returns, SchedulingStrategy, TaskSpec};

/// What it takes to run a task again. Its bytes count against the owner's budget until
/// it is dropped.
pub(crate) struct Lineage {
    pub(crate) name: Arc<str>,
    pub(crate) func: Func,
    /// The arguments: values as they were, refs by id (rebuilt too when lost).
    pub(crate) args: Vec<LineageArg>,
    pub(crate) resources: Arc<ResourceSet>,
    pub(crate) max_retries: i32,
    pub(crate) retry_exceptions: bool,
    pub(crate) strategy: SchedulingStrategy,
    /// The task's outputs, in order.
    pub(crate) outputs: Vec<ObjectId>,
    bytes: u64,
    kept: Arc<AtomicU64>,
}

impl Drop for Lineage {
    fn drop(&mut self) {
        self.kept.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// An argument as lineage keeps it.
#[derive(Clone)]
pub(crate) enum LineageArg {
    /// A value; the refs nested in it are kept by id only.
    Value(crate::core::object::ObjectData, Vec<ObjectId>),
    /// An object, by id.
    Ref(ObjectId),
}

impl From<Arg> for LineageArg {
    fn from(a: Arg) -> Self {
        match a {
            Arg::Value { data, nested } => LineageArg::Value(data, nested),
            Arg::Ref(id) => LineageArg::Ref(id),
        }
    }
}

impl LineageArg {
    fn bytes(&self) -> u64 {
        match self {
            LineageArg::Value(data, nested) => data.size() + 24 * nested.len() as u64,
            LineageArg::Ref(_) => 24,
        }
    }
}

/// Where an object is, as its owner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    /// Owned here, and its task's spec is kept: it can be rebuilt.
    Rebuildable,
    /// Owned here, with no way to rebuild it (a `put`, a non-retryable task, past the
    /// lineage budget, or freed).
    Here,
    /// Owned by another node.
    Elsewhere(NodeId),
}

/// Where an object's copies are, as its owner answers (Ray's `get_object_locations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCopies {
    /// The nodes holding it in memory (ids, hex).
    pub node_ids: Vec<String>,
    /// Its size in bytes (0 while its task runs).
    pub size: u64,
    /// Whether it was spilled (a copy lives in its spill file).
    pub spilled: bool,
}

/// The node's owner table.
pub(crate) struct OwnerTable {
    node: NodeId,
    budget: u64,
    /// Bytes of lineage alive now.
    kept: Arc<AtomicU64>,
}

impl OwnerTable {
    pub(crate) fn new(node: NodeId, budget: u64) -> Self {
        OwnerTable {
            node,
            budget,
            kept: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The lineage of a finished task, made of its spec, for the store to keep with its
    /// outputs; `None` when it cannot run again (no retries, no fixed outputs) or the
    /// budget is spent.
    pub(crate) fn keep(&self, task: TaskSpec) -> Option<Arc<Lineage>> {
        let Returns::Fixed(outputs) = task.returns else {
            return None;
        };
        if task.max_retries == 0 || outputs.is_empty() {
            return None;
        }
        let args: Vec<LineageArg> = task.args.into_iter().map(LineageArg::from).collect();
        let bytes = 256 + args.iter().map(LineageArg::bytes).sum::<u64>();
        self.kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| {
                (k + bytes <= self.budget).then_some(k + bytes)
            })
            .ok()?;
        Some(Arc::new(Lineage {
            name: task.name,
            func: task.func,
            args,
            resources: task.resources,
            max_retries: task.max_retries,
            retry_exceptions: task.retry_exceptions,
            strategy: task.strategy,
            outputs,
            bytes,
            kept: self.kept.clone(),
        }))
    }

    /// How the object `id` could be had, given the store that would hold it.
    pub(crate) fn locate(&self, id: ObjectId, store: &Store) -> Location {
        if id.task.owner.node != self.node {
            Location::Elsewhere(id.task.owner.node)
        } else if self.lineage(id, store).is_some() {
            Location::Rebuildable
        } else {
            Location::Here
        }
    }

    /// Where the copies of the object `id` are; `None` when this node knows nothing of it
    /// (freed, failed, or another node's).
    pub(crate) fn copies(&self, id: ObjectId, store: &Store) -> Option<ObjectCopies> {
        Some(match store.copy_of(id)? {
            StoreCopy::Pending => ObjectCopies {
                node_ids: Vec::new(),
                size: 0,
                spilled: false,
            },
            StoreCopy::Ready {
                in_memory,
                spilled,
                size,
            } => ObjectCopies {
                node_ids: if in_memory {
                    vec![self.node.to_string()]
                } else {
                    Vec::new()
                },
                size,
                spilled,
            },
        })
    }

    /// The lineage of the task that made `id`, as the store keeps it.
    pub(crate) fn lineage(&self, id: ObjectId, store: &Store) -> Option<Arc<Lineage>> {
        store.rebuild_info(id)?.downcast::<Lineage>().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::{TaskId, WorkerId};
    use crate::core::task::TaskState;

    fn task(node: u64, seq: u64) -> TaskId {
        TaskId {
            owner: WorkerId {
                node: NodeId(node),
                index: 0,
            },
            seq,
        }
    }

    fn spec(max_retries: i32) -> TaskSpec {
        let id = task(1, 1);
        let name: Arc<str> = Arc::from("f");
        TaskSpec {
            id,
            name: name.clone(),
            func: Func::Registered(name.clone()),
            args: vec![Arg::Ref(ObjectId {
                task: task(1, 0),
                index: 0,
            })],
            returns: Returns::Fixed(vec![ObjectId { task: id, index: 0 }]),
            resources: Arc::new(ResourceSet::new()),
            max_retries,
            retry_exceptions: false,
            strategy: SchedulingStrategy::Default,
            attempt: 1,
            state: TaskState::new(name, id, Vec::new(), None),
        }
    }

    #[test]
    fn lineage_counts_against_its_budget_while_it_lives() {
        let table = OwnerTable::new(NodeId(1), 1000);
        // Not retryable: nothing kept.
        assert!(table.keep(spec(0)).is_none());
        // Kept until the budget is spent; dropping gives the bytes back.
        let kept: Vec<_> = (0..10).filter_map(|_| table.keep(spec(3))).collect();
        assert_eq!(kept.len(), 3, "280 bytes each within 1000");
        assert!(table.keep(spec(3)).is_none());
        assert_eq!(
            kept[0].outputs,
            vec![ObjectId {
                task: task(1, 1),
                index: 0
            }]
        );
        drop(kept);
        assert_eq!(table.kept.load(Ordering::Relaxed), 0);
        assert!(table.keep(spec(-1)).is_some());
    }
}

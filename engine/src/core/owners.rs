//! The owner table: what this node knows of the objects it owns beyond their bytes (which
//! the store keeps) — who owns an object, and how to rebuild it.
//!
//! - **Owner.** An object's id names the worker that created it (its task's owner), and so
//!   its node: an object this node does not hold and does not own is *elsewhere*
//!   ([`Location::Elsewhere`]), which is not the same as *lost*.
//! - **Lineage.** For every retryable task with fixed outputs, the node keeps the task's
//!   spec (function, arguments, options) while any of its outputs lives. When an output is
//!   lost (its spill file is gone), the node runs the task again to rebuild it, rebuilding
//!   lost arguments first the same way. The specs' value arguments are bounded by
//!   `max_lineage_bytes`: past it, outputs of new tasks cannot be rebuilt.
//!
//! Entries come with `record` (a task submitted) and go as the store frees the outputs
//! (`freed`, the store's free hook).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::core::ids::{NodeId, ObjectId, TaskId};
use crate::core::resources::ResourceSet;
use crate::core::task::{Arg, Func, SchedulingStrategy};

/// What it takes to run a task again.
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
}

/// An argument as lineage keeps it.
#[derive(Clone)]
pub(crate) enum LineageArg {
    /// A value; the refs nested in it are kept by id only.
    Value(crate::core::object::ObjectData, Vec<ObjectId>),
    /// An object, by id.
    Ref(ObjectId),
}

impl LineageArg {
    fn of(a: &Arg) -> Self {
        match a {
            Arg::Value { data, nested } => LineageArg::Value(data.clone(), nested.clone()),
            Arg::Ref(id) => LineageArg::Ref(*id),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            LineageArg::Value(data, nested) => data.size() + 24 * nested.len() as u64,
            LineageArg::Ref(_) => 24,
        }
    }
}

struct Entry {
    lineage: Arc<Lineage>,
    /// Outputs not yet freed.
    live: usize,
    bytes: u64,
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

/// The node's owner table.
pub(crate) struct OwnerTable {
    node: NodeId,
    budget: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_task: HashMap<TaskId, Entry>,
    bytes: u64,
}

impl OwnerTable {
    pub(crate) fn new(node: NodeId, budget: u64) -> Self {
        OwnerTable {
            node,
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keeps the lineage of a task just submitted, if it can be run again and the budget
    /// has room.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        task: TaskId,
        name: &Arc<str>,
        func: &Func,
        args: &[Arg],
        resources: &Arc<ResourceSet>,
        max_retries: i32,
        retry_exceptions: bool,
        strategy: &SchedulingStrategy,
        outputs: &[ObjectId],
    ) {
        if max_retries == 0 || outputs.is_empty() {
            return;
        }
        let args: Vec<LineageArg> = args.iter().map(LineageArg::of).collect();
        let bytes = 256 + args.iter().map(LineageArg::bytes).sum::<u64>();
        let mut g = self.inner.lock();
        if g.bytes + bytes > self.budget {
            return;
        }
        g.bytes += bytes;
        let lineage = Arc::new(Lineage {
            name: name.clone(),
            func: func.clone(),
            args,
            resources: resources.clone(),
            max_retries,
            retry_exceptions,
            strategy: strategy.clone(),
            outputs: outputs.to_vec(),
        });
        g.by_task.insert(
            task,
            Entry {
                lineage,
                live: outputs.len(),
                bytes,
            },
        );
    }

    /// The store freed these objects: lineage whose outputs are all gone is dropped.
    pub(crate) fn freed(&self, ids: &[ObjectId]) {
        let mut g = self.inner.lock();
        for id in ids {
            let Some(e) = g.by_task.get_mut(&id.task) else {
                continue;
            };
            if !e.lineage.outputs.contains(id) {
                continue;
            }
            e.live = e.live.saturating_sub(1);
            if e.live == 0 {
                let bytes = e.bytes;
                g.by_task.remove(&id.task);
                g.bytes -= bytes;
            }
        }
    }

    /// How the object `id` could be had.
    pub(crate) fn locate(&self, id: ObjectId) -> Location {
        if id.task.owner.node != self.node {
            return Location::Elsewhere(id.task.owner.node);
        }
        if self.inner.lock().by_task.contains_key(&id.task) {
            Location::Rebuildable
        } else {
            Location::Here
        }
    }

    /// The lineage of the task that made `id`.
    pub(crate) fn lineage(&self, id: ObjectId) -> Option<Arc<Lineage>> {
        self.inner
            .lock()
            .by_task
            .get(&id.task)
            .map(|e| e.lineage.clone())
    }

    /// Bytes of lineage kept now.
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::WorkerId;

    fn task(node: u64, seq: u64) -> TaskId {
        TaskId {
            owner: WorkerId {
                node: NodeId(node),
                index: 0,
            },
            seq,
        }
    }

    #[test]
    fn lineage_lives_while_an_output_does_and_within_its_budget() {
        let table = OwnerTable::new(NodeId(1), 1000);
        let func = Func::Registered(Arc::from("f"));
        let name: Arc<str> = Arc::from("f");
        let res = Arc::new(ResourceSet::new());
        let t = task(1, 1);
        let outs = [
            ObjectId { task: t, index: 0 },
            ObjectId { task: t, index: 1 },
        ];
        let args = [Arg::Ref(ObjectId {
            task: task(1, 0),
            index: 0,
        })];
        let strategy = SchedulingStrategy::Default;
        table.record(t, &name, &func, &args, &res, 3, false, &strategy, &outs);
        assert_eq!(table.locate(outs[0]), Location::Rebuildable);
        table.freed(&outs[..1]);
        assert_eq!(table.locate(outs[1]), Location::Rebuildable);
        table.freed(&outs[1..]);
        assert_eq!(table.locate(outs[1]), Location::Here);
        assert_eq!(table.bytes(), 0);
        // Not retryable: nothing kept. Past the budget: nothing kept.
        let t2 = task(1, 2);
        let o2 = [ObjectId { task: t2, index: 0 }];
        table.record(t2, &name, &func, &args, &res, 0, false, &strategy, &o2);
        assert_eq!(table.locate(o2[0]), Location::Here);
        for seq in 3..10 {
            let t = task(1, seq);
            table.record(
                t,
                &name,
                &func,
                &args,
                &res,
                3,
                false,
                &strategy,
                &[ObjectId { task: t, index: 0 }],
            );
        }
        assert!(table.bytes() <= 1000);
        assert_eq!(
            table.locate(ObjectId {
                task: task(1, 9),
                index: 0
            }),
            Location::Here
        );
        // Another node's object is elsewhere, not lost.
        assert_eq!(
            table.locate(ObjectId {
                task: task(2, 1),
                index: 0
            }),
            Location::Elsewhere(NodeId(2))
        );
    }
}

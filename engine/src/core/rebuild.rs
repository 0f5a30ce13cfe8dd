//! Lineage reconstruction: an object whose only copy is lost (its spill file is gone) is
//! rebuilt by running the task that made it again, from the spec its owner kept
//! ([`crate::core::owners`]); a lost argument of that task is rebuilt the same way when the
//! task reads it. An object owned by another node is not lost but elsewhere.

use std::sync::Arc;

use crate::core::ids::ObjectId;
use crate::core::node::{NodeInner, blocking_section};
use crate::core::object::ObjectData;
use crate::core::owners::{Lineage, LineageArg, Location};
use crate::core::store::{PinGuard, Signal, Waiter};
use crate::core::task::{Arg, Returns, TaskSpec, TaskState};
use crate::error::{Error, Result};

/// Rebuilds of one object one read may start (each after the last one's copy was lost).
const MAX_REBUILDS: u32 = 3;

impl NodeInner {
    /// The error for an object the store does not have: elsewhere when another node owns
    /// it, else lost for `reason`.
    pub(crate) fn missing(&self, id: ObjectId, reason: impl Into<String>) -> Error {
        match self.owners.locate(id, &self.store) {
            Location::Elsewhere(node) => Error::ObjectElsewhere {
                object: id.to_string(),
                node: node.to_string(),
            },
            Location::Here | Location::Rebuildable => Error::ObjectLost {
                object: id.to_string(),
                reason: reason.into(),
            },
        }
    }

    /// `e`, an error about the object `id`, as its owner would put it: a "lost" object that
    /// another node owns is elsewhere.
    pub(crate) fn placed(&self, id: ObjectId, e: Error) -> Error {
        match e {
            Error::ObjectLost { reason, .. } => self.missing(id, reason),
            e => e,
        }
    }

    /// Reads a ready object (see `Store::get_data`), rebuilding it from its lineage first
    /// when it is lost and its owner (this node) kept its task's spec.
    pub(crate) fn read_object(
        self: &Arc<Self>,
        id: ObjectId,
        pin: bool,
    ) -> Result<(ObjectData, Option<Arc<PinGuard>>)> {
        let mut rebuilds = 0;
        loop {
            match self.store.get_data(id, pin) {
                Err(Error::ObjectLost { reason, .. }) => {
                    if rebuilds == MAX_REBUILDS
                        || self.owners.locate(id, &self.store) != Location::Rebuildable
                    {
                        return Err(self.missing(id, reason));
                    }
                    rebuilds += 1;
                    self.rebuild(id)?;
                }
                r => return r,
            }
        }
    }

    /// Runs the task that made the lost object `id` again (unless a rebuild is under way
    /// already) and waits for its outcome.
    fn rebuild(self: &Arc<Self>, id: ObjectId) -> Result<()> {
        let lineage = self
            .owners
            .lineage(id, &self.store)
            .ok_or_else(|| self.missing(id, "its task's spec is no longer kept"))?;
        if self.store.reset_lost(id)
            && let Err(e) = self.resubmit(&lineage, id)
        {
            self.store.fail(id, e);
        }
        let signal = Arc::new(Signal::default());
        if self.store.status(id).is_none() {
            self.store.on_ready(id, Waiter::Signal(signal.clone()));
            blocking_section(|| signal.wait_for(1, None));
        }
        self.store.status(id).unwrap_or(Ok(()))
    }

    /// Submits the task of `lineage` again to seal `id` (its other outputs, still alive, are
    /// left as they are).
    fn resubmit(self: &Arc<Self>, lineage: &Lineage, id: ObjectId) -> Result<()> {
        // The task holds its ref arguments and the refs nested in its values while it runs,
        // as at its first submission; they are released when it ends.
        let mut held = Vec::new();
        let mut args = Vec::with_capacity(lineage.args.len());
        for a in &lineage.args {
            let (arg, ids) = match a {
                LineageArg::Ref(r) => (Arg::Ref(*r), vec![*r]),
                LineageArg::Value(data, nested) => (
                    Arg::Value {
                        data: data.clone(),
                        nested: nested.clone(),
                    },
                    nested.clone(),
                ),
            };
            for r in ids {
                if !self.store.add_ref(r) {
                    self.store.release_many(held);
                    return Err(self.missing(
                        id,
                        format!(
                            "rebuilding it needs {r}, an argument of task {}, which was freed",
                            lineage.name
                        ),
                    ));
                }
                held.push(r);
            }
            args.push(arg);
        }
        let state = TaskState::new(lineage.name.clone(), id.task, vec![id], None);
        self.register_task(&state);
        let spec = Box::new(TaskSpec {
            id: id.task,
            name: lineage.name.clone(),
            func: lineage.func.clone(),
            args,
            returns: Returns::Fixed(lineage.outputs.clone()),
            resources: lineage.resources.clone(),
            max_retries: lineage.max_retries,
            retry_exceptions: lineage.retry_exceptions,
            strategy: lineage.strategy.clone(),
            attempt: 1,
            state,
        });
        self.schedule_when_args_ready(spec);
        Ok(())
    }
}

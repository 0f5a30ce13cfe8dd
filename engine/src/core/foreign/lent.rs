//! What the node lends front ends in other processes, keyed by an anchor object:
//!
//! - **Iterators**: a stream of Arrow batches (a `streaming_split` shard, an `iter_batches`
//!   iterator) consumed elsewhere — by a task or an actor in a worker process, as Ray Train
//!   feeds its workers. The consumer holds a ref to the anchor and pulls one batch at a time
//!   ([`super::CoreApi::next_lent`]), each as an object it reads from shared memory.
//! - **Values** the node keeps for them (a dataset a worker builds or was passed: the
//!   worker's handle is the anchor; the node's dataset service finds it by the anchor).
//!
//! A lent thing lives while any ref to its anchor does (the anchor carries a guard that
//! drops it).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use arrow::array::RecordBatch;
use bytes::Bytes;
use parking_lot::Mutex;

use super::node_api::NodeApi;
use super::{ForeignRef, ForeignValue, PutValue};
use crate::core::api::RawRef;
use crate::core::ids::ObjectId;
use crate::core::node::NodeInner;
use crate::core::object::Block;
use crate::error::{Error, Result};

/// A stream of batches a front end lends.
pub type LentBatches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// A value the node keeps for a front end (see [`super::lend_value`]).
pub type LentValue = Arc<dyn Any + Send + Sync>;

/// One lent thing.
enum Lent {
    /// Behind a lock of its own: one consumer's wait for its next batch does not hold up
    /// another's.
    Batches(Arc<Mutex<Option<LentBatches>>>),
    Value(LentValue),
}

/// What the node lends, by anchor.
#[derive(Default)]
pub(crate) struct LentTable {
    lent: Mutex<HashMap<ObjectId, Lent>>,
}

impl LentTable {
    /// Drops everything lent (at shutdown).
    pub(crate) fn clear(&self) {
        let all: Vec<_> = self.lent.lock().drain().collect();
        drop(all);
    }
}

/// Attached to an anchor: when the anchor is freed, its iterator is dropped.
struct LentGuard {
    node: Weak<NodeInner>,
    anchor: ObjectId,
}

impl Drop for LentGuard {
    fn drop(&mut self) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let Some(lent) = node.foreign_lent.lent.lock().remove(&self.anchor) else {
            return;
        };
        // A value (a dataset's plan) is dropped here: it runs nothing.
        let Lent::Batches(it) = lent else {
            return;
        };
        // Stopping an execution joins its threads, and this may run where a front end
        // holds a lock one of them waits for (Python's GIL, dropping a ref): stop it on a
        // thread of its own, which ends when it is done.
        let spawned = std::thread::Builder::new()
            .name("volley-lent-drop".into())
            .spawn(move || drop(it));
        if let Err(e) = spawned {
            // The closure, and the iterator with it, was dropped on this thread.
            eprintln!("volley: stopped a lent dataset iterator on the releasing thread: {e}");
        }
    }
}

impl NodeApi {
    /// Lends `batches`: the node's ref to the anchor that keeps them.
    pub(super) fn lend(&self, batches: LentBatches) -> Result<RawRef> {
        self.lend_as(Lent::Batches(Arc::new(Mutex::new(Some(batches)))))
    }

    /// Keeps `value` for a front end: the node's ref to the anchor that keeps it.
    pub(super) fn lend_value(&self, value: LentValue) -> Result<RawRef> {
        self.lend_as(Lent::Value(value))
    }

    /// The value lent under `anchor`.
    pub(super) fn lent_value(&self, anchor: ObjectId) -> Result<LentValue> {
        match self.node.foreign_lent.lent.lock().get(&anchor) {
            Some(Lent::Value(v)) => Ok(v.clone()),
            Some(Lent::Batches(_)) => Err(Error::InvalidArgument(format!(
                "{anchor} anchors a lent iterator, not a value"
            ))),
            None => Err(Error::NotFound(format!(
                "nothing is lent under {anchor} (it was freed)"
            ))),
        }
    }

    fn lend_as(&self, lent: Lent) -> Result<RawRef> {
        let anchor = self.put_raw(PutValue {
            data: ForeignValue::Pickle(Bytes::new()),
            nested: Vec::new(),
        })?;
        self.node.foreign_lent.lent.lock().insert(anchor.id(), lent);
        let guard = LentGuard {
            node: Arc::downgrade(&self.node),
            anchor: anchor.id(),
        };
        self.node.store.attach(anchor.id(), Box::new(guard));
        Ok(anchor)
    }

    /// The next batch of the iterator lent under `anchor`, stored as an object; `None` once
    /// it is exhausted.
    pub(super) fn next_lent_raw(&self, anchor: ObjectId) -> Result<Option<ForeignRef>> {
        let it = match self.node.foreign_lent.lent.lock().get(&anchor) {
            Some(Lent::Batches(it)) => it.clone(),
            _ => {
                return Err(Error::NotFound(format!(
                    "no dataset iterator is lent under {anchor} (it was freed)"
                )));
            }
        };
        let mut it = it.lock();
        // The consumer waits for the pipeline: a task's resources go back to the node
        // meanwhile, so the pipeline's own tasks can run.
        let next = crate::core::node::blocking_section(|| it.as_mut().and_then(Iterator::next));
        match next {
            None => {
                // Exhausted: its execution ends now, not when the last ref goes.
                *it = None;
                Ok(None)
            }
            Some(batch) => {
                let value = PutValue {
                    data: ForeignValue::Arrow(Block::from(batch?)),
                    nested: Vec::new(),
                };
                self.put_raw(value).map(|r| Some(ForeignRef::from_raw(r)))
            }
        }
    }
}

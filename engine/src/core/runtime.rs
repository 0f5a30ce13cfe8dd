//! The runtime handle: one node (store, scheduler, worker pool, I/O runtime) a program can
//! hold and use, beside or instead of the default one.
//!
//! The free functions (`volley::put`, `volley::task(...).remote`, `volley::data::...`) run on
//! the calling thread's node: the one the thread belongs to (a task's or actor's thread, or
//! code inside [`Runtime::enter`]), else the default node that [`crate::init`] starts. So
//! two runtimes live side by side in one process, each with its own store, threads and
//! worker processes:
//!
//! ```
//! let a = volley::Runtime::start(volley::Config::builtin()).unwrap();
//! let b = volley::Runtime::start(volley::Config::builtin()).unwrap();
//! let x = a.enter(|| volley::put(1u32)).unwrap();
//! assert_eq!(a.enter(|| volley::get(&x)).unwrap(), 1);
//! assert!(b.enter(|| volley::get(&x)).is_err()); // not an object of b's store
//! a.shutdown();
//! b.shutdown();
//! ```

use std::sync::Arc;

use crate::config::Config;
use crate::core::api::{ObjectRef, RawRef};
use crate::core::ids::{NodeId, ObjectId};
use crate::core::node::{self, NodeInner};
use crate::core::shipped::ShippedTask;
use crate::error::Result;

/// A handle on a node. The one [`Runtime::start`] returns owns it: dropping it (or
/// [`Runtime::shutdown`]) stops the node. One from [`Runtime::current`] only refers to it.
pub struct Runtime {
    node: Arc<NodeInner>,
    owned: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("node", &self.node.id)
            .field("owned", &self.owned)
            .finish()
    }
}

impl Runtime {
    /// Starts a node of its own, not the default one: use it through [`Runtime::enter`].
    pub fn start(config: Config) -> Result<Runtime> {
        Ok(Runtime {
            node: node::start(config)?,
            owned: true,
        })
    }

    /// The calling thread's runtime (see the module docs), as a handle that does not stop
    /// it when dropped.
    pub fn current() -> Result<Runtime> {
        Ok(Runtime {
            node: node::current()?,
            owned: false,
        })
    }

    /// Runs `f` on this runtime: the free functions called in it (and the tasks, actors and
    /// pipelines they start) use this node.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        node::enter(&self.node, f)
    }

    /// The node's id.
    pub fn node_id(&self) -> NodeId {
        self.node.id
    }

    /// The spec of the task that made `object`, as data (see [`crate::core::shipped`]):
    /// this node must own the object and keep its task's lineage (a retryable task's output
    /// that is still referenced). A task whose function is a closure has no such spec.
    pub fn task_spec(&self, object: ObjectId) -> Result<ShippedTask> {
        self.node.task_spec(object)
    }

    /// Runs a task another node owns on this node, from its spec: refs to its outputs,
    /// whose ids are those its owner expects. The function must resolve here and the
    /// objects the spec names must be here (until nodes pull them from each other, an
    /// object of another node is an [`crate::Error::ObjectElsewhere`]).
    pub fn run_task_spec<T>(&self, spec: ShippedTask) -> Result<Vec<ObjectRef<T>>> {
        Ok(self
            .node
            .run_shipped(spec)?
            .into_iter()
            .map(|id| ObjectRef::from_raw(RawRef::adopt(&self.node, id)))
            .collect())
    }

    /// Stops the node: queued tasks fail, actors and worker processes end, threads are
    /// joined, objects, segments, spill files and the session directory are deleted.
    pub fn shutdown(self) {
        node::stop(&self.node);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.owned {
            node::stop(&self.node);
        }
    }
}

//! The public core API: object refs, `put` / `get` / `wait` / `cancel`, runtime context.

use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::core::ids::{ActorId, JobId, NodeId, ObjectId, TaskId, WorkerId};
use crate::core::node::{self, NodeInner, blocking_section, current};
pub use crate::core::object::ValueKind;
use crate::core::object::{ObjectData, Value, note_nested_ref, serialize_holding};
use crate::core::resources::ResourceSet;
use crate::core::store::{Signal, Store, StoreStats, Waiter};
use crate::error::{Error, Result};

/// An owned reference to an object: while any clone lives, the object is kept.
pub struct RawRef {
    handle: Arc<Handle>,
}

struct Handle {
    id: ObjectId,
    store: Weak<Store>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(s) = self.store.upgrade() {
            s.release(self.id);
        }
    }
}

impl RawRef {
    /// Wraps a reference the store already counted.
    pub(crate) fn adopt(node: &NodeInner, id: ObjectId) -> Self {
        RawRef {
            handle: Arc::new(Handle {
                id,
                store: Arc::downgrade(&node.store),
            }),
        }
    }

    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.handle.id
    }
}

impl Clone for RawRef {
    fn clone(&self) -> Self {
        RawRef {
            handle: self.handle.clone(),
        }
    }
}

impl std::fmt::Debug for RawRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawRef({})", self.handle.id)
    }
}

/// A typed reference to an object holding a `T`.
///
/// Refs nested inside a value stay refs (they are serialized as ids, and the containing
/// object keeps them alive).
pub struct ObjectRef<T> {
    raw: RawRef,
    _t: PhantomData<fn() -> T>,
}

impl<T> ObjectRef<T> {
    pub(crate) fn from_raw(raw: RawRef) -> Self {
        ObjectRef {
            raw,
            _t: PhantomData,
        }
    }

    /// The object's id (its owner is `id().owner()`).
    pub fn id(&self) -> ObjectId {
        self.raw.id()
    }

    /// The untyped reference.
    pub fn raw(&self) -> &RawRef {
        &self.raw
    }
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        ObjectRef {
            raw: self.raw.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectRef({})", self.id())
    }
}

impl<T> PartialEq for ObjectRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<T> Serialize for ObjectRef<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        note_nested_ref(self.id(), |id| {
            if let Some(store) = self.raw.handle.store.upgrade() {
                store.add_ref(id);
            }
        });
        s.serialize_bytes(&self.id().to_bytes())
    }
}

impl<'de, T> Deserialize<'de> for ObjectRef<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(d)?;
        let id = ObjectId::from_bytes(&bytes).ok_or_else(|| D::Error::custom("bad object id"))?;
        let node = current().map_err(D::Error::custom)?;
        if !node.store.add_ref(id) {
            return Err(D::Error::custom(format!("object {id} no longer exists")));
        }
        Ok(ObjectRef::from_raw(RawRef::adopt(&node, id)))
    }
}

fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("object id bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(
            self,
            v: Vec<u8>,
        ) -> std::result::Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut a: A,
        ) -> std::result::Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = a.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_bytes(V)
}

/// Starts the runtime: an in-process node (scheduler, object store, worker threads).
///
/// ```
/// volley::init(volley::Config::default()).unwrap();
/// assert!(volley::is_initialized());
/// volley::shutdown();
/// assert!(!volley::is_initialized());
/// ```
pub fn init(config: crate::Config) -> Result<()> {
    node::init(config)
}

/// Stops the runtime and frees everything it holds (threads, objects, segments, files).
pub fn shutdown() {
    node::shutdown()
}

/// True between [`init`] and [`shutdown`].
pub fn is_initialized() -> bool {
    node::is_initialized()
}

/// Stores a value and returns a ref to it.
///
/// ```
/// # volley::init(volley::Config::default()).unwrap();
/// let r = volley::put(vec![1u8, 2, 3]).unwrap();
/// assert_eq!(volley::get(&r).unwrap(), vec![1, 2, 3]);
/// # volley::shutdown();
/// ```
pub fn put<T: Value>(value: T) -> Result<ObjectRef<T>> {
    let node = current()?;
    let (data, nested) = serialize_holding(|| value.into_data());
    let raw = put_data(&node, data?, nested)?;
    Ok(ObjectRef::from_raw(raw))
}

pub(crate) fn put_data(
    node: &NodeInner,
    data: ObjectData,
    nested: Vec<ObjectId>,
) -> Result<RawRef> {
    let id = ObjectId {
        task: node.next_task_id(),
        index: ObjectId::PUT_INDEX,
    };
    node.store.put(id, data, nested, 1)?;
    Ok(RawRef::adopt(node, id))
}

/// Waits for the object and returns its value (blocking without limit).
pub fn get<T: Value>(r: &ObjectRef<T>) -> Result<T> {
    get_timeout_opt(r, None)
}

/// Waits at most `timeout` for the object; `GetTimeout` after that.
pub fn get_timeout<T: Value>(r: &ObjectRef<T>, timeout: Duration) -> Result<T> {
    get_timeout_opt(r, Some(timeout))
}

/// Gets every object, in order, waiting at most `timeout` for all of them.
pub fn get_all<T: Value>(refs: &[ObjectRef<T>], timeout: Option<Duration>) -> Result<Vec<T>> {
    let node = current()?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let signal = Arc::new(Signal::default());
    let mut pending = 0;
    for r in refs {
        if node.store.status(r.id()).is_none() {
            node.store.on_ready(r.id(), Waiter::Signal(signal.clone()));
            pending += 1;
        }
    }
    if pending > 0 && blocking_section(|| signal.wait_for(pending, deadline)) < pending {
        return Err(Error::GetTimeout(
            timeout.unwrap_or_default(),
            format!("{pending} of {} objects", refs.len()),
        ));
    }
    refs.iter().map(|r| read(&node, r.id())).collect()
}

fn get_timeout_opt<T: Value>(r: &ObjectRef<T>, timeout: Option<Duration>) -> Result<T> {
    let node = current()?;
    wait_ready(&node, r.id(), timeout)?;
    read(&node, r.id())
}

/// Reads a sealed (or failed) object.
fn read<T: Value>(node: &Arc<NodeInner>, id: ObjectId) -> Result<T> {
    if let Some(Err(e)) = node.store.status(id) {
        return Err(node.placed(id, e));
    }
    let (data, pin) = node.read_object(id, matches!(T::KIND, ValueKind::Arrow))?;
    let mut v = T::from_data(&data)?;
    if let Some(pin) = pin {
        v.attach_pin(pin);
    }
    Ok(v)
}

/// Blocks until `id` is sealed or failed; errors with `GetTimeout`.
fn wait_ready(node: &Arc<NodeInner>, id: ObjectId, timeout: Option<Duration>) -> Result<()> {
    if let Some(r) = node.store.status(id) {
        return r.map_err(|e| node.placed(id, e));
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let signal = Arc::new(Signal::default());
    node.store.on_ready(id, Waiter::Signal(signal.clone()));
    let got = blocking_section(|| signal.wait_for(1, deadline));
    if got == 0 {
        return Err(Error::GetTimeout(
            timeout.unwrap_or_default(),
            format!("object {id}"),
        ));
    }
    node.store.status(id).unwrap_or(Ok(()))
}

/// Waits until `num_returns` of `refs` are ready (sealed or failed) or `timeout` passes;
/// returns `(ready, not_ready)`, each in the order of `refs`.
///
/// ```
/// # volley::init(volley::Config::default()).unwrap();
/// let refs: Vec<_> = (0..4).map(|i| volley::put(i).unwrap()).collect();
/// let (ready, rest) = volley::wait(&refs, 2, None).unwrap();
/// assert_eq!((ready.len(), rest.len()), (2, 2));
/// # volley::shutdown();
/// ```
pub fn wait<T>(
    refs: &[ObjectRef<T>],
    num_returns: usize,
    timeout: Option<Duration>,
) -> Result<(Vec<ObjectRef<T>>, Vec<ObjectRef<T>>)> {
    if num_returns > refs.len() {
        return Err(Error::InvalidArgument(format!(
            "num_returns={num_returns} exceeds the number of refs ({})",
            refs.len()
        )));
    }
    let node = current()?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let signal = Arc::new(Signal::default());
    let mut ready_now = 0;
    for r in refs {
        match node.store.status(r.id()) {
            Some(_) => ready_now += 1,
            None => node.store.on_ready(r.id(), Waiter::Signal(signal.clone())),
        }
    }
    if ready_now < num_returns {
        blocking_section(|| signal.wait_for(num_returns - ready_now, deadline));
    }
    let (mut ready, mut rest) = (Vec::new(), Vec::new());
    for r in refs {
        if ready.len() < num_returns.max(1) && node.store.status(r.id()).is_some() {
            ready.push(r.clone());
        } else {
            rest.push(r.clone());
        }
    }
    // With num_returns == 0 nothing is waited for and nothing is reported ready.
    if num_returns == 0 {
        rest = refs.to_vec();
        ready.clear();
    }
    Ok((ready, rest))
}

/// Options of [`cancel`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CancelOptions {
    /// Ray's `force`. Either way the outputs fail at once. A task running in a worker
    /// process is interrupted there (Python: `KeyboardInterrupt` in its code), or with
    /// `force` its process is killed; in-process tasks cannot be stopped mid-instruction and
    /// are told (`is_cancelled()`, failing emits).
    pub force: bool,
    /// Also cancel the tasks it submitted.
    pub recursive: bool,
}

/// Cancels the task that produces `r`. Its outputs fail with `TaskCancelled`; a finished task
/// is left alone.
pub fn cancel<T>(r: &ObjectRef<T>, opts: CancelOptions) -> Result<()> {
    cancel_task(r.id().task, opts)
}

/// Cancels a task by id (e.g. a streaming task's [`crate::ObjectRefGenerator::task_id`]).
pub fn cancel_task(task: TaskId, opts: CancelOptions) -> Result<()> {
    current()?.cancel_task(task, opts.recursive, opts.force);
    Ok(())
}

/// True inside a task that was cancelled: long-running task code should check it.
pub fn is_cancelled() -> bool {
    node::current_task()
        .and_then(|c| c.state)
        .is_some_and(|s| s.is_cancelled())
}

/// Who and where the caller is.
#[derive(Debug, Clone)]
pub struct RuntimeContext {
    /// The node.
    pub node_id: NodeId,
    /// The job.
    pub job_id: JobId,
    /// The calling worker (0 is the driver).
    pub worker_id: WorkerId,
    /// The running task, if called from one.
    pub task_id: Option<TaskId>,
    /// The actor, if called from an actor method.
    pub actor_id: Option<ActorId>,
    /// The session directory.
    pub session_dir: std::path::PathBuf,
}

/// The caller's runtime context (Ray's `get_runtime_context()`).
pub fn get_runtime_context() -> Result<RuntimeContext> {
    let node = current()?;
    let cur = node::current_task();
    Ok(RuntimeContext {
        node_id: node.id,
        job_id: node.job,
        worker_id: node.worker_id(),
        task_id: cur.as_ref().filter(|c| c.state.is_some()).map(|c| c.task),
        actor_id: cur.and_then(|c| c.actor),
        session_dir: node.session_dir.clone(),
    })
}

/// Resources not in use now.
pub fn available_resources() -> Result<ResourceSet> {
    Ok(current()?.sched.available())
}

/// All resources of the cluster.
pub fn cluster_resources() -> Result<ResourceSet> {
    Ok(current()?.sched.total())
}

/// The object store's own accounting.
pub fn object_store_stats() -> Result<StoreStats> {
    Ok(current()?.store.stats())
}

/// Writes the objects behind `refs` to spill storage now and frees their memory (those that
/// are resident, sealed and not pinned by a reader); a later `get` restores them. Returns the
/// resident bytes freed. For producers that know their output will not be read soon (e.g. the
/// map side of a shuffle larger than memory).
pub fn spill<T: Value>(refs: &[ObjectRef<T>]) -> Result<u64> {
    let ids: Vec<ObjectId> = refs.iter().map(|r| r.id()).collect();
    current()?.store.spill_now(&ids)
}

/// The spill URL in use.
pub fn spill_url() -> Result<String> {
    Ok(current()?.store.spill_url().to_string())
}

/// A sealed shared-memory segment holding the object's Arrow IPC encoding, created on first
/// use; another process maps it with [`crate::core::shm::map_segment`].
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// The segment file.
    pub path: std::path::PathBuf,
    /// Its length in bytes.
    pub len: usize,
}

/// The object's shared-memory segment (materialized once, freed with the object).
pub fn object_segment<T>(r: &ObjectRef<T>) -> Result<SegmentInfo> {
    let seg = current()?.store.segment(r.id())?;
    Ok(SegmentInfo {
        path: seg.path().to_path_buf(),
        len: seg.len(),
    })
}

//! The node: scheduler, object store, worker threads, actors — and, in local mode, the
//! process-wide runtime that `volley::init` starts and `volley::shutdown` ends.
//!
//! # Ownership
//! The global slot owns the only long-lived `Arc<NodeInner>`; worker and actor threads hold
//! clones while they run and are joined by `shutdown`, which also frees every object,
//! segment and spill file and removes the session directory. Task code reaches the node
//! through [`current`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::config::Config;
use crate::core::actor::ActorControl;
use crate::core::generator::GenShared;
use crate::core::ids::{ActorId, JobId, NodeId, ObjectId, TaskId, WorkerId};
use crate::core::owners::OwnerTable;
use crate::core::resources::{ResourceName, ResourceSet};
use crate::core::scheduler::{Grant, Released, Scheduler};
use crate::core::session;
use crate::core::spill::Spiller;
use crate::core::store::{Store, StoreConfig};
use crate::core::task::{Arg, Returns, TaskRequest, TaskSpec, TaskState};
use crate::error::{Error, Result};

static NODE: RwLock<Option<Arc<NodeInner>>> = RwLock::new(None);
static LIFECYCLE: Mutex<()> = Mutex::new(());

/// The node of the calling thread: the one it is bound to (a thread the node started, or
/// code inside [`enter`]), else the default node ([`init`]); `NotInitialized` if none.
pub(crate) fn current() -> Result<Arc<NodeInner>> {
    let bound = THREAD_NODE.with(|t| t.borrow().as_ref().map(Weak::upgrade));
    match bound {
        Some(node) => node.ok_or(Error::NotInitialized),
        None => NODE.read().clone().ok_or(Error::NotInitialized),
    }
}

/// Runs `f` with `node` as the calling thread's node (restored after).
pub(crate) fn enter<R>(node: &Arc<NodeInner>, f: impl FnOnce() -> R) -> R {
    let prev = THREAD_NODE.with(|t| t.borrow_mut().replace(Arc::downgrade(node)));
    struct Restore(Option<Weak<NodeInner>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            THREAD_NODE.with(|t| *t.borrow_mut() = prev);
        }
    }
    let _restore = Restore(prev);
    f()
}

/// Binds the calling thread, one the node started, to `node` for the thread's life.
pub(crate) fn bind_thread(node: &Weak<NodeInner>) {
    THREAD_NODE.with(|t| *t.borrow_mut() = Some(node.clone()));
}

/// The node's shared state.
pub(crate) struct NodeInner {
    pub(crate) id: NodeId,
    pub(crate) job: JobId,
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) sched: Scheduler,
    pub(crate) session_dir: PathBuf,
    tasks: Mutex<HashMap<TaskId, Arc<TaskState>>>,
    pub(crate) actors: Mutex<HashMap<ActorId, Arc<dyn ActorControl>>>,
    pub(crate) named_actors: Mutex<HashMap<String, ActorId>>,
    /// Worker processes (started on first use).
    pub(crate) workers: crate::core::worker::WorkerPool,
    /// Actors whose code runs in worker processes.
    pub(crate) foreign_actors: crate::core::foreign::ForeignActors,
    /// What the node knows of the objects it owns: their owners and lineage.
    pub(crate) owners: OwnerTable,
    /// Dataset iterators lent to consumers elsewhere.
    pub(crate) foreign_lent: crate::core::foreign::LentTable,
    threads: Mutex<Vec<JoinHandle<()>>>,
    seq: AtomicU64,
    worker_index: AtomicU32,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// Set once [`stop`] began.
    stopped: AtomicBool,
    pub(crate) shm_prefix: String,
    pub(crate) shm_dir: PathBuf,
}

/// Outputs of a submitted task.
pub(crate) enum Submitted {
    Fixed(Vec<ObjectId>),
    Streaming(Arc<GenShared>),
}

impl Submitted {
    pub(crate) fn fixed(self) -> Vec<ObjectId> {
        match self {
            Submitted::Fixed(ids) => ids,
            Submitted::Streaming(_) => Vec::new(),
        }
    }

    pub(crate) fn streaming(self) -> Result<Arc<GenShared>> {
        match self {
            Submitted::Streaming(g) => Ok(g),
            Submitted::Fixed(_) => Err(Error::Internal("expected a streaming task".into())),
        }
    }
}

thread_local! {
    /// The node this thread belongs to (see [`current`]); `None`: the default node.
    static THREAD_NODE: RefCell<Option<Weak<NodeInner>>> = const { RefCell::new(None) };
    static WORKER: Cell<Option<WorkerId>> = const { Cell::new(None) };
    static CURRENT: RefCell<Option<CurrentTask>> = const { RefCell::new(None) };
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// What the running task on this thread is.
#[derive(Clone)]
pub(crate) struct CurrentTask {
    pub(crate) task: TaskId,
    pub(crate) state: Option<Arc<TaskState>>,
    pub(crate) grant: Option<Grant>,
    pub(crate) actor: Option<ActorId>,
    blocked: bool,
}

/// Runs `f` with the current task's resources handed back to the node (the task is waiting,
/// not computing), so other tasks can run meanwhile.
pub(crate) fn blocking_section<R>(f: impl FnOnce() -> R) -> R {
    let grant = CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        match c.as_mut() {
            Some(cur) if !cur.blocked && cur.grant.is_some() => {
                cur.blocked = true;
                cur.grant.clone()
            }
            _ => None,
        }
    });
    let Some(grant) = grant else { return f() };
    let node = current().ok();
    if let Some(node) = &node {
        let released = node.sched.block(&grant);
        node.after_release(released);
    }
    let r = f();
    if let Some(node) = &node {
        node.sched.unblock(&grant);
    }
    CURRENT.with(|c| {
        if let Some(cur) = c.borrow_mut().as_mut() {
            cur.blocked = false;
        }
    });
    r
}

/// Names the calling thread as a worker of the node.
pub(crate) fn set_worker(id: WorkerId) {
    WORKER.with(|w| w.set(Some(id)));
}

/// The current task context (None on the driver).
pub(crate) fn current_task() -> Option<CurrentTask> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Sets the task context for the duration of a call; restores the previous one after.
pub(crate) fn with_current<R>(cur: CurrentTask, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.borrow_mut().replace(cur));
    IN_TASK.with(|t| t.set(true));
    let r = f();
    IN_TASK.with(|t| t.set(prev.is_some()));
    CURRENT.with(|c| *c.borrow_mut() = prev);
    r
}

impl CurrentTask {
    pub(crate) fn new(
        task: TaskId,
        state: Option<Arc<TaskState>>,
        grant: Option<Grant>,
        actor: Option<ActorId>,
    ) -> Self {
        CurrentTask {
            task,
            state,
            grant,
            actor,
            blocked: false,
        }
    }
}

/// Installs (once per process) a panic hook that keeps panics inside tasks quiet — they
/// become errors the caller sees — and records where they happened.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(|t| t.get()) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                prev(info);
            }
        }));
    });
}

/// Turns a caught panic into a message with its location.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    };
    match PANIC_AT.with(|p| p.borrow_mut().take()) {
        Some(at) => format!("panicked at {at}: {msg}"),
        None => msg,
    }
}

/// Starts the default node (the one the free functions use). Errors if one is running.
pub(crate) fn init(config: Config) -> Result<()> {
    let _life = LIFECYCLE.lock();
    if NODE.read().is_some() {
        return Err(Error::InvalidArgument(
            "volley is already initialized (call volley::shutdown first)".into(),
        ));
    }
    let node = start(config)?;
    *NODE.write() = Some(node);
    crate::core::signals::install();
    Ok(())
}

/// Starts a node: its store, scheduler, worker pool, I/O runtime and session directory.
/// It is nobody's default: [`init`] makes one the default, [`enter`] the calling thread's.
pub(crate) fn start(config: Config) -> Result<Arc<NodeInner>> {
    config.validate()?;
    // A VOLLEY_* variable that does not parse is an error here, not silently ignored.
    Config::from_env()?;
    install_panic_hook();
    session::tune_allocator(config.malloc_mmap_threshold);
    let id = NodeId::random();
    let session_dir = config
        .temp_dir
        .join(format!("session_{}_{}", std::process::id(), id));
    std::fs::create_dir_all(&session_dir).map_err(|e| {
        Error::io(
            format!("creating session directory {}", session_dir.display()),
            e,
        )
    })?;
    let cleanup_on_err = |e: Error| {
        let _ = std::fs::remove_dir_all(&session_dir);
        e
    };
    // Its blocking threads serve parked Python tasks' requests (a nested `get` waits on
    // one): bounded like the worker threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(config.max_worker_threads)
        .thread_name("volley-io")
        .enable_all()
        .build()
        .map_err(|e| cleanup_on_err(Error::io("starting the I/O runtime", e)))?;
    let spill_url = config
        .spill_url
        .clone()
        .unwrap_or_else(|| session_dir.join("spill").to_string_lossy().into_owned());
    let spiller = Spiller::new(&spill_url, runtime.handle().clone()).map_err(cleanup_on_err)?;
    let shm_dir = match &config.shm_dir {
        Some(d) => d.clone(),
        None if std::path::Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => session_dir.clone(),
    };
    session::sweep_dead_sessions(&config.temp_dir, &shm_dir);
    session::warn_if_shm_is_small(&shm_dir, config.resolved_object_store_memory());
    let shm_prefix = format!("volley-{id}-");
    let store = Store::new(
        StoreConfig {
            budget: config.resolved_object_store_memory(),
            spilling_threshold: config.object_spilling_threshold,
            full_timeout: config.object_store_full_timeout,
            small_object: config.max_inline_object_size,
            shm_dir: shm_dir.clone(),
            shm_prefix: shm_prefix.clone(),
        },
        spiller,
    );
    let mut total = ResourceSet::new()
        .with(ResourceName::Cpu, config.resolved_num_cpus())
        .with(ResourceName::Gpu, config.num_gpus.unwrap_or(0.0))
        .with(ResourceName::Memory, config.resolved_memory() as f64)
        .with(
            ResourceName::Custom(Arc::from("object_store_memory")),
            config.resolved_object_store_memory() as f64,
        );
    for (name, amount) in &config.resources {
        total.set(ResourceName::parse(name), *amount);
    }
    let workers = crate::core::worker::WorkerPool::new(&config, &session_dir);
    let node = Arc::new(NodeInner {
        id,
        job: JobId(1),
        sched: Scheduler::new(id, total, config.max_worker_threads),
        workers,
        foreign_actors: Default::default(),
        foreign_lent: Default::default(),
        owners: OwnerTable::new(id, config.max_lineage_bytes),
        config,
        store,
        session_dir,
        tasks: Mutex::new(HashMap::new()),
        actors: Mutex::new(HashMap::new()),
        named_actors: Mutex::new(HashMap::new()),
        threads: Mutex::new(Vec::new()),
        seq: AtomicU64::new(1),
        worker_index: AtomicU32::new(1),
        runtime: Mutex::new(Some(runtime)),
        stopped: AtomicBool::new(false),
        shm_prefix,
        shm_dir,
    });
    Ok(node)
}

/// Stops the node: no new work, queued tasks fail with `Shutdown`, actors die, running tasks
/// finish, every thread is joined, every object, segment, spill file and the session
/// directory are deleted. SIGTERM is given back last (its watcher may be the caller).
pub(crate) fn shutdown() {
    shutdown_node();
    crate::core::signals::uninstall();
}

fn shutdown_node() {
    let _life = LIFECYCLE.lock();
    let Some(node) = NODE.write().take() else {
        return;
    };
    stop(&node);
}

/// Stops `node`: see [`shutdown`]. Stopping a stopped node does nothing.
pub(crate) fn stop(node: &Arc<NodeInner>) {
    if node.stopped.swap(true, Ordering::AcqRel) {
        return;
    }
    // Running tasks are told to stop (cooperatively); their outputs fail now.
    let running: Vec<TaskId> = node.tasks.lock().keys().copied().collect();
    for id in running {
        node.cancel_task(id, false, false);
    }
    for t in node.sched.shutdown() {
        fail_task_with(node, t, Error::Shutdown);
    }
    // Worker processes die now, so the calls waiting on them return.
    node.workers.shutdown();
    node.foreign_actors.clear();
    node.foreign_lent.clear();
    let actors: Vec<Arc<dyn ActorControl>> = node.actors.lock().drain().map(|(_, a)| a).collect();
    node.named_actors.lock().clear();
    for a in &actors {
        a.stop("the runtime shut down");
    }
    node.store.shutdown();
    loop {
        let handles: Vec<JoinHandle<()>> = node.threads.lock().drain(..).collect();
        if handles.is_empty() {
            break;
        }
        for h in handles {
            let _ = h.join();
        }
    }
    drop(actors);
    node.tasks.lock().clear();
    if let Some(rt) = node.runtime.lock().take() {
        rt.shutdown_timeout(Duration::from_secs(5));
    }
    // Segments are unlinked as the store drops them; sweep any a crash left behind.
    if let Ok(dir) = std::fs::read_dir(&node.shm_dir) {
        for e in dir.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&node.shm_prefix)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&node.session_dir);
}

/// True between `init` and `shutdown`.
pub(crate) fn is_initialized() -> bool {
    NODE.read().is_some()
}

impl NodeInner {
    /// The worker id of the calling thread (the driver is worker 0).
    pub(crate) fn worker_id(&self) -> WorkerId {
        WORKER.with(|w| w.get()).unwrap_or(WorkerId {
            node: self.id,
            index: 0,
        })
    }

    /// A fresh task id owned by the calling worker.
    pub(crate) fn next_task_id(&self) -> TaskId {
        TaskId {
            owner: self.worker_id(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A handle on the node's I/O runtime.
    pub(crate) fn io_runtime(&self) -> Result<tokio::runtime::Handle> {
        self.runtime
            .lock()
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or(Error::Shutdown)
    }

    /// Registers a task about to be queued (for `cancel` and its children).
    pub(crate) fn register_task(&self, state: &Arc<TaskState>) {
        self.tasks.lock().insert(state.id, state.clone());
    }

    /// Submits a task.
    pub(crate) fn submit_task(self: &Arc<Self>, req: TaskRequest) -> Result<Submitted> {
        self.submit_task_as(self.next_task_id(), 1, req)
    }

    /// Submits a task under the id `id` (a new one's, or that of a task another node owns
    /// whose spec was shipped here), for its `attempt`th run.
    pub(crate) fn submit_task_as(
        self: &Arc<Self>,
        id: TaskId,
        attempt: u32,
        req: TaskRequest,
    ) -> Result<Submitted> {
        // A task refused here gives back the refs its value arguments took.
        let placed = req.opts.resource_set().and_then(|r| {
            self.sched
                .require_local(&r, &req.opts.scheduling_strategy)
                .map(|()| Arc::new(r))
        });
        let resources = placed.inspect_err(|_| self.release_value_args(&req.args))?;
        let (returns, outputs, generator, submitted) = match req.streaming {
            Some(backpressure) => {
                let g = GenShared::new(id, backpressure);
                (
                    Returns::Streaming(g.clone()),
                    Vec::new(),
                    Some(g.clone()),
                    Submitted::Streaming(g),
                )
            }
            None => {
                let ids: Vec<ObjectId> = (0..req.num_returns as u32)
                    .map(|index| ObjectId { task: id, index })
                    .collect();
                (
                    Returns::Fixed(ids.clone()),
                    ids.clone(),
                    None,
                    Submitted::Fixed(ids),
                )
            }
        };
        // Hold the ref arguments until the task ends (refs nested in value arguments were
        // taken when the values were serialized).
        let mut held = Vec::new();
        for a in &req.args {
            if let Arg::Ref(oid) = a {
                if !self.store.add_ref(*oid) {
                    self.store.release_many(held);
                    self.release_value_args(&req.args);
                    return Err(
                        self.missing(*oid, format!("argument of task {} was freed", req.name))
                    );
                }
                held.push(*oid);
            }
        }
        for o in &outputs {
            self.store.create_pending(*o, 1);
        }
        let state = TaskState::new(req.name.clone(), id, outputs, generator);
        self.register_task(&state);
        if let Some(parent) = CURRENT.with(|c| c.borrow().as_ref().and_then(|c| c.state.clone())) {
            let mut ch = parent.children.lock();
            if ch.len() >= 1024 {
                let live = self.tasks.lock();
                ch.retain(|c| live.contains_key(c));
            }
            ch.push(id);
        }
        let spec = Box::new(TaskSpec {
            id,
            name: req.name,
            func: req.func,
            args: req.args,
            returns,
            resources,
            max_retries: req.opts.max_retries.unwrap_or(self.config.task_max_retries),
            retry_exceptions: req.opts.retry_exceptions,
            strategy: req.opts.scheduling_strategy,
            attempt,
            state,
        });
        self.schedule_when_args_ready(spec);
        Ok(submitted)
    }

    /// Gives back the references taken on refs nested in value arguments.
    fn release_value_args(&self, args: &[Arg]) {
        let nested: Vec<ObjectId> = args
            .iter()
            .flat_map(|a| match a {
                Arg::Value { nested, .. } => nested.clone(),
                Arg::Ref(_) => Vec::new(),
            })
            .collect();
        self.store.release_many(nested);
    }

    pub(crate) fn schedule_when_args_ready(self: &Arc<Self>, spec: Box<TaskSpec>) {
        let mut pending = Vec::new();
        for a in &spec.args {
            if let Arg::Ref(id) = a {
                match self.store.status(*id) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => return fail_task_with(self, spec, e),
                    None => pending.push(*id),
                }
            }
        }
        if pending.is_empty() {
            return self.enqueue(spec);
        }
        struct Deps {
            remaining: AtomicU32,
            task: Mutex<Option<Box<TaskSpec>>>,
        }
        let deps = Arc::new(Deps {
            remaining: AtomicU32::new(pending.len() as u32 + 1),
            task: Mutex::new(Some(spec)),
        });
        let arrive = {
            let deps = deps.clone();
            let node = self.clone();
            move |r: Result<()>| match r {
                Ok(()) => {
                    if deps.remaining.fetch_sub(1, Ordering::AcqRel) == 1
                        && let Some(t) = deps.task.lock().take()
                    {
                        node.enqueue(t);
                    }
                }
                Err(e) => {
                    if let Some(t) = deps.task.lock().take() {
                        fail_task_with(&node, t, e);
                    }
                }
            }
        };
        for id in pending {
            let arrive = arrive.clone();
            self.store
                .on_ready(id, crate::core::store::Waiter::Callback(Box::new(arrive)));
        }
        arrive(Ok(()));
    }

    pub(crate) fn enqueue(self: &Arc<Self>, task: Box<TaskSpec>) {
        if self.sched.enqueue(task) {
            self.spawn_worker();
        }
    }

    /// Starts a worker thread (the scheduler already counted it).
    pub(crate) fn spawn_worker(self: &Arc<Self>) {
        let index = self.worker_index.fetch_add(1, Ordering::Relaxed);
        let node = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("volley-worker-{index}"))
            .spawn(move || node.worker_main(index));
        match spawned {
            Ok(h) => {
                let mut threads = self.threads.lock();
                threads.retain(|h| !h.is_finished());
                threads.push(h);
            }
            Err(_) => self.sched.thread_exited(),
        }
    }

    /// Registers a thread the node must join at shutdown (actor threads).
    pub(crate) fn adopt_thread(&self, h: JoinHandle<()>) {
        let mut threads = self.threads.lock();
        threads.retain(|h| !h.is_finished());
        threads.push(h);
    }

    /// A fresh worker index (actor threads get one too).
    pub(crate) fn next_worker_index(&self) -> u32 {
        self.worker_index.fetch_add(1, Ordering::Relaxed)
    }

    fn worker_main(self: Arc<Self>, index: u32) {
        bind_thread(&Arc::downgrade(&self));
        WORKER.with(|w| {
            w.set(Some(WorkerId {
                node: self.id,
                index,
            }))
        });
        // Counted as waking each time: when started, and by `release_by_worker` after each
        // task.
        while let Some((task, grant, spawn)) = self.sched.next_task() {
            if spawn {
                self.spawn_worker();
            }
            self.execute(task, grant);
        }
    }

    pub(crate) fn after_release(self: &Arc<Self>, released: Released) {
        if released.spawn_worker {
            self.spawn_worker();
        }
        for id in released.groups_ready {
            if let Ok(data) = crate::core::object::Value::into_data(true) {
                let _ = self.store.seal(id, data, Vec::new());
            }
        }
    }

    /// Bookkeeping when a task is done for good.
    pub(crate) fn finish_task(&self, task: &TaskSpec) {
        let mut held = Vec::new();
        for a in &task.args {
            match a {
                Arg::Ref(id) => held.push(*id),
                Arg::Value { nested, .. } => held.extend(nested.iter().copied()),
            }
        }
        self.store.release_many(held);
        self.tasks.lock().remove(&task.id);
    }

    /// Cancels a task (and, with `recursive`, the tasks it submitted). Its outputs fail with
    /// `TaskCancelled` at once; a running task sees `is_cancelled()` and its emits fail.
    pub(crate) fn cancel_task(&self, id: TaskId, recursive: bool, force: bool) {
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            let Some(state) = self.tasks.lock().get(&id).cloned() else {
                continue;
            };
            state.cancel(force);
            let err = Error::TaskCancelled(state.display_name());
            for o in &state.outputs {
                self.store.fail(*o, err.clone());
            }
            if let Some(g) = &state.generator {
                g.finish(Err(err));
            }
            if recursive {
                todo.extend(state.children.lock().iter().copied());
            }
        }
    }
}

/// Fails a task's outputs and releases what it held.
pub(crate) fn fail_task_with(node: &NodeInner, task: Box<TaskSpec>, err: Error) {
    match &task.returns {
        Returns::Fixed(ids) => {
            for id in ids {
                node.store.fail(*id, err.clone());
            }
        }
        Returns::Streaming(g) => g.finish(Err(err)),
    }
    node.finish_task(&task);
}

/// Fails a task on the current node.
pub(crate) fn fail_task(task: Box<TaskSpec>, err: Error) {
    if let Ok(node) = current() {
        fail_task_with(&node, task, err);
    }
}

/// A task enqueued after shutdown began.
pub(crate) fn fail_task_on_shutdown(task: &TaskSpec) {
    match &task.returns {
        Returns::Streaming(g) => g.finish(Err(Error::Shutdown)),
        Returns::Fixed(_) => {}
    }
}

impl std::fmt::Debug for NodeInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.id).finish()
    }
}

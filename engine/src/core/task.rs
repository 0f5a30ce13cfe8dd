//! Tasks: specs, the function registry, and the typed-closure adapters.
//!
//! # Task state machine
//!
//! ```text
//!  submit ──► pending-args ──(all args ready)──► queued ──(resources granted)──► running
//!                 │                                 ▲                            │
//!                 └─(an arg failed)──► failed       └──── retrying ◄─(panic, or error with
//!                                        ▲                             retry_exceptions,
//!                                        │                             attempts left)
//!                                        └──────────(no attempts left)── finished | failed
//! ```
//! `cancel` moves a pending-args or queued task straight to failed (`TaskCancelled`) and
//! flags a running one; its outputs fail at once either way.
//!
//! A task names its function by a registered name ([`register`]), by a foreign function's
//! id, or by a closure (local mode). The first two are data: such a task's spec crosses
//! processes and nodes ([`crate::core::shipped`]). Arguments are values (serialized
//! at submission) or object refs (resolved before the task runs, pinned while it runs).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::{Mutex, RwLock};

use crate::core::ids::{NodeId, ObjectId, PlacementGroupId, TaskId};
use crate::core::object::{ObjectData, Value, serialize_holding};
use crate::core::resources::ResourceSet;
use crate::error::{Error, Result, TaskResult, UserError};

/// Where a task or actor may run (Ray's scheduling strategies).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SchedulingStrategy {
    /// Hybrid: pack onto the local node until it is half busy, then spread.
    #[default]
    Default,
    /// Spread over nodes.
    Spread,
    /// On a given node; with `soft`, elsewhere when that node cannot take it.
    NodeAffinity {
        /// The node.
        node: NodeId,
        /// Fall back to other nodes.
        soft: bool,
    },
    /// Inside a placement group's reserved bundle.
    PlacementGroup {
        /// The group.
        group: PlacementGroupId,
        /// A bundle index, or any bundle with room.
        bundle_index: Option<usize>,
    },
}

/// An argument as submitted (internal; built by [`IntoArg`]).
#[doc(hidden)]
#[derive(Debug)]
pub enum Arg {
    /// A value, serialized; `nested` are refs inside it (referenced when serialized, released
    /// when the task ends).
    Value {
        data: ObjectData,
        nested: Vec<ObjectId>,
    },
    /// An object ref, resolved before execution.
    Ref(ObjectId),
}

/// How the task's function is named: by a name or id any node resolves (the spec is data,
/// see [`crate::core::shipped`]), or by a closure, the local-mode fast path.
#[derive(Clone)]
pub(crate) enum Func {
    /// A registered Rust function.
    Registered(Arc<str>),
    /// A foreign (pickled) function, by its id in the function table; it runs in a worker
    /// process. Its first argument is the call's argument structure, the rest its refs.
    Foreign(u64),
    /// A closure (local mode).
    Closure(Arc<ErasedFn>),
}

/// The erased form of every task function (internal).
#[doc(hidden)]
pub type ErasedFn =
    dyn Fn(&mut CallCtx<'_>) -> std::result::Result<Vec<Output>, CallError> + Send + Sync;

/// One output object: its data and the ids of the refs nested inside it.
#[doc(hidden)]
pub type Output = (ObjectData, Vec<ObjectId>);

/// Why a call produced no outputs (internal).
#[doc(hidden)]
#[derive(Debug)]
pub enum CallError {
    /// The user's code returned an error.
    User(UserError),
    /// The call could not be made (bad argument types or count): never retried.
    Setup(Error),
}

/// What a function gets at execution (internal).
#[doc(hidden)]
pub struct CallCtx<'a> {
    pub(crate) args: Vec<ObjectData>,
    pub(crate) name: &'a str,
    pub(crate) id: TaskId,
    pub(crate) emitter: Option<&'a dyn EmitSink>,
}

impl std::fmt::Debug for CallCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCtx")
            .field("task", &self.task_name())
            .finish()
    }
}

impl CallCtx<'_> {
    /// `name (id)`, for errors (formatted only when needed).
    pub(crate) fn task_name(&self) -> String {
        format!("{} ({})", self.name, self.id)
    }
}

/// Where a streaming task's outputs go (internal).
#[doc(hidden)]
pub trait EmitSink {
    fn emit(&self, data: ObjectData, nested: Vec<ObjectId>) -> Result<()>;
}

/// Outputs: fixed count or streamed.
pub(crate) enum Returns {
    Fixed(Vec<ObjectId>),
    Streaming(Arc<crate::core::generator::GenShared>),
}

/// Per-task state shared with `cancel` (kept in the node's task table while the task lives).
pub(crate) struct TaskState {
    pub(crate) name: Arc<str>,
    pub(crate) id: TaskId,
    pub(crate) cancelled: AtomicBool,
    pub(crate) children: Mutex<Vec<TaskId>>,
    pub(crate) outputs: Vec<ObjectId>,
    pub(crate) generator: Option<Arc<crate::core::generator::GenShared>>,
    /// The worker process running this task's foreign call, while it runs: `cancel`
    /// interrupts it (or, forced, kills it).
    running_pid: Mutex<Option<u32>>,
}

impl TaskState {
    pub(crate) fn new(
        name: Arc<str>,
        id: TaskId,
        outputs: Vec<ObjectId>,
        generator: Option<Arc<crate::core::generator::GenShared>>,
    ) -> Arc<Self> {
        Arc::new(TaskState {
            name,
            id,
            cancelled: AtomicBool::new(false),
            children: Mutex::new(Vec::new()),
            outputs,
            generator,
            running_pid: Mutex::new(None),
        })
    }

    /// Records that worker process `pid` runs this task's call (`None`: it returned).
    /// False, and nothing recorded, when the task was cancelled already: the call must not
    /// start.
    pub(crate) fn set_running_pid(&self, pid: Option<u32>) -> bool {
        let mut running = self.running_pid.lock();
        if pid.is_some() && self.is_cancelled() {
            return false;
        }
        *running = pid;
        true
    }

    /// Marks the task cancelled and stops the worker process running its call, if any:
    /// SIGUSR2 (the worker raises `KeyboardInterrupt` in the task's code) or, forced,
    /// SIGKILL. The signal is sent under the lock that the call's end takes to clear the
    /// pid, so it never reaches a process that went on to another task.
    pub(crate) fn cancel(&self, force: bool) {
        self.cancelled.store(true, Ordering::Relaxed);
        let mut running = self.running_pid.lock();
        if let Some(pid) = running.take() {
            let sig = if force { libc::SIGKILL } else { libc::SIGUSR2 };
            // SAFETY: kill(2) on the pid of a live worker process of this node (the call
            // that recorded it has not returned: it clears the pid under this lock).
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// `name (id)`, as errors show it.
    pub(crate) fn display_name(&self) -> String {
        format!("{} ({})", self.name, self.id)
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// Everything needed to run (and re-run) a task.
pub(crate) struct TaskSpec {
    pub(crate) id: TaskId,
    pub(crate) name: Arc<str>,
    pub(crate) func: Func,
    pub(crate) args: Vec<Arg>,
    pub(crate) returns: Returns,
    pub(crate) resources: Arc<ResourceSet>,
    pub(crate) max_retries: i32,
    pub(crate) retry_exceptions: bool,
    pub(crate) strategy: SchedulingStrategy,
    pub(crate) attempt: u32,
    pub(crate) state: Arc<TaskState>,
}

impl TaskSpec {
    /// `name (id)`, as errors show it.
    pub(crate) fn display_name(&self) -> String {
        self.state.display_name()
    }

    /// Whether another attempt is allowed after `self.attempt` attempts.
    pub(crate) fn can_retry(&self) -> bool {
        self.max_retries < 0 || (self.attempt as i64) <= self.max_retries as i64
    }
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

struct Registered {
    func: Arc<ErasedFn>,
    signature: &'static str,
}

static REGISTRY: LazyLock<RwLock<HashMap<Arc<str>, Registered>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

pub(crate) fn lookup_registered(name: &str) -> Result<Arc<ErasedFn>> {
    REGISTRY
        .read()
        .get(name)
        .map(|r| r.func.clone())
        .ok_or_else(|| Error::NotFound(format!("no function registered as {name:?}")))
}

fn signature_of<Args, R>() -> &'static str {
    std::any::type_name::<fn(Args) -> R>()
}

/// Registers `f` under `name` (process-wide; may be called before `init`) and returns a
/// handle that submits it by name. Registering a name twice is an error.
///
/// ```
/// let square = volley::register("doc_square", |x: i64| Ok(x * x)).unwrap();
/// # volley::init(volley::Config::default()).unwrap();
/// let r = square.remote((7,)).unwrap();
/// assert_eq!(volley::get(&r).unwrap(), 49);
/// # volley::shutdown();
/// ```
pub fn register<Args, R, F>(name: &str, f: F) -> Result<RemoteFunction<Args, R>>
where
    F: IntoTask<Args, R>,
    R: TaskOutput,
{
    let mut reg = REGISTRY.write();
    if reg.contains_key(name) {
        return Err(Error::InvalidArgument(format!(
            "a function is already registered as {name:?}"
        )));
    }
    let name: Arc<str> = Arc::from(name);
    reg.insert(
        name.clone(),
        Registered {
            func: f.erase(),
            signature: signature_of::<Args, R>(),
        },
    );
    Ok(RemoteFunction::new(Func::Registered(name.clone()), name))
}

/// A handle on the function registered as `name`, checked against the expected signature.
pub fn function<Args, R: TaskOutput>(name: &str) -> Result<RemoteFunction<Args, R>> {
    let reg = REGISTRY.read();
    let r = reg
        .get(name)
        .ok_or_else(|| Error::NotFound(format!("no function registered as {name:?}")))?;
    let want = signature_of::<Args, R>();
    if r.signature != want {
        return Err(Error::InvalidArgument(format!(
            "function {name:?} has signature {}, not {want}",
            r.signature
        )));
    }
    let name: Arc<str> = Arc::from(name);
    Ok(RemoteFunction::new(Func::Registered(name.clone()), name))
}

/// A remote function from a closure (local mode).
///
/// ```
/// # volley::init(volley::Config::default()).unwrap();
/// let add = volley::task(|a: i64, b: i64| Ok(a + b));
/// let x = add.remote((1, 2)).unwrap();
/// let y = add.remote((&x, 10)).unwrap(); // a ref argument is resolved first
/// assert_eq!(volley::get(&y).unwrap(), 13);
/// # volley::shutdown();
/// ```
pub fn task<Args, R, F>(f: F) -> RemoteFunction<Args, R>
where
    F: IntoTask<Args, R>,
    R: TaskOutput,
{
    let name: Arc<str> = Arc::from(short_type_name::<F>());
    RemoteFunction::new(Func::Closure(f.erase()), name)
}

fn short_type_name<F>() -> String {
    let full = std::any::type_name::<F>();
    // `my_crate::my_fn::{{closure}}` → `my_fn::{{closure}}`
    let parts: Vec<&str> = full.split("::").collect();
    if parts.len() > 2 {
        parts[parts.len() - 2..].join("::")
    } else {
        full.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Options and the remote function handle
// ---------------------------------------------------------------------------------------------

/// Task options (Ray's `.options(...)`): plain data, kept with the task's spec.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskOptions {
    /// A name shown in errors; default: the function's.
    pub name: Option<String>,
    /// CPUs (default 1; fractional allowed).
    pub num_cpus: f64,
    /// GPUs (default 0).
    pub num_gpus: f64,
    /// Memory in bytes (default 0).
    pub memory: u64,
    /// Custom resources.
    pub resources: Vec<(String, f64)>,
    /// Retries on system failures (panics); `-1` for unlimited; default: the config's
    /// `task_max_retries` (3).
    pub max_retries: Option<i32>,
    /// Retry user errors too.
    pub retry_exceptions: bool,
    /// Number of returns (the function must return [`Multi`] when > 1).
    pub num_returns: usize,
    /// Where to run.
    pub scheduling_strategy: SchedulingStrategy,
    /// Streaming tasks: the most unconsumed outputs before the task pauses (`None`: no limit;
    /// Ray's `_generator_backpressure_num_objects`).
    pub generator_backpressure_num_objects: Option<usize>,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            name: None,
            num_cpus: 1.0,
            num_gpus: 0.0,
            memory: 0,
            resources: Vec::new(),
            max_retries: None,
            retry_exceptions: false,
            num_returns: 1,
            scheduling_strategy: SchedulingStrategy::Default,
            generator_backpressure_num_objects: None,
        }
    }
}

impl TaskOptions {
    pub(crate) fn resource_set(&self) -> Result<ResourceSet> {
        use crate::core::resources::ResourceName;
        let check = |what: &str, v: f64| {
            if v < 0.0 || !v.is_finite() {
                Err(Error::InvalidArgument(format!(
                    "{what} must be >= 0, got {v}"
                )))
            } else {
                Ok(v)
            }
        };
        let mut r = ResourceSet::new()
            .with(ResourceName::Cpu, check("num_cpus", self.num_cpus)?)
            .with(ResourceName::Gpu, check("num_gpus", self.num_gpus)?)
            .with(ResourceName::Memory, self.memory as f64);
        for (name, amount) in &self.resources {
            r.set(ResourceName::parse(name), check(name, *amount)?);
        }
        Ok(r)
    }
}

macro_rules! option_setters {
    ($($(#[$doc:meta])* $name:ident : $ty:ty => $field:ident $(= $wrap:ident)?;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.opts.$field = option_setters!(@wrap v $($wrap)?);
            self
        }
    )*};
    (@wrap $v:ident Some) => { Some($v.into()) };
    (@wrap $v:ident) => { $v };
}
pub(crate) use option_setters;

/// A function that can be submitted as a task: `f.remote(args)`.
pub struct RemoteFunction<Args, R> {
    func: Func,
    default_name: Arc<str>,
    opts: TaskOptions,
    _p: PhantomData<fn(Args) -> R>,
}

impl<Args, R> Clone for RemoteFunction<Args, R> {
    fn clone(&self) -> Self {
        RemoteFunction {
            func: self.func.clone(),
            default_name: self.default_name.clone(),
            opts: self.opts.clone(),
            _p: PhantomData,
        }
    }
}

impl<Args, R> std::fmt::Debug for RemoteFunction<Args, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteFunction")
            .field("name", &self.default_name)
            .finish()
    }
}

impl<Args, R> RemoteFunction<Args, R> {
    pub(crate) fn from_func(func: Func, default_name: Arc<str>) -> Self {
        RemoteFunction {
            func,
            default_name,
            opts: TaskOptions::default(),
            _p: PhantomData,
        }
    }

    /// Replaces all options.
    pub fn options(mut self, opts: TaskOptions) -> Self {
        self.opts = opts;
        self
    }

    pub(crate) fn task_request(
        &self,
        args: Vec<Arg>,
        num_returns: usize,
        streaming: Option<Option<usize>>,
    ) -> TaskRequest {
        TaskRequest {
            name: self
                .opts
                .name
                .as_deref()
                .map(Arc::from)
                .unwrap_or(self.default_name.clone()),
            func: self.func.clone(),
            args,
            num_returns,
            streaming,
            opts: self.opts.clone(),
        }
    }
}

impl<Args, R: TaskOutput> RemoteFunction<Args, R> {
    fn new(func: Func, default_name: Arc<str>) -> Self {
        Self::from_func(func, default_name)
    }

    option_setters! {
        /// Task name shown in errors.
        name: &str => name = Some;
        /// CPUs per task (fractional allowed).
        num_cpus: f64 => num_cpus;
        /// GPUs per task.
        num_gpus: f64 => num_gpus;
        /// Memory (bytes) per task.
        memory: u64 => memory;
        /// Retries on system failures; -1 for unlimited.
        max_retries: i32 => max_retries = Some;
        /// Also retry user errors.
        retry_exceptions: bool => retry_exceptions;
        /// Number of returns (use with [`Multi`]).
        num_returns: usize => num_returns;
        /// Scheduling strategy.
        scheduling_strategy: SchedulingStrategy => scheduling_strategy;
    }

    /// Adds a custom resource demand.
    pub fn resource(mut self, name: &str, amount: f64) -> Self {
        self.opts.resources.push((name.to_string(), amount));
        self
    }

    /// Submits the task; returns refs to its outputs at once.
    pub fn remote<A: IntoArgs<Args>>(&self, args: A) -> Result<R::Refs> {
        let node = crate::core::node::current()?;
        let args = args.into_args()?;
        let n = if R::MULTI { self.opts.num_returns } else { 1 };
        if !R::MULTI && self.opts.num_returns != 1 {
            return Err(Error::InvalidArgument(format!(
                "num_returns={} needs a function returning volley::Multi",
                self.opts.num_returns
            )));
        }
        let ids = node.submit_task(self.task_request(args, n, None))?.fixed();
        Ok(R::make_refs(
            ids.into_iter().map(|id| RawRef::adopt(&node, id)).collect(),
        ))
    }
}

/// What `submit_task` needs.
pub(crate) struct TaskRequest {
    pub(crate) name: Arc<str>,
    pub(crate) func: Func,
    pub(crate) args: Vec<Arg>,
    pub(crate) num_returns: usize,
    /// `Some(backpressure)` for a streaming task.
    pub(crate) streaming: Option<Option<usize>>,
    pub(crate) opts: TaskOptions,
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

/// Several returns of one task (`num_returns = n`): each element becomes its own object.
#[derive(Debug, Clone, PartialEq)]
pub struct Multi<T>(pub Vec<T>);

/// What a task function may return: a single [`Value`] or [`Multi`].
pub trait TaskOutput: Send + 'static {
    /// Refs handed to the caller.
    type Refs;
    /// True for [`Multi`].
    const MULTI: bool;
    /// Converts into output objects.
    fn into_outputs(self) -> Result<Vec<Output>>;
    /// Builds the caller's refs.
    fn make_refs(refs: Vec<RawRef>) -> Self::Refs;
}

impl<R: Value> TaskOutput for R {
    type Refs = crate::core::api::ObjectRef<R>;
    const MULTI: bool = false;
    fn into_outputs(self) -> Result<Vec<Output>> {
        let (data, nested) = serialize_holding(|| self.into_data());
        Ok(vec![(data?, nested)])
    }
    fn make_refs(mut refs: Vec<RawRef>) -> Self::Refs {
        crate::core::api::ObjectRef::from_raw(refs.remove(0))
    }
}

impl<T: Value> TaskOutput for Multi<T> {
    type Refs = Vec<crate::core::api::ObjectRef<T>>;
    const MULTI: bool = true;
    fn into_outputs(self) -> Result<Vec<Output>> {
        self.0
            .into_iter()
            .map(|v| {
                let (data, nested) = serialize_holding(|| v.into_data());
                Ok((data?, nested))
            })
            .collect()
    }
    fn make_refs(refs: Vec<RawRef>) -> Self::Refs {
        refs.into_iter()
            .map(crate::core::api::ObjectRef::from_raw)
            .collect()
    }
}

pub use crate::core::api::RawRef;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// One argument: a value of type `T`, or a ref to one.
pub trait IntoArg<T> {
    /// Converts.
    fn into_arg(self) -> Result<Arg>;
}

impl<T: Value> IntoArg<T> for T {
    fn into_arg(self) -> Result<Arg> {
        // The task holds the nested refs from here until it ends.
        let (data, nested) = serialize_holding(|| self.into_data());
        Ok(Arg::Value {
            data: data?,
            nested,
        })
    }
}

impl<T> IntoArg<T> for &crate::core::api::ObjectRef<T> {
    fn into_arg(self) -> Result<Arg> {
        Ok(Arg::Ref(self.id()))
    }
}

/// A tuple of arguments matching a function's parameters.
pub trait IntoArgs<Args> {
    /// Converts.
    fn into_args(self) -> Result<Vec<Arg>>;
}

/// A closure usable as a task with parameters `Args` returning `R`.
pub trait IntoTask<Args, R>: Send + Sync + 'static {
    /// Erases the types.
    fn erase(self) -> Arc<ErasedFn>;
}

/// A closure usable as a streaming task: its first parameter is an [`Emitter`].
pub trait IntoStreamingTask<Args, T>: Send + Sync + 'static {
    /// Erases the types.
    fn erase(self) -> Arc<ErasedFn>;
}

/// A streaming task's output channel: each `emit` becomes an object the caller's generator
/// yields at once.
pub struct Emitter<'a, T> {
    sink: &'a dyn EmitSink,
    _t: PhantomData<fn(T)>,
}

impl<T: Value> Emitter<'_, T> {
    /// Emits one output. Fails (and the task should stop) when the consumer is gone or the
    /// task was cancelled.
    pub fn emit(&self, value: T) -> Result<()> {
        let (data, nested) = serialize_holding(|| value.into_data());
        self.sink.emit(data?, nested)
    }
}

impl<T> std::fmt::Debug for Emitter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Emitter")
    }
}

fn arg_count_error(task: &str, want: usize, got: usize) -> CallError {
    CallError::Setup(Error::InvalidArgument(format!(
        "task {task} takes {want} argument(s), got {got}"
    )))
}

fn convert_arg<T: Value>(ctx: &CallCtx<'_>, i: usize) -> std::result::Result<T, CallError> {
    T::from_data(&ctx.args[i]).map_err(|e| {
        CallError::Setup(Error::InvalidArgument(format!(
            "argument {i} of task {}: {e}",
            ctx.task_name()
        )))
    })
}

macro_rules! arity {
    ($n:expr; $($A:ident $X:ident $i:tt),*) => {
        impl<$($A, $X: IntoArg<$A>),*> IntoArgs<($($A,)*)> for ($($X,)*) {
            #[allow(unused_mut, clippy::vec_init_then_push)]
            fn into_args(self) -> Result<Vec<Arg>> {
                let mut v = Vec::with_capacity($n);
                $( v.push(self.$i.into_arg()?); )*
                Ok(v)
            }
        }

        impl<F, R, $($A: Value),*> IntoTask<($($A,)*), R> for F
        where
            F: Fn($($A),*) -> TaskResult<R> + Send + Sync + 'static,
            R: TaskOutput,
        {
            #[allow(unused_variables, unused_mut, non_snake_case)]
            fn erase(self) -> Arc<ErasedFn> {
                Arc::new(move |ctx: &mut CallCtx<'_>| {
                    if ctx.args.len() != $n {
                        return Err(arg_count_error(&ctx.task_name(), $n, ctx.args.len()));
                    }
                    $( let $A: $A = convert_arg(ctx, $i)?; )*
                    let out = (self)($($A),*).map_err(CallError::User)?;
                    out.into_outputs().map_err(CallError::Setup)
                })
            }
        }

        impl<F, T, $($A: Value),*> IntoStreamingTask<($($A,)*), T> for F
        where
            F: for<'e> Fn(&Emitter<'e, T>, $($A),*) -> TaskResult<()> + Send + Sync + 'static,
            T: Value,
        {
            #[allow(unused_variables, unused_mut, non_snake_case)]
            fn erase(self) -> Arc<ErasedFn> {
                Arc::new(move |ctx: &mut CallCtx<'_>| {
                    if ctx.args.len() != $n {
                        return Err(arg_count_error(&ctx.task_name(), $n, ctx.args.len()));
                    }
                    let sink = ctx.emitter.ok_or_else(|| {
                        CallError::Setup(Error::Internal("streaming task without a sink".into()))
                    })?;
                    $( let $A: $A = convert_arg(ctx, $i)?; )*
                    let emitter = Emitter { sink, _t: PhantomData };
                    (self)(&emitter, $($A),*).map_err(CallError::User)?;
                    Ok(Vec::new())
                })
            }
        }
    };
}

arity!(0;);
arity!(1; A0 X0 0);
arity!(2; A0 X0 0, A1 X1 1);
arity!(3; A0 X0 0, A1 X1 1, A2 X2 2);
arity!(4; A0 X0 0, A1 X1 1, A2 X2 2, A3 X3 3);
arity!(5; A0 X0 0, A1 X1 1, A2 X2 2, A3 X3 3, A4 X4 4);
arity!(6; A0 X0 0, A1 X1 1, A2 X2 2, A3 X3 3, A4 X4 4, A5 X5 5);

//! Actors: state plus methods, run by the actor's own thread group.
//!
//! # Model
//! - An actor is built by a factory closure (its constructor) on its first thread, after
//!   the actor's resources are granted. Calls go into one FIFO mailbox, so calls from one
//!   caller run in submission order. With `max_concurrency = 1` (the default) one thread
//!   runs them one at a time; with `n > 1`, `n` threads take calls in order and run them
//!   concurrently: [`ActorHandle::call_shared`] methods (`&A`) overlap, [`ActorHandle::call`]
//!   methods (`&mut A`) are exclusive.
//! - A method that panics kills the instance. With restarts left (`max_restarts`, `-1` for
//!   unlimited) the constructor runs again and later calls go to the new instance; the call
//!   that panicked is retried up to `max_task_retries` times, else it fails. Without restarts
//!   the actor is dead: queued and later calls fail with `ActorDied`.
//! - `kill` stops it at once (queued calls fail). When the last handle is dropped, a
//!   non-detached actor finishes its queued calls and stops. Named actors are found with
//!   [`get_actor`].
//!
//! # States
//! `Starting → Alive ⇄ Restarting → Dead(reason)`; only the actor's threads move it out of
//! `Starting`/`Restarting`; anyone may move it to `Dead`.

mod instance;

use std::sync::Arc;

use crate::core::ids::ActorId;
use crate::core::node::current;
use crate::core::task::{SchedulingStrategy, TaskOptions, option_setters};
use crate::error::{Error, Result, TaskResult};

pub(crate) use instance::{ActorControl, ActorCore};
pub use instance::{ActorHandle, PIPELINE_DEPTH, get_actor, kill};

/// Actor options (Ray's `.options(...)` on a class).
#[derive(Clone, Debug)]
pub struct ActorOptions {
    /// A name to find it by with [`get_actor`].
    pub name: Option<String>,
    /// Threads running calls concurrently (default 1: strictly one at a time, in order).
    pub max_concurrency: usize,
    /// Constructor re-runs after a panic; `-1` for unlimited (default 0).
    pub max_restarts: i32,
    /// Retries of a call interrupted by a panic, when the actor restarts (default 0).
    pub max_task_retries: i32,
    /// Resources held for the actor's lifetime (default: none, like Ray's actors).
    pub task: TaskOptions,
    /// Keep the actor after its last handle is dropped (until `kill` or shutdown).
    pub detached: bool,
}

impl Default for ActorOptions {
    fn default() -> Self {
        ActorOptions {
            name: None,
            max_concurrency: 1,
            max_restarts: 0,
            max_task_retries: 0,
            task: TaskOptions {
                num_cpus: 0.0,
                ..TaskOptions::default()
            },
            detached: false,
        }
    }
}

/// Builds an actor: `volley::actor(Counter::default).name("c").spawn()`.
pub struct ActorBuilder<A> {
    factory: Arc<dyn Fn() -> TaskResult<A> + Send + Sync>,
    opts: ActorOptions,
}

/// Starts building an actor whose constructor is `factory`.
///
/// ```
/// #[derive(Default)]
/// struct Counter(i64);
/// # volley::init(volley::Config::default()).unwrap();
/// let c = volley::actor(Counter::default).spawn().unwrap();
/// c.call(|c: &mut Counter| { c.0 += 1; Ok(c.0) }).unwrap();
/// let r = c.call(|c: &mut Counter| { c.0 += 1; Ok(c.0) }).unwrap();
/// assert_eq!(volley::get(&r).unwrap(), 2);
/// # volley::shutdown();
/// ```
pub fn actor<A, F>(factory: F) -> ActorBuilder<A>
where
    A: Send + Sync + 'static,
    F: Fn() -> A + Send + Sync + 'static,
{
    try_actor(move || Ok(factory()))
}

/// Like [`actor`], with a constructor that may fail: an `Err` kills the actor (or, on a
/// restart, ends the restarts) with the error's message as the reason.
pub fn try_actor<A, F>(factory: F) -> ActorBuilder<A>
where
    A: Send + Sync + 'static,
    F: Fn() -> TaskResult<A> + Send + Sync + 'static,
{
    ActorBuilder {
        factory: Arc::new(factory),
        opts: ActorOptions::default(),
    }
}

impl<A> std::fmt::Debug for ActorBuilder<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorBuilder")
            .field("opts", &self.opts)
            .finish()
    }
}

impl<A: Send + Sync + 'static> ActorBuilder<A> {
    /// Replaces all options.
    pub fn options(mut self, opts: ActorOptions) -> Self {
        self.opts = opts;
        self
    }

    option_setters! {
        /// Name for [`get_actor`].
        name: &str => name = Some;
        /// Concurrent calls.
        max_concurrency: usize => max_concurrency;
        /// Constructor re-runs after a panic (-1: unlimited).
        max_restarts: i32 => max_restarts;
        /// Retries of a call interrupted by a panic.
        max_task_retries: i32 => max_task_retries;
        /// Keep alive without handles.
        detached: bool => detached;
    }

    /// CPUs held for the actor's lifetime.
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.opts.task.num_cpus = n;
        self
    }

    /// GPUs held for the actor's lifetime.
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.opts.task.num_gpus = n;
        self
    }

    /// A custom resource held for the actor's lifetime.
    pub fn resource(mut self, name: &str, amount: f64) -> Self {
        self.opts.task.resources.push((name.to_string(), amount));
        self
    }

    /// Where the actor runs (e.g. a placement group bundle).
    pub fn scheduling_strategy(mut self, s: SchedulingStrategy) -> Self {
        self.opts.task.scheduling_strategy = s;
        self
    }

    /// Creates the actor. Its constructor runs on the actor's thread; calls made before it
    /// finishes wait in the mailbox.
    pub fn spawn(self) -> Result<ActorHandle<A>> {
        let node = current()?;
        if self.opts.max_concurrency == 0 {
            return Err(Error::InvalidArgument(
                "max_concurrency must be >= 1".into(),
            ));
        }
        let demand = Arc::new(self.opts.task.resource_set()?);
        node.sched
            .require_local(&demand, &self.opts.task.scheduling_strategy)?;
        let id = ActorId(node.next_task_id());
        let display = match &self.opts.name {
            Some(n) => format!("{n} ({id})"),
            None => format!("{} ({id})", short_name::<A>()),
        };
        ActorCore::launch(&node, id, display, self.factory, self.opts, demand)
    }
}

fn short_name<A>() -> &'static str {
    std::any::type_name::<A>()
        .rsplit("::")
        .next()
        .unwrap_or("Actor")
}

//! An actor's instance on the node: its mailbox, threads, restarts and death (the states
//! of the module above), and the handle callers hold.

use crate::core::api::{ObjectRef, RawRef};
use crate::core::ids::{ActorId, ObjectId, WorkerId};
use crate::core::node::{CurrentTask, NodeInner, current, panic_message, with_current};
use crate::core::object::Value;
use crate::core::scheduler::Grant;
use crate::core::task::TaskOutput;
use crate::error::{Error, FailureCause, Result, TaskResult};
use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::ActorOptions;
use crate::core::resources::ResourceSet;

enum Status {
    Starting,
    Alive,
    Restarting,
    Dead(String),
}

type MutFn<A> = dyn Fn(&mut A) -> TaskResult<Make> + Send + Sync;
type SharedFn<A> = dyn Fn(&A) -> TaskResult<Make> + Send + Sync;
type Finish = Box<dyn FnOnce() -> TaskResult<Make> + Send>;
type StartFn<A> = dyn Fn(&A) -> TaskResult<Finish> + Send + Sync;
type CallOutput = Result<Vec<crate::core::task::Output>>;

/// Calls one actor thread may have started and not yet finished (pipelined calls).
pub const PIPELINE_DEPTH: usize = 128;

/// How long an idle actor thread spins (yielding) before it sleeps: the next call of a
/// caller that waits for each result comes within it, and a wake-up costs more.
const IDLE_SPIN: Duration = Duration::from_micros(30);

enum Method<A> {
    Mut(Box<MutFn<A>>),
    Shared(Box<SharedFn<A>>),
    /// Started under the instance; finished later, after the next calls were started.
    Pipelined(Box<StartFn<A>>),
}

/// How running a call (or one half of it) ended.
enum Outcome {
    /// A value to seal, or an engine error to fail the call with.
    Done(CallOutput),
    /// No live instance.
    NoInstance,
    /// The method returned an error.
    Failed(crate::error::UserError),
    /// The method panicked or its worker process died: the instance is gone.
    Died(Death),
}

/// How an instance was lost.
struct Death {
    message: String,
    /// Its worker process died (rather than a method panicking).
    worker: bool,
}

/// Sorts a method's result: `Ok` with the value, else how it ended.
fn classify<T>(r: std::thread::Result<TaskResult<Option<T>>>) -> std::result::Result<T, Outcome> {
    match r {
        Ok(Ok(Some(t))) => Ok(t),
        Ok(Ok(None)) => Err(Outcome::NoInstance),
        Ok(Err(e)) if e.is_worker_died() => Err(Outcome::Died(Death {
            message: e.message().to_string(),
            worker: true,
        })),
        Ok(Err(e)) => Err(Outcome::Failed(e)),
        Err(payload) => Err(Outcome::Died(Death {
            message: panic_message(payload),
            worker: false,
        })),
    }
}

type Make = Box<dyn FnOnce() -> CallOutput + Send>;

fn completed(r: std::thread::Result<TaskResult<Option<Make>>>) -> Outcome {
    classify(r).map_or_else(|o| o, |make| Outcome::Done(make()))
}

/// A pipelined call whose first half ran.
struct Started<A> {
    call: Call<A>,
    finish: Finish,
}

struct Call<A> {
    method: Method<A>,
    /// The first output; the others follow it (`index` 1, 2, ...).
    output: ObjectId,
    returns: u32,
    retries_left: i32,
}

impl<A> Call<A> {
    fn outputs(&self) -> Outputs {
        Outputs(self.output, self.returns)
    }
}

/// A call's outputs: the first and how many.
#[derive(Clone, Copy, PartialEq)]
struct Outputs(ObjectId, u32);

impl Outputs {
    fn fail(self, node: &NodeInner, err: &Error) {
        for index in 0..self.1 {
            node.store.fail(
                ObjectId {
                    task: self.0.task,
                    index,
                },
                err.clone(),
            );
        }
    }
}

struct Mailbox<A> {
    queue: VecDeque<Call<A>>,
    status: Status,
    restarts: i32,
    in_flight: Vec<Outputs>,
    threads_alive: usize,
    grant: Option<Grant>,
    stopping: bool,
}

pub(crate) struct ActorCore<A> {
    id: ActorId,
    display: String,
    factory: Arc<dyn Fn() -> TaskResult<A> + Send + Sync>,
    state: RwLock<Option<A>>,
    mb: Mutex<Mailbox<A>>,
    cv: Condvar,
    handles: AtomicUsize,
    node: std::sync::Weak<NodeInner>,
    opts: ActorOptions,
}

/// What the node needs to control any actor.
pub(crate) trait ActorControl: Send + Sync {
    /// Kills it (no restart).
    fn stop(&self, reason: &str);
    /// For typed lookup.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<A: Send + Sync + 'static> ActorControl for ActorCore<A> {
    fn stop(&self, reason: &str) {
        if let Some(node) = self.node.upgrade() {
            self.die(&node, reason.to_string());
        } else {
            let mut mb = self.mb.lock();
            mb.status = Status::Dead(reason.to_string());
            mb.queue.clear();
            self.cv.notify_all();
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl<A: Send + Sync + 'static> ActorCore<A> {
    /// Registers the actor `id` on `node` (and its name) and starts its threads; the first
    /// takes the actor's resources (`demand`) and runs the constructor.
    pub(super) fn launch(
        node: &Arc<NodeInner>,
        id: ActorId,
        display: String,
        factory: Arc<dyn Fn() -> TaskResult<A> + Send + Sync>,
        opts: ActorOptions,
        demand: Arc<ResourceSet>,
    ) -> Result<ActorHandle<A>> {
        let max_concurrency = opts.max_concurrency;
        let core = Arc::new(ActorCore {
            id,
            display,
            factory,
            state: RwLock::new(None),
            mb: Mutex::new(Mailbox {
                queue: VecDeque::new(),
                status: Status::Starting,
                restarts: 0,
                in_flight: Vec::new(),
                threads_alive: max_concurrency,
                grant: None,
                stopping: false,
            }),
            cv: Condvar::new(),
            handles: AtomicUsize::new(1),
            node: Arc::downgrade(node),
            opts,
        });
        {
            let mut names = node.named_actors.lock();
            if let Some(name) = &core.opts.name {
                if names.contains_key(name) {
                    return Err(Error::InvalidArgument(format!(
                        "an actor named {name:?} already exists"
                    )));
                }
                names.insert(name.clone(), id);
            }
            node.actors.lock().insert(id, core.clone());
        }
        for i in 0..core.opts.max_concurrency {
            let c = core.clone();
            let n = node.clone();
            let index = node.next_worker_index();
            let demand = (i == 0).then(|| demand.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("volley-actor-{index}"))
                .spawn(move || {
                    crate::core::node::bind_thread(&Arc::downgrade(&n));
                    c.thread_main(n, index, demand)
                });
            match spawned {
                Ok(h) => node.adopt_thread(h),
                Err(e) => {
                    core.die(node, format!("could not start a thread: {e}"));
                    return Err(Error::io("starting an actor thread", e));
                }
            }
        }
        Ok(ActorHandle { core })
    }

    fn died_error(&self, reason: &str) -> Error {
        Error::ActorDied {
            actor: self.display.clone(),
            reason: reason.to_string(),
        }
    }

    /// Marks the actor dead; fails queued and in-flight calls; unregisters it.
    fn die(&self, node: &NodeInner, reason: String) {
        let (queued, in_flight) = {
            let mut mb = self.mb.lock();
            if matches!(mb.status, Status::Dead(_)) {
                return;
            }
            mb.status = Status::Dead(reason.clone());
            self.cv.notify_all();
            (std::mem::take(&mut mb.queue), mb.in_flight.clone())
        };
        let err = self.died_error(&reason);
        for c in queued {
            c.outputs().fail(node, &err);
        }
        for o in in_flight {
            o.fail(node, &err);
        }
        self.unregister(node);
    }

    fn unregister(&self, node: &NodeInner) {
        node.actors.lock().remove(&self.id);
        if let Some(name) = &self.opts.name {
            let mut names = node.named_actors.lock();
            if names.get(name) == Some(&self.id) {
                names.remove(name);
            }
        }
    }

    fn construct(&self) -> std::result::Result<A, String> {
        let cur = CurrentTask::new(self.id.0, None, None, Some(self.id));
        match with_current(cur, || catch_unwind(AssertUnwindSafe(|| (self.factory)()))) {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(e.message().to_string()),
            Err(payload) => Err(panic_message(payload)),
        }
    }

    fn thread_main(
        self: Arc<Self>,
        node: Arc<NodeInner>,
        index: u32,
        demand: Option<Arc<crate::ResourceSet>>,
    ) {
        crate::core::node::set_worker(WorkerId {
            node: node.id,
            index,
        });
        // The first thread takes the resources and runs the constructor.
        if let Some(demand) = demand {
            let dead = || matches!(self.mb.lock().status, Status::Dead(_));
            match node
                .sched
                .acquire_blocking(&demand, &self.opts.task.scheduling_strategy, &dead)
            {
                Ok(g) => self.mb.lock().grant = Some(g),
                Err(e) => self.die(&node, format!("its resources were never granted: {e}")),
            }
            let alive = !matches!(self.mb.lock().status, Status::Dead(_));
            if alive {
                match self.construct() {
                    Ok(a) => {
                        *self.state.write() = Some(a);
                        let mut mb = self.mb.lock();
                        if matches!(mb.status, Status::Starting) {
                            mb.status = Status::Alive;
                        }
                        self.cv.notify_all();
                    }
                    Err(msg) => self.die(&node, format!("its constructor panicked: {msg}")),
                }
            }
        }
        self.run_calls(&node);
        // The last thread out gives the resources back.
        let grant = {
            let mut mb = self.mb.lock();
            mb.threads_alive -= 1;
            if mb.threads_alive == 0 {
                mb.grant.take()
            } else {
                None
            }
        };
        if let Some(g) = grant {
            let released = node.sched.release(&g);
            node.after_release(released);
        }
        *self.state.write() = None;
    }

    /// Runs calls until the actor dies. With one thread, pipelined calls are started ahead
    /// (up to [`PIPELINE_DEPTH`]) and finished in order.
    fn run_calls(&self, node: &Arc<NodeInner>) {
        let pipelining = self.opts.max_concurrency == 1;
        let mut started: VecDeque<Started<A>> = VecDeque::new();
        // Set when a call could not be started because the instance is gone: the calls
        // started before it are finished first (their results may have come already).
        let mut draining = false;
        loop {
            draining &= !started.is_empty();
            let call = if draining {
                None
            } else {
                match self.next_call(node, !started.is_empty()) {
                    Next::Call(c) => Some(c),
                    Next::NotNow => None,
                    Next::Stop => return,
                }
            };
            if let Some(call) = call {
                if pipelining && matches!(call.method, Method::Pipelined(_)) {
                    match self.start(&call) {
                        Ok(finish) => started.push_back(Started { call, finish }),
                        Err(outcome) => match *outcome {
                            Outcome::Died(_) if !started.is_empty() => {
                                // It waits, first in line, for whichever instance runs next.
                                self.requeue_first(node, call);
                                draining = true;
                            }
                            Outcome::Died(death) => {
                                self.after_death(node, call, &mut started, death);
                            }
                            outcome => self.settle(node, call, outcome),
                        },
                    }
                    if !draining && started.len() < PIPELINE_DEPTH {
                        continue;
                    }
                } else {
                    self.run_call(node, call);
                    continue;
                }
            }
            if let Some(s) = started.pop_front() {
                let outcome = self.finish(s.call.output, s.finish);
                match outcome {
                    Outcome::Died(d) => self.after_death(node, s.call, &mut started, d),
                    outcome => self.settle(node, s.call, outcome),
                }
            }
        }
    }

    /// Puts a call that did not run back at the head of the queue (no retry used).
    fn requeue_first(&self, node: &NodeInner, call: Call<A>) {
        let mut mb = self.mb.lock();
        let outputs = call.outputs();
        mb.in_flight.retain(|o| *o != outputs);
        if let Status::Dead(reason) = &mb.status {
            let err = self.died_error(reason);
            drop(mb);
            outputs.fail(node, &err);
            return;
        }
        mb.queue.push_front(call);
    }

    /// The next call to run. With calls started `ahead`, never waits, and takes only a
    /// pipelined call (anything else waits until they finished).
    fn next_call(&self, node: &NodeInner, ahead: bool) -> Next<A> {
        let mut mb = self.mb.lock();
        let spin_until = Instant::now() + IDLE_SPIN;
        loop {
            match mb.status {
                Status::Dead(_) => return Next::Stop,
                Status::Alive => {
                    let take = mb
                        .queue
                        .front()
                        .is_some_and(|c| !ahead || matches!(c.method, Method::Pipelined(_)));
                    if take && let Some(c) = mb.queue.pop_front() {
                        mb.in_flight.push(c.outputs());
                        return Next::Call(c);
                    }
                    if ahead {
                        return Next::NotNow;
                    }
                    if mb.stopping {
                        drop(mb);
                        self.die(node, "all handles were dropped".into());
                        return Next::Stop;
                    }
                }
                Status::Starting | Status::Restarting if ahead => return Next::NotNow,
                Status::Starting | Status::Restarting => {}
            }
            if Instant::now() < spin_until {
                MutexGuard::unlocked(&mut mb, std::thread::yield_now);
                continue;
            }
            self.cv.wait(&mut mb);
        }
    }

    fn current(&self, output: ObjectId) -> CurrentTask {
        CurrentTask::new(output.task, None, None, Some(self.id))
    }

    fn run_call(&self, node: &Arc<NodeInner>, call: Call<A>) {
        let outcome = with_current(self.current(call.output), || {
            completed(catch_unwind(AssertUnwindSafe(|| match &call.method {
                Method::Mut(f) => match self.state.write().as_mut() {
                    Some(a) => f(a).map(Some),
                    None => Ok(None),
                },
                Method::Shared(f) => match self.state.read().as_ref() {
                    Some(a) => f(a).map(Some),
                    None => Ok(None),
                },
                Method::Pipelined(f) => match self.state.read().as_ref() {
                    Some(a) => f(a).and_then(|finish| finish()).map(Some),
                    None => Ok(None),
                },
            })))
        });
        self.settle(node, call, outcome);
    }

    /// Runs the first half of a pipelined call.
    fn start(&self, call: &Call<A>) -> std::result::Result<Finish, Box<Outcome>> {
        let Method::Pipelined(f) = &call.method else {
            unreachable!("start takes pipelined calls")
        };
        let r = with_current(self.current(call.output), || {
            catch_unwind(AssertUnwindSafe(|| match self.state.read().as_ref() {
                Some(a) => f(a).map(Some),
                None => Ok(None),
            }))
        });
        classify(r).map_err(Box::new)
    }

    /// Runs the second half of a pipelined call.
    fn finish(&self, output: ObjectId, finish: Finish) -> Outcome {
        with_current(self.current(output), || {
            completed(catch_unwind(AssertUnwindSafe(|| finish().map(Some))))
        })
    }

    fn task_name(&self, output: ObjectId) -> String {
        format!("{}.call ({})", self.display, output.task)
    }

    /// Seals or fails a finished call's output.
    fn settle(&self, node: &Arc<NodeInner>, call: Call<A>, outcome: Outcome) {
        let outputs = call.outputs();
        self.mb.lock().in_flight.retain(|o| *o != outputs);
        match outcome {
            Outcome::Done(Ok(values)) if values.len() == call.returns as usize => {
                for (index, (data, nested)) in (0..).zip(values) {
                    let id = ObjectId {
                        task: call.output.task,
                        index,
                    };
                    let _ = node.store.seal(id, data, nested);
                }
            }
            Outcome::Done(Ok(values)) => outputs.fail(
                node,
                &Error::TaskFailed {
                    task: self.task_name(call.output),
                    cause: FailureCause::UserError,
                    message: format!(
                        "the method returned {} values but num_returns={}",
                        values.len(),
                        call.returns
                    ),
                    attempts: 1,
                    payload: None,
                },
            ),
            Outcome::Done(Err(e)) => outputs.fail(node, &e),
            Outcome::NoInstance => outputs.fail(node, &self.died_error("no live instance")),
            Outcome::Failed(e) => outputs.fail(
                node,
                &Error::TaskFailed {
                    task: self.task_name(call.output),
                    cause: FailureCause::UserError,
                    message: e.message().to_string(),
                    attempts: 1,
                    payload: e.payload().cloned(),
                },
            ),
            Outcome::Died(death) => self.after_panic(node, vec![call], death),
        }
    }

    /// The instance died under `call`: the calls started after it were lost with it.
    fn after_death(
        &self,
        node: &Arc<NodeInner>,
        call: Call<A>,
        started: &mut VecDeque<Started<A>>,
        death: Death,
    ) {
        let mut calls = vec![call];
        calls.extend(started.drain(..).map(|s| s.call));
        self.after_panic(node, calls, death);
    }

    /// The instance died while `calls` (in submission order) were running: restarts it if
    /// restarts are left and queues the calls again (those with retries left), else fails
    /// them (`ActorDied` when its worker process died) and the actor.
    fn after_panic(&self, node: &Arc<NodeInner>, calls: Vec<Call<A>>, death: Death) {
        let msg = death.message;
        let can_restart = {
            let mut mb = self.mb.lock();
            mb.in_flight
                .retain(|o| !calls.iter().any(|c| c.outputs() == *o));
            let ok = matches!(mb.status, Status::Alive)
                && (self.opts.max_restarts < 0 || mb.restarts < self.opts.max_restarts);
            if ok {
                mb.restarts += 1;
                mb.status = Status::Restarting;
            }
            ok
        };
        let failed = |c: &Call<A>| {
            if death.worker {
                self.died_error(&msg)
            } else {
                Error::TaskFailed {
                    task: self.task_name(c.output),
                    cause: FailureCause::Panic,
                    message: msg.clone(),
                    attempts: 1,
                    payload: None,
                }
            }
        };
        if !can_restart {
            for c in &calls {
                c.outputs().fail(node, &failed(c));
            }
            self.die(
                node,
                format!("a method panicked and no restarts are left: {msg}"),
            );
            return;
        }
        // Rebuild the instance (waits for concurrent calls to leave the state).
        let rebuilt = {
            let mut st = self.state.write();
            *st = None;
            match self.construct() {
                Ok(a) => {
                    *st = Some(a);
                    Ok(())
                }
                Err(m) => Err(m),
            }
        };
        match rebuilt {
            Ok(()) => {
                let mut mb = self.mb.lock();
                if matches!(mb.status, Status::Restarting) {
                    mb.status = Status::Alive;
                }
                let alive = matches!(mb.status, Status::Alive);
                let mut lost = Vec::new();
                for mut call in calls.into_iter().rev() {
                    if call.retries_left != 0 && alive {
                        call.retries_left -= 1;
                        mb.queue.push_front(call);
                    } else {
                        lost.push(call);
                    }
                }
                self.cv.notify_all();
                drop(mb);
                for c in lost.iter().rev() {
                    c.outputs().fail(node, &failed(c));
                }
            }
            Err(m) => {
                for c in &calls {
                    c.outputs().fail(node, &failed(c));
                }
                self.die(node, format!("its constructor panicked on restart: {m}"));
            }
        }
    }

    /// Queues a call with `returns` outputs; refs to them.
    fn submit(&self, method: Method<A>, returns: u32) -> Result<Vec<RawRef>> {
        let node = self.node.upgrade().ok_or(Error::NotInitialized)?;
        let task = node.next_task_id();
        let refs = (0..returns)
            .map(|index| {
                let id = ObjectId { task, index };
                node.store.create_pending(id, 1);
                RawRef::adopt(&node, id)
            })
            .collect();
        let call = Call {
            method,
            output: ObjectId { task, index: 0 },
            returns,
            retries_left: self.opts.max_task_retries,
        };
        let mut mb = self.mb.lock();
        if let Status::Dead(reason) = &mb.status {
            let err = self.died_error(reason);
            drop(mb);
            call.outputs().fail(&node, &err);
            return Ok(refs);
        }
        mb.queue.push_back(call);
        self.cv.notify_one();
        Ok(refs)
    }

    fn submit_one(&self, method: Method<A>) -> Result<RawRef> {
        self.submit(method, 1).map(|mut refs| refs.remove(0))
    }
}

enum Next<A> {
    Call(Call<A>),
    /// Nothing to take now (calls were started ahead).
    NotNow,
    Stop,
}

/// A handle on an actor. Clones share the actor; when the last one is dropped a
/// non-detached actor finishes its queued calls and stops.
pub struct ActorHandle<A: Send + Sync + 'static> {
    core: Arc<ActorCore<A>>,
}

impl<A: Send + Sync + 'static> ActorHandle<A> {
    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.core.id
    }

    /// Calls a method that may change the state (`&mut A`); returns a ref to its result.
    pub fn call<R, F>(&self, f: F) -> Result<ObjectRef<R>>
    where
        R: Value,
        F: Fn(&mut A) -> TaskResult<R> + Send + Sync + 'static,
    {
        let m = Method::Mut(Box::new(move |a: &mut A| f(a).map(seal_later)));
        self.core.submit_one(m).map(ObjectRef::from_raw)
    }

    /// Calls a read-only method (`&A`); with `max_concurrency > 1` such calls overlap.
    pub fn call_shared<R, F>(&self, f: F) -> Result<ObjectRef<R>>
    where
        R: Value,
        F: Fn(&A) -> TaskResult<R> + Send + Sync + 'static,
    {
        let m = Method::Shared(Box::new(move |a: &A| f(a).map(seal_later)));
        self.core.submit_one(m).map(ObjectRef::from_raw)
    }

    /// Calls a read-only method in two halves, for a method whose work happens elsewhere
    /// (in a worker process): `start` runs on the actor's thread in submission order and
    /// returns `finish`, which waits for the result. With `max_concurrency = 1` the thread
    /// starts up to [`PIPELINE_DEPTH`] queued calls before finishing the first, so that
    /// their round trips overlap; results still come in order. If the instance dies (a
    /// panic, or a `worker_died` error from either half), every call it had started is
    /// lost with it and retried per `max_task_retries` once it restarts.
    ///
    /// `R` is a [`Value`] (`num_returns` 1) or a [`Multi`](crate::Multi) of `num_returns`
    /// values, each its own object.
    pub fn call_pipelined<R, F, G>(&self, num_returns: usize, start: F) -> Result<R::Refs>
    where
        R: TaskOutput,
        F: Fn(&A) -> TaskResult<G> + Send + Sync + 'static,
        G: FnOnce() -> TaskResult<R> + Send + 'static,
    {
        if !R::MULTI && num_returns != 1 || num_returns == 0 {
            return Err(Error::InvalidArgument(format!(
                "num_returns={num_returns} needs a method returning volley::Multi (and >= 1)"
            )));
        }
        let returns = u32::try_from(num_returns)
            .map_err(|_| Error::InvalidArgument(format!("num_returns={num_returns}")))?;
        let m = Method::Pipelined(Box::new(move |a: &A| {
            let finish = start(a)?;
            let boxed: Finish = Box::new(move || finish().map(seal_later));
            Ok(boxed)
        }));
        self.core.submit(m, returns).map(R::make_refs)
    }

    /// Kills the actor: queued and running calls fail with `ActorDied`, no restart.
    pub fn kill(&self) {
        self.core.stop("killed by kill()");
    }

    /// True until the actor dies.
    pub fn is_alive(&self) -> bool {
        !matches!(self.core.mb.lock().status, Status::Dead(_))
    }

    /// Times the constructor was re-run.
    pub fn num_restarts(&self) -> i32 {
        self.core.mb.lock().restarts
    }

    /// Looks at the live instance, if there is one (waits while a `call` runs).
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&A) -> R) -> Option<R> {
        self.core.state.read().as_ref().map(f)
    }
}

fn seal_later<R: TaskOutput>(r: R) -> Make {
    Box::new(move || r.into_outputs())
}

impl<A: Send + Sync + 'static> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        self.core.handles.fetch_add(1, Ordering::Relaxed);
        ActorHandle {
            core: self.core.clone(),
        }
    }
}

impl<A: Send + Sync + 'static> Drop for ActorHandle<A> {
    fn drop(&mut self) {
        if self.core.handles.fetch_sub(1, Ordering::AcqRel) == 1 && !self.core.opts.detached {
            let mut mb = self.core.mb.lock();
            mb.stopping = true;
            self.core.cv.notify_all();
        }
    }
}

impl<A: Send + Sync + 'static> std::fmt::Debug for ActorHandle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActorHandle({})", self.core.display)
    }
}

/// A handle on the live actor named `name`, which must be an actor of type `A`.
pub fn get_actor<A: Send + Sync + 'static>(name: &str) -> Result<ActorHandle<A>> {
    let node = current()?;
    let id = node
        .named_actors
        .lock()
        .get(name)
        .copied()
        .ok_or_else(|| Error::NotFound(format!("no live actor named {name:?}")))?;
    let ctl = node
        .actors
        .lock()
        .get(&id)
        .cloned()
        .ok_or_else(|| Error::NotFound(format!("no live actor named {name:?}")))?;
    let core = ctl.into_any().downcast::<ActorCore<A>>().map_err(|_| {
        Error::InvalidArgument(format!(
            "actor {name:?} is not an actor of type {}",
            std::any::type_name::<A>()
        ))
    })?;
    core.handles.fetch_add(1, Ordering::Relaxed);
    Ok(ActorHandle { core })
}

/// Kills an actor (Ray's `ray.kill`).
pub fn kill<A: Send + Sync + 'static>(handle: &ActorHandle<A>) {
    handle.kill();
}

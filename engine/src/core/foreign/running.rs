//! Python tasks in flight. A foreign task is scheduled once: the scheduler's thread that
//! takes it reads its arguments, leases a worker process, writes the call and waits a
//! moment ([`READ_SPIN`] spinning, then [`PARK_AFTER`] asleep) for the outcome — a short
//! call's comes within it. When it does not, the call is *parked*: the thread goes back to the queues while the task keeps its
//! resources, and the node's I/O runtime watches the call's socket. Whichever thread reads
//! the next frame (a blocking-pool thread of that runtime, bound to the node and running
//! as the task) serves the worker's requests and, at the outcome, completes the task
//! (resources back, outputs sealed with lineage, or a retry).
//!
//! ```text
//!  scheduler thread: args ─ lease ─ write Call ─ spin ─┬─ outcome: complete ─► next task
//!                                                      └─ parked ─────────────► next task
//!  I/O runtime: socket readable ─► blocking thread: serve requests / outcome: complete
//! ```
//!
//! A parked call holds no thread: many tasks waiting in their own code (sleeping,
//! waiting for I/O) cost a socket each, not a thread each. The socket is registered with
//! the runtime only while the call waits for it, so it is never closed while registered.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use super::FunctionId;
use super::node_api::{emit_output, outputs, wire_args};
use super::value::ArgSegments;
use crate::core::execute::attempt_result;
use crate::core::generator::GenSink;
use crate::core::ids::ObjectId;
use crate::core::node::{CurrentTask, NodeInner, enter, with_current};
use crate::core::scheduler::Grant;
use crate::core::store::PinGuard;
use crate::core::task::{Arg, CallError, EmitSink, Output, Returns, TaskSpec};
use crate::core::worker::{
    Call, CallInFlight, CallKind, Emit, READ_SPIN, STREAMING_RETURNS, WireValue, WorkerProc,
    readable,
};
use crate::error::Error;

/// An attempt's result as the node completes it.
type Attempt = Result<Vec<Output>, (Error, bool)>;

/// How long the thread that wrote a call waits for its outcome before parking it. Parking
/// costs about a tenth of a millisecond (a wake-up of the I/O runtime and a hand-off to a
/// blocking thread): short calls are cheaper to wait for, long ones cheaper to park.
const PARK_AFTER: Duration = Duration::from_millis(2);

/// Runs one attempt of the foreign task `task` (its function is `function`) on the
/// scheduler's thread that took it, parking it when its outcome does not come at once.
/// When no idle worker process is there, the thread does not wait for one to start
/// either: the task goes on on a blocking thread of the I/O runtime, which starts it.
pub(crate) fn dispatch(
    node: &Arc<NodeInner>,
    task: Box<TaskSpec>,
    grant: Grant,
    function: FunctionId,
) {
    let cur = CurrentTask::new(task.id, Some(task.state.clone()), Some(grant.clone()), None);
    let mut run = Running {
        node: node.clone(),
        task: Some(task),
        grant,
        cur,
        call: None,
        segs: ArgSegments::default(),
        pins: Vec::new(),
        emitted: 0,
    };
    let call = match run.prepare(function) {
        Ok(call) => call,
        Err(e) => return run.fail(e, true),
    };
    if let Some(worker) = node.workers.idle() {
        return run.launch(worker, call, true);
    }
    match node.io_runtime() {
        Ok(io) => {
            // This thread goes back to the queues; the task keeps its resources.
            node.sched.detach();
            io.spawn_blocking(move || match run.node.workers.spawn(&run.node, 1) {
                Ok(worker) => run.launch(worker, call, false),
                Err(e) => run.fail(CallError::Setup(e), false),
            });
        }
        // The node is stopping: no worker process starts.
        Err(e) => run.fail(CallError::Setup(e), true),
    }
}

/// Waits for a parked call's socket, then reads on a blocking thread, until its outcome.
async fn watch(mut run: Running) {
    loop {
        // `run` owns the socket and is held across the wait.
        let readable = readable(run.fd()).await;
        let next = tokio::task::spawn_blocking(move || {
            // Not readable: the socket could not be watched; wait for the frame there.
            match run.step(READ_SPIN, readable.then_some(Duration::ZERO)) {
                Some(result) => {
                    run.finish(result, false);
                    None
                }
                None => Some(run),
            }
        })
        .await;
        // A blocking task that did not run (the runtime is shutting down) dropped `run`,
        // which failed the task.
        match next {
            Ok(Some(r)) => run = r,
            _ => return,
        }
    }
}

/// A foreign task's attempt while its call runs: what the thread that wrote the call
/// kept on its stack before calls could be parked.
struct Running {
    node: Arc<NodeInner>,
    /// `None` once completed.
    task: Option<Box<TaskSpec>>,
    grant: Grant,
    cur: CurrentTask,
    call: Option<CallInFlight>,
    /// The call's argument segments and pins: the worker may read them until it is done.
    segs: ArgSegments,
    pins: Vec<Arc<PinGuard>>,
    /// Outputs a generator call emitted in this attempt.
    emitted: u64,
}

impl Running {
    /// Reads the arguments; the call to write.
    fn prepare(&mut self, function: FunctionId) -> Result<Call, CallError> {
        let Some(task) = self.task.as_deref() else {
            return Err(CallError::Setup(Error::Internal(
                "a completed task run again (a bug)".into(),
            )));
        };
        let (args, pins) = self.node.task_args(task).map_err(CallError::Setup)?;
        self.pins = pins;
        let refs: Vec<ObjectId> = task
            .args
            .iter()
            .filter_map(|a| match a {
                Arg::Ref(id) => Some(*id),
                Arg::Value { .. } => None,
            })
            .collect();
        let (wire, segs) = wire_args(&self.node, &args, &refs).map_err(CallError::Setup)?;
        self.segs = segs;
        Ok(Call {
            kind: CallKind::Task,
            name: task.display_name(),
            function,
            function_bytes: None,
            args: wire,
            num_returns: match &task.returns {
                Returns::Fixed(ids) => ids.len() as u32,
                Returns::Streaming(_) => STREAMING_RETURNS,
            },
        })
    }

    /// Writes the call to `worker` and waits a moment for its outcome: completes the
    /// attempt (`by_worker`: on the scheduler's thread that took it), or parks it.
    fn launch(mut self, worker: WorkerProc, call: Call, by_worker: bool) {
        if let Err(e) = self.start(worker, call) {
            return self.fail(e, by_worker);
        }
        if let Some(result) = self.step(READ_SPIN, Some(PARK_AFTER)) {
            return self.finish(result, by_worker);
        }
        match self.node.io_runtime() {
            Ok(io) => {
                if by_worker {
                    // This thread goes back to the queues; the task keeps its resources.
                    self.node.sched.detach();
                }
                io.spawn(watch(self));
            }
            // The node is stopping (no I/O runtime): wait for the outcome here.
            Err(_) => {
                let result = self.step(Duration::ZERO, None);
                self.finish(
                    result.unwrap_or_else(|| Err((Error::Shutdown, false))),
                    by_worker,
                );
            }
        }
    }

    /// Starts the call on `worker`.
    fn start(&mut self, worker: WorkerProc, call: Call) -> Result<(), CallError> {
        let Some(task) = self.task.as_deref() else {
            return Ok(());
        };
        // Cancelling the task signals this process while the call runs.
        if !task.state.set_running_pid(Some(worker.shared.pid)) {
            self.node.workers.give_back(worker);
            return Err(CallError::Setup(Error::TaskCancelled(task.display_name())));
        }
        match CallInFlight::start(worker, call) {
            Ok(call) => {
                self.call = Some(call);
                Ok(())
            }
            Err(e) => {
                task.state.set_running_pid(None);
                Err(CallError::User(e))
            }
        }
    }

    /// Completes the attempt with a failure before or while starting its call.
    fn fail(self, e: CallError, by_worker: bool) {
        let result = match self.task.as_deref() {
            Some(task) => attempt_result(task, Err(e)),
            None => return,
        };
        self.finish(result, by_worker);
    }

    fn fd(&self) -> RawFd {
        self.call.as_ref().map_or(-1, CallInFlight::fd)
    }

    /// Reads the call's frames on this thread, as the task (see [`CallInFlight::advance`]):
    /// the attempt's result once the outcome came (or the worker died), `None` while it
    /// runs.
    fn step(&mut self, spin: Duration, wait: Option<Duration>) -> Option<Attempt> {
        let Running {
            node,
            task,
            cur,
            call,
            segs,
            emitted,
            ..
        } = self;
        let task = task.as_deref()?;
        let Some(running) = call.as_mut() else {
            // A task with no call in flight cannot go on: end it rather than wait forever.
            let bug = Error::Internal(format!(
                "{}: no call in flight (a bug)",
                task.display_name()
            ));
            return Some(Err((bug, false)));
        };
        let name = || task.display_name();
        let sink = match &task.returns {
            Returns::Streaming(g) => Some(GenSink {
                producer: g,
                node,
                state: &task.state,
                task_name: &name,
                index: std::cell::Cell::new(*emitted),
            }),
            Returns::Fixed(_) => None,
        };
        let emit = |v: WireValue| emit_output(node, sink.as_ref().map(|s| s as &dyn EmitSink), v);
        let emit: Option<Emit<'_>> = sink.as_ref().map(|_| &emit as Emit<'_>);
        let read = enter(node, || {
            with_current(cur.clone(), || running.advance(node, spin, wait, emit))
        });
        if let Some(s) = &sink {
            *emitted = s.index.get();
        }
        let result = match read {
            Ok(None) => return None,
            Ok(Some((outcome, _later))) => {
                let expected = match &task.returns {
                    Returns::Fixed(ids) => ids.len() as u32,
                    Returns::Streaming(_) => 0,
                };
                let out = outputs(node, outcome, expected, true, segs);
                task.state.set_running_pid(None);
                if let Some(call) = call.take() {
                    node.workers.give_back(call.into_worker());
                }
                out.map_err(CallError::User)
            }
            // The worker died: it is dropped (killed and reaped), never reused.
            Err(e) => {
                task.state.set_running_pid(None);
                *call = None;
                Err(CallError::User(e))
            }
        };
        Some(attempt_result(task, result))
    }

    /// Completes the attempt (`by_worker`: on the scheduler's thread that took it).
    fn finish(mut self, result: Attempt, by_worker: bool) {
        self.pins.clear();
        self.segs = ArgSegments::default();
        if let Some(task) = self.task.take() {
            self.node.complete(task, &self.grant, result, by_worker);
        }
    }
}

impl Drop for Running {
    /// A call dropped before its outcome (the node is stopping): its worker is killed
    /// with it, and the task fails.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.state.set_running_pid(None);
            self.call = None;
            self.node
                .complete(task, &self.grant, Err((Error::Shutdown, false)), false);
        }
    }
}

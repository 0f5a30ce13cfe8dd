//! Running a task: one attempt on the scheduler's thread that took it (the node's own
//! functions) or in a worker process (foreign functions: `core::foreign::dispatch`), then
//! its completion — resources back, outputs sealed with their lineage, a retry, or its
//! outputs failed.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::core::generator::GenSink;
use crate::core::node::{CurrentTask, NodeInner, fail_task_with, panic_message, with_current};
use crate::core::object::ObjectData;
use crate::core::scheduler::Grant;
use crate::core::store::PinGuard;
use crate::core::task::{
    Arg, CallCtx, CallError, EmitSink, Func, Output, Returns, TaskSpec, lookup_registered,
};
use crate::error::{Error, FailureCause, Result};

impl NodeInner {
    pub(crate) fn execute(self: &Arc<Self>, mut task: Box<TaskSpec>, grant: Grant) {
        if let Func::Foreign(function) = task.func {
            // Its call goes to a worker process; whichever thread reads the outcome
            // completes the task, and this thread goes on to the next.
            crate::core::foreign::dispatch(self, task, grant, function);
            return;
        }
        let result = self.run_once(&mut task, &grant);
        self.complete(task, &grant, result, true);
    }

    /// A finished attempt: its resources go back, then its outputs are sealed (or it runs
    /// again, or its outputs fail). `by_worker`: the scheduler's worker thread that took
    /// the task completes it, and asks for its next task at once.
    pub(crate) fn complete(
        self: &Arc<Self>,
        mut task: Box<TaskSpec>,
        grant: &Grant,
        result: Result<Vec<Output>, (Error, bool)>,
        by_worker: bool,
    ) {
        // Resources and arguments go back before the outputs are sealed: whoever sees a
        // result sees the task's resources free and its arguments released.
        let released = if by_worker {
            self.sched.release_by_worker(grant)
        } else {
            self.sched.release(grant)
        };
        self.after_release(released);
        match result {
            Ok(outputs) => {
                self.finish_task(&task);
                match &task.returns {
                    Returns::Fixed(ids) => {
                        let ids = ids.clone();
                        // Its outputs keep its spec (their store entries hold it) while
                        // they live, to run it again when one is lost: moved from the
                        // finished task, not copied at submission.
                        let lineage = self.owners.keep(*task);
                        for (id, (data, nested)) in ids.iter().zip(outputs) {
                            let rebuild = lineage.clone().map(|l| l as Arc<dyn Any + Send + Sync>);
                            // A failed seal (store full) fails that output; the rest go on.
                            let _ = self.store.seal_rebuildable(*id, data, nested, rebuild);
                        }
                    }
                    Returns::Streaming(g) => g.finish(Ok(())),
                }
            }
            Err((err, retry)) => {
                if retry && task.can_retry() && !task.state.is_cancelled() {
                    task.attempt += 1;
                    self.enqueue(task);
                } else {
                    fail_task_with(self, task, err);
                }
            }
        }
    }

    /// A task's argument values, its refs read from the store (pinned while it runs).
    pub(crate) fn task_args(
        self: &Arc<Self>,
        task: &TaskSpec,
    ) -> Result<(Vec<ObjectData>, Vec<Arc<PinGuard>>)> {
        if task.state.is_cancelled() {
            return Err(Error::TaskCancelled(task.display_name()));
        }
        let mut args = Vec::with_capacity(task.args.len());
        let mut pins = Vec::new();
        for a in &task.args {
            match a {
                Arg::Value { data, .. } => args.push(data.clone()),
                Arg::Ref(id) => {
                    let (data, pin) = self.read_object(*id, true)?;
                    args.push(data);
                    pins.extend(pin);
                }
            }
        }
        Ok((args, pins))
    }

    /// Runs one attempt of a task the node runs itself (not a worker process's): its
    /// outputs (none for a streaming task, whose items are out), to be sealed;
    /// `Err((error, retriable))` on failure.
    fn run_once(
        self: &Arc<Self>,
        task: &mut TaskSpec,
        grant: &Grant,
    ) -> Result<Vec<Output>, (Error, bool)> {
        let (args, pins) = self.task_args(task).map_err(|e| (e, false))?;
        let func = match &task.func {
            Func::Closure(f) => f.clone(),
            Func::Registered(name) => lookup_registered(name).map_err(|e| (e, false))?,
            Func::Foreign(_) => {
                return Err((
                    Error::Internal("a worker process's task run in the node (a bug)".into()),
                    false,
                ));
            }
        };
        let name = || task.display_name();
        let gen_sink = match &task.returns {
            Returns::Streaming(g) => Some(GenSink {
                producer: g,
                node: self,
                state: &task.state,
                task_name: &name,
                index: Cell::new(0),
            }),
            Returns::Fixed(_) => None,
        };
        let cur = CurrentTask::new(task.id, Some(task.state.clone()), Some(grant.clone()), None);
        let outcome = with_current(cur, || {
            let mut ctx = CallCtx {
                args,
                name: &task.name,
                id: task.id,
                emitter: gen_sink.as_ref().map(|s| s as &dyn EmitSink),
            };
            catch_unwind(AssertUnwindSafe(|| func(&mut ctx)))
        });
        drop(pins);
        match outcome {
            Ok(r) => attempt_result(task, r),
            Err(payload) => Err((
                Error::TaskFailed {
                    task: name(),
                    cause: FailureCause::Panic,
                    message: panic_message(payload),
                    attempts: task.attempt,
                    payload: None,
                },
                true,
            )),
        }
    }
}

/// What an attempt's call returned, as [`NodeInner::complete`] takes it: the outputs, or
/// the error and whether running the task again may help.
pub(crate) fn attempt_result(
    task: &TaskSpec,
    r: std::result::Result<Vec<Output>, CallError>,
) -> Result<Vec<Output>, (Error, bool)> {
    let failed = |cause: FailureCause, message: String, payload| Error::TaskFailed {
        task: task.display_name(),
        cause,
        message,
        attempts: task.attempt,
        payload,
    };
    match r {
        Ok(outputs) => match &task.returns {
            Returns::Fixed(ids) if outputs.len() != ids.len() => Err((
                Error::InvalidArgument(format!(
                    "task {} returned {} values but num_returns={}",
                    task.display_name(),
                    outputs.len(),
                    ids.len()
                )),
                false,
            )),
            Returns::Fixed(_) => Ok(outputs),
            Returns::Streaming(_) => Ok(Vec::new()),
        },
        Err(CallError::User(e)) => match e.engine_error() {
            Some(err) => Err((err.clone(), task.retry_exceptions)),
            None if e.is_worker_died() => Err((
                failed(FailureCause::WorkerDied, e.message().to_string(), None),
                true,
            )),
            None => Err((
                failed(
                    FailureCause::UserError,
                    e.message().to_string(),
                    e.payload().cloned(),
                ),
                task.retry_exceptions,
            )),
        },
        Err(CallError::Setup(e)) => Err((e, false)),
    }
}

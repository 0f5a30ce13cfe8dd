//! Streaming returns: a task emits outputs one by one; the caller's [`ObjectRefGenerator`]
//! yields a ref to each as soon as it is sealed.
//!
//! With a backpressure limit the producer pauses (releasing its CPU) while that many outputs
//! are unconsumed. Dropping the generator tells the producer: its next `emit` fails, so the
//! task stops instead of producing into the void. On a retry, outputs already emitted by an
//! earlier attempt are skipped (streaming tasks are assumed deterministic, as in Ray).

use std::cell::Cell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::core::api::{ObjectRef, RawRef};
use crate::core::ids::{ObjectId, TaskId};
use crate::core::node::{NodeInner, blocking_section};
use crate::core::object::{ObjectData, Value};
use crate::core::task::{
    EmitSink, Func, IntoArgs, IntoStreamingTask, TaskOptions, TaskState, option_setters,
};
use crate::error::{Error, Result};

pub(crate) struct GenShared {
    st: Mutex<GenState>,
    cv: Condvar,
    backpressure: Option<usize>,
    pub(crate) task: TaskId,
}

struct GenState {
    queue: VecDeque<ObjectId>,
    done: Option<Result<()>>,
    consumer_alive: bool,
    /// Outputs emitted over all attempts.
    emitted: u64,
}

impl GenShared {
    pub(crate) fn new(task: TaskId, backpressure: Option<usize>) -> Arc<Self> {
        Arc::new(GenShared {
            st: Mutex::new(GenState {
                queue: VecDeque::new(),
                done: None,
                consumer_alive: true,
                emitted: 0,
            }),
            cv: Condvar::new(),
            backpressure,
            task,
        })
    }

    /// Ends the stream (first end wins).
    pub(crate) fn finish(&self, result: Result<()>) {
        let mut g = self.st.lock();
        if g.done.is_none() {
            g.done = Some(result);
        }
        self.cv.notify_all();
    }
}

/// The sink a running streaming task emits into.
pub(crate) struct GenSink<'a> {
    pub(crate) producer: &'a GenShared,
    pub(crate) node: &'a Arc<NodeInner>,
    pub(crate) state: &'a TaskState,
    pub(crate) task_name: &'a dyn Fn() -> String,
    /// Outputs emitted by this attempt.
    pub(crate) index: Cell<u64>,
}

impl EmitSink for GenSink<'_> {
    fn emit(&self, data: ObjectData, nested: Vec<ObjectId>) -> Result<()> {
        let index = self.index.get();
        self.index.set(index + 1);
        let cancelled = || Error::TaskCancelled((self.task_name)());
        let mut g = self.producer.st.lock();
        if index < g.emitted {
            return Ok(()); // emitted by an earlier attempt
        }
        if let Some(limit) = self.producer.backpressure {
            while g.consumer_alive && g.queue.len() >= limit && !self.state.is_cancelled() {
                blocking_section(|| {
                    self.producer
                        .cv
                        .wait_for(&mut g, Duration::from_millis(100))
                });
            }
        }
        if self.state.is_cancelled() || g.done.is_some() {
            return Err(cancelled());
        }
        if !g.consumer_alive {
            return Err(Error::TaskCancelled(format!(
                "{} (its output generator was dropped)",
                (self.task_name)()
            )));
        }
        let id = ObjectId {
            task: self.producer.task,
            index: index as u32,
        };
        drop(g);
        self.node.store.put(id, data, nested, 1)?;
        let mut g = self.producer.st.lock();
        g.emitted = g.emitted.max(index + 1);
        if g.consumer_alive {
            g.queue.push_back(id);
            self.producer.cv.notify_all();
        } else {
            drop(g);
            self.node.store.release(id);
        }
        Ok(())
    }
}

/// Refs to a streaming task's outputs, in order, as they are produced.
pub struct ObjectRefGenerator<T> {
    shared: Arc<GenShared>,
    node: Arc<NodeInner>,
    finished: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T: Value> ObjectRefGenerator<T> {
    pub(crate) fn new(shared: Arc<GenShared>, node: Arc<NodeInner>) -> Self {
        ObjectRefGenerator {
            shared,
            node,
            finished: false,
            _t: PhantomData,
        }
    }

    /// The next output, waiting at most `timeout`; `Ok(None)` at the end of the stream.
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<ObjectRef<T>>> {
        if self.finished {
            return Ok(None);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = self.shared.st.lock();
        loop {
            if let Some(id) = g.queue.pop_front() {
                self.shared.cv.notify_all();
                return Ok(Some(ObjectRef::from_raw(RawRef::adopt(&self.node, id))));
            }
            if let Some(done) = &g.done {
                self.finished = true;
                return done.clone().map(|_| None);
            }
            let timed_out = blocking_section(|| match deadline {
                Some(d) => self.shared.cv.wait_until(&mut g, d).timed_out(),
                None => {
                    self.shared.cv.wait(&mut g);
                    false
                }
            });
            if timed_out && g.queue.is_empty() && g.done.is_none() {
                return Err(Error::GetTimeout(
                    timeout.unwrap_or_default(),
                    format!("the next output of task {}", self.shared.task),
                ));
            }
        }
    }

    /// The producing task's id (for `cancel`).
    pub fn task_id(&self) -> TaskId {
        self.shared.task
    }
}

impl<T: Value> Iterator for ObjectRefGenerator<T> {
    type Item = Result<ObjectRef<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_timeout(None).transpose()
    }
}

impl<T> Drop for ObjectRefGenerator<T> {
    fn drop(&mut self) {
        let left: Vec<ObjectId> = {
            let mut g = self.shared.st.lock();
            g.consumer_alive = false;
            self.shared.cv.notify_all();
            g.queue.drain(..).collect()
        };
        self.node.store.release_many(left);
    }
}

impl<T> std::fmt::Debug for ObjectRefGenerator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRefGenerator")
            .field("task", &self.shared.task)
            .finish()
    }
}

/// A streaming task: `f.remote(args)` returns an [`ObjectRefGenerator`].
///
/// ```
/// # volley::init(volley::Config::default()).unwrap();
/// let count = volley::streaming_task(|out: &volley::Emitter<'_, u32>, n: u32| {
///     for i in 0..n {
///         out.emit(i)?;
///     }
///     Ok(())
/// });
/// let got: Vec<u32> = count.remote((3,)).unwrap().map(|r| volley::get(&r.unwrap()).unwrap()).collect();
/// assert_eq!(got, vec![0, 1, 2]);
/// # volley::shutdown();
/// ```
pub struct StreamingFunction<Args, T> {
    inner: crate::core::task::RemoteFunction<Args, T>,
    opts: TaskOptions,
}

/// A streaming task from a closure whose first parameter is an [`crate::Emitter`].
pub fn streaming_task<Args, T, F>(f: F) -> StreamingFunction<Args, T>
where
    F: IntoStreamingTask<Args, T>,
    T: Value,
{
    let name = std::any::type_name::<F>()
        .rsplit("::")
        .nth(1)
        .unwrap_or("streaming_task");
    StreamingFunction {
        inner: crate::core::task::RemoteFunction::from_func(
            Func::Closure(f.erase()),
            Arc::from(name),
        ),
        opts: TaskOptions::default(),
    }
}

impl<Args, T: Value> StreamingFunction<Args, T> {
    option_setters! {
        /// Task name shown in errors.
        name: &str => name = Some;
        /// CPUs per task.
        num_cpus: f64 => num_cpus;
        /// GPUs per task.
        num_gpus: f64 => num_gpus;
        /// Retries on system failures.
        max_retries: i32 => max_retries = Some;
        /// Also retry user errors.
        retry_exceptions: bool => retry_exceptions;
        /// The most unconsumed outputs before the producer pauses.
        generator_backpressure_num_objects: usize => generator_backpressure_num_objects = Some;
    }

    /// Adds a custom resource demand.
    pub fn resource(mut self, name: &str, amount: f64) -> Self {
        self.opts.resources.push((name.to_string(), amount));
        self
    }

    /// Starts the task.
    pub fn remote<A: IntoArgs<Args>>(&self, args: A) -> Result<ObjectRefGenerator<T>> {
        let node = crate::core::node::current()?;
        let args = args.into_args()?;
        let req = self.inner.clone().options(self.opts.clone()).task_request(
            args,
            0,
            Some(self.opts.generator_backpressure_num_objects),
        );
        let shared = node.submit_task(req)?.streaming()?;
        Ok(ObjectRefGenerator::new(shared, node))
    }
}

impl<Args, T> std::fmt::Debug for StreamingFunction<Args, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingFunction").finish()
    }
}

//! The streaming executor: one core streaming task per read fragment, each running its
//! pipeline and emitting blocks into the object store; the consumer pulls them in order.
//!
//! Memory stays bounded by configuration: at most `max_in_flight` fragment tasks run at once
//! (derived from the pipeline byte budget and the block size), each pauses once it has
//! `max_unconsumed_outputs_per_task` blocks nobody consumed, and a reached limit drops the
//! remaining generators, which stops their producers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;

use crate::core::generator::{ObjectRefGenerator, StreamingFunction};
use crate::data::context::DataContext;
use crate::data::physical::{PhysicalPlan, Pipeline};
use crate::data::progress::ExecState;
use crate::error::{Result, UserError};
use crate::{Block, Emitter, ObjectRef};

/// Runs fragment `frag` of `pipeline`, emitting blocks of about `target` bytes.
fn run_fragment(
    pipeline: &Pipeline,
    frag: u64,
    target: u64,
    out: &Emitter<'_, Block>,
) -> Result<()> {
    let mut acc: Vec<RecordBatch> = Vec::new();
    let mut bytes = 0u64;
    let emit = |acc: &mut Vec<RecordBatch>| -> crate::Result<()> {
        if acc.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(acc);
        out.emit(Block::try_new(batches[0].schema(), batches)?)
    };
    pipeline.run(frag as usize, &mut |b| {
        bytes += crate::data::physical::batch_bytes(&b);
        acc.push(b);
        if bytes >= target {
            emit(&mut acc)?;
            bytes = 0;
        }
        Ok(true)
    })?;
    emit(&mut acc)?;
    Ok(())
}

/// How many fragment tasks may run at once.
pub(crate) fn max_in_flight(ctx: &DataContext) -> usize {
    let cpus = crate::cluster_resources()
        .map(|r| r.get(&crate::ResourceName::Cpu))
        .unwrap_or(1.0)
        .ceil()
        .max(1.0) as usize;
    let budget = crate::object_store_stats()
        .map(|s| s.budget)
        .unwrap_or(u64::MAX);
    let per_task = ctx.target_max_block_size * (ctx.max_unconsumed_outputs_per_task as u64 + 1);
    let pipeline = ctx
        .pipeline_budget_bytes
        .unwrap_or((budget as f64 * ctx.pipeline_budget_fraction) as u64);
    let by_budget = (pipeline / per_task.max(1)).max(1);
    let cap = ctx.max_tasks_in_flight.unwrap_or(2 * cpus);
    (by_budget as usize).clamp(1, cap.max(1))
}

/// Batches of a running plan, in order.
pub(crate) struct BatchStream {
    todo: VecDeque<(usize, u64)>,
    funcs: Vec<StreamingFunction<(u64,), Block>>,
    /// Each pipeline's cap on its tasks at once (a map's `concurrency`).
    caps: Vec<Option<usize>>,
    /// Running fragment tasks, with their pipeline.
    running: VecDeque<(usize, ObjectRefGenerator<Block>)>,
    ready: VecDeque<RecordBatch>,
    left: Option<usize>,
    max_in_flight: usize,
    done: bool,
    state: Arc<ExecState>,
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream")
            .field("running", &self.running.len())
            .finish()
    }
}

impl BatchStream {
    pub(crate) fn new(plan: &PhysicalPlan, ctx: &DataContext) -> Result<Self> {
        plan.prepare()?;
        let target = ctx.target_max_block_size;
        let funcs = plan
            .pipelines
            .iter()
            .map(|p| {
                let pipeline = p.clone();
                let d = p.demand();
                let mut f = crate::streaming_task(move |out: &Emitter<'_, Block>, frag: u64| {
                    run_fragment(&pipeline, frag, target, out).map_err(UserError::from_engine)
                })
                .name(&p.task_name())
                .max_retries(0)
                .generator_backpressure_num_objects(ctx.max_unconsumed_outputs_per_task.max(1))
                .num_cpus(d.num_cpus)
                .num_gpus(d.num_gpus);
                for (name, amount) in &d.resources {
                    f = f.resource(name, *amount);
                }
                f
            })
            .collect();
        let todo = plan
            .pipelines
            .iter()
            .enumerate()
            .flat_map(|(i, p)| (0..p.source.num_fragments() as u64).map(move |f| (i, f)))
            .collect();
        let max_in_flight = max_in_flight(ctx);
        let state = plan.state.clone();
        state.max_in_flight.store(max_in_flight, Ordering::Relaxed);
        Ok(BatchStream {
            todo,
            funcs,
            caps: plan.pipelines.iter().map(|p| p.max_tasks()).collect(),
            running: VecDeque::new(),
            ready: VecDeque::new(),
            left: plan.limit,
            max_in_flight,
            done: false,
            state,
        })
    }

    fn stop(&mut self) {
        self.done = true;
        self.todo.clear();
        // Dropping a generator tells its producer to stop.
        self.running.clear();
    }

    /// The next block as it sits in the store, ignoring the plan's limit (for plans
    /// without one). Don't mix with [`Iterator::next`].
    pub(crate) fn next_block(&mut self) -> Result<Option<crate::ObjectRef<Block>>> {
        loop {
            if self.done {
                return Ok(None);
            }
            while self.running.len() < self.max_in_flight {
                let Some(&(p, f)) = self.todo.front() else {
                    break;
                };
                // In order: the next fragment waits while its pipeline is at its cap.
                let of_p = self.running.iter().filter(|(q, _)| *q == p).count();
                if self.caps[p].is_some_and(|cap| of_p >= cap) {
                    break;
                }
                self.todo.pop_front();
                self.running.push_back((p, self.funcs[p].remote((f,))?));
            }
            self.state
                .in_flight
                .store(self.running.len(), Ordering::Relaxed);
            self.state.queued.store(self.todo.len(), Ordering::Relaxed);
            let Some((_, front)) = self.running.front_mut() else {
                self.done = true;
                return Ok(None);
            };
            match front.next() {
                Some(Ok(r)) => return Ok(Some(r)),
                Some(Err(e)) => {
                    self.stop();
                    return Err(e);
                }
                None => {
                    self.running.pop_front();
                }
            }
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                let b = match self.left.as_mut() {
                    Some(left) => {
                        let b = if b.num_rows() > *left {
                            b.slice(0, *left)
                        } else {
                            b
                        };
                        *left -= b.num_rows();
                        if *left == 0 {
                            self.stop();
                            self.ready.clear();
                        }
                        b
                    }
                    None => b,
                };
                return Ok(Some(b));
            }
            if self.done || self.left == Some(0) {
                return Ok(None);
            }
            match self.next_block()? {
                Some(r) => {
                    let block = crate::get(&r)?;
                    self.ready.extend(block.batches().iter().cloned());
                }
                None => return Ok(None),
            }
        }
    }
}

impl Iterator for BatchStream {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.state.pulled();
        let next = self.next_batch().transpose();
        if next.is_some() {
            self.state.handed_out();
        }
        next
    }
}

/// Runs `f(pipeline, fragment)` as one task per fragment and returns the results in order;
/// a pipeline with a cap on its tasks ([`Pipeline::max_tasks`]) has at most that many
/// running at once.
pub(crate) fn run_per_fragment<R: crate::Value>(
    plan: &PhysicalPlan,
    name: &str,
    f: impl Fn(&Arc<Pipeline>, u64, u64) -> Result<R> + Send + Sync + 'static,
) -> Result<Vec<R>> {
    plan.prepare()?;
    let f = Arc::new(f);
    let mut refs = Vec::new();
    let mut global = 0u64;
    for p in &plan.pipelines {
        let pipeline = p.clone();
        let f = f.clone();
        let d = p.demand();
        let mut task = crate::task(move |frag: u64, index: u64| {
            f(&pipeline, frag, index).map_err(UserError::from_engine)
        })
        .name(&format!("{}->{name}", p.task_name()))
        .max_retries(0)
        .num_cpus(d.num_cpus)
        .num_gpus(d.num_gpus);
        for (name, amount) in &d.resources {
            task = task.resource(name, *amount);
        }
        let mut window: VecDeque<ObjectRef<R>> = VecDeque::new();
        for frag in 0..p.source.num_fragments() as u64 {
            if let Some(cap) = p.max_tasks()
                && window.len() >= cap
                && let Some(oldest) = window.pop_front()
            {
                crate::wait(std::slice::from_ref(&oldest), 1, None)?;
                refs.push(oldest);
            }
            window.push_back(task.remote((frag, global))?);
            global += 1;
        }
        refs.extend(window);
    }
    crate::get_all(&refs, None)
}

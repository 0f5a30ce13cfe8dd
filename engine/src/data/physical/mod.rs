//! Physical operators, one per file: sources produce batches for a read fragment; row ops
//! transform them. A [`Pipeline`] is a source and its fused row ops: one task runs one
//! fragment through the whole pipeline.

mod actor_pool;
mod aggregate;
mod exchange;
pub(crate) mod exchange_api {
    pub(crate) use super::exchange::Exchange;
}
mod filter;
mod from_batches;
mod from_refs;
mod join;
mod limit_barrier;
mod map_batches;
mod map_groups;
mod project;
mod random_shuffle;
mod range;
mod read_parquet;
mod read_text;
mod repartition;
mod sort;
mod zip;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

pub(crate) use aggregate::AggregateExchange;
pub use aggregate::{Agg, AggKind};
pub(crate) use exchange::ExchangeOp;
pub(crate) use filter::FilterOp;
pub(crate) use from_batches::FromBatchesOp;
pub(crate) use from_refs::FromRefsOp;
pub(crate) use join::JoinOp;
pub use join::{JoinSpec, JoinType};
pub(crate) use limit_barrier::LimitBarrierOp;
pub(crate) use map_batches::MapBatchesOp;
pub(crate) use map_groups::MapGroupsExchange;
pub(crate) use project::{ConformOp, ProjectOp};
pub(crate) use random_shuffle::{RandomShuffleExchange, mix, seed_or_now, shuffle};
pub(crate) use range::RangeOp;
pub(crate) use read_parquet::ReadParquetOp;
pub(crate) use read_text::ReadTextOp;
pub(crate) use repartition::RepartitionExchange;
pub(crate) use sort::SortExchange;
pub(crate) use zip::{ZipOp, zip_schema};

use crate::error::Result;

/// Counters of one operator, summed over its tasks.
#[derive(Debug, Default)]
pub(crate) struct OpCounters {
    pub(crate) rows: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) nanos: AtomicU64,
    /// Tasks started.
    pub(crate) tasks: AtomicU64,
    /// Tasks running now.
    pub(crate) active: AtomicU64,
    /// Bytes its running tasks hold now (inputs being processed and their outputs).
    held: AtomicU64,
    /// The most bytes held at once.
    peak: AtomicU64,
    /// When its first task started, and when it last output a batch (ns since
    /// [`clock_ns`]'s epoch; 0: not yet).
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    /// The fewest rows and bytes in one output batch (plus one; 0: none yet), and the most.
    min_rows: AtomicU64,
    min_bytes: AtomicU64,
    max_rows: AtomicU64,
    max_bytes: AtomicU64,
}

/// `at` in nanoseconds since the first call in this process (never 0).
fn clock_ns(at: Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    at.saturating_duration_since(*EPOCH.get_or_init(Instant::now))
        .as_nanos() as u64
        + 1
}

/// `slot` lowered to `v + 1` if it is unset (0) or higher.
fn keep_min(slot: &AtomicU64, v: u64) {
    let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
        (cur == 0 || v + 1 < cur).then_some(v + 1)
    });
}

/// An operator's figures beyond its totals, for Ray's `stats()` layout.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpSpread {
    /// From its first task's start to its last output batch.
    pub wall: Duration,
    /// Rows in one output batch: fewest and most.
    pub rows: (u64, u64),
    /// Bytes in one output batch: fewest and most.
    pub bytes: (u64, u64),
}

/// Bytes an operator holds until dropped (see [`OpCounters::hold`]).
pub(crate) struct Held<'a> {
    counters: &'a OpCounters,
    bytes: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.counters.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A running task of an operator until dropped.
pub(crate) struct Active<'a>(&'a OpCounters);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes of Arrow data a batch spans (its slices of its buffers: a batch sliced from, or
/// mapped in, a larger buffer counts only its own part).
/// A user function's failure inside the operator `task` (`MapBatches(f)`, `MapGroups(f)`),
/// keeping the user's error object (a Python exception reaches the caller as its own class).
pub(crate) fn udf_failed(
    task: String,
    message: String,
    payload: Option<crate::error::ErrorPayload>,
) -> crate::Error {
    crate::Error::TaskFailed {
        task,
        cause: crate::FailureCause::UserError,
        message,
        attempts: 1,
        payload,
    }
}

pub(crate) fn batch_bytes(b: &RecordBatch) -> u64 {
    b.columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
}

/// Bytes of Arrow data in `batches` (see [`batch_bytes`]).
pub(crate) fn bytes_of(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(batch_bytes).sum()
}

impl OpCounters {
    /// Counts `bytes` as held by the operator (and its peak) until the guard drops.
    pub(crate) fn hold(&self, bytes: u64) -> Held<'_> {
        let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Held {
            counters: self,
            bytes,
        }
    }

    /// Counts a task as started and running until the guard drops.
    pub(crate) fn start_task(&self) -> Active<'_> {
        let _ = self.first_ns.compare_exchange(
            0,
            clock_ns(Instant::now()),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.tasks.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self)
    }

    /// The most bytes the operator's tasks held at once.
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, out: &[RecordBatch], started: Instant) {
        for b in out {
            let (rows, bytes) = (b.num_rows() as u64, batch_bytes(b));
            self.rows.fetch_add(rows, Ordering::Relaxed);
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
            keep_min(&self.min_rows, rows);
            keep_min(&self.min_bytes, bytes);
            self.max_rows.fetch_max(rows, Ordering::Relaxed);
            self.max_bytes.fetch_max(bytes, Ordering::Relaxed);
        }
        self.batches.fetch_add(out.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        self.nanos.fetch_add(
            now.saturating_duration_since(started).as_nanos() as u64,
            Ordering::Relaxed,
        );
        let now = clock_ns(now);
        let _ = self
            .first_ns
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_ns.fetch_max(now, Ordering::Relaxed);
    }

    /// Its wall time and the spread of its output batches so far.
    pub(crate) fn spread(&self) -> OpSpread {
        let min = |a: &AtomicU64| a.load(Ordering::Relaxed).saturating_sub(1);
        let max = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (first, last) = (
            self.first_ns.load(Ordering::Relaxed),
            self.last_ns.load(Ordering::Relaxed),
        );
        OpSpread {
            wall: Duration::from_nanos(if first == 0 {
                0
            } else {
                last.saturating_sub(first)
            }),
            rows: (min(&self.min_rows), max(&self.max_rows)),
            bytes: (min(&self.min_bytes), max(&self.max_bytes)),
        }
    }

    /// Wraps a source's batch callback so each batch is counted with the time spent producing
    /// it (the time in `each`, downstream, is not counted).
    pub(crate) fn counting<'a>(
        &'a self,
        each: &'a mut dyn FnMut(RecordBatch) -> Result<bool>,
    ) -> impl FnMut(RecordBatch) -> Result<bool> + 'a {
        let mut started = Instant::now();
        move |b| {
            self.record(std::slice::from_ref(&b), started);
            let _held = self.hold(batch_bytes(&b));
            let go = each(b);
            started = Instant::now();
            go
        }
    }
}

/// Hands `block`'s batches to `each`, counted per batch by `counters` (see
/// [`OpCounters::counting`]), until `each` says stop.
pub(crate) fn feed_block(
    block: &crate::Block,
    counters: &OpCounters,
    each: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    let mut each = counters.counting(each);
    for b in block.batches() {
        if !each(b.clone())? {
            break;
        }
    }
    Ok(())
}

/// Resources a pipeline's tasks ask for (the most any of its operators needs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskDemand {
    pub(crate) num_cpus: f64,
    pub(crate) num_gpus: f64,
    pub(crate) resources: Vec<(String, f64)>,
}

impl TaskDemand {
    fn merge(&mut self, other: &TaskDemand) {
        self.num_cpus = self.num_cpus.max(other.num_cpus);
        self.num_gpus = self.num_gpus.max(other.num_gpus);
        for (name, amount) in &other.resources {
            match self.resources.iter_mut().find(|(n, _)| n == name) {
                Some((_, a)) => *a = a.max(*amount),
                None => self.resources.push((name.clone(), *amount)),
            }
        }
    }
}

/// Produces the batches of read fragments.
pub(crate) trait SourceOp: Send + Sync + fmt::Display {
    /// Runs what must run before fragments can be counted (barriers: exchanges, limits).
    fn prepare(&self) -> Result<()> {
        Ok(())
    }
    /// How many fragments (read tasks) it splits into.
    fn num_fragments(&self) -> usize;
    /// The plan it runs first (an exchange's input), for progress and stats.
    fn input_plan(&self) -> Option<&PhysicalPlan> {
        None
    }
    /// Reads fragment `i`, calling `each` until it returns `false`.
    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()>;
    /// Its counters.
    fn counters(&self) -> &OpCounters;
}

/// The per-task state of a row operator.
pub(crate) trait RowOpState {
    /// Takes a batch, appends outputs.
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()>;
    /// Flushes what it buffered.
    fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }
}

/// A one-to-one operator over batches.
pub(crate) trait RowOp: Send + Sync + fmt::Display {
    /// Fresh state for one task.
    fn start(&self) -> Box<dyn RowOpState + '_>;
    /// Its counters.
    fn counters(&self) -> &OpCounters;
    /// Resources the tasks running it need beyond the default (one CPU).
    fn demand(&self) -> Option<&TaskDemand> {
        None
    }
    /// Most tasks that may run it at once (`None`: no cap of its own).
    fn max_tasks(&self) -> Option<usize> {
        None
    }
    /// Extra state for stats lines (e.g. actors started).
    fn describe_state(&self) -> Option<String> {
        None
    }
}

/// A source and the row operators fused after it.
pub(crate) struct Pipeline {
    pub(crate) source: Arc<dyn SourceOp>,
    pub(crate) ops: Vec<Arc<dyn RowOp>>,
}

impl Pipeline {
    /// Runs fragment `i`: every batch through every op; `emit` gets the outputs and returns
    /// `false` to stop early.
    pub(crate) fn run(
        &self,
        i: usize,
        emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
    ) -> Result<()> {
        let _active: Vec<Active<'_>> = std::iter::once(self.source.counters())
            .chain(self.ops.iter().map(|o| o.counters()))
            .map(OpCounters::start_task)
            .collect();
        let mut states: Vec<Box<dyn RowOpState + '_>> =
            self.ops.iter().map(|o| o.start()).collect();
        let mut go_on = true;
        self.source.read(i, &mut |batch| {
            let outs = push_through(&self.ops, &mut states, 0, vec![batch], false)?;
            for b in outs {
                if !emit(b)? {
                    go_on = false;
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if go_on {
            // Flush buffered rows op by op (each flush feeds the ops after it).
            for k in 0..self.ops.len() {
                let outs = push_through(&self.ops, &mut states, k, Vec::new(), true)?;
                for b in outs {
                    if !emit(b)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// `Source -> Op -> Op`.
    pub(crate) fn describe(&self) -> String {
        let mut s = self.source.to_string();
        for o in &self.ops {
            s.push_str(" -> ");
            s.push_str(&o.to_string());
        }
        s
    }

    /// What its tasks need: one CPU, or more when an operator asks for it.
    pub(crate) fn demand(&self) -> TaskDemand {
        let mut d = TaskDemand {
            num_cpus: 1.0,
            num_gpus: 0.0,
            resources: Vec::new(),
        };
        let mut custom_cpus = None::<f64>;
        for o in &self.ops {
            if let Some(od) = o.demand() {
                custom_cpus = Some(custom_cpus.unwrap_or(0.0).max(od.num_cpus));
                d.merge(od);
            }
        }
        // An operator asking for fewer CPUs (e.g. 0.5) lowers the task's demand.
        if let Some(c) = custom_cpus {
            d.num_cpus = c;
        }
        d
    }

    /// Most of its tasks that may run at once: the tightest cap of its operators.
    pub(crate) fn max_tasks(&self) -> Option<usize> {
        self.ops.iter().filter_map(|o| o.max_tasks()).min()
    }

    /// A short task name: the operator names without their arguments.
    pub(crate) fn task_name(&self) -> String {
        let short = |s: String| s.split('(').next().unwrap_or_default().to_string();
        let mut names = vec![short(self.source.to_string())];
        names.extend(self.ops.iter().map(|o| short(o.to_string())));
        names.join("->")
    }
}

/// Pushes `batches` into op `from` (flushing it first when `flush`), and the results through
/// the ops after it.
fn push_through(
    ops: &[Arc<dyn RowOp>],
    states: &mut [Box<dyn RowOpState + '_>],
    from: usize,
    batches: Vec<RecordBatch>,
    flush: bool,
) -> Result<Vec<RecordBatch>> {
    let mut cur = batches;
    for k in from..ops.len() {
        let started = Instant::now();
        let counters = ops[k].counters();
        let _input = counters.hold(bytes_of(&cur));
        let mut next = Vec::new();
        if flush && k == from {
            states[k].finish(&mut next)?;
        } else {
            for b in cur {
                states[k].push(b, &mut next)?;
            }
        }
        let _output = counters.hold(bytes_of(&next));
        counters.record(&next, started);
        cur = next;
    }
    Ok(cur)
}

/// Pipelines to run, then a global row limit.
#[derive(Clone)]
pub(crate) struct PhysicalPlan {
    pub(crate) pipelines: Vec<Arc<Pipeline>>,
    pub(crate) limit: Option<usize>,
    /// What the executor shares with the progress reporter.
    pub(crate) state: Arc<crate::data::progress::ExecState>,
}

impl PhysicalPlan {
    /// Prepares every source (runs barriers).
    pub(crate) fn prepare(&self) -> Result<()> {
        self.pipelines.iter().try_for_each(|p| p.source.prepare())
    }
}

impl fmt::Display for PhysicalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.pipelines.iter().enumerate() {
            writeln!(
                f,
                "Pipeline {i} ({} tasks): {}",
                p.source.num_fragments(),
                p.describe()
            )?;
        }
        if let Some(n) = self.limit {
            writeln!(f, "LimitOp: {n}")?;
        }
        Ok(())
    }
}

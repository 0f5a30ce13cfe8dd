//! Physical operators, one per file: sources produce batches for a read fragment; row ops
//! transform them. A [`Pipeline`] is a source and its fused row ops: one task runs one
//! fragment through the whole pipeline.

mod aggregate;
mod exchange;
pub(crate) mod exchange_api {
    pub(crate) use super::exchange::Exchange;
}
mod filter;
mod from_batches;
mod limit_barrier;
mod map_batches;
mod project;
mod random_shuffle;
mod range;
mod read_parquet;
mod read_text;
mod repartition;
mod sort;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::RecordBatch;

pub(crate) use aggregate::AggregateExchange;
pub use aggregate::{Agg, AggKind};
pub(crate) use exchange::ExchangeOp;
pub(crate) use filter::FilterOp;
pub(crate) use from_batches::FromBatchesOp;
pub(crate) use limit_barrier::LimitBarrierOp;
pub(crate) use map_batches::MapBatchesOp;
pub(crate) use project::ProjectOp;
pub(crate) use random_shuffle::RandomShuffleExchange;
pub(crate) use range::RangeOp;
pub(crate) use read_parquet::ReadParquetOp;
pub(crate) use read_text::ReadTextOp;
pub(crate) use repartition::RepartitionExchange;
pub(crate) use sort::SortExchange;

use crate::error::Result;

/// Counters of one operator, summed over its tasks.
#[derive(Debug, Default)]
pub(crate) struct OpCounters {
    pub(crate) rows: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) nanos: AtomicU64,
    pub(crate) tasks: AtomicU64,
}

impl OpCounters {
    pub(crate) fn record(&self, out: &[RecordBatch], started: Instant) {
        for b in out {
            self.rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
            self.bytes
                .fetch_add(b.get_array_memory_size() as u64, Ordering::Relaxed);
        }
        self.batches.fetch_add(out.len() as u64, Ordering::Relaxed);
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
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
            let go = each(b);
            started = Instant::now();
            go
        }
    }

    pub(crate) fn line(&self, name: &str) -> String {
        format!(
            "{name}: {} rows, {} batches, {:.1} MiB, {} tasks, {:.3} s CPU",
            self.rows.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
            self.tasks.load(Ordering::Relaxed),
            self.nanos.load(Ordering::Relaxed) as f64 / 1e9
        )
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
        self.source.counters().tasks.fetch_add(1, Ordering::Relaxed);
        let mut states: Vec<Box<dyn RowOpState + '_>> =
            self.ops.iter().map(|o| o.start()).collect();
        for o in &self.ops {
            o.counters().tasks.fetch_add(1, Ordering::Relaxed);
        }
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
        let mut next = Vec::new();
        if flush && k == from {
            states[k].finish(&mut next)?;
        } else {
            for b in cur {
                states[k].push(b, &mut next)?;
            }
        }
        ops[k].counters().record(&next, started);
        cur = next;
    }
    Ok(cur)
}

/// Pipelines to run, then a global row limit.
pub(crate) struct PhysicalPlan {
    pub(crate) pipelines: Vec<Arc<Pipeline>>,
    pub(crate) limit: Option<usize>,
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

//! `ExchangeOp`: the all-to-all operators (sort, groupby-aggregate, repartition, random
//! shuffle) as a barrier source.
//!
//! ```text
//!  input pipelines ──map tasks──► per fragment: pre-map (e.g. partial aggregate), split into
//!      P partitions, each `put` as a block (objects: the store spills them past its budget)
//!                  ──reduce tasks──► reducer p gets partition p of every map output,
//!      combines it (sort / final aggregate / concat), puts one block
//!  downstream pipelines read the P reducer blocks as their fragments
//! ```
//! A sort first materializes each fragment and samples its keys (returned with the block), so
//! range boundaries are known before partitioning. The exchange runs when the executor
//! prepares the plan, never during `explain`.
//!
//! Memory: every block the exchange puts (materialized fragments, partition pieces, reducer
//! outputs) is spilled right away once the store's resident bytes pass
//! `DataContext::exchange_spill_fraction` of its budget, so an exchange over more data than
//! memory keeps a bounded footprint; reducers restore their inputs on access.

use std::fmt;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;

use crate::Block;
use crate::core::api::ObjectRef;
use crate::data::context::DataContext;
use crate::data::physical::{OpCounters, PhysicalPlan, SourceOp, bytes_of};
use crate::error::{Error, Result, TaskResult};

/// Rows of `batch` grouped by partition index (`parts[i]` for each row).
pub(crate) fn split_by(batch: &RecordBatch, parts: &[u32], n: usize) -> Result<Vec<RecordBatch>> {
    let mut idx: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (row, p) in parts.iter().enumerate() {
        idx[*p as usize].push(row as u32);
    }
    idx.into_iter()
        .map(|rows| Ok(take_record_batch(batch, &UInt32Array::from(rows))?))
        .collect()
}

/// Concatenates batches (of one schema) into one.
pub(crate) fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    Ok(arrow::compute::concat_batches(schema, batches)?)
}

/// What an all-to-all operator does on each side of the exchange.
pub(crate) trait Exchange: Send + Sync + fmt::Display + 'static {
    /// Partitions for `bytes` of input (known after the map side when sampling, else `None`)
    /// coming from `fragments` map tasks.
    fn partitions(
        &self,
        bytes: Option<u64>,
        fragments: usize,
        ctx: &DataContext,
        cpus: usize,
    ) -> usize;
    /// Runs on one fragment's output before partitioning (e.g. a partial aggregate).
    fn pre_map(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        Ok(batches)
    }
    /// Whether partitioning needs boundaries from samples (sort).
    fn needs_samples(&self) -> bool {
        false
    }
    /// Key samples of one fragment's rows (for boundaries).
    fn sample(&self, _batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
        Ok(None)
    }
    /// Sets boundaries from all samples, for `n` partitions.
    fn set_boundaries(&self, _samples: Vec<RecordBatch>, _n: usize) -> Result<()> {
        Ok(())
    }
    /// Assigns each row of `batch` (fragment `fragment`) a partition in `0..n`.
    fn partition(&self, batch: &RecordBatch, n: usize, fragment: u64) -> Result<Vec<u32>>;
    /// Combines every batch of partition `p`.
    fn reduce(&self, batches: Vec<RecordBatch>, p: usize) -> Result<Vec<RecordBatch>>;
    /// Combines partition `p` from its pieces in the store, handing its output to `out`.
    /// The default reads every piece and calls [`Exchange::reduce`]; an operator that can
    /// work within [`Reducer::limit`] bytes (sort, by merging sorted runs) overrides it.
    fn reduce_pieces(
        &self,
        pieces: Vec<ObjectRef<Block>>,
        p: usize,
        out: &mut Reducer<'_>,
    ) -> Result<()> {
        let mut batches = Vec::new();
        for r in pieces {
            batches.extend(crate::get(&r)?.batches().iter().cloned());
        }
        let _input = out.counters.hold(bytes_of(&batches));
        let reduced = self.reduce(batches, p)?;
        out.emit(reduced)
    }
}

/// What a reducer hands its output to: it puts each block it emits (spilled at once past
/// the exchange's share of the store) and counts what the reducer holds.
pub(crate) struct Reducer<'a> {
    /// The operator's counters (bytes held).
    pub counters: &'a OpCounters,
    /// Bytes a reducer should hold at most where it can choose (sort runs).
    pub limit: u64,
    /// Bytes per output block.
    pub block_bytes: u64,
    spill_over: u64,
    outputs: Vec<ObjectRef<Block>>,
}

impl Reducer<'_> {
    /// Puts `batches` as one output block (nothing when empty).
    pub fn emit(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        if let Some(r) = put_batches(batches, self.spill_over)? {
            self.outputs.push(r);
        }
        Ok(())
    }

    /// Puts `batch` as a block the reducer reads back later (a sorted run's chunk),
    /// spilled like every block of the exchange.
    pub fn stash(&self, batch: RecordBatch) -> Result<ObjectRef<Block>> {
        put_block(Block::from(batch), self.spill_over)
    }
}

/// The blocks a barrier operator (an exchange, a join) made when it was prepared, served as
/// its fragments; each is released once read (a plan runs once).
#[derive(Default)]
pub(crate) struct BarrierOutputs(OnceLock<Vec<Mutex<Option<ObjectRef<Block>>>>>);

impl BarrierOutputs {
    /// Runs `run` the first time, keeping its blocks.
    pub(crate) fn prepare(
        &self,
        run: impl FnOnce() -> Result<Vec<ObjectRef<Block>>>,
    ) -> Result<()> {
        if self.0.get().is_none() {
            let outs = run()?;
            let _ = self
                .0
                .set(outs.into_iter().map(|r| Mutex::new(Some(r))).collect());
        }
        Ok(())
    }

    /// Blocks made (0 before `prepare`).
    pub(crate) fn len(&self) -> usize {
        self.0.get().map_or(0, |o| o.len())
    }

    /// Block `i`, released from here; `what` names the operator in the error.
    pub(crate) fn take(&self, i: usize, what: &str) -> Result<ObjectRef<Block>> {
        self.0
            .get()
            .and_then(|o| o.get(i))
            .and_then(|slot| slot.lock().take())
            .ok_or_else(|| {
                Error::Internal(format!(
                    "{what} output {i} read before the {what} ran, or twice"
                ))
            })
    }
}

/// The barrier source: runs the exchange on first use, then serves reducer outputs.
pub(crate) struct ExchangeOp {
    /// The input plan.
    input: PhysicalPlan,
    /// The operator.
    exchange: Arc<dyn Exchange>,
    ctx: DataContext,
    cpus: usize,
    /// Reducer outputs.
    outputs: BarrierOutputs,
    /// Shared with the map and reduce tasks (their peak bytes held).
    counters: Arc<OpCounters>,
}

impl ExchangeOp {
    pub(crate) fn new(
        input: PhysicalPlan,
        exchange: Arc<dyn Exchange>,
        ctx: DataContext,
        cpus: usize,
    ) -> Self {
        ExchangeOp {
            input,
            exchange,
            ctx,
            cpus,
            outputs: BarrierOutputs::default(),
            counters: Arc::new(OpCounters::default()),
        }
    }

    fn run(&self) -> Result<Vec<ObjectRef<Block>>> {
        let ex = self.exchange.clone();
        // Map side, part 1: each fragment through its pipeline and the pre-map step.
        let sampling = ex.needs_samples();
        let fragments: usize = self
            .input
            .pipelines
            .iter()
            .map(|p| p.source.num_fragments())
            .sum();
        let fixed_n = (!sampling).then(|| ex.partitions(None, fragments, &self.ctx, self.cpus));
        let spill_over = spill_over(&self.ctx);
        let ex1 = ex.clone();
        let counters = self.counters.clone();
        let map_outputs: Vec<(Vec<Option<ObjectRef<Block>>>, Option<ObjectRef<Block>>, u64)> =
            super::super::executor::run_per_fragment(
                &self.input,
                "ExchangeMap",
                move |p, frag, _| {
                    let mut batches = Vec::new();
                    p.run(frag as usize, &mut |b| {
                        batches.push(b);
                        Ok(true)
                    })?;
                    let _input = counters.hold(bytes_of(&batches));
                    let batches = ex1.pre_map(batches)?;
                    let bytes = bytes_of(&batches);
                    let _output = counters.hold(bytes);
                    let out = match fixed_n {
                        Some(n) => (
                            partition_and_put(ex1.as_ref(), &batches, n, frag, spill_over)?,
                            None,
                            bytes,
                        ),
                        None => {
                            let sample = match ex1.sample(&batches)? {
                                Some(s) => Some(crate::put(Block::from(s))?),
                                None => None,
                            };
                            let whole = put_batches(batches, spill_over)?;
                            (vec![whole], sample, bytes)
                        }
                    };
                    release_free_memory();
                    Ok(out)
                },
            )?;
        let (parts, n): (Vec<Vec<Option<ObjectRef<Block>>>>, usize) = match fixed_n {
            Some(n) => (map_outputs.into_iter().map(|m| m.0).collect(), n),
            None => {
                // Map side, part 2 (sort): boundaries from the samples, then partition each
                // materialized fragment.
                let bytes: u64 = map_outputs.iter().map(|m| m.2).sum();
                let n = ex.partitions(Some(bytes), fragments, &self.ctx, self.cpus);
                let mut samples: Vec<RecordBatch> = Vec::new();
                for m in &map_outputs {
                    if let Some(r) = &m.1 {
                        samples.extend(crate::get(r)?.batches().iter().cloned());
                    }
                }
                ex.set_boundaries(samples, n)?;
                let ex2 = ex.clone();
                let split = crate::task(move |b: Vec<Option<ObjectRef<Block>>>, frag: u64| {
                    let batches = match b.first().and_then(|r| r.as_ref()) {
                        Some(r) => crate::get(r)?.batches().to_vec(),
                        None => Vec::new(),
                    };
                    let parts = partition_and_put(ex2.as_ref(), &batches, n, frag, spill_over)?;
                    drop(batches);
                    release_free_memory();
                    Ok(parts)
                })
                .name(&format!("{}Split", short(&ex.to_string())))
                .max_retries(0);
                let refs: Vec<_> = map_outputs
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| split.remote((m.0, i as u64)))
                    .collect::<Result<_>>()?;
                (crate::get_all(&refs, None)?, n)
            }
        };
        // Reduce side: partition p of every map output.
        let ex3 = ex.clone();
        let counters = self.counters.clone();
        let (limit, block_bytes) = reducer_bounds(&self.ctx);
        let reduce = crate::task(
            move |inputs: Vec<ObjectRef<Block>>, p: u64| -> TaskResult<Vec<ObjectRef<Block>>> {
                let Some(first) = inputs.first() else {
                    return Err(crate::UserError::msg("a reducer without input"));
                };
                // Read first (the reducer reads the piece next anyway, restored if spilled).
                let schema = crate::get(first)?.schema().clone();
                let mut out = Reducer {
                    counters: &counters,
                    limit,
                    block_bytes,
                    spill_over,
                    outputs: Vec::new(),
                };
                // A user function's error (map_groups) keeps its identity: the user's
                // exception, not this task's.
                ex3.reduce_pieces(inputs, p as usize, &mut out)
                    .map_err(crate::UserError::from_engine)?;
                let mut outputs = out.outputs;
                if outputs.is_empty() {
                    // No rows: one empty block, which still carries the schema.
                    outputs.push(put_block(Block::try_new(schema, Vec::new())?, spill_over)?);
                }
                release_free_memory();
                Ok(outputs)
            },
        )
        .name(&format!("{}Reduce", short(&ex.to_string())))
        .max_retries(0);
        let mut outs = Vec::with_capacity(n);
        for p in 0..n {
            let inputs: Vec<ObjectRef<Block>> = parts
                .iter()
                .filter_map(|m| m.get(p).cloned().flatten())
                .collect();
            if !inputs.is_empty() {
                outs.push(reduce.remote((inputs, p as u64))?);
            }
        }
        drop(parts);
        // Wait for the reducers here: errors surface before anything downstream runs.
        Ok(crate::get_all(&outs, None)?.into_iter().flatten().collect())
    }
}

/// How much a reducer may hold where it can choose ([`Reducer::limit`]: twice the share of
/// a partition, which is a block, at most an eighth of the store) and the size of its
/// output blocks.
pub(crate) fn reducer_bounds(ctx: &DataContext) -> (u64, u64) {
    let budget = crate::object_store_stats().map_or(u64::MAX, |s| s.budget);
    let per = ctx.target_max_block_size.min(budget / 8).max(1 << 20);
    (2 * per, per)
}

/// Memory beyond the store's resident bytes the process may hold before an exchange task
/// hands the allocator's free memory back to the OS.
const TRIM_SLACK: u64 = 512 << 20;

/// At the end of an exchange task, hands the allocator's free memory back to the OS (glibc
/// `malloc_trim`) when the process holds more than [`TRIM_SLACK`] beyond the store's
/// resident bytes: glibc keeps the large buffers tasks freed in its per-thread heaps, and an
/// exchange's RSS climbs to nearly twice its data (the benchmark's sort of 2.6 GB peaks at
/// 4.5 GiB without this, 2.8 GiB with it, for about 2 s more of its 17 s: freed pages fault
/// again when reused). Other C libraries: nothing.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let resident = crate::object_store_stats().map_or(0, |s| s.resident_bytes);
        if rss_bytes().is_some_and(|rss| rss > resident + TRIM_SLACK) {
            // SAFETY: malloc_trim only returns free memory of the allocator's heaps to the OS.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

/// This process's resident set size, from `/proc/self/statm`.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf with a valid name has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

fn short(s: &str) -> String {
    s.split('(')
        .next()
        .unwrap_or_default()
        .trim_end_matches("Op")
        .to_string()
}

/// Resident bytes past which an exchange spills the blocks it puts at once: its share of
/// the store.
pub(crate) fn spill_over(ctx: &DataContext) -> u64 {
    crate::object_store_stats().map_or(u64::MAX, |s| {
        (s.budget as f64 * ctx.exchange_spill_fraction) as u64
    })
}

/// Puts `block`, spilling it at once when the store holds more than `spill_over` bytes.
fn put_block(block: Block, spill_over: u64) -> Result<ObjectRef<Block>> {
    let r = crate::put(block)?;
    if crate::object_store_stats()?.resident_bytes > spill_over {
        crate::spill(std::slice::from_ref(&r))?;
    }
    Ok(r)
}

pub(crate) fn put_batches(
    batches: Vec<RecordBatch>,
    spill_over: u64,
) -> Result<Option<ObjectRef<Block>>> {
    match batches.first() {
        None => Ok(None),
        Some(b) => Ok(Some(put_block(
            Block::try_new(b.schema(), batches)?,
            spill_over,
        )?)),
    }
}

fn partition_and_put(
    ex: &dyn Exchange,
    batches: &[RecordBatch],
    n: usize,
    frag: u64,
    spill_over: u64,
) -> Result<Vec<Option<ObjectRef<Block>>>> {
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    for b in batches {
        if b.num_rows() == 0 {
            continue;
        }
        let idx = ex.partition(b, n, frag)?;
        for (p, piece) in split_by(b, &idx, n)?.into_iter().enumerate() {
            if piece.num_rows() > 0 {
                parts[p].push(piece);
            }
        }
    }
    parts
        .into_iter()
        .map(|p| put_batches(p, spill_over))
        .collect()
}

impl fmt::Display for ExchangeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <- [", self.exchange)?;
        for (i, p) in self.input.pipelines.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&p.describe())?;
        }
        f.write_str("]")
    }
}

impl SourceOp for ExchangeOp {
    fn prepare(&self) -> Result<()> {
        self.outputs.prepare(|| self.run())
    }

    fn num_fragments(&self) -> usize {
        self.outputs.len()
    }

    fn input_plan(&self) -> Option<&PhysicalPlan> {
        Some(&self.input)
    }

    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        let r = self.outputs.take(i, "exchange")?;
        let block = crate::get(&r)?;
        drop(r);
        let started = std::time::Instant::now();
        self.counters.record(block.batches(), started);
        for b in block.batches() {
            if !each(b.clone())? {
                break;
            }
        }
        Ok(())
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}

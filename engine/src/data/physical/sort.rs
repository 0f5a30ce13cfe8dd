//! `SortExchange`: a range-partitioned sort. Map tasks sample their keys; boundaries split
//! the key space into partitions of about a block each; each reducer sorts its partition
//! (arrow's lexicographic sort), so partition order is the global order. Boundaries the user
//! gives (values of a numeric first key, Ray's `sort(boundaries=)`) replace the sampled
//! ones: one partition, so one block or more, between each two.

use std::collections::VecDeque;
use std::fmt;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
use arrow::row::{OwnedRow, Row, RowConverter, Rows, SortField};
use parking_lot::Mutex;

use crate::Block;
use crate::core::api::ObjectRef;
use crate::data::context::DataContext;
use crate::data::physical::exchange::{Exchange, Reducer, concat, reducer_bounds};
use crate::data::physical::{batch_bytes, bytes_of};
use crate::error::{Error, Result};

/// Sorts by columns.
pub(crate) struct SortExchange {
    /// `(column, descending)`.
    keys: Vec<(String, bool)>,
    boundaries: Mutex<Vec<OwnedRow>>,
    /// The user's boundaries on the first key (ascending; empty: sampled).
    split_at: Vec<f64>,
}

impl SortExchange {
    pub(crate) fn new(keys: Vec<(String, bool)>, split_at: Vec<f64>) -> Self {
        SortExchange {
            keys,
            boundaries: Mutex::new(Vec::new()),
            split_at,
        }
    }

    /// Each row's partition by the user's boundaries: ascending, the number of boundaries
    /// at or under its first key; descending, the number above it (the partitions in
    /// reverse); a null sorts last ascending and first descending, as the sort puts it.
    fn partition_at_boundaries(&self, batch: &RecordBatch) -> Result<Vec<u32>> {
        let first = &self.key_columns(batch)?[0];
        let values =
            arrow::compute::cast(first, &arrow::datatypes::DataType::Float64).map_err(|e| {
                Error::InvalidArgument(format!(
                    "sort boundaries split a numeric first key; {:?} is {}: {e}",
                    self.keys[0].0,
                    first.data_type()
                ))
            })?;
        let values = values
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .ok_or_else(|| Error::Internal("a cast to Float64 gave another type".into()))?;
        let (n, desc) = (self.split_at.len(), self.keys[0].1);
        Ok(values
            .iter()
            .map(|v| {
                let at_or_under = match v {
                    Some(v) => self.split_at.partition_point(|b| *b <= v),
                    None => n,
                };
                (if desc { n - at_or_under } else { at_or_under }) as u32
            })
            .collect())
    }

    fn options(&self, desc: bool) -> SortOptions {
        SortOptions {
            descending: desc,
            nulls_first: desc,
        }
    }

    fn key_columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.keys
            .iter()
            .map(|(k, _)| {
                batch.column_by_name(k).cloned().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "sort key {k:?} is not a column of {:?}",
                        batch.schema()
                    ))
                })
            })
            .collect()
    }

    fn converter(&self, batch: &RecordBatch) -> Result<RowConverter> {
        let cols = self.key_columns(batch)?;
        let fields = cols
            .iter()
            .zip(&self.keys)
            .map(|(c, (_, d))| SortField::new_with_options(c.data_type().clone(), self.options(*d)))
            .collect();
        Ok(RowConverter::new(fields)?)
    }

    fn sort_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let cols: Vec<SortColumn> = self
            .key_columns(batch)?
            .into_iter()
            .zip(&self.keys)
            .map(|(values, (_, d))| SortColumn {
                values,
                options: Some(self.options(*d)),
            })
            .collect();
        let idx = lexsort_to_indices(&cols, None)?;
        Ok(take_record_batch(batch, &idx)?)
    }
}

impl fmt::Display for SortExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|(k, d)| format!("{k} {}", if *d { "DESC" } else { "ASC" }))
            .collect();
        write!(f, "SortOp({})", keys.join(", "))?;
        if !self.split_at.is_empty() {
            write!(f, " split at {:?}", self.split_at)?;
        }
        Ok(())
    }
}

impl Exchange for SortExchange {
    fn partitions(
        &self,
        bytes: Option<u64>,
        _fragments: usize,
        ctx: &DataContext,
        _cpus: usize,
    ) -> usize {
        if !self.split_at.is_empty() {
            return self.split_at.len() + 1;
        }
        // A reducer holds its partition twice (input and sorted output): keep it well under
        // the store budget as well as near the block size. A partition that comes out
        // larger (many equal keys) is sorted in runs and merged (`reduce_pieces`).
        let per = reducer_bounds(ctx).1;
        bytes.map_or(1, |b| b.div_ceil(per) as usize).clamp(1, 4096)
    }

    fn needs_samples(&self) -> bool {
        self.split_at.is_empty()
    }

    fn sample(&self, batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let all = concat(&first.schema(), batches)?;
        let n = all.num_rows();
        let k = n.min(256);
        if k == 0 {
            return Ok(None);
        }
        let idx = UInt32Array::from_iter_values((0..k).map(|i| (i * n / k) as u32));
        let keys = take_record_batch(&all, &idx)?;
        let cols = self.key_columns(&keys)?;
        let names: Vec<(String, ArrayRef)> =
            self.keys.iter().map(|(k, _)| k.clone()).zip(cols).collect();
        Ok(Some(RecordBatch::try_from_iter(names)?))
    }

    fn set_boundaries(&self, samples: Vec<RecordBatch>, n: usize) -> Result<()> {
        let Some(first) = samples.first() else {
            return Ok(());
        };
        let all = self.sort_batch(&concat(&first.schema(), &samples)?)?;
        let conv = self.converter(&all)?;
        let rows = conv.convert_columns(&self.key_columns(&all)?)?;
        let m = rows.num_rows();
        let bounds: Vec<OwnedRow> = (1..n).map(|i| rows.row(i * m / n).owned()).collect();
        *self.boundaries.lock() = bounds;
        Ok(())
    }

    fn partition(&self, batch: &RecordBatch, n: usize, _fragment: u64) -> Result<Vec<u32>> {
        if !self.split_at.is_empty() {
            return self.partition_at_boundaries(batch);
        }
        let bounds = self.boundaries.lock();
        if n <= 1 || bounds.is_empty() {
            return Ok(vec![0; batch.num_rows()]);
        }
        let conv = self.converter(batch)?;
        let rows = conv.convert_columns(&self.key_columns(batch)?)?;
        Ok(rows
            .iter()
            .map(|r| bounds.partition_point(|b| b.row() <= r).min(n - 1) as u32)
            .collect())
    }

    fn reduce(&self, batches: Vec<RecordBatch>, _p: usize) -> Result<Vec<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        let all = concat(&first.schema(), &batches)?;
        drop(batches);
        Ok(vec![self.sort_batch(&all)?])
    }

    /// A partition within [`Reducer::limit`] is sorted in memory. A larger one (many equal
    /// keys put it in one partition) is an external sort: runs of up to the limit are
    /// sorted and stashed in the store in chunks (spilled like every exchange block), then
    /// merged [`FAN_IN`] at a time, so the reducer holds about a run, or `FAN_IN` chunks and
    /// an output block, whatever the partition's size.
    fn reduce_pieces(
        &self,
        pieces: Vec<ObjectRef<Block>>,
        p: usize,
        out: &mut Reducer<'_>,
    ) -> Result<()> {
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut pending_bytes = 0u64;
        let mut runs: Vec<Run> = Vec::new();
        for r in pieces {
            let block = crate::get(&r)?;
            drop(r);
            let bytes = bytes_of(block.batches());
            if pending_bytes + bytes > out.limit && !pending.is_empty() {
                runs.push(self.sorted_run(std::mem::take(&mut pending), pending_bytes, out)?);
                pending_bytes = 0;
            }
            pending.extend(block.batches().iter().cloned());
            pending_bytes += bytes;
        }
        if runs.is_empty() {
            let _input = out.counters.hold(pending_bytes);
            let sorted = self.reduce(pending, p)?;
            let _output = out.counters.hold(bytes_of(&sorted));
            return out.emit(sorted);
        }
        if !pending.is_empty() {
            runs.push(self.sorted_run(pending, pending_bytes, out)?);
        }
        let chunk_bytes = chunk_bytes(out.limit);
        while runs.len() > FAN_IN {
            let group: Vec<Run> = runs.drain(..FAN_IN).collect();
            let mut merged = Run::default();
            self.merge(group, out, &mut |b| {
                merged.stash(&b, chunk_bytes, out)?;
                Ok(())
            })?;
            runs.push(merged);
        }
        let mut acc: Vec<RecordBatch> = Vec::new();
        let mut acc_bytes = 0u64;
        let block_bytes = out.block_bytes;
        let mut blocks: Vec<Vec<RecordBatch>> = Vec::new();
        self.merge(runs, out, &mut |b| {
            acc_bytes += batch_bytes(&b);
            acc.push(b);
            if acc_bytes >= block_bytes {
                blocks.push(std::mem::take(&mut acc));
                acc_bytes = 0;
            }
            Ok(())
        })?;
        blocks.push(acc);
        for b in blocks {
            out.emit(b)?;
        }
        Ok(())
    }
}

/// Sorted runs merged at once; more are merged in several passes.
const FAN_IN: usize = 16;

/// Bytes per stashed chunk of a run: a sixteenth of the reducer's limit, so that merging
/// [`FAN_IN`] runs holds about the limit.
fn chunk_bytes(limit: u64) -> u64 {
    (limit / FAN_IN as u64).max(64 << 10)
}

/// A sorted run, stashed in the store in chunks (in order).
#[derive(Default)]
struct Run {
    chunks: VecDeque<ObjectRef<Block>>,
}

impl Run {
    /// Appends `batch` (sorted after what the run holds) in chunks of about `chunk_bytes`.
    fn stash(&mut self, batch: &RecordBatch, chunk_bytes: u64, out: &Reducer<'_>) -> Result<()> {
        let bytes = batch_bytes(batch).max(1);
        let rows = batch.num_rows();
        let per = ((rows as u64 * chunk_bytes / bytes) as usize).clamp(1024, rows.max(1024));
        let mut at = 0;
        while at < rows {
            let n = per.min(rows - at);
            self.chunks.push_back(out.stash(batch.slice(at, n))?);
            at += n;
        }
        Ok(())
    }
}

/// A run being merged: its current chunk, that chunk's sort keys as rows, and a position.
struct Cursor {
    run: Run,
    batch: RecordBatch,
    rows: Rows,
    pos: usize,
}

impl Run {
    /// Reads the next non-empty chunk back, with its sort keys as rows (made by `conv`,
    /// which the first chunk read creates); `None` when the run is done.
    fn next_chunk(
        &mut self,
        ex: &SortExchange,
        conv: &mut Option<RowConverter>,
    ) -> Result<Option<(RecordBatch, Rows)>> {
        while let Some(r) = self.chunks.pop_front() {
            let block = crate::get(&r)?;
            drop(r);
            let Some(b) = block.batches().first().filter(|b| b.num_rows() > 0) else {
                continue;
            };
            if conv.is_none() {
                *conv = Some(ex.converter(b)?);
            }
            let rows = conv
                .as_ref()
                .expect("set above")
                .convert_columns(&ex.key_columns(b)?)?;
            return Ok(Some((b.clone(), rows)));
        }
        Ok(None)
    }
}

impl Cursor {
    /// Moves to the run's next chunk; `false` when the run is done.
    fn advance(&mut self, ex: &SortExchange, conv: &mut Option<RowConverter>) -> Result<bool> {
        let Some((batch, rows)) = self.run.next_chunk(ex, conv)? else {
            return Ok(false);
        };
        (self.batch, self.rows, self.pos) = (batch, rows, 0);
        Ok(true)
    }
}

/// The end of the rows from `from` on that sort at or before `bound`.
fn rows_up_to(rows: &Rows, from: usize, bound: Row<'_>) -> usize {
    let (mut lo, mut hi) = (from, rows.num_rows());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if rows.row(mid) <= bound {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

impl SortExchange {
    /// Sorts `batches` (`bytes` of them) and stashes the result as a run.
    fn sorted_run(&self, batches: Vec<RecordBatch>, bytes: u64, out: &Reducer<'_>) -> Result<Run> {
        let _held = out.counters.hold(2 * bytes);
        let Some(first) = batches.first() else {
            return Ok(Run::default());
        };
        let sorted = self.sort_batch(&concat(&first.schema(), &batches)?)?;
        drop(batches);
        let mut run = Run::default();
        run.stash(&sorted, chunk_bytes(out.limit), out)?;
        Ok(run)
    }

    /// Merges sorted runs, handing `sink` sorted batches in order. Each step takes, from
    /// every run, the rows up to the smallest last key of the runs' current chunks: those
    /// come before every row not taken yet, so sorting just them continues the order.
    fn merge(
        &self,
        runs: Vec<Run>,
        out: &Reducer<'_>,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut cursors: Vec<Cursor> = Vec::with_capacity(runs.len());
        let mut conv: Option<RowConverter> = None;
        for mut run in runs {
            if let Some((batch, rows)) = run.next_chunk(self, &mut conv)? {
                cursors.push(Cursor {
                    run,
                    batch,
                    rows,
                    pos: 0,
                });
            }
        }
        let Some(schema) = cursors.first().map(|c| c.batch.schema()) else {
            return Ok(());
        };
        while !cursors.is_empty() {
            let loaded: u64 = cursors.iter().map(|c| batch_bytes(&c.batch)).sum();
            let frontier = cursors
                .iter()
                .map(|c| c.rows.row(c.rows.num_rows() - 1))
                .min()
                .expect("cursors are not empty")
                .owned();
            let mut pieces = Vec::with_capacity(cursors.len());
            let mut i = 0;
            while i < cursors.len() {
                let c = &mut cursors[i];
                let end = rows_up_to(&c.rows, c.pos, frontier.row());
                if end > c.pos {
                    pieces.push(c.batch.slice(c.pos, end - c.pos));
                    c.pos = end;
                }
                if c.pos == c.batch.num_rows() && !c.advance(self, &mut conv)? {
                    cursors.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            let step = self.sort_batch(&concat(&schema, &pieces)?)?;
            drop(pieces);
            let _held = out.counters.hold(loaded + 2 * batch_bytes(&step));
            sink(step)?;
        }
        Ok(())
    }
}

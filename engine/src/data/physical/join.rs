//! `JoinOp`: a hash join of two datasets on key columns (inner, left, right or full outer).
//!
//! ```text
//!  both sides materialized as blocks ──partition tasks──► each block's rows split by the
//!      hash of their keys into P pieces, each `put` (spilled like every exchange block)
//!  ──join tasks──► join p reads the right's piece p in chunks of at most a reducer's
//!      share of the store, builds a hash table of each and streams the left's piece p past
//!      it block by block; matches go out as blocks as they are found
//!  downstream pipelines read the P join outputs as their fragments
//! ```
//! Equal keys hash alike on both sides (the keys' row encoding, which needs equal types),
//! so every match lies in one partition. Null keys match nothing (SQL semantics); outer
//! joins keep their rows. The output has the left's columns (keys in place; for rows only
//! the right has, the right's key values), then the right's other columns, renamed
//! `<name>_1` where the name is taken.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::kernels::zip::zip;
use arrow::compute::take;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};

use crate::data::DataContext;
use crate::data::Dataset;
use crate::data::physical::exchange::{
    BarrierOutputs, put_batches, reducer_bounds, release_free_memory, spill_over, split_by,
};
use crate::data::physical::{OpCounters, SourceOp, bytes_of, feed_block};
use crate::error::{Error, Result, TaskResult};
use crate::{Block, ObjectRef};

/// Which rows a join keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Rows whose keys match on both sides.
    Inner,
    /// Every left row; right columns null where nothing matches.
    LeftOuter,
    /// Every right row; left columns null where nothing matches.
    RightOuter,
    /// Every row of both sides.
    FullOuter,
}

impl JoinType {
    /// Ray's name: `inner`, `left_outer`, `right_outer`, `full_outer`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "inner" => JoinType::Inner,
            "left_outer" | "left" => JoinType::LeftOuter,
            "right_outer" | "right" => JoinType::RightOuter,
            "full_outer" | "outer" | "full" => JoinType::FullOuter,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown join type {other:?}: use inner, left_outer, right_outer or \
                     full_outer"
                )));
            }
        })
    }

    fn keeps_left(self) -> bool {
        matches!(self, JoinType::LeftOuter | JoinType::FullOuter)
    }

    fn keeps_right(self) -> bool {
        matches!(self, JoinType::RightOuter | JoinType::FullOuter)
    }
}

impl fmt::Display for JoinType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinType::Inner => "inner",
            JoinType::LeftOuter => "left_outer",
            JoinType::RightOuter => "right_outer",
            JoinType::FullOuter => "full_outer",
        })
    }
}

/// What a join is: keys and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinSpec {
    /// Key columns of the left dataset.
    pub left_on: Vec<String>,
    /// Key columns of the right dataset, pairwise equal to `left_on`.
    pub right_on: Vec<String>,
    /// Which rows it keeps.
    pub how: JoinType,
    /// Partitions (`None`: one per input block).
    pub partitions: Option<usize>,
}

impl JoinSpec {
    /// The positions of the keys in each side's schema, checked (present, equal types).
    fn key_indices(&self, left: &Schema, right: &Schema) -> Result<(Vec<usize>, Vec<usize>)> {
        if self.left_on.is_empty() || self.left_on.len() != self.right_on.len() {
            return Err(Error::InvalidArgument(format!(
                "a join needs as many left keys as right keys (at least one), got {:?} and \
                 {:?}",
                self.left_on, self.right_on
            )));
        }
        let find = |s: &Schema, k: &str, side: &str| {
            s.index_of(k).map_err(|_| {
                let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
                Error::InvalidArgument(format!(
                    "join key {k:?} is not a column of the {side} dataset (columns: {names:?})"
                ))
            })
        };
        let mut li = Vec::new();
        let mut ri = Vec::new();
        for (l, r) in self.left_on.iter().zip(&self.right_on) {
            let (a, b) = (find(left, l, "left")?, find(right, r, "right")?);
            let (lt, rt) = (left.field(a).data_type(), right.field(b).data_type());
            if lt != rt {
                return Err(Error::InvalidArgument(format!(
                    "join keys {l:?} ({lt}) and {r:?} ({rt}) have different types; cast one \
                     first"
                )));
            }
            li.push(a);
            ri.push(b);
        }
        Ok((li, ri))
    }

    /// The output schema: the left's columns, then the right's non-key ones (renamed
    /// `<name>_1` where the name is taken), nullable where the kind of join makes them so.
    pub fn schema(&self, left: &Schema, right: &Schema) -> Result<SchemaRef> {
        let (li, ri) = self.key_indices(left, right)?;
        let mut fields: Vec<Field> = left
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let f = f.as_ref().clone();
                // Left columns are null on right-only rows, except the keys, which then
                // hold the right's.
                let nullable = match li.iter().position(|&k| k == i) {
                    Some(k) => {
                        f.is_nullable()
                            || self.how.keeps_right() && right.field(ri[k]).is_nullable()
                    }
                    None => f.is_nullable() || self.how.keeps_right(),
                };
                f.with_nullable(nullable)
            })
            .collect();
        for (i, f) in right.fields().iter().enumerate() {
            if ri.contains(&i) {
                continue;
            }
            let mut name = f.name().clone();
            let mut k = 1;
            while fields.iter().any(|g| *g.name() == name) {
                name = format!("{}_{k}", f.name());
                k += 1;
            }
            let nullable = f.is_nullable() || self.how.keeps_left();
            fields.push(f.as_ref().clone().with_name(name).with_nullable(nullable));
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// Partition of each row: the hash of its keys' row encoding.
fn partition_rows(batch: &RecordBatch, keys: &[usize], n: usize) -> Result<Vec<u32>> {
    let cols: Vec<ArrayRef> = keys.iter().map(|&i| batch.column(i).clone()).collect();
    let conv = converter(&cols)?;
    let rows = conv.convert_columns(&cols)?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut h = DefaultHasher::new();
            r.as_ref().hash(&mut h);
            (h.finish() % n as u64) as u32
        })
        .collect())
}

fn converter(cols: &[ArrayRef]) -> Result<RowConverter> {
    Ok(RowConverter::new(
        cols.iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?)
}

/// True where any key is null (such rows match nothing).
fn null_keys(cols: &[ArrayRef]) -> Vec<bool> {
    let n = cols.first().map_or(0, |c| c.len());
    (0..n).map(|i| cols.iter().any(|c| c.is_null(i))).collect()
}

/// Where a join task puts what it makes, and how much it may hold.
struct JoinSink<'a> {
    spec: &'a JoinSpec,
    schema: &'a SchemaRef,
    keys: (&'a [usize], &'a [usize]),
    /// Bytes of the build side held at once (a chunk of the right's piece).
    limit: u64,
    /// Bytes per output block.
    block_bytes: u64,
    spill_over: u64,
    outputs: Vec<ObjectRef<Block>>,
}

impl JoinSink<'_> {
    /// Puts the rows `(l, r)` pair up (a `None` side is null) as output blocks of about
    /// `block_bytes`.
    fn emit(
        &mut self,
        left: &RecordBatch,
        right: &RecordBatch,
        lidx: &[Option<u32>],
        ridx: &[Option<u32>],
    ) -> Result<()> {
        if lidx.is_empty() {
            return Ok(());
        }
        let (li, ri) = self.keys;
        let lidx = UInt32Array::from(lidx.to_vec());
        let ridx = UInt32Array::from(ridx.to_vec());
        let pick = |c: &ArrayRef, idx: &UInt32Array| -> Result<ArrayRef> {
            Ok(if idx.null_count() == idx.len() {
                new_null_array(c.data_type(), idx.len())
            } else {
                take(c.as_ref(), idx, None)?
            })
        };
        let from_left = BooleanArray::from_iter((0..lidx.len()).map(|i| Some(lidx.is_valid(i))));
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (i, c) in left.columns().iter().enumerate() {
            let taken = pick(c, &lidx)?;
            columns.push(match li.iter().position(|&k| k == i) {
                // A key: the right's value where only the right has the row.
                Some(k) if self.spec.how.keeps_right() => {
                    zip(&from_left, &taken, &pick(right.column(ri[k]), &ridx)?)?
                }
                _ => taken,
            });
        }
        for (i, c) in right.columns().iter().enumerate() {
            if !ri.contains(&i) {
                columns.push(pick(c, &ridx)?);
            }
        }
        let out = RecordBatch::try_new(self.schema.clone(), columns)?;
        if let Some(r) = put_batches(vec![out], self.spill_over)? {
            self.outputs.push(r);
        }
        Ok(())
    }

    /// Pairs of a probe batch with a build chunk, at most this many per output block.
    fn window(&self, probe: &RecordBatch, build: &RecordBatch) -> usize {
        let per_row =
            |b: &RecordBatch| bytes_of(std::slice::from_ref(b)) / b.num_rows().max(1) as u64;
        let row = (per_row(probe) + per_row(build)).max(1);
        (self.block_bytes / row).max(1) as usize
    }
}

/// Row pairs of a probe batch and a build chunk waiting to go out, flushed as a block every
/// `window` pairs.
struct Pairs<'b> {
    probe: &'b RecordBatch,
    build: &'b RecordBatch,
    l: Vec<Option<u32>>,
    r: Vec<Option<u32>>,
    window: usize,
}

impl<'b> Pairs<'b> {
    fn new(sink: &JoinSink<'_>, probe: &'b RecordBatch, build: &'b RecordBatch) -> Self {
        Pairs {
            probe,
            build,
            l: Vec::new(),
            r: Vec::new(),
            window: sink.window(probe, build),
        }
    }

    fn push(&mut self, l: Option<u32>, r: Option<u32>, sink: &mut JoinSink<'_>) -> Result<()> {
        self.l.push(l);
        self.r.push(r);
        if self.l.len() >= self.window {
            self.flush(sink)?;
        }
        Ok(())
    }

    fn flush(&mut self, sink: &mut JoinSink<'_>) -> Result<()> {
        sink.emit(self.probe, self.build, &self.l, &self.r)?;
        self.l.clear();
        self.r.clear();
        Ok(())
    }
}

/// A build chunk's hash table: the rows of each non-null key.
fn build_table(rows: &Rows, nulls: &[bool]) -> HashMap<Box<[u8]>, Vec<u32>> {
    let mut table: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
    for (j, r) in rows.iter().enumerate() {
        if !nulls[j] {
            table.entry(r.data().into()).or_default().push(j as u32);
        }
    }
    table
}

/// Joins one partition within bounded memory (a block nested-loop hash join).
///
/// The right's piece is read in chunks of about `sink.limit` bytes; for each chunk a hash
/// table is built and the left's blocks stream past it one at a time. Matches go out as
/// they are found, in blocks of about `sink.block_bytes`. A left row without a match in
/// any chunk is known only after the last one, so left-outer rows go out in the last pass
/// (each left row's "matched" is a bit kept across passes); a chunk's right rows without a
/// match go out after its pass. One chunk, the usual case, reads each side once.
fn join_partition(
    sink: &mut JoinSink<'_>,
    counters: &OpCounters,
    (left, ls): (&[ObjectRef<Block>], &SchemaRef),
    (right, rs): (Vec<ObjectRef<Block>>, &SchemaRef),
) -> Result<()> {
    let (li, ri) = sink.keys;
    let how = sink.spec.how;
    // Per left block, per row: matched by some chunk so far.
    let mut left_matched: Vec<Vec<bool>> = vec![Vec::new(); left.len()];
    let mut rest = right.into_iter().peekable();
    loop {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        while bytes < sink.limit {
            let Some(r) = rest.next() else { break };
            let b = crate::get(&r)?;
            bytes += b.size_bytes();
            chunk.extend(b.batches().iter().filter(|b| b.num_rows() > 0).cloned());
        }
        // An empty right side is one pass over an empty chunk: it emits the left-outer rows.
        let last = rest.peek().is_none();
        let build = arrow::compute::concat_batches(rs, &chunk)?;
        drop(chunk);
        let _held = counters.hold(bytes_of(std::slice::from_ref(&build)));
        let bkeys: Vec<ArrayRef> = ri.iter().map(|&i| build.column(i).clone()).collect();
        let conv = converter(&bkeys)?;
        let table = build_table(&conv.convert_columns(&bkeys)?, &null_keys(&bkeys));
        let mut build_matched = vec![false; build.num_rows()];
        for (bi, lref) in left.iter().enumerate() {
            let block = crate::get(lref)?;
            let _probe = counters.hold(block.size_bytes());
            let seen = &mut left_matched[bi];
            if seen.is_empty() && how.keeps_left() {
                *seen = vec![false; block.batches().iter().map(|b| b.num_rows()).sum()];
            }
            let mut base = 0;
            for probe in block.batches().iter().filter(|b| b.num_rows() > 0) {
                let pkeys: Vec<ArrayRef> = li.iter().map(|&i| probe.column(i).clone()).collect();
                let (prows, pnull) = (conv.convert_columns(&pkeys)?, null_keys(&pkeys));
                let mut pairs = Pairs::new(sink, probe, &build);
                for (i, r) in prows.iter().enumerate() {
                    let row = Some(i as u32);
                    match (!pnull[i]).then(|| table.get(r.data())).flatten() {
                        Some(js) => {
                            for &j in js {
                                pairs.push(row, Some(j), sink)?;
                                build_matched[j as usize] = true;
                            }
                            if how.keeps_left() {
                                seen[base + i] = true;
                            }
                        }
                        None if last && how.keeps_left() && !seen[base + i] => {
                            pairs.push(row, None, sink)?;
                        }
                        None => {}
                    }
                }
                pairs.flush(sink)?;
                base += probe.num_rows();
            }
        }
        if how.keeps_right() {
            let none = RecordBatch::new_empty(ls.clone());
            let mut pairs = Pairs::new(sink, &none, &build);
            for (j, _) in build_matched.iter().enumerate().filter(|(_, m)| !**m) {
                pairs.push(None, Some(j as u32), sink)?;
            }
            pairs.flush(sink)?;
        }
        if last {
            return Ok(());
        }
    }
}

/// Joins two datasets.
pub(crate) struct JoinOp {
    left: Dataset,
    right: Dataset,
    spec: JoinSpec,
    ctx: DataContext,
    /// Join outputs.
    outputs: BarrierOutputs,
    counters: Arc<OpCounters>,
}

impl JoinOp {
    pub(crate) fn new(left: Dataset, right: Dataset, spec: JoinSpec, ctx: DataContext) -> Self {
        JoinOp {
            left,
            right,
            spec,
            ctx,
            outputs: BarrierOutputs::default(),
            counters: Arc::new(OpCounters::default()),
        }
    }

    fn run(&self) -> Result<Vec<ObjectRef<Block>>> {
        let (ls, lblocks) = self.left.materialize_blocks()?;
        let (rs, rblocks) = self.right.materialize_blocks()?;
        let (li, ri) = self.spec.key_indices(&ls, &rs)?;
        let schema = self.spec.schema(&ls, &rs)?;
        let n = self
            .spec
            .partitions
            .unwrap_or_else(|| lblocks.len().max(rblocks.len()))
            .clamp(1, 4096);
        let spill_over = spill_over(&self.ctx);
        let split = crate::task(
            move |block: ObjectRef<Block>,
                  keys: Vec<u64>|
                  -> TaskResult<Vec<Option<ObjectRef<Block>>>> {
                let b = crate::get(&block)?;
                drop(block);
                let keys: Vec<usize> = keys.iter().map(|&k| k as usize).collect();
                let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
                for batch in b.batches().iter().filter(|b| b.num_rows() > 0) {
                    let idx = partition_rows(batch, &keys, n)?;
                    for (p, piece) in split_by(batch, &idx, n)?.into_iter().enumerate() {
                        if piece.num_rows() > 0 {
                            parts[p].push(piece);
                        }
                    }
                }
                Ok(parts
                    .into_iter()
                    .map(|p| put_batches(p, spill_over))
                    .collect::<Result<_>>()?)
            },
        )
        .name("JoinPartition")
        .max_retries(0);
        let pieces = |blocks: Vec<(ObjectRef<Block>, u64)>, keys: &[usize]| -> Result<_> {
            let keys: Vec<u64> = keys.iter().map(|&k| k as u64).collect();
            let refs: Vec<_> = blocks
                .into_iter()
                .map(|(b, _)| split.remote((b, keys.clone())))
                .collect::<Result<_>>()?;
            crate::get_all(&refs, None)
        };
        let lparts = pieces(lblocks, &li)?;
        let rparts = pieces(rblocks, &ri)?;
        let spec = self.spec.clone();
        let counters = self.counters.clone();
        let (limit, block_bytes) = reducer_bounds(&self.ctx);
        let (ls2, rs2, schema2) = (ls.clone(), rs.clone(), schema.clone());
        let join = crate::task(
            move |l: Vec<ObjectRef<Block>>,
                  r: Vec<ObjectRef<Block>>|
                  -> TaskResult<Vec<ObjectRef<Block>>> {
                let mut sink = JoinSink {
                    spec: &spec,
                    schema: &schema2,
                    keys: (&li, &ri),
                    limit,
                    block_bytes,
                    spill_over,
                    outputs: Vec::new(),
                };
                join_partition(&mut sink, &counters, (&l, &ls2), (r, &rs2))?;
                drop(l);
                release_free_memory();
                Ok(sink.outputs)
            },
        )
        .name("Join")
        .max_retries(0);
        let column = |parts: &[Vec<Option<ObjectRef<Block>>>], p: usize| -> Vec<ObjectRef<Block>> {
            parts
                .iter()
                .filter_map(|m| m.get(p).cloned().flatten())
                .collect()
        };
        let mut outs = Vec::with_capacity(n);
        for p in 0..n {
            let (l, r) = (column(&lparts, p), column(&rparts, p));
            let empty = match self.spec.how {
                JoinType::Inner => l.is_empty() || r.is_empty(),
                JoinType::LeftOuter => l.is_empty(),
                JoinType::RightOuter => r.is_empty(),
                JoinType::FullOuter => l.is_empty() && r.is_empty(),
            };
            if !empty {
                outs.push(join.remote((l, r))?);
            }
        }
        drop((lparts, rparts));
        let mut outs: Vec<ObjectRef<Block>> =
            crate::get_all(&outs, None)?.into_iter().flatten().collect();
        if outs.is_empty() {
            // No rows: one empty block, which still carries the schema.
            outs.push(crate::put(Block::try_new(schema, Vec::new())?)?);
        }
        Ok(outs)
    }
}

impl fmt::Display for JoinOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JoinOp({}, [{}] = [{}])",
            self.spec.how,
            self.spec.left_on.join(", "),
            self.spec.right_on.join(", ")
        )
    }
}

impl SourceOp for JoinOp {
    fn prepare(&self) -> Result<()> {
        self.outputs.prepare(|| self.run())
    }

    fn num_fragments(&self) -> usize {
        self.outputs.len()
    }

    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        let r = self.outputs.take(i, "join")?;
        let block = crate::get(&r)?;
        drop(r);
        feed_block(&block, &self.counters, each)
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}

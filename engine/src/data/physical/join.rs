//! `JoinOp`: a hash join of two datasets on key columns (inner, left, right or full outer).
//!
//! ```text
//!  both sides materialized as blocks ──partition tasks──► each block's rows split by the
//!      hash of their keys into P pieces, each `put` (spilled like every exchange block)
//!  ──join tasks──► join p builds a hash table of the right's piece p and probes it with
//!      the left's piece p; one block each
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

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::kernels::zip::zip;
use arrow::compute::take;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};

use crate::data::Dataset;
use crate::data::physical::exchange::{BarrierOutputs, put_batches, split_by};
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

/// Joins one partition: both sides whole, each concatenated.
fn join_partition(
    spec: &JoinSpec,
    schema: &SchemaRef,
    (left, li): (&RecordBatch, &[usize]),
    (right, ri): (&RecordBatch, &[usize]),
) -> Result<RecordBatch> {
    let lkeys: Vec<ArrayRef> = li.iter().map(|&i| left.column(i).clone()).collect();
    let rkeys: Vec<ArrayRef> = ri.iter().map(|&i| right.column(i).clone()).collect();
    let conv = converter(&lkeys)?;
    let (lrows, rrows) = (conv.convert_columns(&lkeys)?, conv.convert_columns(&rkeys)?);
    let (lnull, rnull) = (null_keys(&lkeys), null_keys(&rkeys));
    let mut table: HashMap<&[u8], Vec<u32>> = HashMap::new();
    for (j, r) in rrows.iter().enumerate() {
        if !rnull[j] {
            table.entry(r.data()).or_default().push(j as u32);
        }
    }
    let mut lidx: Vec<Option<u32>> = Vec::new();
    let mut ridx: Vec<Option<u32>> = Vec::new();
    let mut matched = vec![false; right.num_rows()];
    for (i, r) in lrows.iter().enumerate() {
        let hits = (!lnull[i]).then(|| table.get(r.data())).flatten();
        match hits {
            Some(js) => {
                for &j in js {
                    lidx.push(Some(i as u32));
                    ridx.push(Some(j));
                    matched[j as usize] = true;
                }
            }
            None if spec.how.keeps_left() => {
                lidx.push(Some(i as u32));
                ridx.push(None);
            }
            None => {}
        }
    }
    if spec.how.keeps_right() {
        for (j, m) in matched.iter().enumerate() {
            if !m {
                lidx.push(None);
                ridx.push(Some(j as u32));
            }
        }
    }
    let (lidx, ridx) = (UInt32Array::from(lidx), UInt32Array::from(ridx));
    let from_left = BooleanArray::from_iter((0..lidx.len()).map(|i| Some(lidx.is_valid(i))));
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, c) in left.columns().iter().enumerate() {
        let taken = take(c.as_ref(), &lidx, None)?;
        columns.push(match li.iter().position(|&k| k == i) {
            // A key: the right's value where only the right has the row.
            Some(k) if spec.how.keeps_right() => {
                let theirs = take(right.column(ri[k]).as_ref(), &ridx, None)?;
                zip(&from_left, &taken, &theirs)?
            }
            _ => taken,
        });
    }
    for (i, c) in right.columns().iter().enumerate() {
        if !ri.contains(&i) {
            columns.push(take(c.as_ref(), &ridx, None)?);
        }
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Joins two datasets.
pub(crate) struct JoinOp {
    left: Dataset,
    right: Dataset,
    spec: JoinSpec,
    /// Join outputs.
    outputs: BarrierOutputs,
    counters: Arc<OpCounters>,
}

impl JoinOp {
    pub(crate) fn new(left: Dataset, right: Dataset, spec: JoinSpec) -> Self {
        JoinOp {
            left,
            right,
            spec,
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
                    .map(|p| put_batches(p, u64::MAX))
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
        let (ls2, rs2, schema2) = (ls.clone(), rs.clone(), schema.clone());
        let join = crate::task(
            move |l: Vec<ObjectRef<Block>>,
                  r: Vec<ObjectRef<Block>>|
                  -> TaskResult<ObjectRef<Block>> {
                let whole = |refs: Vec<ObjectRef<Block>>, s: &SchemaRef| -> Result<RecordBatch> {
                    let mut batches = Vec::new();
                    for r in refs {
                        batches.extend(crate::get(&r)?.batches().iter().cloned());
                    }
                    Ok(arrow::compute::concat_batches(s, &batches)?)
                };
                let (left, right) = (whole(l, &ls2)?, whole(r, &rs2)?);
                let _held = counters.hold(bytes_of(&[left.clone(), right.clone()]));
                let out = join_partition(&spec, &schema2, (&left, &li), (&right, &ri))?;
                let _out = counters.hold(bytes_of(std::slice::from_ref(&out)));
                Ok(crate::put(Block::try_new(schema2.clone(), vec![out])?)?)
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
        let mut outs = crate::get_all(&outs, None)?;
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

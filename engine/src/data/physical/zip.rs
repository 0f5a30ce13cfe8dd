//! `ZipOp`: two datasets side by side. Both sides are materialized into the object store
//! first (a barrier); fragment `i` is the left's block `i` with the right's rows at the same
//! positions, sliced from whichever right blocks hold them.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::data::Dataset;
use crate::data::physical::{OpCounters, SourceOp};
use crate::error::{Error, Result};
use crate::{Block, ObjectRef};

/// Blocks of one side and the first row of each.
struct Side {
    blocks: Vec<(ObjectRef<Block>, u64)>,
    starts: Vec<u64>,
}

impl Side {
    fn new(blocks: Vec<(ObjectRef<Block>, u64)>) -> Self {
        let mut starts = Vec::with_capacity(blocks.len());
        let mut at = 0;
        for (_, rows) in &blocks {
            starts.push(at);
            at += rows;
        }
        Side { blocks, starts }
    }

    fn rows(&self) -> u64 {
        self.blocks.iter().map(|b| b.1).sum()
    }

    /// Rows `[start, start + len)` as one batch.
    fn slice(&self, schema: &SchemaRef, start: u64, len: u64) -> Result<RecordBatch> {
        let mut pieces = Vec::new();
        let first = self
            .starts
            .partition_point(|s| *s <= start)
            .saturating_sub(1);
        let end = start + len;
        for (i, (r, rows)) in self.blocks.iter().enumerate().skip(first) {
            let b_start = self.starts[i];
            if b_start >= end {
                break;
            }
            if b_start + rows <= start || *rows == 0 {
                continue;
            }
            let block = crate::get(r)?;
            let all = concat_block(&block)?;
            let from = start.max(b_start) - b_start;
            let to = end.min(b_start + rows) - b_start;
            pieces.push(all.slice(from as usize, (to - from) as usize));
        }
        Ok(arrow::compute::concat_batches(schema, &pieces)?)
    }
}

fn concat_block(block: &Block) -> Result<RecordBatch> {
    match block.batches() {
        [one] => Ok(one.clone()),
        many => Ok(arrow::compute::concat_batches(block.schema(), many)?),
    }
}

/// The zipped schema: the left's columns, then the right's (renamed `<name>_1`, `_2`, ...
/// where the name is taken).
pub(crate) fn zip_schema(left: &Schema, right: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = left.fields().iter().map(|f| f.as_ref().clone()).collect();
    for f in right.fields() {
        let mut name = f.name().clone();
        let mut k = 1;
        while fields.iter().any(|g| *g.name() == name) {
            name = format!("{}_{k}", f.name());
            k += 1;
        }
        fields.push(f.as_ref().clone().with_name(name));
    }
    Arc::new(Schema::new(fields))
}

struct Prepared {
    left: Side,
    right: Side,
    left_schema: SchemaRef,
    right_schema: SchemaRef,
    schema: SchemaRef,
}

/// Zips two datasets.
pub(crate) struct ZipOp {
    left: Dataset,
    right: Dataset,
    prepared: OnceLock<Prepared>,
    counters: OpCounters,
}

impl ZipOp {
    pub(crate) fn new(left: Dataset, right: Dataset) -> Self {
        ZipOp {
            left,
            right,
            prepared: OnceLock::new(),
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for ZipOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ZipOp")
    }
}

impl SourceOp for ZipOp {
    fn prepare(&self) -> Result<()> {
        if self.prepared.get().is_some() {
            return Ok(());
        }
        let (left_schema, left) = self.left.materialize_blocks()?;
        let (right_schema, right) = self.right.materialize_blocks()?;
        let (left, right) = (Side::new(left), Side::new(right));
        if left.rows() != right.rows() {
            return Err(Error::InvalidArgument(format!(
                "zip needs datasets with as many rows: the left has {}, the right {}",
                left.rows(),
                right.rows()
            )));
        }
        let schema = zip_schema(&left_schema, &right_schema);
        let _ = self.prepared.set(Prepared {
            left,
            right,
            left_schema,
            right_schema,
            schema,
        });
        Ok(())
    }

    fn num_fragments(&self) -> usize {
        self.prepared.get().map_or(0, |p| p.left.blocks.len())
    }

    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        let p = self
            .prepared
            .get()
            .ok_or_else(|| Error::Internal("zip read before it was prepared".into()))?;
        let Some((_, rows)) = p.left.blocks.get(i) else {
            return Ok(());
        };
        let left = p.left.slice(&p.left_schema, p.left.starts[i], *rows)?;
        let right = p.right.slice(&p.right_schema, p.left.starts[i], *rows)?;
        let mut columns = left.columns().to_vec();
        columns.extend(right.columns().iter().cloned());
        let out = RecordBatch::try_new(p.schema.clone(), columns)?;
        let mut each = self.counters.counting(each);
        each(out)?;
        Ok(())
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}

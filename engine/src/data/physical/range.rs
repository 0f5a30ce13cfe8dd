//! `RangeOp`: integers `0..n` in an `id` column, in fragments of a fixed row count.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::data::physical::{OpCounters, SourceOp};
use crate::error::Result;

/// Generates `0..n`.
pub(crate) struct RangeOp {
    /// How many rows.
    n: u64,
    /// Rows per fragment.
    rows_per_fragment: u64,
    /// Rows per batch.
    batch_rows: usize,
    schema: SchemaRef,
    counters: OpCounters,
}

impl RangeOp {
    pub(crate) fn new(n: u64, fragments: u64, batch_rows: usize) -> Self {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let rows_per_fragment = n.div_ceil(fragments.max(1)).max(1);
        RangeOp {
            n,
            rows_per_fragment,
            batch_rows: batch_rows.max(1),
            schema,
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for RangeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RangeOp(n={}, rows_per_task={})",
            self.n, self.rows_per_fragment
        )
    }
}

impl SourceOp for RangeOp {
    fn num_fragments(&self) -> usize {
        self.n.div_ceil(self.rows_per_fragment) as usize
    }

    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        let start = i as u64 * self.rows_per_fragment;
        let end = (start + self.rows_per_fragment).min(self.n);
        let mut at = start;
        while at < end {
            let started = Instant::now();
            let stop = (at + self.batch_rows as u64).min(end);
            let ids = Int64Array::from_iter_values(at as i64..stop as i64);
            let b = RecordBatch::try_new(self.schema.clone(), vec![Arc::new(ids)])?;
            self.counters.record(std::slice::from_ref(&b), started);
            at = stop;
            if !each(b)? {
                break;
            }
        }
        Ok(())
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}

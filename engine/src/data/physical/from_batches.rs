//! `FromBatchesOp`: batches held in memory, one fragment per batch.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;

use crate::data::physical::{OpCounters, SourceOp};
use crate::error::Result;

/// In-memory batches.
pub(crate) struct FromBatchesOp {
    /// The batches.
    batches: Arc<Vec<RecordBatch>>,
    counters: OpCounters,
}

impl FromBatchesOp {
    pub(crate) fn new(batches: Arc<Vec<RecordBatch>>) -> Self {
        FromBatchesOp {
            batches,
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for FromBatchesOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FromBatchesOp(batches={})", self.batches.len())
    }
}

impl SourceOp for FromBatchesOp {
    fn num_fragments(&self) -> usize {
        self.batches.len()
    }

    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        if let Some(b) = self.batches.get(i) {
            self.counters
                .record(std::slice::from_ref(b), Instant::now());
            each(b.clone())?;
        }
        Ok(())
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}

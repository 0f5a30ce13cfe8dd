//! `LimitBarrierOp`: a limit with operators after it — the first `n` rows of its input are
//! taken (at most `n` rows in memory) before the operators run.

use std::fmt;
use std::sync::OnceLock;

use arrow::array::RecordBatch;

use crate::data::Dataset;
use crate::data::physical::{OpCounters, SourceOp};
use crate::error::Result;

/// The first `n` rows of a dataset, as one fragment.
pub(crate) struct LimitBarrierOp {
    /// The input.
    input: Dataset,
    /// Rows.
    n: usize,
    rows: OnceLock<Vec<RecordBatch>>,
    counters: OpCounters,
}

impl LimitBarrierOp {
    pub(crate) fn new(input: Dataset, n: usize) -> Self {
        LimitBarrierOp {
            input,
            n,
            rows: OnceLock::new(),
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for LimitBarrierOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LimitBarrierOp({})", self.n)
    }
}

impl SourceOp for LimitBarrierOp {
    fn prepare(&self) -> Result<()> {
        if self.rows.get().is_none() {
            let rows = self.input.take(self.n)?;
            let _ = self.rows.set(rows);
        }
        Ok(())
    }

    fn num_fragments(&self) -> usize {
        1
    }

    fn read(&self, _i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        for b in self.rows.get().into_iter().flatten() {
            self.counters
                .record(std::slice::from_ref(b), std::time::Instant::now());
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

//! `RepartitionExchange`: `n` blocks of nearly equal size; each map fragment's rows are cut
//! into `n` contiguous ranges, and reducer `p` concatenates range `p` of every fragment.

use std::fmt;

use arrow::array::RecordBatch;

use crate::data::context::DataContext;
use crate::data::physical::exchange::{Exchange, concat};
use crate::error::Result;

/// Repartitions into `n` blocks.
pub(crate) struct RepartitionExchange {
    /// Output blocks.
    n: usize,
}

impl RepartitionExchange {
    pub(crate) fn new(n: usize) -> Self {
        RepartitionExchange { n: n.max(1) }
    }
}

impl fmt::Display for RepartitionExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepartitionOp({})", self.n)
    }
}

impl Exchange for RepartitionExchange {
    fn partitions(&self, _: Option<u64>, _: usize, _: &DataContext, _: usize) -> usize {
        self.n
    }

    fn partition(&self, batch: &RecordBatch, n: usize, _fragment: u64) -> Result<Vec<u32>> {
        let rows = batch.num_rows();
        Ok((0..rows).map(|r| (r * n / rows.max(1)) as u32).collect())
    }

    fn reduce(&self, batches: Vec<RecordBatch>, _p: usize) -> Result<Vec<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        Ok(vec![concat(&first.schema(), &batches)?])
    }
}

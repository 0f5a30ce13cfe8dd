//! `FromRefsOp`: blocks already in the object store (a materialized dataset), one fragment
//! per block. The store pins a block while it is read and may spill it in between.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::data::physical::{OpCounters, SourceOp, feed_block};
use crate::error::Result;
use crate::{Block, ObjectRef};

/// Blocks in the store.
pub(crate) struct FromRefsOp {
    blocks: Arc<Vec<(ObjectRef<Block>, u64)>>,
    counters: OpCounters,
}

impl FromRefsOp {
    pub(crate) fn new(blocks: Arc<Vec<(ObjectRef<Block>, u64)>>) -> Self {
        FromRefsOp {
            blocks,
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for FromRefsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FromRefsOp(blocks={})", self.blocks.len())
    }
}

impl SourceOp for FromRefsOp {
    fn num_fragments(&self) -> usize {
        self.blocks.len()
    }

    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        let Some((r, _)) = self.blocks.get(i) else {
            return Ok(());
        };
        feed_block(&crate::get(r)?, &self.counters, each)
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}

//! `ReadTextOp`: reads CSV or newline-delimited JSON files packed into fragments.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::data::physical::{OpCounters, SourceOp};
use crate::error::Result;
use crate::io::text::TextSource;

/// Reads text files.
pub(crate) struct ReadTextOp {
    /// The files.
    source: Arc<TextSource>,
    /// File indices per fragment.
    fragments: Vec<Vec<usize>>,
    /// Rows per batch.
    batch_rows: usize,
    io: tokio::runtime::Handle,
    counters: OpCounters,
}

impl ReadTextOp {
    pub(crate) fn new(
        source: Arc<TextSource>,
        target_bytes: u64,
        batch_rows: usize,
        io: tokio::runtime::Handle,
    ) -> Self {
        let fragments = source.plan(target_bytes);
        ReadTextOp {
            source,
            fragments,
            batch_rows,
            io,
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for ReadTextOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ReadTextOp({:?}, files={})",
            self.source.format(),
            self.source.num_files()
        )
    }
}

impl SourceOp for ReadTextOp {
    fn num_fragments(&self) -> usize {
        self.fragments.len()
    }

    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        let Some(files) = self.fragments.get(i) else {
            return Ok(());
        };
        self.source.read(
            files,
            self.batch_rows,
            &self.io,
            &mut self.counters.counting(each),
        )
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}

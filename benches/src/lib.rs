//! Volley's benchmarks.
//!
//! - `benches/core.rs` (criterion, `cargo bench -p volley-benches`): the core's hot paths —
//!   task submission and completion, actor calls, small puts and gets, the Arrow IPC encoding
//!   used by shared-memory segments and spill files.
//! - `volley microbenchmark` (the CLI): Ray's micro-benchmark metrics.
//!
//! [`int_block`] builds the Arrow data the benches share.

use std::sync::Arc;

use volley::Block;
use volley::arrow::array::{Int64Array, RecordBatch};

/// A block of one int64 column of about `bytes` bytes.
pub fn int_block(bytes: usize) -> Block {
    let n = (bytes / 8) as i64;
    let batch =
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from_iter_values(0..n)) as _)])
            .expect("one int64 column is a valid batch");
    Block::from(batch)
}

//! `DataContext`: the data engine's knobs (Ray's names where Ray has them).

use std::io::IsTerminal;
use std::time::Duration;

use crate::data::progress::ProgressSink;

/// Settings of dataset execution.
#[derive(Debug, Clone)]
pub struct DataContext {
    /// Target size of a block, in bytes (Ray `target_max_block_size`). Default 128 MiB.
    pub target_max_block_size: u64,
    /// Rows per batch when reading files. Default 65,536.
    pub read_batch_rows: usize,
    /// Bytes of unconsumed blocks the pipeline may hold, as a fraction of the object store
    /// budget. Default 0.5.
    pub pipeline_budget_fraction: f64,
    /// The same budget in bytes, overriding the fraction (Ray
    /// `execution_options.resource_limits.object_store_memory`). Default: none.
    pub pipeline_budget_bytes: Option<u64>,
    /// Unconsumed outputs a read/map task may have before it pauses. Default 2.
    pub max_unconsumed_outputs_per_task: usize,
    /// Upper bound of tasks in flight (default: twice the CPUs).
    pub max_tasks_in_flight: Option<usize>,
    /// Target size of written files, in bytes. Default 128 MiB.
    pub target_file_size: u64,
    /// Blocks an all-to-all operation (sort, groupby, shuffle) puts are spilled at once
    /// while the object store holds more than this fraction of its budget. Default 0.25.
    pub exchange_spill_fraction: f64,
    /// Draw progress on stderr: bars redrawn in place on a terminal, a log line every
    /// `progress_log_interval` otherwise (Ray `enable_progress_bars`). Default: on when
    /// stderr is a terminal.
    pub enable_progress_bars: bool,
    /// Gets a progress snapshot every `progress_interval` (front ends' progress bars).
    pub progress_sink: Option<ProgressSink>,
    /// How often progress is sampled. Default 500 ms.
    pub progress_interval: Duration,
    /// How often progress is logged when stderr is not a terminal. Default 10 s.
    pub progress_log_interval: Duration,
}

impl Default for DataContext {
    fn default() -> Self {
        DataContext {
            target_max_block_size: 128 << 20,
            read_batch_rows: 65_536,
            pipeline_budget_fraction: 0.5,
            pipeline_budget_bytes: None,
            max_unconsumed_outputs_per_task: 2,
            max_tasks_in_flight: None,
            target_file_size: 128 << 20,
            exchange_spill_fraction: 0.25,
            enable_progress_bars: std::io::stderr().is_terminal(),
            progress_sink: None,
            progress_interval: Duration::from_millis(500),
            progress_log_interval: Duration::from_secs(10),
        }
    }
}

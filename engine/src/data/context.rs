//! `DataContext`: the data engine's knobs (Ray's names where Ray has them).

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
    /// Unconsumed outputs a read/map task may have before it pauses. Default 2.
    pub max_unconsumed_outputs_per_task: usize,
    /// Upper bound of tasks in flight (default: twice the CPUs).
    pub max_tasks_in_flight: Option<usize>,
    /// Target size of written files, in bytes. Default 128 MiB.
    pub target_file_size: u64,
}

impl Default for DataContext {
    fn default() -> Self {
        DataContext {
            target_max_block_size: 128 << 20,
            read_batch_rows: 65_536,
            pipeline_budget_fraction: 0.5,
            max_unconsumed_outputs_per_task: 2,
            max_tasks_in_flight: None,
            target_file_size: 128 << 20,
        }
    }
}

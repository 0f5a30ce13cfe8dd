//! One typed configuration for a Volley node.
//!
//! Every knob has a default, an environment variable (`VOLLEY_*`; Ray's name where Ray has
//! one) and a doc line. [`Config::default`] reads the environment over the built-in defaults;
//! fields set in code afterwards win over both.
//!
//! ```
//! let mut config = volley::Config::default();
//! config.num_cpus = Some(2.0);
//! config.object_store_memory = Some(256 << 20);
//! assert_eq!(config.resolved_num_cpus(), 2.0);
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Configuration of a node (and of the driver's in-process node in local mode).
#[derive(Debug, Clone)]
pub struct Config {
    /// CPUs the node advertises (`VOLLEY_NUM_CPUS`; Ray `num_cpus`). Default: the machine's
    /// available parallelism.
    pub num_cpus: Option<f64>,
    /// GPUs the node advertises (`VOLLEY_NUM_GPUS`; Ray `num_gpus`). Default: 0 until GPU
    /// discovery lands.
    pub num_gpus: Option<f64>,
    /// Memory (bytes) the node advertises for the `memory` resource (`VOLLEY_MEMORY`; Ray
    /// `memory`). Default: physical RAM minus the object store.
    pub memory: Option<u64>,
    /// Custom resources, e.g. `{"accelerator": 4.0}` (`VOLLEY_RESOURCES` as
    /// `name=amount,name=amount`; Ray `resources`).
    pub resources: BTreeMap<String, f64>,
    /// The object store's byte budget (`VOLLEY_OBJECT_STORE_MEMORY`; Ray
    /// `object_store_memory`). Default: 30% of physical RAM.
    pub object_store_memory: Option<u64>,
    /// Fraction of the budget past which objects spill (`VOLLEY_OBJECT_SPILLING_THRESHOLD`;
    /// Ray `object_spilling_threshold`). Default 0.8.
    pub object_spilling_threshold: f64,
    /// Where objects spill: any `object_store` URL (`file:///...`, `memory:///`, `s3://...`)
    /// (`VOLLEY_SPILL_URL`; Ray `object_spilling_config`). Default: `<session dir>/spill`.
    pub spill_url: Option<String>,
    /// Root of session directories (`VOLLEY_TEMP_DIR`; Ray `_temp_dir`). Default: the system
    /// temp dir + `/volley`.
    pub temp_dir: PathBuf,
    /// Directory of shared-memory segments (`VOLLEY_SHM_DIR`). Default `/dev/shm` when it
    /// exists, else the session directory.
    pub shm_dir: Option<PathBuf>,
    /// Objects up to this size (bytes) are "small": they stay in process memory and spill only
    /// when spilling larger objects cannot make room (`VOLLEY_MAX_INLINE_OBJECT_SIZE`; Ray
    /// `max_direct_call_object_size`). Default 100 KiB.
    pub max_inline_object_size: u64,
    /// How long a `put` waits for pinned objects to be released before failing with
    /// `ObjectStoreFull` (`VOLLEY_OBJECT_STORE_FULL_TIMEOUT_MS`). Default 10 s.
    pub object_store_full_timeout: Duration,
    /// Upper bound of worker threads for tasks, counting threads blocked in `get`
    /// (`VOLLEY_MAX_WORKER_THREADS`), and of the I/O runtime's blocking threads (which
    /// serve parked Python tasks' requests). Default 1024.
    pub max_worker_threads: usize,
    /// Default `max_retries` of tasks (`VOLLEY_TASK_MAX_RETRIES`; Ray default 3).
    pub task_max_retries: i32,
    /// Bytes of task specs (their value arguments) the owner keeps to rebuild lost outputs
    /// by running their tasks again (`VOLLEY_MAX_LINEAGE_BYTES`; Ray's `max_lineage_bytes`,
    /// default 1 GiB). Past it, new tasks' outputs cannot be rebuilt.
    pub max_lineage_bytes: u64,
    /// Allocations of at least this many bytes get their own memory mapping, returned to the
    /// OS when freed (glibc `M_MMAP_THRESHOLD`, also the trim threshold). Arrow buffers are
    /// large and short-lived, and glibc's adaptive threshold keeps freed buffers in its
    /// heaps: a low threshold (e.g. 128 KiB) lowers peak RSS (a sort of 2.6 GB: 4.6 → 3.5
    /// GiB) but costs a page fault per buffer (full scan 1.4 → 3.6 s), so the default 0
    /// leaves the allocator alone (`VOLLEY_MALLOC_MMAP_THRESHOLD`). Set once per process, by
    /// the first `init`.
    pub malloc_mmap_threshold: usize,
    /// The command that starts an external worker process, e.g. `python -m volley._worker`
    /// (`VOLLEY_WORKER_COMMAND`, words split on spaces). Front ends whose functions run in
    /// worker processes set it (the Python package does); `None`: no worker processes.
    pub worker_command: Option<Vec<String>>,
    /// How long a new worker process may take to connect (`VOLLEY_WORKER_START_TIMEOUT_MS`).
    /// Default 60 s.
    pub worker_start_timeout: Duration,
    /// Idle task worker processes the node keeps however long they are idle (Ray's
    /// `num_workers_soft_limit`; `VOLLEY_NUM_WORKERS_SOFT_LIMIT`). Default: the node's CPUs.
    pub num_workers_soft_limit: Option<usize>,
    /// How long a task worker process past the soft limit may stay idle before the node
    /// stops it (Ray's `idle_worker_killing_time_threshold_ms`;
    /// `VOLLEY_IDLE_WORKER_KILLING_TIME_THRESHOLD_MS`). Default 1 s.
    pub idle_worker_killing_time_threshold: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config::builtin();
        // An unparsable variable is reported by `init` (through `Config::from_env`); here
        // the built-in default stays.
        let _ = c.apply_env();
        c
    }
}

impl Config {
    /// The built-in defaults, ignoring the environment.
    pub fn builtin() -> Self {
        Config {
            num_cpus: None,
            num_gpus: None,
            memory: None,
            resources: BTreeMap::new(),
            object_store_memory: None,
            object_spilling_threshold: 0.8,
            spill_url: None,
            temp_dir: std::env::temp_dir().join("volley"),
            shm_dir: None,
            max_inline_object_size: 100 * 1024,
            object_store_full_timeout: Duration::from_secs(10),
            max_worker_threads: 1024,
            task_max_retries: 3,
            max_lineage_bytes: 1 << 30,
            malloc_mmap_threshold: 0,
            worker_command: None,
            worker_start_timeout: Duration::from_secs(60),
            num_workers_soft_limit: None,
            idle_worker_killing_time_threshold: Duration::from_secs(1),
        }
    }

    /// Built-in defaults with `VOLLEY_*` environment variables applied; a variable that does
    /// not parse is an error naming it.
    pub fn from_env() -> Result<Self> {
        let mut c = Config::builtin();
        c.apply_env()?;
        Ok(c)
    }

    fn apply_env(&mut self) -> Result<()> {
        fn var(name: &str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty())
        }
        fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
            v.trim().parse().map_err(|_| {
                Error::InvalidArgument(format!("environment variable {name}={v:?} does not parse"))
            })
        }
        if let Some(v) = var("VOLLEY_NUM_CPUS") {
            self.num_cpus = Some(parse("VOLLEY_NUM_CPUS", &v)?);
        }
        if let Some(v) = var("VOLLEY_NUM_GPUS") {
            self.num_gpus = Some(parse("VOLLEY_NUM_GPUS", &v)?);
        }
        if let Some(v) = var("VOLLEY_MEMORY") {
            self.memory = Some(parse("VOLLEY_MEMORY", &v)?);
        }
        if let Some(v) = var("VOLLEY_RESOURCES") {
            self.resources = parse_resources(&v)?;
        }
        if let Some(v) = var("VOLLEY_OBJECT_STORE_MEMORY") {
            self.object_store_memory = Some(parse("VOLLEY_OBJECT_STORE_MEMORY", &v)?);
        }
        if let Some(v) = var("VOLLEY_OBJECT_SPILLING_THRESHOLD") {
            self.object_spilling_threshold = parse("VOLLEY_OBJECT_SPILLING_THRESHOLD", &v)?;
        }
        if let Some(v) = var("VOLLEY_MALLOC_MMAP_THRESHOLD") {
            self.malloc_mmap_threshold = parse("VOLLEY_MALLOC_MMAP_THRESHOLD", &v)?;
        }
        if let Some(v) = var("VOLLEY_WORKER_COMMAND") {
            self.worker_command = Some(v.split_whitespace().map(str::to_string).collect());
        }
        if let Some(v) = var("VOLLEY_WORKER_START_TIMEOUT_MS") {
            let ms: u64 = parse("VOLLEY_WORKER_START_TIMEOUT_MS", &v)?;
            self.worker_start_timeout = Duration::from_millis(ms);
        }
        if let Some(v) = var("VOLLEY_NUM_WORKERS_SOFT_LIMIT") {
            self.num_workers_soft_limit = Some(parse("VOLLEY_NUM_WORKERS_SOFT_LIMIT", &v)?);
        }
        if let Some(v) = var("VOLLEY_IDLE_WORKER_KILLING_TIME_THRESHOLD_MS") {
            let ms: u64 = parse("VOLLEY_IDLE_WORKER_KILLING_TIME_THRESHOLD_MS", &v)?;
            self.idle_worker_killing_time_threshold = Duration::from_millis(ms);
        }
        if let Some(v) = var("VOLLEY_SPILL_URL") {
            self.spill_url = Some(v);
        }
        if let Some(v) = var("VOLLEY_TEMP_DIR") {
            self.temp_dir = PathBuf::from(v);
        }
        if let Some(v) = var("VOLLEY_SHM_DIR") {
            self.shm_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("VOLLEY_MAX_INLINE_OBJECT_SIZE") {
            self.max_inline_object_size = parse("VOLLEY_MAX_INLINE_OBJECT_SIZE", &v)?;
        }
        if let Some(v) = var("VOLLEY_OBJECT_STORE_FULL_TIMEOUT_MS") {
            let ms: u64 = parse("VOLLEY_OBJECT_STORE_FULL_TIMEOUT_MS", &v)?;
            self.object_store_full_timeout = Duration::from_millis(ms);
        }
        if let Some(v) = var("VOLLEY_MAX_WORKER_THREADS") {
            self.max_worker_threads = parse("VOLLEY_MAX_WORKER_THREADS", &v)?;
        }
        if let Some(v) = var("VOLLEY_TASK_MAX_RETRIES") {
            self.task_max_retries = parse("VOLLEY_TASK_MAX_RETRIES", &v)?;
        }
        if let Some(v) = var("VOLLEY_MAX_LINEAGE_BYTES") {
            self.max_lineage_bytes = parse("VOLLEY_MAX_LINEAGE_BYTES", &v)?;
        }
        Ok(())
    }

    /// CPUs this node advertises.
    pub fn resolved_num_cpus(&self) -> f64 {
        self.num_cpus.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0)
        })
    }

    /// The object store's byte budget.
    pub fn resolved_object_store_memory(&self) -> u64 {
        self.object_store_memory
            .unwrap_or_else(|| (total_memory() as f64 * 0.3) as u64)
    }

    /// Memory the node advertises as the `memory` resource.
    pub fn resolved_memory(&self) -> u64 {
        self.memory
            .unwrap_or_else(|| total_memory().saturating_sub(self.resolved_object_store_memory()))
    }

    /// Checks values a user could get wrong; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.resolved_num_cpus() < 0.0 || !self.resolved_num_cpus().is_finite() {
            return bad(format!(
                "num_cpus must be >= 0, got {}",
                self.resolved_num_cpus()
            ));
        }
        if let Some(g) = self.num_gpus
            && (g < 0.0 || !g.is_finite())
        {
            return bad(format!("num_gpus must be >= 0, got {g}"));
        }
        if !(self.object_spilling_threshold > 0.0 && self.object_spilling_threshold <= 1.0) {
            return bad(format!(
                "object_spilling_threshold must be in (0, 1], got {}",
                self.object_spilling_threshold
            ));
        }
        if self.resolved_object_store_memory() == 0 {
            return bad("object_store_memory must be > 0".into());
        }
        if self.max_worker_threads == 0 {
            return bad("max_worker_threads must be > 0".into());
        }
        for (name, amount) in &self.resources {
            if *amount < 0.0 || !amount.is_finite() {
                return bad(format!("resource {name:?} must be >= 0, got {amount}"));
            }
        }
        Ok(())
    }
}

/// Parses `name=amount,name=amount`.
fn parse_resources(s: &str) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, amount) = part.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "VOLLEY_RESOURCES: expected name=amount, got {part:?}"
            ))
        })?;
        let amount: f64 = amount.trim().parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "VOLLEY_RESOURCES: amount of {name:?} does not parse"
            ))
        })?;
        out.insert(name.trim().to_string(), amount);
    }
    Ok(out)
}

/// Physical memory in bytes (from `/proc/meminfo`; 8 GiB when unknown).
pub fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<u64>().ok())
                        .map(|kb| kb * 1024)
                })
        })
        .unwrap_or(8 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse() {
        let r = parse_resources("a=1, b=0.5").unwrap();
        assert_eq!(r["a"], 1.0);
        assert_eq!(r["b"], 0.5);
        let err = parse_resources("a").unwrap_err();
        assert!(err.to_string().contains("VOLLEY_RESOURCES"));
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = Config::builtin();
        c.object_spilling_threshold = 1.5;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("object_spilling_threshold")
        );
    }
}

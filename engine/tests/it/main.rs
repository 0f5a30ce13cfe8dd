//! Integration tests of Volley Core and Volley Data through their public Rust API.
//!
//! Each test starts its own runtime; a process-wide lock serializes them when the runner
//! shares one process between tests (`cargo test`); under nextest each runs alone.

mod actors;
mod cloud_urls;
mod data;
mod data_handles;
mod data_ops;
mod lifecycle;
mod lineage;
mod objects;
mod placement;
mod retries;
mod runtimes;
mod s3;
mod shipped;
mod spill;
mod tasks;
mod transfer;

use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// A running runtime; shuts down on drop.
#[derive(Debug)]
pub struct Runtime {
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        volley::shutdown();
    }
}

/// Starts a runtime with `num_cpus` CPUs and otherwise default settings, adjusted by `f`.
pub fn start_with(num_cpus: f64, f: impl FnOnce(&mut volley::Config)) -> Runtime {
    let lock = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    volley::shutdown();
    let mut c = volley::Config::builtin();
    c.num_cpus = Some(num_cpus);
    c.object_store_memory = Some(512 << 20);
    f(&mut c);
    volley::init(c).expect("init");
    Runtime { _lock: lock }
}

/// Shared-memory segments under `/dev/shm` whose names start with `prefix`.
pub fn shm_segments(prefix: &str) -> usize {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// Starts a runtime with 2 CPUs.
pub fn start() -> Runtime {
    start_with(2.0, |_| {})
}

//! `volley microbenchmark`: Ray's core micro-benchmarks (same metric names where Ray has
//! them) plus Volley's store figures (zero-copy put/get, shared-memory materialization
//! against `memcpy`, spill write/restore against `dd`).
//!
//! Each metric runs `trials` timed trials of about `duration` each and prints
//! `<name> per second <mean> +- <stddev>` like `ray microbenchmark`, or a rate in GB/s or
//! MB/s, or a latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};

use crate::core::ids::{NodeId, ObjectId, TaskId, WorkerId};
use crate::core::object::ObjectData;
use crate::core::spill::Spiller;
use crate::error::{Error, Result};
use crate::{Block, Config};

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Only metrics whose name contains this.
    pub filter: Option<String>,
    /// Length of one trial.
    pub duration: Duration,
    /// Trials per metric.
    pub trials: usize,
}

/// One result line.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Metric name (Ray's where it has one).
    pub name: String,
    /// Mean over trials.
    pub mean: f64,
    /// Standard deviation over trials.
    pub stddev: f64,
    /// Unit: `per second`, `GB/s`, `MB/s`, `us`.
    pub unit: &'static str,
}

impl std::fmt::Display for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.unit {
            "per second" => write!(
                f,
                "{} per second {:.2} +- {:.2}",
                self.name, self.mean, self.stddev
            ),
            unit => write!(
                f,
                "{} {:.3} {unit} +- {:.3}",
                self.name, self.mean, self.stddev
            ),
        }
    }
}

fn stats(samples: &[f64]) -> (f64, f64) {
    let n = samples.len().max(1) as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

struct Runner<'a> {
    settings: &'a Settings,
    out: Vec<Measurement>,
    print: &'a mut dyn FnMut(&Measurement),
}

impl Runner<'_> {
    fn wanted(&self, name: &str) -> bool {
        self.settings
            .filter
            .as_deref()
            .is_none_or(|f| name.contains(f))
    }

    /// Runs `op` (which does `batch` operations) repeatedly for each trial; reports ops/s.
    fn rate(&mut self, name: &str, batch: usize, mut op: impl FnMut() -> Result<()>) -> Result<()> {
        if !self.wanted(name) {
            return Ok(());
        }
        op()?; // warm-up
        let mut samples = Vec::new();
        for _ in 0..self.settings.trials {
            let t = Instant::now();
            let mut n = 0usize;
            while t.elapsed() < self.settings.duration {
                op()?;
                n += batch;
            }
            samples.push(n as f64 / t.elapsed().as_secs_f64());
        }
        self.push(name, &samples, "per second");
        Ok(())
    }

    /// Reports `value()` samples in `unit` (the closure measures one trial itself).
    fn sample(
        &mut self,
        name: &str,
        unit: &'static str,
        mut value: impl FnMut() -> Result<f64>,
    ) -> Result<()> {
        if !self.wanted(name) {
            return Ok(());
        }
        let _ = value()?; // warm-up
        let mut samples = Vec::new();
        for _ in 0..self.settings.trials {
            samples.push(value()?);
        }
        self.push(name, &samples, unit);
        Ok(())
    }

    fn push(&mut self, name: &str, samples: &[f64], unit: &'static str) {
        let (mean, stddev) = stats(samples);
        let m = Measurement {
            name: name.to_string(),
            mean,
            stddev,
            unit,
        };
        (self.print)(&m);
        self.out.push(m);
    }
}

fn int_block(bytes: usize) -> Block {
    let n = (bytes / 8) as i64;
    Block::from(
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from_iter_values(0..n)) as _)])
            .unwrap_or_else(|_| {
                RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()))
            }),
    )
}

/// Runs the micro-benchmarks on a fresh local runtime (started and shut down here), calling
/// `print` as each result arrives.
pub fn run(settings: &Settings, print: &mut dyn FnMut(&Measurement)) -> Result<Vec<Measurement>> {
    if crate::is_initialized() {
        return Err(Error::InvalidArgument(
            "microbenchmark starts its own runtime: shut down first".into(),
        ));
    }
    let config = Config::default();
    crate::init(config)?;
    let result = run_all(settings, print);
    crate::shutdown();
    result
}

fn run_all(settings: &Settings, print: &mut dyn FnMut(&Measurement)) -> Result<Vec<Measurement>> {
    let mut r = Runner {
        settings,
        out: Vec::new(),
        print,
    };
    let small = crate::put(0u64)?;
    r.rate("single_client_get_calls_Plasma_Store", 1000, || {
        for _ in 0..1000 {
            crate::get(&small)?;
        }
        Ok(())
    })?;
    r.rate("single_client_put_calls_Plasma_Store", 1000, || {
        for i in 0..1000u64 {
            crate::put(i)?;
        }
        Ok(())
    })?;
    let gb = int_block(100 << 20);
    r.sample("single_client_put_gigabytes", "GB/s", || {
        let t = Instant::now();
        let mut refs = Vec::new();
        for _ in 0..10 {
            refs.push(crate::put(gb.clone())?);
        }
        let secs = t.elapsed().as_secs_f64();
        drop(refs);
        Ok(10.0 * 100.0 * (1 << 20) as f64 / 1e9 / secs)
    })?;
    r.sample("put_get_100MiB_arrow_in_process", "us", || {
        let t = Instant::now();
        let rf = crate::put(gb.clone())?;
        let got = crate::get(&rf)?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        drop((got, rf));
        Ok(us)
    })?;
    drop(gb);
    let nop = crate::task(|| Ok(()));
    r.rate("single_client_tasks_sync", 1, || {
        crate::get(&nop.remote(())?)
    })?;
    r.rate("single_client_tasks_async", 10_000, || {
        let refs: Vec<_> = (0..10_000).map(|_| nop.remote(())).collect::<Result<_>>()?;
        crate::get_all(&refs, None).map(|_| ())
    })?;
    r.rate("single_client_tasks_and_get_batch", 1000, || {
        let refs: Vec<_> = (0..1000).map(|_| nop.remote(())).collect::<Result<_>>()?;
        crate::get_all(&refs, None).map(|_| ())
    })?;
    r.rate("multi_client_tasks_async", 4 * 5000, || {
        let nop = nop.clone();
        on_clients(4, move |_| {
            let refs: Vec<_> = (0..5000).map(|_| nop.remote(())).collect::<Result<_>>()?;
            crate::get_all(&refs, None).map(|_| ())
        })
    })?;
    let refs: Vec<_> = (0..1000)
        .map(|i| crate::put(i as u64))
        .collect::<Result<_>>()?;
    r.rate("single_client_wait_1k_refs", 1, || {
        crate::wait(&refs, 1000, None).map(|_| ())
    })?;
    drop(refs);

    let actor = crate::actor(|| 0u64).spawn()?;
    r.rate("1_1_actor_calls_sync", 1, || {
        crate::get(&actor.call(|_: &mut u64| Ok(()))?)
    })?;
    r.rate("1_1_actor_calls_async", 10_000, || {
        let refs: Vec<_> = (0..10_000)
            .map(|_| actor.call(|_: &mut u64| Ok(())))
            .collect::<Result<_>>()?;
        crate::get_all(&refs, None).map(|_| ())
    })?;
    let conc = crate::actor(|| 0u64).max_concurrency(16).spawn()?;
    r.rate("1_1_actor_calls_concurrent", 5000, || {
        let refs: Vec<_> = (0..5000)
            .map(|_| conc.call_shared(|_: &u64| Ok(())))
            .collect::<Result<_>>()?;
        crate::get_all(&refs, None).map(|_| ())
    })?;
    let actors: Vec<_> = (0..4)
        .map(|_| crate::actor(|| 0u64).spawn())
        .collect::<Result<_>>()?;
    r.rate("1_n_actor_calls_async", 4 * 2500, || {
        let refs: Vec<_> = (0..10_000)
            .map(|i| actors[i % 4].call(|_: &mut u64| Ok(())))
            .collect::<Result<_>>()?;
        crate::get_all(&refs, None).map(|_| ())
    })?;
    r.rate("n_n_actor_calls_async", 4 * 2500, || {
        let actors = actors.clone();
        on_clients(4, move |i| {
            let refs: Vec<_> = (0..2500)
                .map(|_| actors[i].call(|_: &mut u64| Ok(())))
                .collect::<Result<_>>()?;
            crate::get_all(&refs, None).map(|_| ())
        })
    })?;
    drop((actor, conc, actors));
    let one_cpu = crate::ResourceSet::new().with(crate::ResourceName::Cpu, 0.01);
    r.rate("placement_group_create/removal", 1, || {
        let pg = crate::placement_group(vec![one_cpu.clone()], crate::PlacementStrategy::Pack)?;
        pg.wait(Duration::from_secs(10))?;
        crate::remove_placement_group(&pg)
    })?;

    shm_and_spill(&mut r)?;
    Ok(r.out)
}

/// Runs `f(client index)` on `n` threads at once and waits for all of them.
fn on_clients(n: usize, f: impl Fn(usize) -> Result<()> + Send + Sync + 'static) -> Result<()> {
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || f(i))
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| Error::Internal("client thread panicked".into()))??;
    }
    Ok(())
}

/// Shared-memory materialization against memcpy, spill write/restore against dd.
fn shm_and_spill(r: &mut Runner<'_>) -> Result<()> {
    const SIZE: usize = 256 << 20;
    let block = int_block(SIZE);
    let src: &[u8] = {
        let data = block.batches()[0].column(0).to_data();
        let b = &data.buffers()[0];
        // SAFETY: the buffer lives as long as `block`, which outlives `src`'s uses below.
        unsafe { std::slice::from_raw_parts(b.as_ptr(), b.len()) }
    };
    r.sample("memcpy_gigabytes", "GB/s", || {
        let t = Instant::now();
        let mut dst: Vec<u8> = Vec::with_capacity(SIZE);
        dst.extend_from_slice(src);
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(&dst);
        Ok(SIZE as f64 / 1e9 / secs)
    })?;
    r.sample("shm_materialize_gigabytes", "GB/s", || {
        let rf = crate::put(block.clone())?;
        let t = Instant::now();
        let seg = crate::object_segment(&rf)?;
        let secs = t.elapsed().as_secs_f64();
        Ok(seg.len as f64 / 1e9 / secs)
    })?;

    let node = crate::core::node::current()?;
    let dir = node.session_dir.join("bench-spill");
    let spiller = Spiller::new(&dir.to_string_lossy(), node.io_runtime()?)?;
    let data = ObjectData::Arrow(block.clone());
    let mut seq = 0u64;
    let mut next_id = || {
        seq += 1;
        ObjectId {
            task: TaskId {
                owner: WorkerId {
                    node: NodeId(0),
                    index: 0,
                },
                seq,
            },
            index: 0,
        }
    };
    // Like `dd` overwriting one file, each trial replaces the previous trial's file, so the
    // page cache holds one file's dirty pages at a time in both measurements.
    let mut last: Option<(ObjectId, crate::core::spill::SpillFile)> = None;
    r.sample("spill_write_megabytes", "MB/s", || {
        if let Some((_, f)) = last.take() {
            spiller.delete(f);
        }
        let id = next_id();
        let t = Instant::now();
        let f = spiller.write(id, &data)?;
        let secs = t.elapsed().as_secs_f64();
        last = Some((id, f));
        Ok(SIZE as f64 / 1e6 / secs)
    })?;
    if let Some((id, f)) = &last {
        // Restore and read every byte (a restore may map the file lazily).
        r.sample("spill_restore_megabytes", "MB/s", || {
            let t = Instant::now();
            let back = spiller.read(*id, f)?;
            let mut sum = 0i64;
            if let ObjectData::Arrow(b) = &back {
                for batch in b.batches() {
                    if let Some(a) = batch.column(0).as_any().downcast_ref::<Int64Array>() {
                        sum = a.values().iter().fold(sum, |s, v| s.wrapping_add(*v));
                    }
                }
            }
            let secs = t.elapsed().as_secs_f64();
            std::hint::black_box(sum);
            Ok(SIZE as f64 / 1e6 / secs)
        })?;
    }
    if let Some((_, f)) = last {
        spiller.delete(f);
    }
    spiller.shutdown();
    let dd_file = dir.join("dd.bin");
    let count = format!("count={}", SIZE >> 20);
    let of = format!("of={}", dd_file.display());
    for (name, sync) in [
        ("dd_write_megabytes", None),
        ("dd_write_fdatasync_megabytes", Some("conv=fdatasync")),
    ] {
        r.sample(name, "MB/s", || {
            let t = Instant::now();
            let mut args = vec!["if=/dev/zero", of.as_str(), "bs=1M", count.as_str()];
            args.extend(sync);
            run_dd(&args)?;
            Ok(SIZE as f64 / 1e6 / t.elapsed().as_secs_f64())
        })?;
    }
    r.sample("dd_read_megabytes", "MB/s", || {
        let t = Instant::now();
        run_dd(&[
            &format!("if={}", dd_file.display()),
            "of=/dev/null",
            "bs=1M",
        ])?;
        Ok(SIZE as f64 / 1e6 / t.elapsed().as_secs_f64())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn run_dd(args: &[&str]) -> Result<()> {
    let st = std::process::Command::new("dd")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::io("running dd", e))?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::io("running dd", format!("exit {st}")))
    }
}

//! Progress of a running dataset: per-operator snapshots (rows, bytes, tasks finished /
//! active / queued, peak bytes held, what holds it back) taken every
//! `DataContext::progress_interval` by a reporter thread and handed to a [`ProgressSink`]
//! (front ends draw bars from them), plus the built-in terminal renderer: bars redrawn in
//! place when stderr is a terminal, a log line every `progress_log_interval` otherwise.
//!
//! The same snapshot, taken when execution ends, is [`crate::data::Dataset::stats`].

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::data::context::DataContext;
use crate::data::physical::{OpCounters, OpSpread, PhysicalPlan, Pipeline};

/// One operator's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorProgress {
    /// `[pipeline] Operator(args)`; exchange inputs are nested as `[1.0]`.
    pub name: String,
    /// Rows output so far.
    pub rows: u64,
    /// Bytes output so far (Arrow memory size).
    pub bytes: u64,
    /// Batches output so far.
    pub batches: u64,
    /// Tasks finished.
    pub tasks_finished: u64,
    /// Tasks running.
    pub tasks_active: u64,
    /// Tasks not started yet.
    pub tasks_queued: u64,
    /// Time spent in the operator, summed over its tasks.
    pub cpu_time: Duration,
    /// The most bytes its running tasks held at once (their inputs and outputs).
    pub peak_bytes: u64,
    /// What holds it back now, if anything (`consumer`, `task limit`, `object store`).
    pub backpressure: Option<String>,
    /// Extra state (e.g. actors in its pool).
    pub note: Option<String>,
    /// Its wall time and the spread of its output batches.
    pub spread: OpSpread,
}

/// A snapshot of a whole execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Since execution started.
    pub elapsed: Duration,
    /// Every operator, sources first within each pipeline.
    pub operators: Vec<OperatorProgress>,
    /// True in the last snapshot.
    pub finished: bool,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

impl Progress {
    /// One line per operator, e.g.
    /// `[0] ReadParquetOp(..)  1.2M rows  340.0 MiB  tasks 4 done, 2 active, 10 queued  [consumer]`.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        for o in &self.operators {
            s.push_str(&format!(
                "{}: {} rows, {:.1} MiB, tasks {} done / {} active / {} queued",
                o.name,
                o.rows,
                mib(o.bytes),
                o.tasks_finished,
                o.tasks_active,
                o.tasks_queued
            ));
            if let Some(n) = &o.note {
                s.push_str(&format!(", {n}"));
            }
            if let Some(b) = &o.backpressure {
                s.push_str(&format!(" [backpressure: {b}]"));
            }
            s.push('\n');
        }
        s
    }

    /// A compact bar per operator for terminals (`width` columns).
    pub fn render_bars(&self, width: usize) -> String {
        let mut s = String::new();
        for o in &self.operators {
            let total = o.tasks_finished + o.tasks_active + o.tasks_queued;
            let frac = if total == 0 {
                0.0
            } else {
                o.tasks_finished as f64 / total as f64
            };
            let bar_w = 20;
            let filled = ((frac * bar_w as f64).round() as usize).min(bar_w);
            let mut line = format!(
                "{} [{}{}] {}/{} tasks, {} rows, {:.0} MiB",
                short_name(&o.name),
                "#".repeat(filled),
                "-".repeat(bar_w - filled),
                o.tasks_finished,
                total,
                o.rows,
                mib(o.bytes)
            );
            if let Some(b) = &o.backpressure {
                line.push_str(&format!(" ({b})"));
            }
            line.truncate(width.max(20));
            s.push_str(&line);
            s.push('\n');
        }
        s
    }
}

/// `("0.1", "MapBatchesOp(f)")` from `[0.1] MapBatchesOp(f)`.
fn split_id(name: &str) -> (&str, &str) {
    name.strip_prefix('[')
        .and_then(|r| r.split_once("] "))
        .unwrap_or(("", name))
}

/// The name Ray's `stats()` gives an operator (`ReadRange`, `MapBatches(f)`, `Filter(...)`).
fn ray_name(name: &str) -> String {
    let name = name.split(" <- ").next().unwrap_or(name);
    let (kind, args) = match name.split_once('(') {
        Some((k, rest)) => (k, rest.strip_suffix(')').unwrap_or(rest)),
        None => (name, ""),
    };
    match kind {
        "RangeOp" => "ReadRange".into(),
        "ReadParquetOp" => "ReadParquet".into(),
        "ReadTextOp" if args.to_lowercase().contains("json") => "ReadJSON".into(),
        "ReadTextOp" => "ReadCSV".into(),
        "FromBatchesOp" | "FromRefsOp" => "InputDataBuffer".into(),
        "MapBatchesOp" => {
            let f = args.rsplit_once(", batch_size=").map_or(args, |(f, _)| f);
            format!("MapBatches({f})")
        }
        "FilterOp" => format!("Filter({args})"),
        "ProjectOp" | "ConformOp" => "Project".into(),
        "LimitBarrierOp" => format!("limit={args}"),
        "AggregateOp" => "HashAggregate".into(),
        other => other.strip_suffix("Op").unwrap_or(other).into(),
    }
}

/// A duration as Ray prints one (`840.05us`, `4.34ms`, `1.2s`).
fn ray_time(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.2}us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2}ms", s * 1e3)
    } else {
        format!("{:.2}s", s)
    }
}

/// Rows per second, or 0 when no time passed.
fn per_sec(rows: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { rows as f64 / s } else { 0.0 }
}

/// A finished execution in Ray's `Dataset.stats()` layout: an `Operator N` section per
/// pipeline (its fused operators joined by `->`, as Ray fuses them) with its tasks, output
/// blocks, time, rows and bytes per block, the most memory its tasks held and its
/// throughput, then the dataset's throughput and the object store's peak.
pub(crate) fn ray_layout(
    ops: &[OperatorProgress],
    wall: Duration,
    store_peak: u64,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    let mut groups: Vec<(&str, Vec<&OperatorProgress>)> = Vec::new();
    for o in ops {
        let id = split_id(&o.name).0;
        match groups.last_mut() {
            Some((g, v)) if *g == id => v.push(o),
            _ => groups.push((id, vec![o])),
        }
    }
    let mut dataset_rows = 0;
    for (k, (id, group)) in groups.iter().enumerate() {
        let (source, last) = (group[0], group[group.len() - 1]);
        let names: Vec<String> = group
            .iter()
            .map(|o| ray_name(split_id(&o.name).1))
            .collect();
        let tasks = source.tasks_finished + source.tasks_active;
        let cpu: Duration = group.iter().map(|o| o.cpu_time).sum();
        let op_wall = group
            .iter()
            .map(|o| o.spread.wall)
            .max()
            .unwrap_or_default();
        let (rows, blocks, bytes) = (last.rows, last.batches, last.bytes);
        if !id.contains('.') {
            dataset_rows += rows;
        }
        writeln!(
            f,
            "Operator {} {}: {tasks} tasks executed, {blocks} blocks produced in {:.2}s",
            k + 1,
            names.join("->"),
            op_wall.as_secs_f64()
        )?;
        let mean = |total: u64, n: u64| total.checked_div(n).unwrap_or(0);
        writeln!(
            f,
            "* Remote cpu time: {} mean, {} total",
            ray_time(cpu / tasks.max(1) as u32),
            ray_time(cpu)
        )?;
        let OpSpread {
            rows: (rmin, rmax),
            bytes: (bmin, bmax),
            ..
        } = last.spread;
        writeln!(
            f,
            "* Output num rows per block: {rmin} min, {rmax} max, {} mean, {rows} total",
            mean(rows, blocks)
        )?;
        writeln!(
            f,
            "* Output size bytes per block: {bmin} min, {bmax} max, {} mean, {bytes} total",
            mean(bytes, blocks)
        )?;
        writeln!(
            f,
            "* Output rows per task: {} mean, {tasks} tasks used",
            mean(rows, tasks)
        )?;
        let peak = group.iter().map(|o| o.peak_bytes).max().unwrap_or(0);
        writeln!(f, "* Peak memory held by its tasks: {:.2} MiB", mib(peak))?;
        for (o, name) in group.iter().zip(&names) {
            if let Some(note) = &o.note {
                writeln!(f, "* {name}: {note}")?;
            }
        }
        writeln!(f, "* Operator throughput:")?;
        writeln!(f, "\t* Total output num rows: {rows} rows")?;
        writeln!(
            f,
            "\t* Volley throughput: {:.1} rows/s",
            per_sec(rows, op_wall)
        )?;
        writeln!(
            f,
            "\t* Estimated single task throughput: {:.1} rows/s",
            per_sec(rows, cpu)
        )?;
        writeln!(f)?;
    }
    writeln!(f, "Dataset throughput:")?;
    writeln!(
        f,
        "\t* Volley throughput: {:.1} rows/s ({dataset_rows} rows in {:.3}s)",
        per_sec(dataset_rows, wall),
        wall.as_secs_f64()
    )?;
    writeln!(f, "\t* Object store peak: {:.1} MiB", mib(store_peak))
}

/// `[0] MapBatchesOp` from `[0] MapBatchesOp(f, batch_size=8)`.
fn short_name(name: &str) -> &str {
    name.split('(').next().unwrap_or(name)
}

/// Receives progress snapshots (e.g. a notebook's progress bars).
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Fn(&Progress) + Send + Sync>);

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// What the executor shares with the reporter while a plan runs.
#[derive(Debug, Default)]
pub(crate) struct ExecState {
    /// Stream tasks running.
    pub(crate) in_flight: AtomicUsize,
    /// Most stream tasks at once.
    pub(crate) max_in_flight: AtomicUsize,
    /// Fragments not started by the stream.
    pub(crate) queued: AtomicUsize,
    /// When the stream last handed a batch to its consumer (ns since `epoch`), 0 while the
    /// consumer waits for the stream.
    pub(crate) handed_out_at: AtomicU64,
    epoch: Mutex<Option<Instant>>,
}

impl ExecState {
    fn epoch(&self) -> Instant {
        *self.epoch.lock().get_or_insert_with(Instant::now)
    }

    /// The consumer has a batch and has not asked for the next one yet.
    pub(crate) fn handed_out(&self) {
        let ns = self.epoch().elapsed().as_nanos() as u64;
        self.handed_out_at.store(ns.max(1), Ordering::Relaxed);
    }

    /// The consumer asks for the next batch.
    pub(crate) fn pulled(&self) {
        self.handed_out_at.store(0, Ordering::Relaxed);
    }

    /// Why the stream's tasks wait, if they do.
    fn backpressure(&self) -> Option<String> {
        let at = self.handed_out_at.load(Ordering::Relaxed);
        if at > 0 {
            let held = (self.epoch().elapsed().as_nanos() as u64).saturating_sub(at);
            if held > 100_000_000 {
                return Some("consumer".into());
            }
        }
        let (running, max) = (
            self.in_flight.load(Ordering::Relaxed),
            self.max_in_flight.load(Ordering::Relaxed),
        );
        if max > 0 && running >= max && self.queued.load(Ordering::Relaxed) > 0 {
            return Some(format!("task limit ({max} in flight)"));
        }
        None
    }
}

fn op_progress(
    name: String,
    c: &OpCounters,
    queued: u64,
    backpressure: Option<String>,
    note: Option<String>,
) -> OperatorProgress {
    let started = c.tasks.load(Ordering::Relaxed);
    let active = c.active.load(Ordering::Relaxed);
    OperatorProgress {
        name,
        rows: c.rows.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        batches: c.batches.load(Ordering::Relaxed),
        tasks_finished: started.saturating_sub(active),
        tasks_active: active,
        tasks_queued: queued,
        cpu_time: Duration::from_nanos(c.nanos.load(Ordering::Relaxed)),
        peak_bytes: c.peak_bytes(),
        backpressure,
        note,
        spread: c.spread(),
    }
}

fn walk(
    prefix: &str,
    pipelines: &[Arc<Pipeline>],
    top: bool,
    state: &ExecState,
    out: &mut Vec<OperatorProgress>,
) {
    let store_full = crate::object_store_stats()
        .ok()
        .filter(|s| s.budget > 0 && s.resident_bytes as f64 >= 0.8 * s.budget as f64)
        .map(|s| {
            format!(
                "object store at {:.0}% of its budget",
                100.0 * s.resident_bytes as f64 / s.budget as f64
            )
        });
    for (i, p) in pipelines.iter().enumerate() {
        let id = if prefix.is_empty() {
            format!("{i}")
        } else {
            format!("{prefix}.{i}")
        };
        if let Some(inner) = p.source.input_plan() {
            walk(&id, &inner.pipelines, false, state, out);
        }
        let started = p.source.counters().tasks.load(Ordering::Relaxed) as usize;
        let queued = p.source.num_fragments().saturating_sub(started) as u64;
        let back = store_full
            .clone()
            .or_else(|| top.then(|| state.backpressure()).flatten());
        out.push(op_progress(
            format!("[{id}] {}", p.source),
            p.source.counters(),
            queued,
            back.clone(),
            None,
        ));
        for o in &p.ops {
            out.push(op_progress(
                format!("[{id}] {o}"),
                o.counters(),
                queued,
                back.clone(),
                o.describe_state(),
            ));
        }
    }
}

/// A snapshot of `plan`.
pub(crate) fn snapshot(plan: &PhysicalPlan, elapsed: Duration, finished: bool) -> Progress {
    let mut operators = Vec::new();
    walk("", &plan.pipelines, true, &plan.state, &mut operators);
    if finished {
        for o in &mut operators {
            o.backpressure = None;
        }
    }
    Progress {
        elapsed,
        operators,
        finished,
    }
}

/// Reports progress while alive; dropping it stops (and joins) the reporter thread after a
/// last snapshot.
pub(crate) struct Reporter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The built-in renderer: bars in place on a terminal, log lines otherwise.
struct Terminal {
    tty: bool,
    drawn: usize,
    last_log: Option<Instant>,
    log_every: Duration,
}

impl Terminal {
    fn show(&mut self, p: &Progress) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let text = p.render_bars(120);
            // Move up over the previous drawing and clear it.
            for _ in 0..self.drawn {
                let _ = write!(err, "\x1b[1A\x1b[2K");
            }
            let _ = write!(err, "{text}");
            self.drawn = text.lines().count();
        } else if !p.finished && self.last_log.is_none_or(|t| t.elapsed() >= self.log_every) {
            self.last_log = Some(Instant::now());
            let _ = write!(
                err,
                "volley data: {:.0} s elapsed\n{}",
                p.elapsed.as_secs_f64(),
                p.render_text()
            );
        }
    }
}

impl Reporter {
    /// Starts reporting on `plan` (nothing when progress is off and no sink is set).
    pub(crate) fn start(plan: &PhysicalPlan, ctx: &DataContext, started: Instant) -> Option<Self> {
        let sink = ctx.progress_sink.clone();
        if sink.is_none() && !ctx.enable_progress_bars {
            return None;
        }
        let mut term = ctx.enable_progress_bars.then(|| Terminal {
            tty: std::io::stderr().is_terminal(),
            drawn: 0,
            last_log: Some(Instant::now()),
            log_every: ctx.progress_log_interval,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let plan = plan.clone();
        let every = ctx.progress_interval;
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("volley-progress".into())
            .spawn(move || {
                loop {
                    std::thread::park_timeout(every);
                    let finished = stop2.load(Ordering::Relaxed);
                    let p = snapshot(&plan, started.elapsed(), finished);
                    if let Some(s) = &sink {
                        (s.0)(&p);
                    }
                    if let Some(t) = term.as_mut() {
                        t.show(&p);
                    }
                    if finished {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Reporter {
            stop,
            thread: Some(thread),
        })
    }
}

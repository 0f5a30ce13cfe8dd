//! Volley Data pipelines on the benchmark dataset, one pipeline per process.
//!
//! ```text
//! data_bench generate <dir> [--big-files N] [--big-rows N] [--small-files N] [--small-rows N]
//!     # <dir>/big: 20 files x 1M rows; <dir>/small: 2,000 files x 1,000 rows (the defaults)
//! data_bench run <pipeline> <dir> [runs] [--cold] [--json] [--out <out_dir>]
//!     # prints: <pipeline> median=<s> min=<s> max=<s> peak_rss_mib=<n> rows=<n>
//!     # --json: one JSON object instead: pipeline, times_s (the measured runs), stats,
//!     #         peak_rss_mib
//!     # --cold: no warm-up: init, one run, and its report as soon as the result is in
//!     # --out: write pipelines write there and the last run's output is kept (default:
//!     #        <dir>/out-<pipeline>, removed after each run)
//! data_bench startup [idle_seconds]
//!     # init -> first task result; prints {"init_to_first_task_s": <s>} and stays idle
//!     # (default 10 s) before shutting down, so a parent can sample the idle memory floor
//! ```
//! Pipelines (the same work as `benches/compare/pipelines.py` names):
//! - `count`, `small_count`: rows of the big / small dataset;
//! - `full_scan`, `small_files_scan`: a statistics UDF over 1,024-row batches of every
//!   column, its one-row results collected by `take_all` and combined;
//! - `map_write`: a UDF that keeps `value > 0.5` and doubles `value`, then `write_parquet`;
//! - `map_native`: the same filter and doubling as expressions, then `write_parquet`;
//! - `groupby`: `groupby(key).sum(value)`; `sort_write`: sort by `value`, `write_parquet`.
//!
//! Rows: `id` int64 sequential, `value` float64 uniform [0,1), `key` string of 1,000 distinct
//! values, `text` 100 random alphanumeric characters; snappy; one row group per file;
//! deterministic (seeded).
//!
//! `stats` is the result's row count and, per column, the sum / minimum / maximum of numbers
//! and total UTF-8 length (in characters) / minimum / maximum of strings; `null` for write
//! pipelines (`benches/compare/run.py` reads their files back), and rows only for counts.
//! `run.py` compares them with the same pipelines run by Ray Data, Daft and pyarrow.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use volley::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use volley::data::{self, col, lit};
use volley::parquet::arrow::ArrowWriter;
use volley::parquet::basic::Compression;
use volley::parquet::file::properties::WriterProperties;

const USAGE: &str = "usage: data_bench generate <dir> [--big-files N] [--big-rows N] \
                     [--small-files N] [--small-rows N]\n       \
                     data_bench run <pipeline> <dir> [runs] [--json] [--out <out_dir>]\n       \
                     data_bench startup [idle_seconds]";

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn make_batch(start: u64, rows: u64) -> RecordBatch {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let ids = Int64Array::from_iter_values((start..start + rows).map(|i| i as i64));
    let values = Float64Array::from_iter_values(
        (start..start + rows).map(|i| (mix(i) >> 11) as f64 / (1u64 << 53) as f64),
    );
    let keys = StringArray::from_iter_values(
        (start..start + rows).map(|i| format!("key_{:04}", mix(i ^ 0x5EED) % 1000)),
    );
    let text = StringArray::from_iter_values((start..start + rows).map(|i| {
        let mut s = String::with_capacity(100);
        let mut x = mix(i ^ 0xC0FFEE);
        for k in 0..100 {
            if k % 8 == 0 {
                x = mix(x);
            }
            s.push(ALNUM[((x >> ((k % 8) * 8)) & 0xFF) as usize % ALNUM.len()] as char);
        }
        s
    }));
    RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as _),
        ("value", Arc::new(values) as _),
        ("key", Arc::new(keys) as _),
        ("text", Arc::new(text) as _),
    ])
    .expect("valid batch")
}

fn write_files(dir: &std::path::Path, files: u64, rows: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(rows as usize))
        .build();
    for f in 0..files {
        let b = make_batch(f * rows, rows);
        let file = std::fs::File::create(dir.join(format!("part-{f:05}.parquet")))?;
        let mut w = ArrowWriter::try_new(file, b.schema(), Some(props.clone()))
            .map_err(std::io::Error::other)?;
        w.write(&b).map_err(std::io::Error::other)?;
        w.close().map_err(std::io::Error::other)?;
    }
    Ok(())
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// One statistic of a result: integers stay exact.
#[derive(Debug, Clone, PartialEq)]
enum Stat {
    Int(i128),
    Float(f64),
    Str(String),
}

impl Stat {
    fn json(&self) -> serde_json::Value {
        match self {
            // Exact in JSON (Python reads big integers whole); past 64 bits, as text, which
            // then disagrees with every other system's figure instead of passing as a wrong
            // number.
            Stat::Int(i) => serde_json::Number::from_i128(*i).map_or_else(
                || serde_json::json!(i.to_string()),
                serde_json::Value::Number,
            ),
            Stat::Float(f) => serde_json::json!(f),
            Stat::Str(s) => serde_json::json!(s),
        }
    }

    /// Folds `other` into `self` as statistic `name`: minima, maxima, or sums.
    fn fold(&mut self, name: &str, other: Stat) {
        let replace = if name.ends_with("_min") {
            other.less(self)
        } else if name.ends_with("_max") {
            self.less(&other)
        } else {
            match (&mut *self, &other) {
                (Stat::Int(a), Stat::Int(b)) => *a += b,
                (Stat::Float(a), Stat::Float(b)) => *a += b,
                // Statistics of one name always have one type (one column's).
                _ => {}
            }
            false
        };
        if replace {
            *self = other;
        }
    }

    fn less(&self, other: &Stat) -> bool {
        match (self, other) {
            (Stat::Int(a), Stat::Int(b)) => a < b,
            (Stat::Float(a), Stat::Float(b)) => a < b,
            (Stat::Str(a), Stat::Str(b)) => a < b,
            _ => false,
        }
    }
}

/// What a run returned: rows, and per column (see the module docs) its statistics.
type Stats = std::collections::BTreeMap<String, Stat>;

fn count_stats(rows: u64) -> Stats {
    Stats::from([("rows".to_string(), Stat::Int(rows.into()))])
}

/// Folds `more` into `total`.
fn combine(total: &mut Stats, more: Stats) {
    for (k, v) in more {
        match total.get_mut(&k) {
            Some(t) => t.fold(&k, v),
            None => {
                total.insert(k, v);
            }
        }
    }
}

/// The statistics of one batch's columns (int64, float64 and UTF-8 ones).
fn batch_stats(b: &RecordBatch) -> volley::Result<Stats> {
    use volley::arrow::compute;
    let mut stats = count_stats(b.num_rows() as u64);
    if b.num_rows() == 0 {
        return Ok(stats);
    }
    let unsupported = |name: &str| {
        volley::Error::InvalidArgument(format!("column {name:?}: no statistics for its type"))
    };
    for (field, column) in b.schema().fields().iter().zip(b.columns()) {
        let name = field.name();
        let any = column.as_any();
        let (suffix, total, low, high) = if let Some(a) = any.downcast_ref::<Int64Array>() {
            let sum: i128 = a.iter().flatten().map(i128::from).sum();
            (
                "sum",
                Stat::Int(sum),
                compute::min(a).map(|v| Stat::Int(v.into())),
                compute::max(a).map(|v| Stat::Int(v.into())),
            )
        } else if let Some(a) = any.downcast_ref::<Float64Array>() {
            (
                "sum",
                Stat::Float(compute::sum(a).unwrap_or(0.0)),
                compute::min(a).map(Stat::Float),
                compute::max(a).map(Stat::Float),
            )
        } else if let Some(a) = any.downcast_ref::<StringArray>() {
            // UTF-8 length in characters: the bytes that do not continue a character.
            let offsets = a.value_offsets();
            let bytes = &a.value_data()[offsets[0] as usize..offsets[a.len()] as usize];
            let chars = bytes.iter().filter(|&&c| c & 0xC0 != 0x80).count();
            let text = |s: &str| Stat::Str(s.to_string());
            (
                "len",
                Stat::Int(chars as i128),
                compute::min_string(a).map(text),
                compute::max_string(a).map(text),
            )
        } else {
            return Err(unsupported(name));
        };
        stats.insert(format!("{name}_{suffix}"), total);
        for (suffix, v) in [("min", low), ("max", high)] {
            if let Some(v) = v {
                stats.insert(format!("{name}_{suffix}"), v);
            }
        }
    }
    Ok(stats)
}

/// `stats` as a one-row batch (what the statistics UDF returns).
fn stats_batch(stats: &Stats) -> volley::Result<RecordBatch> {
    use volley::arrow::array::ArrayRef;
    let mut columns = Vec::with_capacity(stats.len());
    for (k, v) in stats {
        let column: ArrayRef = match v {
            Stat::Int(i) => Arc::new(Int64Array::from(vec![i64::try_from(*i).map_err(|_| {
                volley::Error::InvalidArgument(format!("statistic {k:?} = {i} passes 64 bits"))
            })?])),
            Stat::Float(f) => Arc::new(Float64Array::from(vec![*f])),
            Stat::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        };
        columns.push((k.clone(), column));
    }
    Ok(RecordBatch::try_from_iter(columns)?)
}

/// The statistics of a whole result from the one-row batches of the statistics UDF (in any
/// order and batching: sums add up, minima and maxima fold).
fn fold_batches(batches: &[RecordBatch]) -> volley::Result<Stats> {
    let mut total = Stats::new();
    for b in batches {
        for row in 0..b.num_rows() {
            let mut one = Stats::new();
            for (field, column) in b.schema().fields().iter().zip(b.columns()) {
                if column.is_null(row) {
                    continue;
                }
                let any = column.as_any();
                let v = if let Some(a) = any.downcast_ref::<Int64Array>() {
                    Stat::Int(a.value(row).into())
                } else if let Some(a) = any.downcast_ref::<Float64Array>() {
                    Stat::Float(a.value(row))
                } else if let Some(a) = any.downcast_ref::<StringArray>() {
                    Stat::Str(a.value(row).to_string())
                } else {
                    return Err(volley::Error::InvalidArgument(format!(
                        "statistic {:?} has an unexpected type",
                        field.name()
                    )));
                };
                one.insert(field.name().clone(), v);
            }
            combine(&mut total, one);
        }
    }
    Ok(total)
}

/// The statistics UDF over `batch_rows`-row batches of every column of `path`.
fn scan(path: &str) -> volley::Result<Stats> {
    let batches = data::read_parquet(&[path])?
        .map_batches("stats", Some(SCAN_BATCH_ROWS), |b| {
            Ok(stats_batch(&batch_stats(&b)?)?)
        })
        .take_all()?;
    fold_batches(&batches)
}

/// Rows of a batch per UDF call in the scan pipelines (as `pipelines.py`'s).
const SCAN_BATCH_ROWS: usize = 1024;

fn run(pipeline: &str, dir: &str, out: &str) -> volley::Result<Option<Stats>> {
    let big = format!("{dir}/big");
    let small = format!("{dir}/small");
    Ok(match pipeline {
        "count" => Some(count_stats(data::read_parquet(&[&big])?.count()?)),
        "small_count" => Some(count_stats(data::read_parquet(&[&small])?.count()?)),
        "full_scan" => Some(scan(&big)?),
        "small_files_scan" => Some(scan(&small)?),
        "map_write" => {
            data::read_parquet(&[&big])?
                .map_batches("keep_and_double", None, |b| {
                    use volley::arrow::compute::kernels::{cmp, numeric};
                    let value = b.column_by_name("value").ok_or_else(|| {
                        volley::Error::InvalidArgument("no column \"value\"".into())
                    })?;
                    let keep = cmp::gt(value, &Float64Array::new_scalar(0.5))?;
                    let b = volley::arrow::compute::filter_record_batch(&b, &keep)?;
                    let i = b.schema().index_of("value")?;
                    let mut cols = b.columns().to_vec();
                    cols[i] = numeric::mul(&cols[i], &Float64Array::new_scalar(2.0))?;
                    Ok(RecordBatch::try_new(b.schema(), cols)?)
                })
                .write_parquet(out)?;
            None
        }
        "map_native" => {
            data::read_parquet(&[&big])?
                .filter(col("value").gt(lit(0.5)))?
                .with_column("value", col("value") * lit(2.0))?
                .write_parquet(out)?;
            None
        }
        "groupby" => {
            let groups = data::read_parquet(&[&big])?
                .groupby(&["key"])
                .sum("value")?
                .take_all()?;
            let mut total = Stats::new();
            for g in &groups {
                if g.num_columns() != 2 {
                    return Err(volley::Error::InvalidArgument(format!(
                        "groupby returned {} columns, expected 2",
                        g.num_columns()
                    )));
                }
                let key = g.schema().index_of("key")?;
                let named = RecordBatch::try_from_iter([
                    ("key", g.column(key).clone()),
                    ("sum", g.column(1 - key).clone()),
                ])?;
                combine(&mut total, batch_stats(&named)?);
            }
            Some(total)
        }
        "sort_write" => {
            data::read_parquet(&[&big])?
                .sort(&["value"], false)?
                .write_parquet(out)?;
            None
        }
        other => {
            return Err(volley::Error::InvalidArgument(format!(
                "unknown pipeline {other}"
            )));
        }
    })
}

/// The arguments of `run`.
struct RunArgs {
    pipeline: String,
    dir: String,
    runs: usize,
    json: bool,
    /// No warm-up: one run, reported as soon as its result is in.
    cold: bool,
    /// Where write pipelines write; `None`: `<dir>/out-<pipeline>`, removed after each run.
    out: Option<String>,
}

impl RunArgs {
    fn parse(args: &[String]) -> Result<RunArgs, String> {
        let mut positional = Vec::new();
        let (mut json, mut cold, mut out) = (false, false, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--json" => json = true,
                "--cold" => cold = true,
                "--out" => out = Some(it.next().ok_or("--out needs a directory")?.clone()),
                flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
                _ => positional.push(a.clone()),
            }
        }
        let (pipeline, dir, runs) = match positional.as_slice() {
            [p, d] => (p.clone(), d.clone(), 3),
            [p, d, r] => (
                p.clone(),
                d.clone(),
                r.parse::<usize>()
                    .ok()
                    .filter(|&r| r > 0)
                    .ok_or_else(|| format!("runs must be a positive integer, got {r}"))?,
            ),
            _ => return Err("run needs <pipeline> <dir> [runs]".into()),
        };
        Ok(RunArgs {
            pipeline,
            dir,
            runs: if cold { 1 } else { runs },
            json,
            cold,
            out,
        })
    }

    /// Prints what the runs gave.
    fn report(&self, times: &[f64], stats: Option<&Stats>) {
        if self.json {
            let stats = stats.map(|s| {
                s.iter()
                    .map(|(k, v)| (k.clone(), v.json()))
                    .collect::<serde_json::Map<_, _>>()
            });
            let line = serde_json::json!({
                "pipeline": self.pipeline,
                "times_s": times,
                "stats": stats,
                "peak_rss_mib": peak_rss_mib(),
            });
            println!("{line}");
        } else {
            let mut sorted = times.to_vec();
            sorted.sort_by(f64::total_cmp);
            let rows = stats
                .and_then(|s| s.get("rows"))
                .map_or("written".to_string(), |r| r.json().to_string());
            println!(
                "{} median={:.3} min={:.3} max={:.3} peak_rss_mib={} rows={rows}",
                self.pipeline,
                sorted[sorted.len() / 2],
                sorted[0],
                sorted[sorted.len() - 1],
                peak_rss_mib(),
            );
        }
        let _ = std::io::stdout().flush();
    }
}

fn run_command(args: &RunArgs) -> volley::Result<()> {
    volley::init(volley::Config::default())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| format!("{}/out-{}", args.dir, args.pipeline));
    let once = || -> volley::Result<(f64, Option<Stats>)> {
        let _ = std::fs::remove_dir_all(&out);
        let t = Instant::now();
        let result = run(&args.pipeline, &args.dir, &out);
        let secs = t.elapsed().as_secs_f64();
        if args.out.is_none() {
            let _ = std::fs::remove_dir_all(&out);
        }
        Ok((secs, result?))
    };
    let measured = if args.cold {
        once().map(|(secs, stats)| {
            args.report(&[secs], stats.as_ref());
        })
    } else {
        // One warm-up, then the measured runs.
        once().and_then(|(_, warm_up)| {
            let mut times = Vec::with_capacity(args.runs);
            let mut stats = warm_up;
            for _ in 0..args.runs {
                let (secs, s) = once()?;
                times.push(secs);
                stats = s;
            }
            args.report(&times, stats.as_ref());
            Ok(())
        })
    };
    volley::shutdown();
    measured
}

/// Sizes of the generated dataset.
struct GenerateArgs {
    dir: std::path::PathBuf,
    big_files: u64,
    big_rows: u64,
    small_files: u64,
    small_rows: u64,
}

impl GenerateArgs {
    fn parse(args: &[String]) -> Result<GenerateArgs, String> {
        let [dir, options @ ..] = args else {
            return Err("generate needs <dir>".into());
        };
        let mut g = GenerateArgs {
            dir: dir.into(),
            big_files: 20,
            big_rows: 1_000_000,
            small_files: 2000,
            small_rows: 1000,
        };
        for pair in options.chunks(2) {
            let [flag, value] = pair else {
                return Err(format!("{} needs a value", pair[0]));
            };
            let n = value
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag} needs a positive integer, got {value}"))?;
            match flag.as_str() {
                "--big-files" => g.big_files = n,
                "--big-rows" => g.big_rows = n,
                "--small-files" => g.small_files = n,
                "--small-rows" => g.small_rows = n,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(g)
    }
}

/// Starts Volley, runs one trivial task, reports the time from `init` to its result, then
/// stays idle for `idle` before shutting down.
fn startup_command(idle: Duration) -> volley::Result<()> {
    let t = Instant::now();
    volley::init(volley::Config::default())?;
    let one = volley::task(|| Ok(1u64));
    let result = volley::get(&one.remote(())?);
    let secs = t.elapsed().as_secs_f64();
    if let Err(e) = result {
        volley::shutdown();
        return Err(e);
    }
    println!("{{\"init_to_first_task_s\":{secs}}}");
    let _ = std::io::stdout().flush();
    std::thread::sleep(idle);
    volley::shutdown();
    Ok(())
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("data_bench: {msg}");
    ExitCode::from(1)
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("data_bench: {msg}\n{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => {
            let g = match GenerateArgs::parse(&args[2..]) {
                Ok(g) => g,
                Err(e) => return usage(e),
            };
            let t = Instant::now();
            if let Err(e) = write_files(&g.dir.join("big"), g.big_files, g.big_rows)
                .and_then(|_| write_files(&g.dir.join("small"), g.small_files, g.small_rows))
            {
                return fail(e);
            }
            println!(
                "generated {} in {:.1} s",
                g.dir.display(),
                t.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Some("run") => match RunArgs::parse(&args[2..]) {
            Ok(r) => match run_command(&r) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("{}: {e}", r.pipeline)),
            },
            Err(e) => usage(e),
        },
        Some("startup") => {
            let idle = match args.get(2).map(|s| s.parse::<f64>()) {
                None => 10.0,
                Some(Ok(s)) if s >= 0.0 && s.is_finite() => s,
                Some(_) => return usage("idle_seconds must be a number >= 0"),
            };
            match startup_command(Duration::from_secs_f64(idle)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("startup: {e}")),
            }
        }
        _ => usage("expected generate, run or startup"),
    }
}

//! Volley Data pipelines on the benchmark dataset, one pipeline per process.
//!
//! ```text
//! data_bench generate <dir> [--big-files N] [--big-rows N] [--small-files N] [--small-rows N]
//!     # <dir>/big: 20 files x 1M rows; <dir>/small: 2,000 files x 1,000 rows (the defaults)
//! data_bench run <pipeline> <dir> [runs] [--json] [--out <out_dir>]
//!     # prints: <pipeline> median=<s> min=<s> max=<s> peak_rss_mib=<n> rows=<n>
//!     # --json: one JSON object instead: pipeline, times_s (the measured runs), rows, sum,
//!     #         peak_rss_mib
//!     # --out: write pipelines write there and the last run's output is kept (default:
//!     #        <dir>/out-<pipeline>, removed after each run)
//! data_bench startup [idle_seconds]
//!     # init -> first task result; prints {"init_to_first_task_s": <s>} and stays idle
//!     # (default 10 s) before shutting down, so a parent can sample the idle memory floor
//! ```
//! Pipelines: count, full_scan, small_files_scan, map_write, groupby, sort_write.
//! Rows: `id` int64 sequential, `value` float64 uniform [0,1), `key` string of 1,000 distinct
//! values, `text` 100 random alphanumeric characters; snappy; one row group per file;
//! deterministic (seeded).
//!
//! `rows` is what the pipeline returned (rows counted, scanned, written, or groups); `sum`
//! checks the content where the pipeline returns data: the sum of `id` over a scan, the sum
//! of the per-key sums of a groupby (`null` otherwise). `benches/compare/run.py` compares
//! both with the same pipelines run by Ray Data, Daft and pyarrow.

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

/// A content check beside the row count: integer sums stay exact.
#[derive(Debug, Clone, Copy)]
enum Sum {
    Int(i128),
    Float(f64),
}

impl std::fmt::Display for Sum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sum::Int(s) => write!(f, "{s}"),
            Sum::Float(s) => write!(f, "{s}"),
        }
    }
}

/// What one run of a pipeline returned.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    rows: u64,
    sum: Option<Sum>,
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> volley::Result<&'a T> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            volley::Error::InvalidArgument(format!(
                "column {name:?} is missing or of an unexpected type"
            ))
        })
}

/// Scans every column of `path`, counting rows and summing `id`.
fn scan(path: &str) -> volley::Result<Outcome> {
    let (mut rows, mut ids) = (0u64, 0i128);
    for b in data::read_parquet(&[path])?.iter_batches()? {
        let b = b?;
        rows += b.num_rows() as u64;
        ids += column::<Int64Array>(&b, "id")?
            .iter()
            .flatten()
            .map(i128::from)
            .sum::<i128>();
    }
    Ok(Outcome {
        rows,
        sum: Some(Sum::Int(ids)),
    })
}

fn run(pipeline: &str, dir: &str, out: &str) -> volley::Result<Outcome> {
    let big = format!("{dir}/big");
    let small = format!("{dir}/small");
    let rows_only = |rows| Outcome { rows, sum: None };
    Ok(match pipeline {
        "count" => rows_only(data::read_parquet(&[&big])?.count()?),
        "full_scan" => scan(&big)?,
        "small_files_scan" => scan(&small)?,
        "map_write" => rows_only(
            data::read_parquet(&[&big])?
                .map_batches("double", None, |b| {
                    let v = b.column(1);
                    let doubled = volley::arrow::compute::kernels::numeric::mul(
                        v,
                        &Float64Array::new_scalar(2.0),
                    )?;
                    let mut cols = b.columns().to_vec();
                    cols[1] = doubled;
                    Ok(RecordBatch::try_new(b.schema(), cols)?)
                })
                .filter(col("value").gt(lit(0.5)))?
                .write_parquet(out)?
                .rows(),
        ),
        "groupby" => {
            let groups = data::read_parquet(&[&big])?
                .groupby(&["key"])
                .sum("value")?
                .take_all()?;
            let mut sum = 0.0;
            for g in &groups {
                let i = (0..g.num_columns())
                    .find(|&i| g.schema().field(i).name() != "key")
                    .ok_or_else(|| {
                        volley::Error::InvalidArgument("groupby returned no sum column".into())
                    })?;
                let sums = g
                    .column(i)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| {
                        volley::Error::InvalidArgument("groupby sum is not float64".into())
                    })?;
                sum += sums.iter().flatten().sum::<f64>();
            }
            Outcome {
                rows: groups.iter().map(|b| b.num_rows() as u64).sum(),
                sum: Some(Sum::Float(sum)),
            }
        }
        "sort_write" => rows_only(
            data::read_parquet(&[&big])?
                .sort(&["value"], false)?
                .write_parquet(out)?
                .rows(),
        ),
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
    /// Where write pipelines write; `None`: `<dir>/out-<pipeline>`, removed after each run.
    out: Option<String>,
}

impl RunArgs {
    fn parse(args: &[String]) -> Result<RunArgs, String> {
        let mut positional = Vec::new();
        let (mut json, mut out) = (false, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--json" => json = true,
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
            runs,
            json,
            out,
        })
    }
}

fn run_command(args: &RunArgs) -> volley::Result<()> {
    volley::init(volley::Config::default())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| format!("{}/out-{}", args.dir, args.pipeline));
    let once = || -> volley::Result<(f64, Outcome)> {
        let _ = std::fs::remove_dir_all(&out);
        let t = Instant::now();
        let result = run(&args.pipeline, &args.dir, &out);
        let secs = t.elapsed().as_secs_f64();
        if args.out.is_none() {
            let _ = std::fs::remove_dir_all(&out);
        }
        Ok((secs, result?))
    };
    // One warm-up, then the measured runs.
    let measured = once().and_then(|(_, warm_up)| {
        let mut times = Vec::with_capacity(args.runs);
        let mut outcome = warm_up;
        for _ in 0..args.runs {
            let (secs, o) = once()?;
            times.push(secs);
            outcome = o;
        }
        Ok((times, outcome))
    });
    volley::shutdown();
    let (mut times, outcome) = measured?;
    if args.json {
        let times: Vec<String> = times.iter().map(f64::to_string).collect();
        let sum = outcome.sum.map_or("null".to_string(), |s| s.to_string());
        println!(
            "{{\"pipeline\":\"{}\",\"times_s\":[{}],\"rows\":{},\"sum\":{sum},\"peak_rss_mib\":{}}}",
            args.pipeline,
            times.join(","),
            outcome.rows,
            peak_rss_mib()
        );
    } else {
        times.sort_by(f64::total_cmp);
        println!(
            "{} median={:.3} min={:.3} max={:.3} peak_rss_mib={} rows={}",
            args.pipeline,
            times[times.len() / 2],
            times[0],
            times[times.len() - 1],
            peak_rss_mib(),
            outcome.rows
        );
    }
    Ok(())
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

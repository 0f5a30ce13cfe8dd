//! Volley Data pipelines on the benchmark dataset, one pipeline per process.
//!
//! ```text
//! data_bench generate <dir>            # <dir>/big: 20 files x 1M rows; <dir>/small: 2,000 x 1,000
//! data_bench run <pipeline> <dir> [runs] # prints: <pipeline> median=<s> min=<s> max=<s> peak_rss_mib=<n> rows=<n>
//! ```
//! Pipelines: count, full_scan, small_files_scan, map_write, groupby, sort_write.
//! Rows: `id` int64 sequential, `value` float64 uniform [0,1), `key` string of 1,000 distinct
//! values, `text` 100 random alphanumeric characters; snappy; one row group per file;
//! deterministic (seeded).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use volley::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use volley::data::{self, col, lit};
use volley::parquet::arrow::ArrowWriter;
use volley::parquet::basic::Compression;
use volley::parquet::file::properties::WriterProperties;

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

fn run(pipeline: &str, dir: &str) -> volley::Result<u64> {
    let big = format!("{dir}/big");
    let small = format!("{dir}/small");
    let out = format!("{dir}/out-{pipeline}");
    let _ = std::fs::remove_dir_all(&out);
    let rows = match pipeline {
        "count" => data::read_parquet(&[&big])?.count()?,
        "full_scan" => {
            let mut n = 0;
            for b in data::read_parquet(&[&big])?.iter_batches()? {
                n += b?.num_rows() as u64;
            }
            n
        }
        "small_files_scan" => {
            let mut n = 0;
            for b in data::read_parquet(&[&small])?.iter_batches()? {
                n += b?.num_rows() as u64;
            }
            n
        }
        "map_write" => data::read_parquet(&[&big])?
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
            .write_parquet(&out)?
            .rows(),
        "groupby" => {
            let groups = data::read_parquet(&[&big])?
                .groupby(&["key"])
                .sum("value")?
                .take_all()?;
            groups.iter().map(|b| b.num_rows() as u64).sum()
        }
        "sort_write" => data::read_parquet(&[&big])?
            .sort(&["value"], false)?
            .write_parquet(&out)?
            .rows(),
        other => {
            return Err(volley::Error::InvalidArgument(format!(
                "unknown pipeline {other}"
            )));
        }
    };
    let _ = std::fs::remove_dir_all(&out);
    Ok(rows)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") if args.len() == 3 => {
            let dir = std::path::Path::new(&args[2]);
            let t = Instant::now();
            if let Err(e) = write_files(&dir.join("big"), 20, 1_000_000)
                .and_then(|_| write_files(&dir.join("small"), 2000, 1000))
            {
                eprintln!("data_bench: {e}");
                return ExitCode::from(1);
            }
            println!(
                "generated {} in {:.1} s",
                dir.display(),
                t.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Some("run") if args.len() >= 4 => {
            let runs: usize = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(3);
            if let Err(e) = volley::init(volley::Config::default()) {
                eprintln!("data_bench: {e}");
                return ExitCode::from(1);
            }
            let mut times = Vec::new();
            let mut rows = 0;
            // One warm-up, then the measured runs.
            for i in 0..=runs {
                let t = Instant::now();
                match run(&args[2], &args[3]) {
                    Ok(r) => rows = r,
                    Err(e) => {
                        eprintln!("data_bench: {}: {e}", args[2]);
                        volley::shutdown();
                        return ExitCode::from(1);
                    }
                }
                if i > 0 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            volley::shutdown();
            times.sort_by(f64::total_cmp);
            println!(
                "{} median={:.3} min={:.3} max={:.3} peak_rss_mib={} rows={rows}",
                args[2],
                times[times.len() / 2],
                times[0],
                times[times.len() - 1],
                peak_rss_mib()
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: data_bench generate <dir> | data_bench run <pipeline> <dir> [runs]");
            ExitCode::from(2)
        }
    }
}

//! `s3://` URLs against a real S3-compatible server (moto) started on loopback by the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use volley::arrow::array::{Array, Int64Array};
use volley::data::{self, col, lit};

use crate::start;

/// A moto server on 127.0.0.1; killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VOLLEY_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/moto_server");
    PathBuf::from(root)
}

impl Moto {
    fn start() -> Moto {
        let bin = moto_binary();
        assert!(
            bin.exists(),
            "{} not found: `make test` installs moto[server] into .venv (or set VOLLEY_MOTO_SERVER)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto { child, port };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// Creates a bucket with a plain `PUT /<bucket>` (moto does not check signatures).
    fn create_bucket(&self, name: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.port).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points the S3 client at `moto`.
fn use_moto(moto: &Moto) {
    // SAFETY: nextest runs each test in its own process; nothing else reads the environment
    // concurrently in this test.
    unsafe {
        std::env::set_var("AWS_ENDPOINT", format!("http://127.0.0.1:{}", moto.port));
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
}

/// A file larger than an upload part goes to S3 as a multipart upload and reads back whole.
#[test]
fn files_larger_than_a_part_are_multipart_uploads() {
    let moto = Moto::start();
    moto.create_bucket("volley-big");
    use_moto(&moto);
    let _rt = start();
    let b = crate::data::noise(300_000);
    let ds = data::from_batches(vec![b.clone()]).unwrap();
    for (format, url) in [
        ("parquet", "s3://volley-big/pq"),
        ("csv", "s3://volley-big/csv"),
    ] {
        let w = match format {
            "parquet" => ds.write_parquet(url),
            _ => ds.write_csv(url),
        }
        .unwrap();
        assert_eq!(w.files.len(), 1, "{:?}", w.files);
        assert!(w.bytes() > 16 << 20, "{format}: {} bytes", w.bytes());
        let back = match format {
            "parquet" => data::read_parquet(&[url]),
            _ => data::read_csv(&[url]),
        }
        .unwrap()
        .take_all()
        .unwrap();
        let rows: usize = back.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 300_000, "{format}");
        let text = volley::arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
        assert_eq!(text.column(1).as_ref(), b.column(1).as_ref(), "{format}");
    }
}

#[test]
fn parquet_reads_and_writes_s3_urls() {
    let moto = Moto::start();
    moto.create_bucket("volley-test");
    use_moto(&moto);
    let _rt = start();
    let written = data::range(100_000)
        .unwrap()
        .write_parquet("s3://volley-test/in")
        .unwrap();
    assert_eq!(written.rows(), 100_000);
    assert!(
        written
            .files
            .iter()
            .all(|f| f.path.starts_with("s3://volley-test/in/part-")),
        "{:?}",
        written.files
    );

    let ds = data::read_parquet(&["s3://volley-test/in"]).unwrap();
    assert_eq!(ds.count().unwrap(), 100_000);
    let out = ds
        .filter(col("id").lt(lit(1000i64)))
        .unwrap()
        .with_column("twice", col("id") * lit(2i64))
        .unwrap()
        .write_parquet("s3://volley-test/out")
        .unwrap();
    assert_eq!(out.rows(), 1000);
    let back = data::read_parquet(&["s3://volley-test/out/*.parquet"])
        .unwrap()
        .take_all()
        .unwrap();
    let twice: i64 = back
        .iter()
        .map(|b| {
            b.column_by_name("twice")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .iter()
                .flatten()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(twice, (0..1000i64).map(|i| i * 2).sum::<i64>());
    match data::read_parquet(&["s3://volley-test/nothing-here"]) {
        Err(volley::Error::NotFound(m)) => {
            assert!(m.contains("s3://volley-test/nothing-here"), "{m}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn an_unreachable_endpoint_is_an_error_naming_the_url() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // SAFETY: nextest runs each test in its own process.
    unsafe {
        std::env::set_var("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    let _rt = start();
    match data::read_parquet(&["s3://volley-test/in"]) {
        Err(e @ volley::Error::Io { .. }) => {
            let m = e.to_string();
            assert!(m.contains("s3://volley-test/in"), "{m}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

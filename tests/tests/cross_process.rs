//! A segment written by the store is mapped and read zero-copy by a separate process.

use std::process::Command;
use std::sync::Arc;

use volley::Block;
use volley::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};

#[test]
fn another_process_maps_a_store_segment_zero_copy() {
    let mut c = volley::Config::builtin();
    c.num_cpus = Some(2.0);
    c.object_store_memory = Some(512 << 20);
    volley::init(c).unwrap();
    let n = 2_000_000i64;
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(0..n)) as _),
        (
            "value",
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 * 0.5),
            )) as _,
        ),
        (
            "key",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("k{}", i % 1000)),
            )) as _,
        ),
    ])
    .unwrap();
    let block = Block::try_new(
        batch.schema(),
        vec![batch.slice(0, 1_000_000), batch.slice(1_000_000, 1_000_000)],
    )
    .unwrap();
    let r = volley::put(block).unwrap();
    let seg = volley::object_segment(&r).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shm-reader"))
        .arg(&seg.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let expected_sum: i64 = (0..n).sum();
    assert_eq!(
        stdout.trim(),
        format!("rows={n} sum={expected_sum} zero_copy=true")
    );
    // The reader's mapping does not keep the segment: freeing the object removes the file.
    drop(r);
    assert!(!seg.path.exists());
    volley::shutdown();
}

#[test]
fn a_missing_segment_is_a_clear_error_in_the_reader() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm-reader"))
        .arg("/dev/shm/volley-does-not-exist")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mapping shared-memory segment /dev/shm/volley-does-not-exist"),
        "{err}"
    );
}

/// SIGTERM to a program running a node shuts it down cleanly: the process dies of the
/// signal, and its segments and session directory are gone (SIGKILL leaves them for the
/// next node's sweep).
#[test]
fn sigterm_shuts_a_node_down_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let base = std::env::temp_dir().join(format!("volley-sigterm-test-{}", std::process::id()));
    let (temp, shm) = (base.join("temp"), base.join("shm"));
    std::fs::create_dir_all(&temp).unwrap();
    std::fs::create_dir_all(&shm).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigterm-node"))
        .arg(&temp)
        .arg(&shm)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let session = std::path::PathBuf::from(line.trim());
    assert!(session.is_dir(), "the node's session directory {session:?}");
    let segments = || std::fs::read_dir(&shm).unwrap().count();
    assert!(segments() > 0, "the node holds a segment while it runs");
    // SAFETY: kill(2) of the child this test started and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "it dies of the signal: {status:?}"
    );
    assert_eq!(segments(), 0, "segments left after SIGTERM");
    assert!(
        !session.exists(),
        "the session directory is left after SIGTERM"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

use std::time::Duration;

use volley::Error;

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

use crate::shm_segments;

#[test]
fn shutdown_leaves_no_threads_files_or_segments() {
    let _lock = crate::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = thread_count();
    let mut c = volley::Config::builtin();
    c.num_cpus = Some(4.0);
    c.object_store_memory = Some(64 << 20);
    volley::init(c).unwrap();
    let ctx = volley::get_runtime_context().unwrap();
    let prefix = format!("volley-{}-", ctx.node_id);
    // Work that starts threads, segments and spill files.
    let f = volley::task(|x: u64| Ok(x * 2));
    let refs: Vec<_> = (0..1000).map(|i| f.remote((i,)).unwrap()).collect();
    volley::get_all(&refs, None).unwrap();
    let a = volley::actor(|| 0u64).max_concurrency(3).spawn().unwrap();
    volley::get(&a.call(|v: &mut u64| Ok(*v)).unwrap()).unwrap();
    let big: Vec<_> = (0..6)
        .map(|i| volley::put(vec![i as u8; 16 << 20]).unwrap())
        .collect();
    let seg = volley::object_segment(&big[5]).unwrap();
    assert!(seg.path.exists());
    assert!(volley::object_store_stats().unwrap().spilled_objects_total > 0);
    // A running task that only stops when cancelled, and a task blocked in `get` on its
    // output: shutdown cancels both and does not hang.
    let never = volley::task(|| -> volley::TaskResult<u8> {
        while !volley::is_cancelled() {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(0)
    })
    .num_cpus(0.0);
    let pending = never.remote(()).unwrap();
    let waiter =
        volley::task(|r: Vec<volley::ObjectRef<u8>>| Ok(volley::get(&r[0]).is_err())).num_cpus(0.0);
    let _w = waiter.remote((vec![pending.clone()],)).unwrap();
    assert!(thread_count() > before);
    assert!(ctx.session_dir.exists());
    drop((refs, big, a));
    volley::shutdown();
    assert!(!ctx.session_dir.exists(), "session dir left behind");
    assert_eq!(
        shm_segments(&prefix),
        0,
        "shared-memory segments left behind"
    );
    assert!(!seg.path.exists());
    assert_eq!(thread_count(), before, "threads left behind");
    assert!(matches!(volley::put(1u8), Err(Error::NotInitialized)));
}

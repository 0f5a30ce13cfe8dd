//! A Rust program with a node and objects in shared memory, for the SIGTERM test: it
//! prints its session directory once ready, then waits to be signalled.

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let (temp, shm) = (args.next(), args.next());
    let (Some(temp), Some(shm)) = (temp, shm) else {
        eprintln!("usage: sigterm-node TEMP_DIR SHM_DIR");
        std::process::exit(2);
    };
    let mut c = volley::Config::builtin();
    c.num_cpus = Some(1.0);
    c.temp_dir = PathBuf::from(temp);
    c.shm_dir = Some(PathBuf::from(shm));
    if let Err(e) = volley::init(c) {
        eprintln!("init: {e}");
        std::process::exit(1);
    }
    // An Arrow object in a shared-memory segment of its own.
    let batch = volley::arrow::array::RecordBatch::try_from_iter([(
        "id",
        std::sync::Arc::new(volley::arrow::array::Int64Array::from_iter_values(
            0..1_000_000,
        )) as _,
    )])
    .expect("batch");
    let held = volley::put(volley::Block::from(batch)).expect("put");
    let _segment = volley::object_segment(&held).expect("segment");
    let ctx = volley::get_runtime_context().expect("context");
    println!("{}", ctx.session_dir.display());
    std::thread::sleep(std::time::Duration::from_secs(60));
    drop(held);
    volley::shutdown();
}

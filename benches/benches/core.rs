//! Criterion benches of the hot paths: Volley Core (scheduler, actors, store) and the Data
//! streaming executor.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use volley::ObjectData;
use volley_benches::int_block;

fn start() {
    if !volley::is_initialized() {
        let c = volley::Config {
            object_store_memory: Some(2 << 30),
            ..Default::default()
        };
        volley::init(c).expect("init");
    }
}

fn tasks(c: &mut Criterion) {
    start();
    let nop = volley::task(|| Ok(()));
    let mut g = c.benchmark_group("tasks");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("submit_and_get_1000", |b| {
        b.iter(|| {
            let refs: Vec<_> = (0..1000).map(|_| nop.remote(()).unwrap()).collect();
            volley::get_all(&refs, None).unwrap();
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("round_trip", |b| {
        b.iter(|| volley::get(&nop.remote(()).unwrap()).unwrap())
    });
    g.finish();
}

fn actors(c: &mut Criterion) {
    start();
    let a = volley::actor(|| 0u64).spawn().unwrap();
    let mut g = c.benchmark_group("actors");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("calls_1000", |b| {
        b.iter(|| {
            let refs: Vec<_> = (0..1000)
                .map(|_| a.call(|v: &mut u64| Ok(*v)).unwrap())
                .collect();
            volley::get_all(&refs, None).unwrap();
        })
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    start();
    let mut g = c.benchmark_group("store");
    g.bench_function("put_get_small", |b| {
        b.iter(|| {
            let r = volley::put(42u64).unwrap();
            volley::get(&r).unwrap()
        })
    });
    let block = int_block(64 << 20);
    g.bench_function("put_get_64MiB_block", |b| {
        b.iter(|| {
            let r = volley::put(block.clone()).unwrap();
            volley::get(&r).unwrap().num_rows()
        })
    });
    g.throughput(Throughput::Bytes(64 << 20));
    let data = ObjectData::Arrow(block.clone());
    g.bench_function("ipc_encode_64MiB", |b| {
        b.iter(|| volley::core::object::encode_ipc(&data).unwrap().len())
    });
    g.sample_size(10);
    g.bench_function("shm_segment_64MiB", |b| {
        b.iter(|| {
            let r = volley::put(block.clone()).unwrap();
            volley::object_segment(&r).unwrap().len
        })
    });
    g.finish();
}

/// The streaming executor: a generated range through a Rust `map_batches` and a SQL filter,
/// consumed in the driver (4M rows, 32 MiB per column).
fn executor(c: &mut Criterion) {
    start();
    const ROWS: u64 = 4_000_000;
    let mut g = c.benchmark_group("executor");
    g.throughput(Throughput::Elements(ROWS));
    g.sample_size(10);
    g.bench_function("range_map_filter_4M_rows", |b| {
        b.iter(|| {
            let ds = volley::data::range(ROWS)
                .expect("range")
                .map_batches("identity", None, Ok)
                .filter_sql("id % 2 = 0")
                .expect("filter");
            let rows: usize = ds
                .take_all()
                .expect("run")
                .iter()
                .map(|b| b.num_rows())
                .sum();
            assert_eq!(rows as u64, ROWS / 2);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = tasks, actors, store, executor
}
criterion_main!(benches);

//! Criterion benches of the data plane: Arrow Flight `do_get` / `do_put` of objects between
//! a client and a server on loopback (real gRPC over TCP).
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use volley_flight::{FlightClient, MemorySource, Ticket};

/// `rows` rows of `id: int64, text: utf8` (100-byte strings), in batches of 32,768 rows.
fn object(rows: usize) -> (SchemaRef, Vec<RecordBatch>, u64) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let text = "x".repeat(100);
    let mut batches = Vec::new();
    let mut bytes = 0u64;
    for start in (0..rows).step_by(32_768) {
        let n = 32_768.min(rows - start);
        let ids = Int64Array::from_iter_values((start as i64..).take(n));
        let texts = StringArray::from_iter_values(std::iter::repeat_n(text.as_str(), n));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(texts)])
            .expect("valid batch");
        bytes += b.get_array_memory_size() as u64;
        batches.push(b);
    }
    (schema, batches, bytes)
}

fn flight(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let source = Arc::new(MemorySource::new());
    let (schema, batches, bytes) = object(600_000); // about 64 MiB
    let big = Ticket::new(&b"big"[..]);
    source.insert(big.clone(), schema.clone(), batches.clone());
    let (small_schema, small, _) = object(8);
    let tiny = Ticket::new(&b"tiny"[..]);
    source.insert(tiny.clone(), small_schema, small);
    let server = rt
        .block_on(volley_flight::serve(
            "127.0.0.1:0".parse().expect("address"),
            source.clone(),
        ))
        .expect("Flight server");
    let addr = server.local_addr();
    let client = rt
        .block_on(FlightClient::connect(addr))
        .expect("Flight client");

    let mut g = c.benchmark_group("flight");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function("do_get_64MiB", |b| {
        b.iter(|| {
            let (_, got) = rt.block_on(client.fetch(&big)).expect("fetch");
            assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 600_000);
        })
    });
    let pushed = Ticket::new(&b"pushed"[..]);
    g.bench_function("do_put_64MiB", |b| {
        b.iter(|| {
            rt.block_on(client.push(pushed.clone(), schema.clone(), batches.clone()))
                .expect("push");
            assert!(source.remove(&pushed));
        })
    });
    g.throughput(Throughput::Elements(1));
    g.sample_size(50);
    g.bench_function("do_get_round_trip_8_rows", |b| {
        b.iter(|| {
            let (_, got) = rt.block_on(client.fetch(&tiny)).expect("fetch");
            assert_eq!(got[0].num_rows(), 8);
        })
    });
    g.finish();
    drop(client);
    rt.block_on(server.shutdown()).expect("server shutdown");
}

criterion_group!(benches, flight);
criterion_main!(benches);

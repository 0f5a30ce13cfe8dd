//! Shared fixtures for this crate's tests: objects of known content, and sources that
//! misbehave on purpose (one that never ends, one that fails midway).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use futures::stream;

use crate::{Error, ObjectSource, ObjectStream, Result, Ticket};

/// `id: int64, name: utf8`.
pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]))
}

/// `rows` rows with ids from `first`, each name `name_len` bytes long.
pub(crate) fn batch(first: i64, rows: usize, name_len: usize) -> RecordBatch {
    let ids: Vec<i64> = (first..).take(rows).collect();
    let names: Vec<String> = ids
        .iter()
        .map(|id| {
            let mut name = format!("{id}-");
            while name.len() < name_len {
                name.push(char::from(b'a' + (name.len() % 26) as u8));
            }
            name
        })
        .collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .expect("valid batch")
}

/// Bytes held by a batch's buffers.
pub(crate) fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| c.get_buffer_memory_size())
        .sum()
}

/// Three batches, the middle one over 4 MiB (gRPC's default message limit).
pub(crate) fn three_batches_one_large() -> Vec<RecordBatch> {
    let large = batch(1_000, 50_000, 100);
    assert!(
        batch_bytes(&large) > 4 << 20,
        "the large batch must exceed 4 MiB"
    );
    vec![batch(0, 1_000, 10), large, batch(60_000, 10, 5)]
}

/// Serves every ticket as an endless object (capped at `cap` batches of 8192 rows, 64 KiB of
/// ids each), counting the batches it has produced.
#[derive(Debug)]
pub(crate) struct EndlessSource {
    pub(crate) produced: Arc<AtomicUsize>,
    pub(crate) cap: usize,
}

impl ObjectSource for EndlessSource {
    fn get(&self, _ticket: &Ticket) -> Result<ObjectStream> {
        let produced = Arc::clone(&self.produced);
        let ids_only = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch_schema = Arc::clone(&ids_only);
        let batches = stream::iter(0..self.cap).map(move |i| {
            produced.fetch_add(1, Ordering::SeqCst);
            let first = i64::try_from(i).unwrap_or(i64::MAX) * 8192;
            let ids = Int64Array::from_iter_values(first..first + 8192);
            Ok(RecordBatch::try_new(
                Arc::clone(&batch_schema),
                vec![Arc::new(ids)],
            )?)
        });
        Ok(ObjectStream::new(ids_only, batches.boxed()))
    }

    fn put(&self, _ticket: Ticket, _schema: SchemaRef, _batches: Vec<RecordBatch>) -> Result<()> {
        Err(Error::InvalidInput("EndlessSource takes no puts".into()))
    }
}

/// Serves every ticket as one good batch followed by a `ResourceExhausted` error, and
/// refuses every put with `ResourceExhausted`.
#[derive(Debug)]
pub(crate) struct FailingSource;

impl ObjectSource for FailingSource {
    fn get(&self, _ticket: &Ticket) -> Result<ObjectStream> {
        let batches = stream::iter(vec![
            Ok(batch(0, 10, 4)),
            Err(Error::ResourceExhausted("spill disk full".into())),
        ]);
        Ok(ObjectStream::new(schema(), batches.boxed()))
    }

    fn put(&self, _ticket: Ticket, _schema: SchemaRef, _batches: Vec<RecordBatch>) -> Result<()> {
        Err(Error::ResourceExhausted("object store full".into()))
    }
}

/// A batch with only an `id: int64` column (not [`schema`]).
pub(crate) fn ids_batch() -> RecordBatch {
    let ids_only = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(ids_only, vec![Arc::new(Int64Array::from(vec![1, 2]))])
        .expect("valid batch")
}

//! What the server serves: the [`ObjectSource`] trait, the [`ObjectStream`] it yields, and
//! [`MemorySource`], an in-memory implementation.
//!
//! # Invariants
//!
//! * An object is one Arrow schema plus a sequence of record batches, every batch having that
//!   schema's fields. The server checks this on every batch it sends and the client on every
//!   batch it pushes; a mismatch is an error, never silently corrupt data.
//! * An [`ObjectStream`] is pulled batch by batch, at the pace of the consumer: the server
//!   encodes a batch only when gRPC flow control lets it send one. Dropping the stream (the
//!   client went away) is how a source learns to stop.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};

use crate::{Error, Result, Ticket};

/// Where a [`FlightServer`](crate::FlightServer) gets and puts objects. The engine implements
/// it over its object store (shared memory, spill files); [`MemorySource`] implements it over
/// a `HashMap`.
///
/// Both methods are called on the server's async worker threads: they must return quickly.
/// Slow work (reading a spill file) belongs inside the returned stream, not in `get` itself.
pub trait ObjectSource: Send + Sync + 'static {
    /// Opens the object named `ticket` for streaming.
    ///
    /// Returns [`Error::NotFound`] if this node does not hold it. Errors yielded later by the
    /// stream reach the client as its next item.
    fn get(&self, ticket: &Ticket) -> Result<ObjectStream>;

    /// Stores an object pushed by a peer (for example a shuffle block sent to its reducer).
    ///
    /// Called only once the whole object has arrived intact. Whether an existing object with
    /// the same ticket is replaced or the put is refused is the source's policy.
    fn put(&self, ticket: Ticket, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<()>;
}

/// One object in flight: its schema, then its batches, produced one at a time.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::Int64Array;
/// use arrow::datatypes::{DataType, Field, Schema};
/// use arrow::record_batch::RecordBatch;
/// use volley_flight::ObjectStream;
///
/// # futures::executor::block_on(async {
/// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
/// let ids = Arc::new(Int64Array::from(vec![1, 2]));
/// let batch = RecordBatch::try_new(schema.clone(), vec![ids]).unwrap();
/// let object = ObjectStream::from_batches(schema.clone(), vec![batch.clone()]);
/// let (schema_back, batches) = object.try_collect().await.unwrap();
/// assert_eq!(schema_back, schema);
/// assert_eq!(batches, vec![batch]);
/// # });
/// ```
pub struct ObjectStream {
    /// The schema of every batch of the object.
    pub schema: SchemaRef,
    /// The batches, in order. Pulled lazily; never buffered whole by this crate.
    pub batches: BoxStream<'static, Result<RecordBatch>>,
}

impl ObjectStream {
    /// An object whose batches come from `batches`.
    pub fn new(schema: SchemaRef, batches: BoxStream<'static, Result<RecordBatch>>) -> Self {
        ObjectStream { schema, batches }
    }

    /// An object whose batches are already in memory.
    pub fn from_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        ObjectStream {
            schema,
            batches: stream::iter(batches.into_iter().map(Ok)).boxed(),
        }
    }

    /// Reads the whole object into memory: its schema and all its batches.
    pub async fn try_collect(self) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let batches = self.batches.try_collect().await?;
        Ok((self.schema, batches))
    }
}

impl fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStream")
            .field("schema", &self.schema)
            .field("batches", &"<stream>")
            .finish()
    }
}

/// Checks that `batch` has the object's fields; `blame` builds the error if not (who is at
/// fault depends on the side: a source's bug on the server, the caller's input on a push).
pub(crate) fn check_batch_schema(
    expected: &SchemaRef,
    batch: &RecordBatch,
    blame: fn(String) -> Error,
) -> Result<()> {
    if batch.schema_ref().fields() == expected.fields() {
        Ok(())
    } else {
        Err(blame(format!(
            "batch schema {:?} does not match the object's schema {:?}",
            batch.schema_ref().fields(),
            expected.fields()
        )))
    }
}

/// An [`ObjectSource`] holding objects in a `HashMap` behind a mutex: a put replaces any
/// object with the same ticket. Used by tests and examples, and fine wherever objects are
/// small and few.
///
/// ```
/// use std::sync::Arc;
/// use arrow::datatypes::{DataType, Field, Schema};
/// use volley_flight::{MemorySource, ObjectSource, Ticket};
///
/// let source = MemorySource::new();
/// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
/// source.put(Ticket::from(vec![1]), schema, vec![]).unwrap();
/// assert!(source.contains(&Ticket::from(vec![1])));
/// assert!(source.get(&Ticket::from(vec![2])).is_err());
/// ```
#[derive(Debug, Default)]
pub struct MemorySource {
    objects: Mutex<HashMap<Ticket, (SchemaRef, Vec<RecordBatch>)>>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an object (same as [`ObjectSource::put`], without the `Result`).
    pub fn insert(&self, ticket: Ticket, schema: SchemaRef, batches: Vec<RecordBatch>) {
        self.lock().insert(ticket, (schema, batches));
    }

    /// Removes an object; returns whether it was there.
    pub fn remove(&self, ticket: &Ticket) -> bool {
        self.lock().remove(ticket).is_some()
    }

    /// Whether an object with this ticket is stored.
    pub fn contains(&self, ticket: &Ticket) -> bool {
        self.lock().contains_key(ticket)
    }

    /// Number of objects stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no object is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The map. Every critical section is a single map operation, so the map is consistent
    /// even if a holder panicked: poisoning is ignored rather than spread to the network.
    fn lock(&self) -> MutexGuard<'_, HashMap<Ticket, (SchemaRef, Vec<RecordBatch>)>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ObjectSource for MemorySource {
    fn get(&self, ticket: &Ticket) -> Result<ObjectStream> {
        let (schema, batches) =
            self.lock()
                .get(ticket)
                .cloned()
                .ok_or_else(|| Error::NotFound {
                    ticket: ticket.clone(),
                })?;
        Ok(ObjectStream::from_batches(schema, batches))
    }

    fn put(&self, ticket: Ticket, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<()> {
        self.insert(ticket, schema, batches);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(schema: &SchemaRef, values: &[i64]) -> RecordBatch {
        let names: Vec<String> = values.iter().map(|v| format!("row-{v}")).collect();
        RecordBatch::try_new(
            Arc::clone(schema),
            vec![
                Arc::new(Int64Array::from(values.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .expect("valid batch")
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]))
    }

    #[tokio::test]
    async fn memory_source_returns_what_was_put() {
        let source = MemorySource::new();
        let schema = schema();
        let batches = vec![batch(&schema, &[1, 2]), batch(&schema, &[3])];
        let ticket = Ticket::from(vec![7]);
        source
            .put(ticket.clone(), Arc::clone(&schema), batches.clone())
            .expect("put");
        assert_eq!(source.len(), 1);
        let (schema_back, batches_back) = source
            .get(&ticket)
            .expect("get")
            .try_collect()
            .await
            .expect("collect");
        assert_eq!(schema_back, schema);
        assert_eq!(batches_back, batches);
        assert!(source.remove(&ticket));
        assert!(source.is_empty());
    }

    #[test]
    fn memory_source_unknown_ticket_is_not_found() {
        let source = MemorySource::new();
        let err = source.get(&Ticket::from(vec![0xbe, 0xef])).err();
        assert!(matches!(err, Some(Error::NotFound { ticket }) if ticket.to_string() == "beef"));
    }

    #[test]
    fn batch_schema_mismatch_is_reported_with_the_given_blame() {
        let other = Arc::new(Schema::new(vec![Field::new("y", DataType::Int64, false)]));
        let b = batch(&schema(), &[1]);
        let err = check_batch_schema(&other, &b, Error::InvalidInput);
        assert!(matches!(err, Err(Error::InvalidInput(m)) if m.contains("does not match")));
        assert!(check_batch_schema(&schema(), &b, Error::Internal).is_ok());
    }
}

//! Objects: immutable values in the store.
//!
//! An object is either an Arrow [`Block`] (one or more `RecordBatch`es sharing one schema,
//! kept as `Arc`ed buffers — zero-copy for Rust consumers) or opaque serialized bytes
//! ([`ObjectData::Bytes`]: bincode for Rust values, pickle for Python ones).
//!
//! Both kinds have one wire/segment/spill encoding: the Arrow IPC stream format
//! ([`encode_ipc`] / [`decode_ipc`]). Bytes objects travel as a one-row `LargeBinary` column
//! whose schema metadata names the format. Decoding from a [`Buffer`] is zero-copy.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayData, LargeBinaryArray, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamEncoder;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::ids::ObjectId;
use crate::error::{Error, Result};

/// Encoding of an opaque bytes object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BytesFormat {
    /// A Rust value serialized with bincode.
    Bincode,
    /// Raw bytes chosen by the caller.
    Raw,
    /// A pickled Python value (protocol 5).
    Pickle,
}

impl BytesFormat {
    fn name(self) -> &'static str {
        match self {
            BytesFormat::Bincode => "bincode",
            BytesFormat::Raw => "raw",
            BytesFormat::Pickle => "pickle",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bincode" => BytesFormat::Bincode,
            "raw" => BytesFormat::Raw,
            "pickle" => BytesFormat::Pickle,
            _ => return None,
        })
    }
}

/// Schema metadata key that marks a bytes object in its IPC encoding.
const FORMAT_KEY: &str = "volley.bytes_format";

/// The data of one object.
#[derive(Clone, Debug)]
pub enum ObjectData {
    /// Arrow record batches.
    Arrow(Block),
    /// Serialized bytes.
    Bytes {
        /// How `data` is encoded.
        format: BytesFormat,
        /// The bytes.
        data: Bytes,
    },
}

impl ObjectData {
    /// Bytes this object occupies in memory (what the store's budget counts).
    pub fn size(&self) -> u64 {
        match self {
            ObjectData::Arrow(b) => b.size_bytes(),
            ObjectData::Bytes { data, .. } => data.len() as u64,
        }
    }
}

/// One or more `RecordBatch`es with one schema: an Arrow object.
///
/// Cloning is cheap (buffers are shared). A `Block` read from the store keeps the object
/// pinned (never spilled or evicted) until the last clone is dropped.
///
/// ```
/// use std::sync::Arc;
/// use volley::arrow::array::{Int64Array, RecordBatch};
/// let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)])
///     .unwrap();
/// let block = volley::Block::from(batch);
/// assert_eq!(block.num_rows(), 3);
/// ```
#[derive(Clone)]
pub struct Block {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    keepalive: Option<Arc<dyn Any + Send + Sync>>,
}

impl Block {
    /// A block of `batches`, which must all have `schema`.
    pub fn try_new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        if let Some((i, b)) = batches
            .iter()
            .enumerate()
            .find(|(_, b)| b.schema() != schema)
        {
            return Err(Error::InvalidArgument(format!(
                "batch {i} of a block has schema {:?}, expected {:?}",
                b.schema(),
                schema
            )));
        }
        Ok(Block {
            schema,
            batches,
            keepalive: None,
        })
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The batches.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// In-memory bytes the batches hold: each allocation their buffers lie in, counted
    /// once (slices of one batch, or the buffers of an IPC decode, which all lie in one
    /// mapping, share theirs).
    pub fn size_bytes(&self) -> u64 {
        fn note(d: &ArrayData, seen: &mut HashMap<usize, usize>) {
            let nulls = d.nulls().map(|n| n.buffer());
            for b in d.buffers().iter().chain(nulls) {
                seen.insert(b.data_ptr().as_ptr() as usize, b.capacity());
            }
            for c in d.child_data() {
                note(c, seen);
            }
        }
        let mut seen = HashMap::new();
        for b in &self.batches {
            for c in b.columns() {
                note(&c.to_data(), &mut seen);
            }
        }
        seen.values().map(|&n| n as u64).sum()
    }

    /// The batches concatenated into one.
    pub fn concat(&self) -> Result<RecordBatch> {
        Ok(arrow::compute::concat_batches(&self.schema, &self.batches)?)
    }
}

impl From<RecordBatch> for Block {
    fn from(batch: RecordBatch) -> Self {
        Block {
            schema: batch.schema(),
            batches: vec![batch],
            keepalive: None,
        }
    }
}

impl PartialEq for Block {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
            && self.num_rows() == other.num_rows()
            && match (self.concat(), other.concat()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("schema", &self.schema)
            .field("batches", &self.batches.len())
            .field("rows", &self.num_rows())
            .field("bytes", &self.size_bytes())
            .finish()
    }
}

/// How a value is stored (decides whether reading pins the object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Arrow buffers shared with the store: reading pins.
    Arrow,
    /// Deserialized copies: reading does not pin.
    Bytes,
}

/// A type that can be stored as an object.
///
/// Implemented for [`Block`] (stored as Arrow) and for every `serde` type (stored as
/// bincode). `ObjectRef`s nested inside a value stay refs.
pub trait Value: Send + 'static + Sized {
    /// How the value is stored.
    const KIND: ValueKind = ValueKind::Bytes;
    /// Keeps the object pinned while this value lives (Arrow values share the store's
    /// buffers).
    fn attach_pin(&mut self, _pin: Arc<dyn Any + Send + Sync>) {}
    /// Converts into object data.
    fn into_data(self) -> Result<ObjectData>;
    /// Reads back from object data.
    fn from_data(data: &ObjectData) -> Result<Self>;
}

impl Value for Block {
    const KIND: ValueKind = ValueKind::Arrow;

    fn attach_pin(&mut self, pin: Arc<dyn Any + Send + Sync>) {
        self.keepalive = Some(pin);
    }

    fn into_data(self) -> Result<ObjectData> {
        Ok(ObjectData::Arrow(self))
    }

    fn from_data(data: &ObjectData) -> Result<Self> {
        match data {
            ObjectData::Arrow(b) => Ok(b.clone()),
            ObjectData::Bytes { format, .. } => Err(Error::InvalidArgument(format!(
                "expected an Arrow object, found a {} bytes object",
                format.name()
            ))),
        }
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Value for T {
    fn into_data(self) -> Result<ObjectData> {
        let data = bincode::serialize(&self).map_err(|e| {
            Error::InvalidArgument(format!(
                "cannot serialize {}: {e}",
                std::any::type_name::<T>()
            ))
        })?;
        Ok(ObjectData::Bytes {
            format: BytesFormat::Bincode,
            data: Bytes::from(data),
        })
    }

    fn from_data(data: &ObjectData) -> Result<Self> {
        match data {
            ObjectData::Bytes {
                format: BytesFormat::Bincode,
                data,
            } => bincode::deserialize(data).map_err(|e| {
                Error::InvalidArgument(format!(
                    "object does not deserialize as {}: {e}",
                    std::any::type_name::<T>()
                ))
            }),
            ObjectData::Bytes { format, .. } => Err(Error::InvalidArgument(format!(
                "expected a bincode object of {}, found a {} object",
                std::any::type_name::<T>(),
                format.name()
            ))),
            ObjectData::Arrow(_) => Err(Error::InvalidArgument(format!(
                "expected {}, found an Arrow object (get it as volley::Block)",
                std::any::type_name::<T>()
            ))),
        }
    }
}

thread_local! {
    /// The refs serialized so far by `serialize_holding` on this thread.
    static NESTED_REFS: RefCell<Option<Vec<ObjectId>>> = const { RefCell::new(None) };
}

/// Runs `f` (a serialization) and returns the ids of the `ObjectRef`s it serialized, having
/// taken a reference on each as it was serialized (while the value's own handle was still
/// alive), so the nested objects outlive the value. Whoever receives the ids owns those
/// references: the store adopts them when the object is sealed (and gives them back if it
/// is not), a task releases its arguments' when it ends.
pub(crate) fn serialize_holding<R>(f: impl FnOnce() -> R) -> (R, Vec<ObjectId>) {
    let prev = NESTED_REFS.with(|c| c.borrow_mut().replace(Vec::new()));
    let r = f();
    let ids = NESTED_REFS.with(|c| std::mem::replace(&mut *c.borrow_mut(), prev));
    (r, ids.unwrap_or_default())
}

/// Called while a value holding a ref to `id` is serialized (`ObjectRef`'s `Serialize`, a
/// foreign value's nested refs): when a [`serialize_holding`] collects on this thread, records
/// `id` and calls `hold` to take a reference on it in its store (while the value's own
/// handle is still alive).
pub(crate) fn note_nested_ref(id: ObjectId, hold: impl FnOnce(ObjectId)) {
    let collecting = NESTED_REFS.with(|c| match c.borrow_mut().as_mut() {
        Some(v) => {
            v.push(id);
            true
        }
        None => false,
    });
    if collecting {
        hold(id);
    }
}

/// The object as Arrow record batches: an Arrow object as it is; a bytes object as a one-row
/// `LargeBinary` column whose schema metadata names its format.
pub fn to_batches(data: &ObjectData) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    Ok(match data {
        ObjectData::Arrow(b) => (b.schema.clone(), b.batches.clone()),
        ObjectData::Bytes { format, data } => {
            let meta = HashMap::from([(FORMAT_KEY.to_string(), format.name().to_string())]);
            let schema = Arc::new(Schema::new_with_metadata(
                vec![Field::new("value", DataType::LargeBinary, false)],
                meta,
            ));
            let array = LargeBinaryArray::from_vec(vec![data.as_ref()]);
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(array)])?;
            (schema, vec![batch])
        }
    })
}

/// The inverse of [`to_batches`].
pub fn from_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<ObjectData> {
    if let Some(fmt) = schema.metadata().get(FORMAT_KEY) {
        let format = BytesFormat::parse(fmt)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown bytes format {fmt:?}")))?;
        let col = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<LargeBinaryArray>()
                    .cloned()
            })
            .filter(|c| c.len() == 1 && batches.len() == 1)
            .ok_or_else(|| {
                Error::InvalidArgument("a bytes object must be one row of one LargeBinary".into())
            })?;
        return Ok(ObjectData::Bytes {
            format,
            data: Bytes::copy_from_slice(col.value(0)),
        });
    }
    Ok(ObjectData::Arrow(Block::try_new(schema, batches)?))
}

/// Encodes an object in the Arrow IPC stream format as a list of buffers that reference the
/// object's own memory (no copy); their concatenation is the encoding.
pub fn encode_ipc(data: &ObjectData) -> Result<Vec<Buffer>> {
    let (schema, batches) = to_batches(data)?;
    let mut enc = StreamEncoder::try_new(&schema)?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(enc.encode(b)?);
    }
    out.extend(enc.finish()?);
    Ok(out)
}

/// Total length of an encoding from [`encode_ipc`].
pub fn encoded_len(buffers: &[Buffer]) -> usize {
    buffers.iter().map(|b| b.len()).sum()
}

/// Decodes an Arrow IPC stream held in `buf`; record batches reference `buf`'s memory
/// (zero-copy) wherever alignment allows.
pub fn decode_ipc(buf: Buffer) -> Result<ObjectData> {
    decode_with(StreamDecoder::new(), buf)
}

/// [`decode_ipc`] without validating the arrays' contents (UTF-8, offsets): only for an
/// encoding a Volley node wrote itself from arrays that were valid, read where nobody
/// else can have changed it (a sealed segment of the node's session, or a call's argument
/// arena, which only the node writes and only between calls). Validation reads
/// every byte, which for a worker means faulting in every page of a segment of which a
/// function may read one column.
///
/// arrow's `StreamDecoder::with_skip_validation` does not reach the record batches it
/// decodes (arrow-ipc 59.3 passes the flag to dictionaries only), so the messages are
/// walked here and each batch decoded by a `RecordBatchDecoder` that skips it. A stream
/// with dictionaries takes the validating decoder.
pub(crate) fn decode_ipc_written_by_node(buf: Buffer) -> Result<ObjectData> {
    match decode_unvalidated(&buf)? {
        Some(data) => Ok(data),
        None => decode_ipc(buf),
    }
}

/// The messages of an IPC stream decoded without validation; `None` when it holds a
/// dictionary batch.
fn decode_unvalidated(buf: &Buffer) -> Result<Option<ObjectData>> {
    use arrow::ipc::MessageHeader;
    use arrow::ipc::reader::RecordBatchDecoder;

    let bad = |what: String| Error::Internal(format!("decoding the node's IPC stream: {what}"));
    let bytes = buf.as_slice();
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or_else(|| bad(format!("truncated at byte {at}")))
    };
    let mut skip = arrow_data::UnsafeFlag::new();
    // SAFETY: the caller vouches that the node encoded these arrays from valid ones.
    unsafe { skip.set(true) };
    let no_dictionaries = HashMap::new();
    let (mut at, mut schema, mut batches) = (0, None, Vec::new());
    while at < bytes.len() {
        let mut len = word(at)?;
        at += 4;
        if len == u32::MAX {
            len = word(at)?;
            at += 4;
        }
        if len == 0 {
            break; // end of stream
        }
        let meta = bytes
            .get(at..at + len as usize)
            .ok_or_else(|| bad(format!("truncated message at byte {at}")))?;
        let message = arrow::ipc::root_as_message(meta).map_err(|e| bad(e.to_string()))?;
        at += len as usize;
        let body_len = usize::try_from(message.bodyLength())
            .ok()
            .filter(|n| at + n <= bytes.len())
            .ok_or_else(|| bad(format!("truncated body at byte {at}")))?;
        let body = buf.slice_with_length(at, body_len);
        at += body_len;
        match message.header_type() {
            MessageHeader::Schema => {
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| bad("no schema".into()))?;
                schema = Some(Arc::new(arrow::ipc::convert::fb_to_schema(fb)));
            }
            MessageHeader::RecordBatch => {
                let rb = message
                    .header_as_record_batch()
                    .ok_or_else(|| bad("no record batch".into()))?;
                let schema = schema
                    .clone()
                    .ok_or_else(|| bad("a batch before the schema".into()))?;
                let version = message.version();
                let batch =
                    RecordBatchDecoder::try_new(&body, rb, schema, &no_dictionaries, &version)?
                        .with_skip_validation(skip.clone())
                        .read_record_batch()?;
                batches.push(batch);
            }
            MessageHeader::DictionaryBatch => return Ok(None),
            t => return Err(bad(format!("unexpected message {t:?}"))),
        }
    }
    let schema = schema.ok_or_else(|| bad("no schema".into()))?;
    from_batches(schema, batches).map(Some)
}

fn decode_with(mut dec: StreamDecoder, mut buf: Buffer) -> Result<ObjectData> {
    let mut batches = Vec::new();
    while !buf.is_empty() {
        if let Some(b) = dec.decode(&mut buf)? {
            batches.push(b);
        }
    }
    dec.finish()?;
    let schema = dec
        .schema()
        .ok_or_else(|| Error::Internal("IPC stream without a schema".to_string()))?;
    from_batches(schema, batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn block() -> Block {
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from_iter_values(0..1000)) as _),
            (
                "s",
                Arc::new(StringArray::from_iter_values(
                    (0..1000).map(|i| format!("k{i}")),
                )) as _,
            ),
        ])
        .unwrap();
        Block::try_new(
            batch.schema(),
            vec![batch.slice(0, 500), batch.slice(500, 500)],
        )
        .unwrap()
    }

    fn concat(bufs: &[Buffer]) -> Buffer {
        let mut v = Vec::new();
        for b in bufs {
            v.extend_from_slice(b.as_slice());
        }
        Buffer::from_vec(v)
    }

    #[test]
    fn arrow_round_trips_through_ipc() {
        let b = block();
        let enc = encode_ipc(&ObjectData::Arrow(b.clone())).unwrap();
        match decode_ipc(concat(&enc)).unwrap() {
            ObjectData::Arrow(back) => assert_eq!(back, b),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_node_s_encodings_decode_unvalidated_and_dictionaries_still_decode() {
        let b = block();
        let enc = concat(&encode_ipc(&ObjectData::Arrow(b.clone())).unwrap());
        let ObjectData::Arrow(back) = decode_ipc_written_by_node(enc.clone()).unwrap() else {
            panic!("not arrow")
        };
        assert_eq!(back, b);
        // Zero-copy: the strings are the encoding's bytes.
        let s = back.batches()[1].column(1).to_data();
        let at = s.buffers()[1].as_ptr() as usize;
        let whole = enc.as_ptr() as usize..enc.as_ptr() as usize + enc.len();
        assert!(whole.contains(&at));
        // A stream with a dictionary batch takes arrow's own decoder.
        let dict: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> =
            (0..100).map(|i| ["a", "b"][i % 2]).collect();
        let d = Block::from(RecordBatch::try_from_iter([("d", Arc::new(dict) as _)]).unwrap());
        let enc = concat(&encode_ipc(&ObjectData::Arrow(d.clone())).unwrap());
        let ObjectData::Arrow(back) = decode_ipc_written_by_node(enc).unwrap() else {
            panic!("not arrow")
        };
        assert_eq!(back, d);
        // A truncated stream is an error, not a panic.
        let enc = concat(&encode_ipc(&ObjectData::Arrow(b)).unwrap());
        let err = decode_ipc_written_by_node(enc.slice_with_length(0, enc.len() / 2)).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn size_counts_each_allocation_once() {
        let b = block();
        let whole = b.concat().unwrap();
        // Two slices of one batch hold what the batch holds.
        let one = Block::from(block().batches()[0].clone());
        assert_eq!(b.size_bytes(), one.size_bytes());
        // Decoded from one IPC buffer, every column lies in it: its length, once.
        let enc = concat(&encode_ipc(&ObjectData::Arrow(Block::from(whole))).unwrap());
        let ObjectData::Arrow(decoded) = decode_ipc(enc.clone()).unwrap() else {
            panic!("not arrow")
        };
        assert_eq!(decoded.size_bytes(), enc.capacity() as u64);
    }

    #[test]
    fn bytes_round_trip_through_ipc() {
        let data = (1u64, "two".to_string()).into_data().unwrap();
        let enc = encode_ipc(&data).unwrap();
        let back = decode_ipc(concat(&enc)).unwrap();
        assert_eq!(
            <(u64, String)>::from_data(&back).unwrap(),
            (1, "two".to_string())
        );
    }

    #[test]
    fn type_mismatch_names_the_types() {
        let data = 5u32.into_data().unwrap();
        let err = Block::from_data(&data).unwrap_err();
        assert!(
            err.to_string().contains("expected an Arrow object"),
            "{err}"
        );
        let err = String::from_data(&ObjectData::Arrow(block())).unwrap_err();
        assert!(err.to_string().contains("alloc::string::String"), "{err}");
    }
}

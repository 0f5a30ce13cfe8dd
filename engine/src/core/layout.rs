//! Arrow data sent buffer by buffer: how a worker returns a result that shares memory with
//! its arguments without copying what it shares.
//!
//! A user function that changes one column of a batch returns the other columns as they
//! came: views of the argument's shared-memory segment, which the node already holds. The
//! IPC encoding would copy every buffer into a new segment; this layout sends each buffer
//! either as a reference into one of the call's argument segments ([`Piece::Arg`]) or as a
//! range of the body ([`Piece::Body`]), which holds only the buffers the function made
//! (inline when small, else in a segment handed over to the node). The node rebuilds the
//! batches from its own mappings of those segments: no byte of a shared buffer is copied
//! either way, and the result keeps the pages of the argument's segment alive for as long
//! as it lives.
//!
//! Only the call's own arguments may be referenced: the node holds their segments until it
//! has decoded the call's outputs, so every reference resolves.

use std::ops::Range;

use arrow::array::{Array, ArrayData, RecordBatch, RecordBatchOptions, make_array};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamEncoder;
use serde::{Deserialize, Serialize};

use crate::core::object::{Block, ObjectData, encode_ipc};
use crate::error::{Error, Result};

/// Bodies are laid out with every buffer at a multiple of this (Arrow's alignment).
const ALIGN: usize = 64;

/// Where one buffer's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Piece {
    /// In the segment of the call's argument `arg`, at `offset`.
    Arg {
        /// The argument's position in the call.
        arg: u32,
        /// Byte offset in the segment.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// In the body, at `offset`.
    Body {
        /// Byte offset in the body.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
}

/// One array (recursively: its children), without its type (the schema has it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireArray {
    len: u64,
    offset: u64,
    /// The validity bitmap: its buffer and its bit offset (its length is `len`).
    nulls: Option<(Piece, u64)>,
    buffers: Vec<Piece>,
    children: Vec<WireArray>,
}

/// One record batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireBatch {
    rows: u64,
    columns: Vec<WireArray>,
}

/// Where the body is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireBody {
    /// Inline in the message.
    Inline(Vec<u8>),
    /// In a sealed segment handed over to the node (as the worker protocol's `WireData::Handoff`).
    Handoff {
        /// The segment file.
        path: String,
    },
}

/// An Arrow object laid out buffer by buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireArrow {
    /// The schema as an Arrow IPC stream without batches.
    schema: Vec<u8>,
    batches: Vec<WireBatch>,
    /// The buffers that are in no argument segment.
    pub body: WireBody,
}

/// A layout being built: the description, and the buffers its body concatenates.
pub(crate) struct Layout {
    /// The description; its body is still empty.
    pub wire: WireArrow,
    /// The body's pieces in order, padding included.
    pub body: Vec<Buffer>,
    /// The body's length.
    pub body_len: usize,
}

/// Lays `block` out against the address ranges of the call's argument segments (`args[i]`
/// for argument `i`; `None` for arguments that were not segments). `None` when no buffer
/// lies in an argument segment: then this layout saves nothing over the IPC encoding.
pub(crate) fn lay_out(block: &Block, args: &[Option<Range<usize>>]) -> Result<Option<Layout>> {
    let mut out = Layout {
        wire: WireArrow {
            schema: schema_bytes(block.schema())?,
            batches: Vec::with_capacity(block.batches().len()),
            body: WireBody::Inline(Vec::new()),
        },
        body: Vec::new(),
        body_len: 0,
    };
    let mut shared = 0usize;
    for b in block.batches() {
        let columns = b
            .columns()
            .iter()
            .map(|c| out.array(&c.to_data(), args, &mut shared))
            .collect();
        out.wire.batches.push(WireBatch {
            rows: b.num_rows() as u64,
            columns,
        });
    }
    Ok((shared > 0).then_some(out))
}

impl Layout {
    fn array(
        &mut self,
        data: &ArrayData,
        args: &[Option<Range<usize>>],
        shared: &mut usize,
    ) -> WireArray {
        WireArray {
            len: data.len() as u64,
            offset: data.offset() as u64,
            nulls: data
                .nulls()
                .map(|n| (self.piece(n.buffer(), args, shared), n.offset() as u64)),
            buffers: data
                .buffers()
                .iter()
                .map(|b| self.piece(b, args, shared))
                .collect(),
            children: data
                .child_data()
                .iter()
                .map(|c| self.array(c, args, shared))
                .collect(),
        }
    }

    fn piece(&mut self, b: &Buffer, args: &[Option<Range<usize>>], shared: &mut usize) -> Piece {
        let start = b.as_ptr() as usize;
        let end = start + b.len();
        let inside = args.iter().enumerate().find_map(|(i, r)| {
            r.as_ref()
                .filter(|r| !b.is_empty() && r.start <= start && end <= r.end)
                .map(|r| (i, r.start))
        });
        if let Some((arg, base)) = inside {
            *shared += b.len();
            return Piece::Arg {
                arg: arg as u32,
                offset: (start - base) as u64,
                len: b.len() as u64,
            };
        }
        let pad = self.body_len.next_multiple_of(ALIGN) - self.body_len;
        if pad > 0 {
            self.body.push(Buffer::from_vec(vec![0u8; pad]));
            self.body_len += pad;
        }
        let offset = self.body_len as u64;
        self.body.push(b.clone());
        self.body_len += b.len();
        Piece::Body {
            offset,
            len: b.len() as u64,
        }
    }
}

/// One argument's segment as the node resolves references into it: its whole mapping, and
/// the buffers its IPC encoding concatenates (most are the object's own buffers, in the
/// node's memory), by offset. A reference inside one of those is a slice of it, so the
/// result shares the object's memory, not the segment's pages (which go with the object).
pub(crate) struct ArgBytes {
    whole: Buffer,
    /// `(offset in the segment, buffer)`, in order.
    pieces: Vec<(usize, Buffer)>,
    /// The object's string arrays, whose strings a result may pass on.
    strings: Vec<ValidBytes>,
}

/// A string array of an argument (valid: the node's own): the addresses of the offsets it
/// uses, where its values start, and the bytes from its first to its last offset, which
/// are valid UTF-8 (its strings, one after the other). An array over the same values
/// whose offsets are a run of these entries holds strings of this array; one whose offsets
/// are new but rise within that run and each fall on a character boundary holds valid
/// strings too. Checking either spares reading every byte of the strings again.
struct ValidBytes {
    offsets: Range<usize>,
    width: usize,
    values: usize,
    run: Range<usize>,
}

/// The offsets of a string type, as integers of `width` bytes.
fn offset_width(dt: &DataType) -> Option<usize> {
    match dt {
        DataType::Utf8 => Some(4),
        DataType::LargeUtf8 => Some(8),
        _ => None,
    }
}

/// Offset `i` of an offsets buffer of `width`-byte integers.
fn offset_at(offsets: &[u8], width: usize, i: usize) -> Option<i64> {
    let b = offsets.get(i * width..(i + 1) * width)?;
    Some(match width {
        4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
        _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    })
}

fn collect_strings(data: &ArrayData, out: &mut Vec<ValidBytes>) {
    if let Some(width) = offset_width(data.data_type())
        && let [offsets, values] = data.buffers()
        && let Some(first) = offset_at(offsets.as_slice(), width, data.offset())
        && let Some(last) = offset_at(offsets.as_slice(), width, data.offset() + data.len())
        && let (Ok(first), Ok(last)) = (usize::try_from(first), usize::try_from(last))
    {
        let start = offsets.as_ptr() as usize + data.offset() * width;
        out.push(ValidBytes {
            offsets: start..start + (data.len() + 1) * width,
            width,
            values: values.as_ptr() as usize,
            run: first..last,
        });
    }
    for c in data.child_data() {
        collect_strings(c, out);
    }
}

/// True when `data` (a string array) holds strings of one of the arguments' string
/// arrays, or strings cut from their values at character boundaries.
fn strings_of_an_argument(data: &ArrayData, args: &[Option<ArgBytes>]) -> bool {
    let Some(width) = offset_width(data.data_type()) else {
        return false;
    };
    let [offsets, values] = data.buffers() else {
        return false;
    };
    let bytes = values.as_slice();
    let Some(v) = args
        .iter()
        .flatten()
        .flat_map(|a| &a.strings)
        .find(|v| v.width == width && v.values == bytes.as_ptr() as usize)
    else {
        return false;
    };
    if v.run.end > bytes.len() {
        return false;
    }
    // The argument's own offsets (a slice of them): nothing to read.
    let start = offsets.as_ptr() as usize + data.offset() * width;
    let end = start + (data.len() + 1) * width;
    if v.offsets.start <= start
        && end <= v.offsets.end
        && (start - v.offsets.start).is_multiple_of(width)
    {
        return true;
    }
    // A UTF-8 continuation byte is 0b10xx_xxxx: no character starts there.
    let (lo, hi) = (v.run.start as i64, v.run.end as i64);
    let mut prev = lo;
    (data.offset()..=data.offset() + data.len()).all(|i| {
        let Some(o) = offset_at(offsets.as_slice(), width, i) else {
            return false;
        };
        let ok = prev <= o && o <= hi && (o == hi || bytes[o as usize] & 0xc0 != 0x80);
        prev = o;
        ok
    })
}

impl ArgBytes {
    /// `pieces`: the encoding that was written into the segment `whole` maps; ignored (only
    /// the mapping is used) when their lengths do not add up to the segment's.
    pub(crate) fn new(whole: Buffer, pieces: Vec<Buffer>) -> Self {
        let mut at = 0;
        let mut by_offset = Vec::with_capacity(pieces.len());
        for p in pieces {
            let len = p.len();
            by_offset.push((at, p));
            at += len;
        }
        if at != whole.len() {
            by_offset.clear();
        }
        ArgBytes {
            whole,
            pieces: by_offset,
            strings: Vec::new(),
        }
    }

    /// The segment `whole` maps, which holds the encoding of the node's object `block`.
    pub(crate) fn of_block(whole: Buffer, block: &Block) -> Result<Self> {
        let mut arg = Self::new(whole, encode_ipc(&ObjectData::Arrow(block.clone()))?);
        for batch in block.batches() {
            for column in batch.columns() {
                collect_strings(&column.to_data(), &mut arg.strings);
            }
        }
        Ok(arg)
    }

    /// Bytes `offset..offset + len`, from the piece that holds them whole, else from the
    /// mapping; `None` when outside the segment.
    fn slice(&self, offset: usize, len: usize) -> Option<Buffer> {
        if offset.checked_add(len)? > self.whole.len() {
            return None;
        }
        let i = self.pieces.partition_point(|(start, _)| *start <= offset);
        if let Some((start, piece)) = i.checked_sub(1).map(|i| &self.pieces[i])
            && offset + len <= start + piece.len()
        {
            return Some(piece.slice_with_length(offset - start, len));
        }
        Some(self.whole.slice_with_length(offset, len))
    }
}

/// Rebuilds the object from its layout: `args[i]` is argument `i`'s segment (`None` for
/// arguments that were not segments), `body` the body's bytes.
pub(crate) fn rebuild(wire: &WireArrow, args: &[Option<ArgBytes>], body: &Buffer) -> Result<Block> {
    let schema = schema_from_bytes(&wire.schema)?;
    let mut batches = Vec::with_capacity(wire.batches.len());
    for (bi, wb) in wire.batches.iter().enumerate() {
        if wb.columns.len() != schema.fields().len() {
            return Err(bad(format!(
                "batch {bi} has {} columns for a schema of {}",
                wb.columns.len(),
                schema.fields().len()
            )));
        }
        let columns = schema
            .fields()
            .iter()
            .zip(&wb.columns)
            .map(|(f, c)| {
                array(f.data_type(), c, args, body)
                    .map(make_array)
                    .map_err(|e| bad(format!("column {:?} of batch {bi}: {e}", f.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = RecordBatchOptions::new().with_row_count(Some(wb.rows as usize));
        batches.push(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &opts,
        )?);
    }
    Block::try_new(schema, batches)
}

fn array(
    dt: &DataType,
    w: &WireArray,
    args: &[Option<ArgBytes>],
    body: &Buffer,
) -> Result<ArrayData> {
    // The children's types, as Arrow lays them out for `dt`.
    let template = ArrayData::new_empty(dt);
    if template.child_data().len() != w.children.len() {
        return Err(bad(format!(
            "{} children for a {dt} array, which has {}",
            w.children.len(),
            template.child_data().len()
        )));
    }
    let children = template
        .child_data()
        .iter()
        .zip(&w.children)
        .map(|(t, c)| array(t.data_type(), c, args, body))
        .collect::<Result<Vec<_>>>()?;
    let buffers = w
        .buffers
        .iter()
        .map(|p| buffer(p, args, body))
        .collect::<Result<Vec<_>>>()?;
    let nulls = match &w.nulls {
        Some((p, bit_offset)) => {
            let b = buffer(p, args, body)?;
            let (bit_offset, len) = (*bit_offset as usize, w.len as usize);
            if bit_offset + len > b.len() * 8 {
                return Err(bad(format!(
                    "a validity bitmap of {} bytes cannot hold bits {bit_offset}..{}",
                    b.len(),
                    bit_offset + len
                )));
            }
            Some(NullBuffer::new(BooleanBuffer::new(b, bit_offset, len)))
        }
        None => None,
    };
    let builder = ArrayData::builder(dt.clone())
        .len(w.len as usize)
        .offset(w.offset as usize)
        .nulls(nulls)
        .buffers(buffers)
        .child_data(children)
        .align_buffers(true);
    // SAFETY: validated right here, as `build` would: the layout and the nulls always, the
    // values unless they are strings of an argument (the node's own, valid).
    let data = unsafe { builder.skip_validation(true) }.build()?;
    data.validate()?;
    data.validate_nulls()?;
    if !strings_of_an_argument(&data, args) {
        data.validate_values()?;
    }
    Ok(data)
}

fn buffer(p: &Piece, args: &[Option<ArgBytes>], body: &Buffer) -> Result<Buffer> {
    let outside = |what: String, offset: u64, len: u64, size: usize| {
        bad(format!(
            "bytes {offset}..{} are outside {what} ({size} bytes)",
            offset.saturating_add(len)
        ))
    };
    match *p {
        Piece::Arg { arg, offset, len } => {
            let Some(Some(seg)) = args.get(arg as usize) else {
                return Err(bad(format!(
                    "a buffer in argument {arg}, which is not a segment of the call"
                )));
            };
            seg.slice(offset as usize, len as usize).ok_or_else(|| {
                outside(
                    format!("argument {arg}'s segment"),
                    offset,
                    len,
                    seg.whole.len(),
                )
            })
        }
        Piece::Body { offset, len } => {
            if offset
                .checked_add(len)
                .is_none_or(|end| end > body.len() as u64)
            {
                return Err(outside("the body".into(), offset, len, body.len()));
            }
            Ok(body.slice_with_length(offset as usize, len as usize))
        }
    }
}

fn bad(message: String) -> Error {
    Error::Internal(format!("a worker's result laid out by buffers: {message}"))
}

/// The schema as an IPC stream of no batches.
fn schema_bytes(schema: &SchemaRef) -> Result<Vec<u8>> {
    let enc = StreamEncoder::try_new(schema)?;
    let mut out = Vec::new();
    for b in enc.finish()? {
        out.extend_from_slice(b.as_slice());
    }
    Ok(out)
}

fn schema_from_bytes(bytes: &[u8]) -> Result<SchemaRef> {
    let mut dec = StreamDecoder::new();
    let mut buf = Buffer::from(bytes);
    while !buf.is_empty() {
        if dec.decode(&mut buf)?.is_some() {
            return Err(bad("the schema stream holds a batch".into()));
        }
    }
    dec.finish()?;
    dec.schema()
        .ok_or_else(|| bad("the schema stream holds no schema".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, DictionaryArray, Float64Array, Int64Array, ListArray, StringArray,
    };
    use arrow::datatypes::{Int32Type, Int64Type};
    use std::sync::Arc;

    fn address_range(b: &Buffer) -> Range<usize> {
        let start = b.as_ptr() as usize;
        start..start + b.len()
    }

    /// A batch of every shape (nulls, offsets, children, a dictionary), as views of one
    /// contiguous "segment" buffer, sliced so that offsets are non-zero; and the encoding's
    /// pieces (the original batch's buffers, where the encoding shares them).
    fn shared_batch() -> (Buffer, RecordBatch, Vec<Buffer>) {
        let ids = Int64Array::from_iter((0..1000).map(|i| (i % 7 != 0).then_some(i)));
        let names =
            StringArray::from_iter((0..1000).map(|i| (i % 5 != 0).then(|| format!("n{i}"))));
        let lists = ListArray::from_iter_primitive::<Int64Type, _, _>(
            (0..1000).map(|i| (i % 3 != 0).then(|| vec![Some(i), None, Some(i + 1)])),
        );
        let dict: DictionaryArray<Int32Type> = (0..1000).map(|i| ["a", "b", "c"][i % 3]).collect();
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as _),
            ("name", Arc::new(names) as _),
            ("list", Arc::new(lists) as _),
            ("dict", Arc::new(dict) as _),
        ])
        .unwrap();
        // Through IPC into one buffer, as a worker sees an argument's segment.
        let data = crate::core::object::ObjectData::Arrow(Block::from(batch));
        let pieces = crate::core::object::encode_ipc(&data).unwrap();
        let mut seg = Vec::new();
        for b in &pieces {
            seg.extend_from_slice(b.as_slice());
        }
        let seg = Buffer::from(seg);
        let crate::core::object::ObjectData::Arrow(read) =
            crate::core::object::decode_ipc(seg.clone()).unwrap()
        else {
            panic!("not arrow")
        };
        (seg, read.batches()[0].slice(13, 900), pieces)
    }

    fn body_of(l: &Layout) -> Buffer {
        let mut v = Vec::new();
        for b in &l.body {
            v.extend_from_slice(b.as_slice());
        }
        Buffer::from(v)
    }

    #[test]
    fn shared_columns_are_references_and_new_ones_are_in_the_body() {
        let (seg, batch, pieces) = shared_batch();
        let doubled = Float64Array::from_iter_values((0..900).map(|i| i as f64 * 2.0));
        let mut cols = batch.columns().to_vec();
        cols.push(Arc::new(doubled.clone()));
        let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(arrow::datatypes::Field::new(
            "doubled",
            DataType::Float64,
            false,
        )));
        let out =
            RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols).unwrap();
        let layout = lay_out(
            &Block::from(out.clone()),
            &[None, Some(address_range(&seg))],
        )
        .unwrap()
        .expect("shares buffers");
        // Only the new column is in the body.
        assert!(layout.body_len >= 900 * 8 && layout.body_len < 900 * 8 + ALIGN);
        let body = body_of(&layout);
        let id_values =
            |b: &Block| b.batches()[0].column(0).to_data().buffers()[0].as_ptr() as usize;
        // From the mapping alone: the shared columns point into the segment, not a copy.
        let mapped = ArgBytes::new(seg.clone(), Vec::new());
        let rebuilt = rebuild(&layout.wire, &[None, Some(mapped)], &body).unwrap();
        assert_eq!(rebuilt.batches()[0], out);
        assert!(address_range(&seg).contains(&id_values(&rebuilt)));
        // With the encoding's pieces: into the original batch's own buffers.
        let original: Vec<Range<usize>> = pieces.iter().map(address_range).collect();
        let shared = ArgBytes::new(seg.clone(), pieces);
        let rebuilt = rebuild(&layout.wire, &[None, Some(shared)], &body).unwrap();
        assert_eq!(rebuilt.batches()[0], out);
        let at = id_values(&rebuilt);
        assert!(!address_range(&seg).contains(&at));
        assert!(original.iter().any(|r| r.contains(&at)));
    }

    #[test]
    fn nothing_shared_is_no_layout() {
        let (seg, _, _) = shared_batch();
        let own =
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..10)) as _)])
                .unwrap();
        assert!(
            lay_out(&Block::from(own), &[Some(address_range(&seg))])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn references_outside_the_call_are_refused_naming_them() {
        let (seg, batch, _) = shared_batch();
        let layout = lay_out(&Block::from(batch), &[Some(address_range(&seg))])
            .unwrap()
            .unwrap();
        let body = body_of(&layout);
        let err = rebuild(&layout.wire, &[None], &body)
            .unwrap_err()
            .to_string();
        assert!(err.contains("argument 0, which is not a segment"), "{err}");
        let short = ArgBytes::new(seg.slice_with_length(0, 64), Vec::new());
        let err = rebuild(&layout.wire, &[Some(short)], &body)
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside argument 0's segment"), "{err}");
    }

    /// A result whose string column is new offsets over an argument's own values (as a
    /// function that cuts strings makes): its strings are checked at character boundaries
    /// instead of being validated byte by byte, and a cut inside a character is refused.
    #[test]
    fn strings_cut_from_an_argument_s_values_must_fall_on_character_boundaries() {
        use arrow::buffer::{OffsetBuffer, ScalarBuffer};
        let words = StringArray::from_iter_values(["héllo", "wörld", "naïve"]);
        let original =
            Block::from(RecordBatch::try_from_iter([("w", Arc::new(words) as ArrayRef)]).unwrap());
        let data = ObjectData::Arrow(original.clone());
        let seg = {
            let mut v = Vec::new();
            for b in encode_ipc(&data).unwrap() {
                v.extend_from_slice(b.as_slice());
            }
            Buffer::from(v)
        };
        let ObjectData::Arrow(view) = crate::core::object::decode_ipc(seg.clone()).unwrap() else {
            panic!("not arrow")
        };
        let values = view.batches()[0].column(0).to_data().buffers()[1].clone();
        let cut = |offsets: Vec<i32>| {
            // SAFETY: a test of what the node accepts; the node validates what it rebuilds.
            let a = unsafe {
                StringArray::new_unchecked(
                    OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                    values.clone(),
                    None,
                )
            };
            let batch = RecordBatch::try_from_iter([("w", Arc::new(a) as ArrayRef)]).unwrap();
            let layout = lay_out(&Block::from(batch), &[Some(address_range(&seg))])
                .unwrap()
                .expect("shares the values");
            let arg = ArgBytes::of_block(seg.clone(), &original).unwrap();
            rebuild(&layout.wire, &[Some(arg)], &body_of(&layout))
        };
        // "h", "é", "llo": every offset on a boundary ("é" is two bytes).
        let ok = cut(vec![0, 1, 3, 6]).unwrap();
        let col = ok.batches()[0].column(0).to_data();
        let expected = StringArray::from_iter_values(["h", "é", "llo"]);
        assert_eq!(make_array(col.clone()).as_ref(), &expected as &dyn Array);
        // The values are the original's own buffer (resolved through the pieces).
        let own = original.batches()[0].column(0).to_data().buffers()[1].as_ptr();
        assert_eq!(col.buffers()[1].as_ptr(), own);
        // The column passed on as it came: the original's own offsets and values.
        let layout = lay_out(&view, &[Some(address_range(&seg))])
            .unwrap()
            .unwrap();
        let arg = ArgBytes::of_block(seg.clone(), &original).unwrap();
        let same = rebuild(&layout.wire, &[Some(arg)], &body_of(&layout)).unwrap();
        assert_eq!(same.batches()[0], original.batches()[0]);
        let col = same.batches()[0].column(0).to_data();
        assert_eq!(col.buffers()[1].as_ptr(), own);
        // Offset 2 is inside "é".
        let err = cut(vec![0, 2]).unwrap_err().to_string();
        assert!(err.to_lowercase().contains("utf"), "{err}");
    }
}

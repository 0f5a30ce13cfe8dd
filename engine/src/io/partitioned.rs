//! Hive-partitioned writes (Ray's `write_parquet(partition_cols=[...])`): the rows of each
//! distinct value of the partition columns go under `col=value/` directories (nested in the
//! columns' order), written by a sink of their own; the files leave the partition columns
//! out, as their values are in the path. A null is `__HIVE_DEFAULT_PARTITION__`, and a value
//! is percent-encoded where it is not a plain path segment.
//!
//! A write task holds one open sink per distinct partition value it met: memory grows with
//! the number of partitions a task writes, not with its rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::DataType;
use tokio::runtime::Handle;

use crate::error::{Error, Result};
use crate::io::FileSink;
use crate::io::parquet::WrittenFile;

/// What opens a sink under a partition's directory.
pub type OpenSink = Box<dyn Fn(&str) -> Result<Box<dyn FileSink>> + Send>;

/// A sink that splits rows by the values of `cols` into one sink per partition directory.
pub struct PartitionedSink {
    dir: String,
    cols: Vec<String>,
    open: OpenSink,
    sinks: HashMap<String, Box<dyn FileSink>>,
}

impl std::fmt::Debug for PartitionedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedSink")
            .field("dir", &self.dir)
            .field("cols", &self.cols)
            .finish()
    }
}

impl PartitionedSink {
    /// A sink under `dir` partitioned by `cols`; `open(subdir)` opens each partition's sink.
    pub fn new(dir: &str, cols: Vec<String>, open: OpenSink) -> Self {
        PartitionedSink {
            dir: dir.trim_end_matches('/').to_string(),
            cols,
            open,
            sinks: HashMap::new(),
        }
    }
}

/// `value` as one path segment: unreserved characters kept, the rest percent-encoded.
fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl FileSink for PartitionedSink {
    fn write(&mut self, batch: &RecordBatch, rt: &Handle) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let schema = batch.schema();
        let mut keys: Vec<StringArray> = Vec::with_capacity(self.cols.len());
        for c in &self.cols {
            let col = batch.column_by_name(c).ok_or_else(|| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::InvalidArgument(format!(
                    "partition column {c:?} is not among the dataset's columns {names:?}"
                ))
            })?;
            let text: ArrayRef = cast(col, &DataType::Utf8)?;
            keys.push(
                text.as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .ok_or_else(|| Error::Internal(format!("partition column {c:?} as text")))?,
            );
        }
        let kept: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| !self.cols.contains(schema.field(i).name()))
            .collect();
        if kept.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "partition_cols {:?} are every column: the files would hold none",
                self.cols
            )));
        }
        let data = batch.project(&kept)?;
        // Rows by partition directory, in the order partitions first appear.
        let mut order: Vec<String> = Vec::new();
        let mut rows: HashMap<String, Vec<u32>> = HashMap::new();
        for r in 0..batch.num_rows() {
            let path: Vec<String> = self
                .cols
                .iter()
                .zip(&keys)
                .map(|(c, k)| {
                    let v = if k.is_null(r) {
                        "__HIVE_DEFAULT_PARTITION__".to_string()
                    } else {
                        segment(k.value(r))
                    };
                    format!("{}={v}", segment(c))
                })
                .collect();
            let path = path.join("/");
            rows.entry(path.clone())
                .or_insert_with(|| {
                    order.push(path);
                    Vec::new()
                })
                .push(r as u32);
        }
        for path in order {
            let idx = UInt32Array::from(rows.remove(&path).unwrap_or_default());
            let part = take_record_batch(&data, &idx)?;
            let sink = match self.sinks.get_mut(&path) {
                Some(s) => s,
                None => {
                    let s = (self.open)(&format!("{}/{path}", self.dir))?;
                    self.sinks.entry(path).or_insert(s)
                }
            };
            sink.write(&part, rt)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<WrittenFile>> {
        let mut written = Vec::new();
        for (_, sink) in self.sinks {
            written.extend(sink.finish()?);
        }
        Ok(written)
    }
}

/// The hive partitions of a set of files read under base paths: the `key=value` directories
/// between a base and each file, as columns after the files' own (a value read as an
/// integer where every value of its key is one, else as text; `__HIVE_DEFAULT_PARTITION__`
/// is null).
#[derive(Debug, Clone, Default)]
pub struct HivePartitions {
    /// The partition columns, in the order their keys first appear.
    pub fields: Vec<arrow::datatypes::Field>,
    /// Each file's value of each column (`None`: null, or the file is not under that key).
    values: Vec<Vec<Option<String>>>,
}

/// `%XX` escapes decoded.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl HivePartitions {
    /// The partitions of `files` (store paths), each under the longest of `bases` that
    /// contains it.
    pub fn detect(bases: &[String], files: &[String]) -> Self {
        let mut keys: Vec<String> = Vec::new();
        let mut per_file: Vec<Vec<(String, Option<String>)>> = Vec::with_capacity(files.len());
        for file in files {
            let base = bases
                .iter()
                .filter(|b| b.is_empty() || file.starts_with(&format!("{b}/")))
                .max_by_key(|b| b.len());
            let rel = match base {
                Some(b) if !b.is_empty() => &file[b.len() + 1..],
                Some(_) => file.as_str(),
                None => "",
            };
            let mut found = Vec::new();
            let mut dirs: Vec<&str> = rel.split('/').collect();
            dirs.pop(); // the file's own name
            for d in dirs {
                if let Some((k, v)) = d.split_once('=')
                    && !k.is_empty()
                {
                    let key = decode(k);
                    let value = (v != "__HIVE_DEFAULT_PARTITION__").then(|| decode(v));
                    if !keys.contains(&key) {
                        keys.push(key.clone());
                    }
                    found.push((key, value));
                }
            }
            per_file.push(found);
        }
        let values: Vec<Vec<Option<String>>> = per_file
            .iter()
            .map(|found| {
                keys.iter()
                    .map(|k| {
                        found
                            .iter()
                            .find(|(fk, _)| fk == k)
                            .and_then(|(_, v)| v.clone())
                    })
                    .collect()
            })
            .collect();
        let fields = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let ints = values
                    .iter()
                    .filter_map(|v| v[i].as_deref())
                    .all(|v| v.parse::<i64>().is_ok());
                let t = if ints {
                    DataType::Int64
                } else {
                    DataType::Utf8
                };
                arrow::datatypes::Field::new(k, t, true)
            })
            .collect();
        HivePartitions { fields, values }
    }

    /// Column `name`'s value for file `file`, repeated `rows` times (`None`: not a partition
    /// column).
    pub fn column(&self, file: usize, name: &str, rows: usize) -> Option<ArrayRef> {
        let i = self.fields.iter().position(|f| f.name() == name)?;
        let value = self.values.get(file).and_then(|v| v[i].as_deref());
        Some(match self.fields[i].data_type() {
            DataType::Int64 => Arc::new(arrow::array::Int64Array::from(vec![
                value.and_then(|v| v
                    .parse::<i64>()
                    .ok());
                rows
            ])),
            _ => Arc::new(StringArray::from(vec![value; rows])),
        })
    }
}

//! Line-oriented text files over `object_store`: CSV (with a header) and newline-delimited
//! JSON. The schema is inferred from the first file (CSV: its first 1,000 rows, as pyarrow
//! infers from a first block; JSON: from whole files, the first ones up to
//! [`JSON_INFER_BYTES`] together, widened over them as pyarrow and Ray widen blocks; the
//! rows of files not inferred whole are checked against it when read, so a value the schema
//! cannot hold is an error naming the file and column, never a silent truncation); files are
//! packed into read fragments by size; sinks write `part-<task>-<n>.<ext>` files of a target
//! size.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use tokio::runtime::Handle;

use crate::error::{Error, Result};
use crate::io::Upload;
use crate::io::json_schema::{infer_json, is_json_array, json_array_lines, json_fits, widen};
use crate::io::location::{FileRef, Location, parse, resolve};
use crate::io::parquet::WrittenFile;

/// A text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

impl TextFormat {
    pub(crate) fn ext(self) -> &'static str {
        match self {
            TextFormat::Csv => "csv",
            TextFormat::Json => "json",
        }
    }
}

/// How many bytes of JSON files the schema is inferred from (whole files, the first ones),
/// so a column's mixed values (integers, then a float) get one type, as pyarrow gives them.
const JSON_INFER_BYTES: u64 = 16 << 20;

/// A set of text files with one schema.
#[derive(Debug)]
pub struct TextSource {
    location: Location,
    files: Vec<(FileRef, String)>,
    /// The rows' columns (the files', then `path` with [`TextSource::with_paths`]).
    schema: SchemaRef,
    /// The files' columns.
    file_schema: SchemaRef,
    format: TextFormat,
    /// JSON: how many of the first files the schema was inferred from whole (their reads
    /// need no check).
    inferred_whole: usize,
    bytes_read: Arc<AtomicU64>,
}

impl TextSource {
    /// Lists `paths` and infers the schema from the first file.
    pub fn open(paths: &[String], format: TextFormat, rt: &Handle) -> Result<Self> {
        rt.block_on(async {
            let (location, refs) = resolve(paths).await?;
            let files: Vec<(FileRef, String)> = refs
                .into_iter()
                .map(|f| {
                    let d = location.display(&f.path);
                    (f, d)
                })
                .collect();
            let (first, display) = &files[0];
            let sample_bytes = match format {
                TextFormat::Csv => 1 << 20,
                TextFormat::Json => JSON_INFER_BYTES,
            };
            let mut head = location
                .store
                .get_range(&first.path, 0..first.size.min(sample_bytes))
                .await
                .map_err(|e| Error::io(format!("reading {display}"), e))?;
            // A JSON file that is one array is read whole (see `json_text`).
            let array = format == TextFormat::Json && is_json_array(&head);
            if array {
                if first.size > head.len() as u64 {
                    head = async { location.store.get(&first.path).await?.bytes().await }
                        .await
                        .map_err(|e| Error::io(format!("reading {display}"), e))?;
                }
                head = json_text(head, display)?;
            }
            let whole = array || first.size <= sample_bytes;
            // Infer from whole lines only.
            let cut = if whole {
                head.len()
            } else {
                head.iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(head.len(), |p| p + 1)
            };
            let sample = &head[..cut];
            let bad = |e: &dyn std::fmt::Display| Error::InvalidData {
                location: display.clone(),
                message: format!("cannot infer a schema: {e}"),
            };
            let schema = match format {
                TextFormat::Csv => {
                    arrow::csv::reader::Format::default()
                        .with_header(true)
                        .infer_schema(Cursor::new(sample), Some(1000))
                        .map_err(|e| bad(&e))?
                        .0
                }
                TextFormat::Json => infer_json(sample).map_err(|e| bad(&e))?,
            };
            let mut inferred_whole = usize::from(whole);
            let mut schema = schema;
            if format == TextFormat::Json && inferred_whole == 1 {
                let mut total = first.size;
                for (f, display) in &files[1..] {
                    total += f.size;
                    if total > JSON_INFER_BYTES {
                        break;
                    }
                    let bytes = async { location.store.get(&f.path).await?.bytes().await }
                        .await
                        .map_err(|e| Error::io(format!("reading {display}"), e))?;
                    let bytes = json_text(bytes, display)?;
                    let bad = |message: String| Error::InvalidData {
                        location: display.clone(),
                        message,
                    };
                    let own = infer_json(&bytes)
                        .map_err(|e| bad(format!("cannot infer a schema: {e}")))?;
                    schema = widen(&schema, &own).map_err(bad)?;
                    inferred_whole += 1;
                }
            }
            let schema = Arc::new(schema);
            Ok(TextSource {
                location,
                files,
                schema: schema.clone(),
                file_schema: schema,
                format,
                inferred_whole,
                bytes_read: Arc::new(AtomicU64::new(0)),
            })
        })
    }

    /// The source with each row's file path in a last column, `path` (Ray's
    /// `include_paths=True`).
    pub fn with_paths(mut self) -> Result<Self> {
        self.schema = crate::io::with_path_field(&self.file_schema)?;
        Ok(self)
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The format.
    pub fn format(&self) -> TextFormat {
        self.format
    }

    /// The files, as the user named them.
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(_, display)| display.as_str())
    }

    /// How many files.
    pub fn num_files(&self) -> usize {
        self.files.len()
    }

    /// Bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|(f, _)| f.size).sum()
    }

    /// Bytes fetched so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Files packed into fragments of about `target_bytes`.
    pub fn plan(&self, target_bytes: u64) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        let mut bytes = 0;
        for (i, (f, _)) in self.files.iter().enumerate() {
            cur.push(i);
            bytes += f.size;
            if bytes >= target_bytes {
                out.push(std::mem::take(&mut cur));
                bytes = 0;
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    /// Reads the files of a fragment, calling `each` with every batch until it returns false.
    pub fn read(
        &self,
        files: &[usize],
        batch_rows: usize,
        rt: &Handle,
        each: &mut dyn FnMut(RecordBatch) -> Result<bool>,
    ) -> Result<()> {
        for &i in files {
            let (f, display) = &self.files[i];
            let bytes = rt
                .block_on(async { self.location.store.get(&f.path).await?.bytes().await })
                .map_err(|e| Error::io(format!("reading {display}"), e))?;
            self.bytes_read
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let bad = |e: arrow::error::ArrowError| Error::InvalidData {
                location: display.clone(),
                message: e.to_string(),
            };
            let bytes = match self.format {
                TextFormat::Json => json_text(bytes, display)?,
                TextFormat::Csv => bytes,
            };
            let batches: Box<
                dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>>,
            > = match self.format {
                TextFormat::Csv => Box::new(
                    arrow::csv::ReaderBuilder::new(self.file_schema.clone())
                        .with_header(true)
                        .with_batch_size(batch_rows)
                        .build(Cursor::new(bytes))
                        .map_err(bad)?,
                ),
                TextFormat::Json => {
                    if i >= self.inferred_whole {
                        let own = infer_json(&bytes).map_err(|message| Error::InvalidData {
                            location: display.clone(),
                            message,
                        })?;
                        json_fits(&own, &self.file_schema).map_err(|message| {
                            Error::InvalidData {
                                location: display.clone(),
                                message: format!(
                                    "{message} (the dataset's schema was inferred from {})",
                                    self.files[0].1
                                ),
                            }
                        })?;
                    }
                    Box::new(
                        arrow::json::ReaderBuilder::new(self.file_schema.clone())
                            .with_batch_size(batch_rows)
                            .build(Cursor::new(bytes))
                            .map_err(bad)?,
                    )
                }
            };
            let with_path = self.schema.fields().len() > self.file_schema.fields().len();
            for b in batches {
                let mut b = b.map_err(bad)?;
                if with_path {
                    let mut columns = b.columns().to_vec();
                    columns.push(crate::io::path_array(display, b.num_rows()));
                    b = RecordBatch::try_new(self.schema.clone(), columns)?;
                }
                if !each(b)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// A JSON file's text as lines: a file that is one JSON array becomes a line per element
/// (see [`json_array_lines`]); other text is returned as it is.
fn json_text(bytes: Bytes, display: &str) -> Result<Bytes> {
    match json_array_lines(&bytes) {
        None => Ok(bytes),
        Some(Ok(lines)) => Ok(Bytes::from(lines)),
        Some(Err(message)) => Err(Error::InvalidData {
            location: display.to_string(),
            message,
        }),
    }
}

/// Writes text files under a directory URL, closing each at `target_bytes`.
#[derive(Debug)]
pub struct TextSink {
    location: Location,
    dir: Path,
    task: usize,
    format: TextFormat,
    target_bytes: u64,
    current: Option<Upload>,
    rows: u64,
    header_written: bool,
    written: Vec<WrittenFile>,
}

impl TextSink {
    /// A sink for task `task` under `dir`; a file closes at `target_bytes` (see
    /// [`crate::io::min_rows`] for `min_rows_per_file`).
    pub fn new(dir: &str, task: usize, format: TextFormat, target_bytes: u64) -> Result<Self> {
        let (location, path) = parse(dir)?;
        Ok(TextSink {
            location,
            dir: path,
            task,
            format,
            target_bytes: target_bytes.max(1),
            current: None,
            rows: 0,
            header_written: false,
            written: Vec::new(),
        })
    }
}

impl TextSink {
    fn close_file(&mut self) -> Result<()> {
        let Some(upload) = self.current.take() else {
            return Ok(());
        };
        self.written.push(upload.finish(self.rows)?);
        self.rows = 0;
        self.header_written = false;
        Ok(())
    }
}

impl crate::io::FileSink for TextSink {
    /// Appends a batch, closing the file at the target size.
    fn write(&mut self, batch: &RecordBatch, rt: &Handle) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let format = self.format;
        let err = |e: arrow::error::ArrowError| match e {
            arrow::error::ArrowError::IoError(m, _) => {
                Error::io(format!("{} writer", format.ext()), m)
            }
            e => Error::Internal(format!("{} writer: {e}", format.ext())),
        };
        let upload = match &mut self.current {
            Some(u) => u,
            None => {
                let name = format!(
                    "part-{:05}-{:04}.{}",
                    self.task,
                    self.written.len(),
                    format.ext()
                );
                self.current
                    .insert(Upload::new(&self.location, &self.dir, &name, rt)?)
            }
        };
        match format {
            TextFormat::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(!self.header_written)
                    .build(&mut *upload);
                w.write(batch).map_err(err)?;
                self.header_written = true;
            }
            TextFormat::Json => {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut *upload);
                w.write(batch).map_err(err)?;
                w.finish().map_err(err)?;
            }
        }
        self.rows += batch.num_rows() as u64;
        if upload.bytes() >= self.target_bytes {
            self.close_file()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<WrittenFile>> {
        self.close_file()?;
        Ok(self.written)
    }
}

impl crate::io::min_rows::RollingSink for TextSink {
    fn roll(&mut self) -> Result<()> {
        self.close_file()
    }
}

//! Datasources and datasinks over `object_store` URLs.
//!
//! Paths are local paths (`/data/x.parquet`, `data/`), globs (`/data/*.parquet`) or
//! `object_store` URLs (`file://`, `memory://`, and the cloud schemes when built with them).
//! [`location::resolve`] turns them into a store and a list of files with their sizes; the
//! parquet source reads footers in parallel and packs files and row groups into read tasks
//! by bytes.

mod json_schema;
pub(crate) mod local;
pub mod location;
pub mod min_rows;
pub mod parquet;
pub mod partitioned;
pub(crate) mod tensor;
pub mod text;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tokio::runtime::Handle;

use crate::error::{Error, Result};
use crate::io::parquet::WrittenFile;

/// The name of the column `include_paths` adds: each row's file.
pub const PATH_COLUMN: &str = "path";

/// `schema` with the [`PATH_COLUMN`] last (an error when the files have one already).
pub(crate) fn with_path_field(schema: &SchemaRef) -> Result<SchemaRef> {
    if schema.index_of(PATH_COLUMN).is_ok() {
        return Err(Error::InvalidArgument(format!(
            "include_paths: the files have a column named {PATH_COLUMN:?} already"
        )));
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(PATH_COLUMN, DataType::Utf8, false));
    Ok(Arc::new(Schema::new(fields)))
}

/// `file` repeated `rows` times: a [`PATH_COLUMN`] of one file's rows.
pub(crate) fn path_array(file: &str, rows: usize) -> ArrayRef {
    Arc::new(StringArray::from(vec![file; rows]))
}

/// How files are written (Ray's `write_*` keywords).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WriteOptions {
    /// Parquet's codec: `snappy` (the default), `zstd`, `lz4` or `none`.
    pub compression: Option<String>,
    /// Files of at least this many rows, each closed as soon as it holds them (Ray's
    /// bundles; the target file size does not apply), all but one, the write's rest (see
    /// [`min_rows`]). With `partition_cols`, per write task and directory.
    pub min_rows_per_file: Option<u64>,
    /// Hive-style directories, `col=value/` for each distinct value of these columns; the
    /// files leave the columns out (their values are in the path).
    pub partition_cols: Vec<String>,
}

/// A writer of `part-<task>-<n>.<ext>` files under a directory, each closed at a target size.
pub trait FileSink: Send {
    /// Appends a batch.
    fn write(&mut self, batch: &RecordBatch, rt: &Handle) -> Result<()>;
    /// Rows held back as too few for a file of their own (see [`min_rows`]): the caller
    /// writes them elsewhere before [`FileSink::finish`]. None by default.
    fn take_rest(&mut self) -> Vec<RecordBatch> {
        Vec::new()
    }
    /// Closes the last file and returns every file written.
    fn finish(self: Box<Self>) -> Result<Vec<WrittenFile>>;
}

/// Bytes of a file sent at once while it is written; multipart uploads need parts of at
/// least 5 MiB (S3), all but the last.
const PART_BYTES: usize = 8 << 20;

/// A file written while it is produced, to a local file ([`local::DirectFile`]) or to a store
/// ([`StoreUpload`]). Dropped unfinished (an error), it leaves no file behind.
pub(crate) struct Upload {
    display: String,
    bytes: u64,
    to: Target,
}

enum Target {
    Local(local::DirectFile),
    Store(StoreUpload),
}

impl Upload {
    /// A new file `dir/name` (creating a local directory first).
    pub(crate) fn new(
        location: &location::Location,
        dir: &object_store::path::Path,
        name: &str,
        rt: &Handle,
    ) -> Result<Self> {
        let path = dir.clone().join(name);
        let display = location.display(&path);
        let to = match location.local_path(dir) {
            Some(local) => {
                std::fs::create_dir_all(&local).map_err(|e| {
                    Error::io(format!("creating output directory {}", local.display()), e)
                })?;
                let file = local::DirectFile::create(&local.join(name))
                    .map_err(|e| Error::io(format!("creating {display}"), e))?;
                Target::Local(file)
            }
            None => Target::Store(StoreUpload {
                store: location.store.clone(),
                path,
                rt: rt.clone(),
                part: Vec::new(),
                multipart: None,
            }),
        };
        Ok(Upload {
            display,
            bytes: 0,
            to,
        })
    }

    /// Bytes written so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Completes the file, which holds `rows` rows.
    pub(crate) fn finish(self, rows: u64) -> Result<WrittenFile> {
        let done = match self.to {
            Target::Local(file) => file.finish(),
            Target::Store(upload) => upload.finish().map_err(std::io::Error::other),
        };
        match done {
            Ok(()) => Ok(WrittenFile {
                path: self.display,
                rows,
                bytes: self.bytes,
            }),
            Err(e) => Err(Error::io(format!("writing {}", self.display), e)),
        }
    }
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("path", &self.display)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl std::io::Write for Upload {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let sent = match &mut self.to {
            Target::Local(file) => file.write_all(data),
            Target::Store(upload) => upload.append(data).map_err(std::io::Error::other),
        };
        if let Err(e) = sent {
            let message = format!("writing {}: {e}", self.display);
            return Err(std::io::Error::other(message));
        }
        self.bytes += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file written to a store while it is produced: the bytes go out in parts of
/// [`PART_BYTES`] (a multipart upload), so a writer holds one part, not the whole file. A
/// file that ends within its first part is stored with one put. Dropped with its upload
/// unfinished (an error, or a completion that failed), it aborts the upload.
struct StoreUpload {
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    rt: Handle,
    part: Vec<u8>,
    multipart: Option<Box<dyn object_store::MultipartUpload>>,
}

impl StoreUpload {
    /// Appends `data` to the current part, sent once it is full.
    fn append(&mut self, data: &[u8]) -> object_store::Result<()> {
        self.part.extend_from_slice(data);
        if self.part.len() >= PART_BYTES {
            self.send_part()?;
        }
        Ok(())
    }

    /// Sends the bytes gathered so far as the next part, starting the upload first; returns
    /// the upload.
    fn send_part(&mut self) -> object_store::Result<&mut Box<dyn object_store::MultipartUpload>> {
        let next = Vec::with_capacity(PART_BYTES + PART_BYTES / 4);
        let part = object_store::PutPayload::from(std::mem::replace(&mut self.part, next));
        let upload = match self.multipart.take() {
            Some(u) => u,
            None => self
                .rt
                .block_on(object_store::ObjectStoreExt::put_multipart(
                    self.store.as_ref(),
                    &self.path,
                ))?,
        };
        let upload = self.multipart.insert(upload);
        self.rt.block_on(upload.put_part(part))?;
        Ok(upload)
    }

    /// Stores the file: one put, or the last part and the upload's completion.
    fn finish(mut self) -> object_store::Result<()> {
        let rt = self.rt.clone();
        if self.multipart.is_none() {
            let whole = object_store::PutPayload::from(std::mem::take(&mut self.part));
            rt.block_on(object_store::ObjectStoreExt::put(
                self.store.as_ref(),
                &self.path,
                whole,
            ))?;
        } else {
            let upload = self.send_part()?;
            rt.block_on(upload.complete())?;
            self.multipart = None;
        }
        Ok(())
    }
}

impl Drop for StoreUpload {
    fn drop(&mut self) {
        if let Some(mut upload) = self.multipart.take() {
            self.rt.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}

//! Datasources and datasinks over `object_store` URLs.
//!
//! Paths are local paths (`/data/x.parquet`, `data/`), globs (`/data/*.parquet`) or
//! `object_store` URLs (`file://`, `memory://`, and the cloud schemes when built with them).
//! [`location::resolve`] turns them into a store and a list of files with their sizes; the
//! parquet source reads footers in parallel and packs files and row groups into read tasks
//! by bytes.

pub mod location;
pub mod parquet;
pub mod text;

use arrow::array::RecordBatch;
use tokio::runtime::Handle;

use crate::error::{Error, Result};
use crate::io::parquet::WrittenFile;

/// A writer of `part-<task>-<n>.<ext>` files under a directory, each closed at a target size.
pub trait FileSink: Send {
    /// Appends a batch.
    fn write(&mut self, batch: &RecordBatch, rt: &Handle) -> Result<()>;
    /// Closes the last file and returns every file written.
    fn finish(self: Box<Self>) -> Result<Vec<WrittenFile>>;
}

/// Bytes of a file sent at once while it is written; multipart uploads need parts of at
/// least 5 MiB (S3), all but the last.
const PART_BYTES: usize = 8 << 20;

/// A file written to its store while it is produced: the bytes go out in parts of
/// [`PART_BYTES`] (a multipart upload), so a writer holds one part, not the whole file. A
/// file that ends within its first part is stored with one put. Dropped unfinished (an
/// error), it aborts its upload, which leaves no file behind.
pub(crate) struct Upload {
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    display: String,
    rt: Handle,
    part: Vec<u8>,
    multipart: Option<Box<dyn object_store::MultipartUpload>>,
    bytes: u64,
}

impl Upload {
    /// A new file `dir/name` (creating a local directory first).
    pub(crate) fn new(
        location: &location::Location,
        dir: &object_store::path::Path,
        name: &str,
        rt: &Handle,
    ) -> Result<Self> {
        if let Some(local) = location.local_path(dir) {
            std::fs::create_dir_all(&local).map_err(|e| {
                Error::io(format!("creating output directory {}", local.display()), e)
            })?;
        }
        let path = dir.clone().join(name);
        Ok(Upload {
            store: location.store.clone(),
            display: location.display(&path),
            path,
            rt: rt.clone(),
            part: Vec::new(),
            multipart: None,
            bytes: 0,
        })
    }

    /// Bytes written so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
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

    /// Completes the file, which holds `rows` rows.
    pub(crate) fn finish(mut self, rows: u64) -> Result<WrittenFile> {
        let rt = self.rt.clone();
        let done = if self.multipart.is_none() {
            let whole = object_store::PutPayload::from(std::mem::take(&mut self.part));
            rt.block_on(object_store::ObjectStoreExt::put(
                self.store.as_ref(),
                &self.path,
                whole,
            ))
            .map(drop)
        } else {
            self.send_part()
                .and_then(|upload| rt.block_on(upload.complete()).map(drop))
        };
        match done {
            Ok(()) => {
                self.multipart = None;
                Ok(WrittenFile {
                    path: self.display.clone(),
                    rows,
                    bytes: self.bytes,
                })
            }
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
        self.part.extend_from_slice(data);
        self.bytes += data.len() as u64;
        if self.part.len() >= PART_BYTES
            && let Err(e) = self.send_part()
        {
            let message = format!("writing {}: {e}", self.display);
            return Err(std::io::Error::other(message));
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(mut upload) = self.multipart.take() {
            self.rt.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}

//! Datasources and datasinks over `object_store` URLs.
//!
//! Paths are local paths (`/data/x.parquet`, `data/`), globs (`/data/*.parquet`) or
//! `object_store` URLs (`file://`, `memory://`, and the cloud schemes when built with them).
//! [`location::resolve`] turns them into a store and a list of files with their sizes; the
//! parquet source reads footers in parallel and packs files and row groups into read tasks
//! by bytes.

pub(crate) mod local;
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
/// error), it aborts its upload, which leaves no file behind. Local files are written
/// directly ([`local::DirectFile`]), with the same guarantees.
pub(crate) struct Upload {
    display: String,
    bytes: u64,
    to: Target,
}

enum Target {
    Store {
        store: std::sync::Arc<dyn object_store::ObjectStore>,
        path: object_store::path::Path,
        rt: Handle,
        part: Vec<u8>,
        multipart: Option<Box<dyn object_store::MultipartUpload>>,
    },
    Local(local::DirectFile),
    /// Completed (or failed to complete): nothing to abort.
    Finished,
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
            None => Target::Store {
                store: location.store.clone(),
                path,
                rt: rt.clone(),
                part: Vec::new(),
                multipart: None,
            },
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
    pub(crate) fn finish(mut self, rows: u64) -> Result<WrittenFile> {
        let done = match std::mem::replace(&mut self.to, Target::Finished) {
            Target::Local(file) => file.finish(),
            Target::Store {
                store,
                path,
                rt,
                part,
                multipart,
            } => {
                let part = object_store::PutPayload::from(part);
                match multipart {
                    None => rt
                        .block_on(object_store::ObjectStoreExt::put(
                            store.as_ref(),
                            &path,
                            part,
                        ))
                        .map(drop),
                    Some(mut upload) => rt
                        .block_on(async {
                            upload.put_part(part).await?;
                            upload.complete().await
                        })
                        .map(drop),
                }
                .map_err(std::io::Error::other)
            }
            Target::Finished => Ok(()),
        };
        match done {
            Ok(()) => Ok(WrittenFile {
                path: self.display.clone(),
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

impl Target {
    /// Appends `data`: to the local file, or to the current part, sent once it is full.
    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Target::Local(file) => file.write_all(data),
            Target::Store {
                store,
                path,
                rt,
                part,
                multipart,
            } => {
                part.extend_from_slice(data);
                if part.len() < PART_BYTES {
                    return Ok(());
                }
                let next = Vec::with_capacity(PART_BYTES + PART_BYTES / 4);
                let payload = object_store::PutPayload::from(std::mem::replace(part, next));
                let upload = match multipart.take() {
                    Some(u) => u,
                    None => rt
                        .block_on(object_store::ObjectStoreExt::put_multipart(
                            store.as_ref(),
                            path,
                        ))
                        .map_err(std::io::Error::other)?,
                };
                let upload = multipart.insert(upload);
                rt.block_on(upload.put_part(payload))
                    .map_err(std::io::Error::other)
            }
            Target::Finished => Err(std::io::Error::other("file already finished")),
        }
    }
}

impl std::io::Write for Upload {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Err(e) = self.to.append(data) {
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

impl Drop for Upload {
    fn drop(&mut self) {
        if let Target::Store { rt, multipart, .. } = &mut self.to
            && let Some(mut upload) = multipart.take()
        {
            rt.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}

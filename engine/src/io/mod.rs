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

use crate::error::Result;
use crate::io::parquet::WrittenFile;

/// A writer of `part-<task>-<n>.<ext>` files under a directory, each closed at a target size.
pub trait FileSink: Send {
    /// Appends a batch.
    fn write(&mut self, batch: &RecordBatch, rt: &Handle) -> Result<()>;
    /// Closes the last file and returns every file written.
    fn finish(self: Box<Self>, rt: &Handle) -> Result<Vec<WrittenFile>>;
}

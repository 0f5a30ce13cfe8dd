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

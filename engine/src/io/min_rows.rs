//! Files of at least `min_rows_per_file` rows (Ray's write keyword), as Ray writes them.
//!
//! Ray bundles whole blocks into a write task until it holds that many rows and writes each
//! bundle as one file. A [`MinRowsSink`] does the same with batches: rows wait in memory
//! until a file can open with at least that many, and the file closes at the first batch
//! boundary where it holds them (the target file size does not apply). The rows a write task
//! ends with that are too few for a file of their own are its *rest*
//! ([`FileSink::take_rest`]): the writer gathers the tasks' rests into one more sink, so at
//! most one file of the whole write holds fewer rows. Memory: fewer than `min_rows` rows per
//! running task, plus the gathering sink's.

use arrow::array::RecordBatch;
use tokio::runtime::Handle;

use crate::error::Result;
use crate::io::FileSink;
use crate::io::parquet::WrittenFile;

/// A sink whose current file the caller closes ([`MinRowsSink`] decides where files end).
pub trait RollingSink: FileSink {
    /// Closes the file open now, if any; the next write opens another.
    fn roll(&mut self) -> Result<()>;
}

/// Files of at least `min_rows` rows (see the module).
#[derive(Debug)]
pub struct MinRowsSink<S> {
    inner: S,
    min_rows: u64,
    /// Rows waiting for a file (fewer than `min_rows`, while no file is open).
    pending: Vec<RecordBatch>,
    pending_rows: u64,
    /// Rows in the file open now (0: none open).
    file_rows: u64,
    /// The I/O runtime of the writes, for the rows `finish` writes.
    rt: Option<Handle>,
}

impl<S: RollingSink> MinRowsSink<S> {
    /// `inner` must not close files by itself (open it with no target size).
    pub fn new(inner: S, min_rows: u64) -> Self {
        MinRowsSink {
            inner,
            min_rows: min_rows.max(1),
            pending: Vec::new(),
            pending_rows: 0,
            file_rows: 0,
            rt: None,
        }
    }
}

impl<S: RollingSink> FileSink for MinRowsSink<S> {
    fn write(&mut self, batch: &RecordBatch, rt: &Handle) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.file_rows == 0 {
            if self.rt.is_none() {
                self.rt = Some(rt.clone());
            }
            self.pending.push(batch.clone());
            self.pending_rows += batch.num_rows() as u64;
            if self.pending_rows < self.min_rows {
                return Ok(());
            }
            for b in std::mem::take(&mut self.pending) {
                self.inner.write(&b, rt)?;
            }
            self.file_rows = std::mem::take(&mut self.pending_rows);
        } else {
            self.inner.write(batch, rt)?;
            self.file_rows += batch.num_rows() as u64;
        }
        if self.file_rows >= self.min_rows {
            self.inner.roll()?;
            self.file_rows = 0;
        }
        Ok(())
    }

    fn take_rest(&mut self) -> Vec<RecordBatch> {
        self.pending_rows = 0;
        std::mem::take(&mut self.pending)
    }

    /// Closes the last file; rows still waiting (the whole write's rest) make a file of
    /// their own.
    fn finish(mut self: Box<Self>) -> Result<Vec<WrittenFile>> {
        if let Some(rt) = self.rt.take() {
            for b in std::mem::take(&mut self.pending) {
                self.inner.write(&b, &rt)?;
            }
        }
        Box::new(self.inner).finish()
    }
}

/// A sink made by `make(target)`: with `min_rows`, a [`MinRowsSink`] over one made with no
/// target size; without, the sink itself, its files closed at `target_bytes`.
pub(crate) fn sized<S: RollingSink + 'static>(
    min_rows: Option<u64>,
    target_bytes: u64,
    make: impl FnOnce(u64) -> Result<S>,
) -> Result<Box<dyn FileSink>> {
    Ok(match min_rows {
        None => Box::new(make(target_bytes)?),
        Some(m) => Box::new(MinRowsSink::new(make(u64::MAX)?, m)),
    })
}

//! Shared-memory segments: an object's Arrow IPC stream encoding in a file under the shm
//! directory (`/dev/shm`), written once and then sealed (mapped read-only, file mode 0400).
//!
//! Another process maps the file and decodes it without copying ([`map_segment`]): Python
//! workers through pyarrow, Flight straight from the mapping. A [`Segment`] unlinks its file
//! when dropped, so the store frees a segment by dropping it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use arrow::buffer::Buffer;
use memmap2::{Mmap, MmapOptions};

use crate::core::object::{ObjectData, decode_ipc, encoded_len};
use crate::error::{Error, Result};

/// A sealed shared-memory segment owned by the store.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    len: usize,
    map: Arc<Mmap>,
}

impl Segment {
    /// Creates `path` and writes the concatenation of `buffers` into it (one copy), then seals
    /// it.
    pub fn create(path: PathBuf, buffers: &[Buffer]) -> Result<Segment> {
        let file = write_sealed(&path, buffers)?;
        let len = encoded_len(buffers);
        // SAFETY: the file is complete and read-only from here on.
        match unsafe { MmapOptions::new().len(len).map(&file) } {
            Ok(map) => Ok(Segment {
                path,
                len,
                map: Arc::new(map),
            }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(Error::io(
                    format!("mapping shared-memory segment {}", path.display()),
                    e,
                ))
            }
        }
    }

    /// The segment's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty segment (never: encodings are non-empty).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Decodes the object from the mapping without copying.
    pub fn read(&self) -> Result<ObjectData> {
        decode_ipc(self.buffer())
    }

    /// The whole mapping as a buffer (which keeps it mapped).
    pub(crate) fn buffer(&self) -> Buffer {
        mapping_buffer(&self.map)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

pub(crate) fn mapping_buffer(map: &Arc<Mmap>) -> Buffer {
    let ptr = NonNull::new(map.as_ptr() as *mut u8).unwrap_or(NonNull::dangling());
    // SAFETY: `ptr` is valid for `map.len()` bytes for as long as the `Arc<Mmap>` passed as
    // owner lives, and the mapping is read-only.
    unsafe { Buffer::from_custom_allocation(ptr, map.len(), map.clone()) }
}

/// A segment mapped by a reader (any process).
#[derive(Debug)]
pub struct MappedSegment {
    map: Arc<Mmap>,
    data: ObjectData,
}

impl MappedSegment {
    /// The decoded object; its Arrow buffers point into the mapping.
    pub fn data(&self) -> &ObjectData {
        &self.data
    }

    /// The mapped address range, to check that buffers were not copied.
    pub fn address_range(&self) -> std::ops::Range<usize> {
        let start = self.map.as_ptr() as usize;
        start..start + self.map.len()
    }
}

/// Maps the segment at `path` read-only and decodes it zero-copy.
pub fn map_segment(path: &Path) -> Result<MappedSegment> {
    map_with(path, decode_ipc)
}

/// [`map_segment`] for a segment of the node's store named by the node itself (a call's
/// argument in a worker): its contents are not validated again (see
/// [`crate::core::object::decode_ipc_written_by_node`]).
pub(crate) fn map_store_segment(path: &Path) -> Result<MappedSegment> {
    map_with(path, crate::core::object::decode_ipc_written_by_node)
}

fn map_with(path: &Path, decode: fn(Buffer) -> Result<ObjectData>) -> Result<MappedSegment> {
    let ctx = || format!("mapping shared-memory segment {}", path.display());
    let map = map_file(path).map_err(|e| Error::io(ctx(), e))?;
    let data = decode(mapping_buffer(&map))?;
    Ok(MappedSegment { map, data })
}

/// Creates `path` (it must not exist), writes the concatenation of `buffers` into it (one
/// copy, straight from the buffers into the segment's pages) and seals it (mode 0400). On
/// failure the file is removed again.
pub(crate) fn write_sealed(path: &Path, buffers: &[Buffer]) -> Result<fs::File> {
    let ctx = || format!("creating shared-memory segment {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(ctx(), e))?;
    let written = (|| {
        if encoded_len(buffers) == 0 {
            return Err(Error::Internal("empty IPC encoding".into()));
        }
        let mut f = &file;
        for b in buffers {
            f.write_all(b.as_slice()).map_err(|e| Error::io(ctx(), e))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o400))
            .map_err(|e| Error::io(ctx(), e))
    })();
    match written {
        Ok(()) => Ok(file),
        Err(e) => {
            let _ = fs::remove_file(path);
            Err(e)
        }
    }
}

/// Takes over a segment another process wrote and handed over (a worker's result): maps it,
/// unlinks its file (the mapping keeps the pages until the last buffer into it is dropped)
/// and decodes it zero-copy.
pub(crate) fn adopt_segment(path: &Path) -> Result<ObjectData> {
    let mapped = map_segment(path);
    let _ = fs::remove_file(path);
    Ok(mapped?.data)
}

/// Takes over a handed-over file of raw bytes (a result's body, see
/// [`crate::core::layout`]): maps it and unlinks it; the buffer keeps the mapping.
pub(crate) fn adopt_file(path: &Path) -> Result<Buffer> {
    let map = map_file(path);
    let _ = fs::remove_file(path);
    let map = map.map_err(|e| {
        Error::io(
            format!("mapping shared-memory segment {}", path.display()),
            e,
        )
    })?;
    Ok(mapping_buffer(&map))
}

/// Maps a file that nobody writes any more (a sealed segment, a spill file) read-only.
pub(crate) fn map_file(path: &Path) -> std::io::Result<Arc<Mmap>> {
    let file = fs::File::open(path)?;
    // SAFETY: the file is immutable once written: segments are sealed, spill files are
    // written once under a unique name and only deleted (which keeps the mapping valid).
    let map = unsafe { Mmap::map(&file) }?;
    Ok(Arc::new(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::object::{Block, encode_ipc};
    use arrow::array::{Array, Float64Array, RecordBatch};

    #[test]
    fn segment_maps_zero_copy_and_unlinks_on_drop() {
        let dir = std::env::temp_dir().join(format!("volley-shm-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let values = Float64Array::from_iter_values((0..100_000).map(|i| i as f64));
        let batch = RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).unwrap();
        let data = ObjectData::Arrow(Block::from(batch.clone()));
        let seg = Segment::create(dir.join("seg"), &encode_ipc(&data).unwrap()).unwrap();
        let mapped = map_segment(seg.path()).unwrap();
        let ObjectData::Arrow(block) = mapped.data() else {
            panic!("not arrow")
        };
        assert_eq!(block.concat().unwrap(), batch);
        let col = block.batches()[0].column(0).to_data();
        let addr = col.buffers()[0].as_ptr() as usize;
        assert!(
            mapped.address_range().contains(&addr),
            "values buffer was copied"
        );
        let path = seg.path().to_path_buf();
        drop(seg);
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}

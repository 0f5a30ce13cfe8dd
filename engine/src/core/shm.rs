//! Shared-memory segments: an object's Arrow IPC stream encoding in a file under the shm
//! directory (`/dev/shm`), written once and then sealed (mapped read-only, file mode 0400).
//!
//! Another process maps the file and decodes it without copying ([`map_segment`]): Python
//! workers through pyarrow, Flight straight from the mapping. A [`Segment`] unlinks its file
//! when dropped, so the store frees a segment by dropping it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::buffer::Buffer;
use memmap2::{Mmap, MmapMut, MmapOptions};

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
    let ctx = || {
        format!(
            "creating shared-memory segment {} ({} bytes)",
            path.display(),
            encoded_len(buffers)
        )
    };
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

/// A call's argument arena: one shared-memory file per worker call channel that the node
/// rewrites for each direct call (a `map_batches` batch) instead of writing a new segment:
/// its pages stay allocated and mapped in both processes, so a call costs one copy into
/// warm pages rather than a file's page allocations, faults and frees.
///
/// # The protocol between the node (writer) and its worker (reader)
///
/// An arena belongs to one call channel of one worker, and a channel runs one call at a
/// time. The node is the only writer; the worker maps the file read-only
/// ([`map_arena`]). Each call moves the arena through these states:
///
/// 1. **Free.** No call is running on the channel. The node may rewrite the arena, and does
///    so only through [`Arena::write`], which takes `&mut self` and needs the only handle
///    on the mapping: a [`Arena::view`] of an earlier call's argument still alive on the
///    node's side (a result that kept an argument's buffers) refuses the write, and the
///    node takes a new arena instead.
/// 2. **Lent.** The node wrote the call's arguments and sent the call naming each one's
///    `(path, offset, len)` (`WireData::Arena`). The channel is held by this call until
///    its reply (`WorkerProc::run_with` owns it), so nothing writes the arena meanwhile.
///    The worker reads the arguments in place; every value built on them (Arrow arrays,
///    numpy views, a batch the UDF stores in a global) holds the worker's mapping.
/// 3. **Acknowledged.** The worker ends the call with `Done { arena_kept }`, computed after
///    it dropped the call's arguments and results: `arena_kept` is true when a value still
///    holds the mapping, i.e. the user's code kept part of a batch. With `false` the arena
///    is Free again. With `true` the node drops it (the file is unlinked, the worker's
///    mapping keeps its pages alive for the kept values) and makes a new one for the next
///    call; the worker lets go of the path it had mapped.
///
/// A worker that dies mid-call takes its channel, and with it the arena, along. Without the
/// acknowledgement the next call would overwrite batches a UDF kept: the Python test
/// `test_batches_a_udf_keeps_are_never_overwritten` sees exactly that when `arena_kept` is
/// forced to false.
#[derive(Debug)]
pub(crate) struct Arena {
    path: PathBuf,
    map: Arc<MmapMut>,
}

/// Arena files are made this much larger than the call that needs them, so that batches
/// of varying sizes do not replace them call after call.
const ARENA_SLACK: usize = 1 << 20;

/// Gives `file` `len` bytes of real pages now, so that a full shared-memory filesystem is
/// an error here (ENOSPC) rather than a SIGBUS when the mapping is written.
fn allocate(file: &fs::File, len: usize) -> std::io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: posix_fallocate(3) on the open descriptor of a file this function borrows.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// Alignment of each argument in an arena (Arrow's buffers are 64-byte aligned).
pub(crate) const ARENA_ALIGN: usize = 64;

static ARENA_SEQ: AtomicU64 = AtomicU64::new(0);

impl Arena {
    /// A new arena of at least `len` bytes, in a file named `{prefix}{n}` (`prefix` names
    /// the node's session, so that a dead session's sweep frees it).
    pub(crate) fn create(prefix: &Path, len: usize) -> Result<Arena> {
        let seq = ARENA_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!("{}{seq}", prefix.display()));
        let cap = len.next_multiple_of(ARENA_SLACK) + ARENA_SLACK;
        let ctx = || format!("creating argument arena {} ({cap} bytes)", path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(ctx(), e))?;
        let mapped = allocate(&file, cap)
            // SAFETY: the file was just created (exclusively, mode 0600, under the node's
            // session prefix), so no other mapping of it exists; from now on only
            // `Arena::write` changes it, through `&mut self` and only while no view of the
            // mapping is alive (`Arc::get_mut`); worker processes map it read-only and read
            // it only while the protocol above lends it to them.
            .and_then(|()| unsafe { MmapMut::map_mut(&file) });
        match mapped {
            Ok(map) => Ok(Arena {
                path,
                map: Arc::new(map),
            }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(Error::io(ctx(), e))
            }
        }
    }

    /// The arena's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the encodings `args` one after the other (each at an [`ARENA_ALIGN`]ed
    /// offset) and returns their `(offset, len)`; `None` when they do not fit or a view of
    /// the previous contents is still alive (the caller takes a new arena).
    pub(crate) fn write(&mut self, args: &[&[Buffer]]) -> Option<Vec<(usize, usize)>> {
        let map = Arc::get_mut(&mut self.map)?;
        let mut placed = Vec::with_capacity(args.len());
        let mut at = 0usize;
        for bufs in args {
            let start = at;
            let end = start.checked_add(encoded_len(bufs))?;
            if end > map.len() {
                return None;
            }
            for b in *bufs {
                map[at..at + b.len()].copy_from_slice(b.as_slice());
                at += b.len();
            }
            placed.push((start, end - start));
            at = end.next_multiple_of(ARENA_ALIGN);
        }
        Some(placed)
    }

    /// Bytes `offset..offset + len` as a read-only buffer; while it lives the arena is not
    /// rewritten.
    pub(crate) fn view(&self, offset: usize, len: usize) -> Buffer {
        let bytes = &self.map[offset..offset + len];
        let ptr = NonNull::new(bytes.as_ptr() as *mut u8).unwrap_or(NonNull::dangling());
        // SAFETY: the range lies in the mapping, which the `Arc` passed as owner keeps
        // alive; `write` changes the mapping only through `Arc::get_mut`, which fails while
        // this buffer (holding a clone of the `Arc`) exists.
        unsafe { Buffer::from_custom_allocation(ptr, len, self.map.clone()) }
    }

    /// Bytes needed to hold the encodings `args` in one arena.
    pub(crate) fn needed(args: &[&[Buffer]]) -> usize {
        args.iter()
            .map(|b| encoded_len(b).next_multiple_of(ARENA_ALIGN))
            .sum()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Maps a node's argument arena read-only, in the worker process it serves.
pub(crate) fn map_arena(path: &Path) -> std::io::Result<Arc<Mmap>> {
    let file = fs::File::open(path)?;
    // SAFETY: unlike a segment the node rewrites this file, but never while this process
    // may read it (see `Arena`): it writes only while no call of this worker's channel is
    // running, and only when the last call's `Done` reported that no value of this process
    // still holds the mapping (`arena_kept`); otherwise it writes a new file instead.
    let map = unsafe { Mmap::map(&file) }?;
    Ok(Arc::new(map))
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

    /// A tmpfs of `mib` MiB mounted for a test (the suite runs as root, as CI does), and
    /// unmounted when dropped.
    struct SmallTmpfs(PathBuf);

    impl SmallTmpfs {
        fn mount(name: &str, mib: u32) -> SmallTmpfs {
            let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            let out = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "mounting a tmpfs (this test needs root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            SmallTmpfs(dir)
        }
    }

    impl Drop for SmallTmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_full_shm_directory_is_an_error_naming_the_file_and_size_not_a_crash() {
        let fs4 = SmallTmpfs::mount("volley-full-shm", 4);
        // An arena larger than the filesystem: an error at creation (a sparse file would
        // have been created, and writing into its mapping killed the process with SIGBUS).
        let err = Arena::create(&fs4.0.join("volley-x-a-"), 8 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("No space left on device"), "{err}");
        assert!(
            err.contains("volley-x-a-") && err.contains("bytes"),
            "{err}"
        );
        // A segment larger than the filesystem: an error too.
        let big = Float64Array::from_iter_values((0..1_000_000).map(|i| i as f64));
        let batch = RecordBatch::try_from_iter([("v", Arc::new(big) as _)]).unwrap();
        let data = ObjectData::Arrow(Block::from(batch));
        let err = Segment::create(fs4.0.join("seg"), &encode_ipc(&data).unwrap()).unwrap_err();
        assert!(err.to_string().contains("No space left on device"), "{err}");
        // Nothing is left behind, and what fits still works.
        assert_eq!(fs::read_dir(&fs4.0).unwrap().count(), 0);
        let mut small = Arena::create(&fs4.0.join("volley-x-a-"), 1 << 20).unwrap();
        let buf = Buffer::from_vec(vec![5u8; 1000]);
        assert!(small.write(&[&[buf]]).is_some());
    }

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

    #[test]
    fn an_arena_is_rewritten_in_place_only_while_no_view_of_it_lives() {
        let dir = std::env::temp_dir().join(format!("volley-arena-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let encode = |from: i64, n: i64| {
            let values = arrow::array::Int64Array::from_iter_values(from..from + n);
            let batch = RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).unwrap();
            (
                encode_ipc(&ObjectData::Arrow(Block::from(batch.clone()))).unwrap(),
                batch,
            )
        };
        let decode = |buf: Buffer| match decode_ipc(buf).unwrap() {
            ObjectData::Arrow(b) => b.concat().unwrap(),
            ObjectData::Bytes { .. } => panic!("not arrow"),
        };
        let (first, first_batch) = encode(0, 1000);
        let (second, second_batch) = encode(5000, 10);
        let mut arena = Arena::create(&dir.join("a-"), Arena::needed(&[&first])).unwrap();
        assert!(arena.path().exists());
        let capacity = fs::metadata(arena.path()).unwrap().len() as usize;
        assert!(capacity >= encoded_len(&first) + ARENA_SLACK);

        // Two arguments, each at an aligned offset; another process sees them in the file.
        let placed = arena.write(&[&first, &second]).unwrap();
        assert_eq!(placed[0], (0, encoded_len(&first)));
        assert_eq!(placed[1].0 % ARENA_ALIGN, 0);
        assert!(placed[1].0 >= encoded_len(&first));
        let (offset, len) = placed[1];
        let mapped = map_file(arena.path()).unwrap();
        assert_eq!(
            decode(mapping_buffer(&mapped).slice_with_length(offset, len)),
            second_batch
        );

        // A view of the contents blocks the next write; its data stays what it was.
        let view = arena.view(0, placed[0].1);
        assert!(arena.write(&[&second]).is_none());
        assert_eq!(decode(view.clone()), first_batch);
        drop(view);
        // With the view gone the arena is rewritten in place, and the reader's mapping of
        // the file sees the new contents.
        assert_eq!(arena.write(&[&second]).unwrap(), vec![(0, len)]);
        assert_eq!(
            decode(mapping_buffer(&mapped).slice_with_length(0, len)),
            second_batch
        );

        // Arguments larger than the arena do not fit.
        let (big, _) = encode(0, capacity as i64 / 8 + 1);
        assert!(arena.write(&[&big]).is_none());

        let path = arena.path().to_path_buf();
        drop(arena);
        assert!(!path.exists(), "the arena's file outlived it");
        fs::remove_dir_all(&dir).unwrap();
    }
}

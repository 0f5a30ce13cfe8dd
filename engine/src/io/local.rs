//! Local files read and written without fresh memory for every byte.
//!
//! Through `object_store`, reading a column chunk allocates a new buffer the size of the chunk
//! (glibc maps it fresh, so the kernel faults in and zeroes every page before the read copies
//! into it), and writing a file copies every byte into newly allocated page-cache pages. On a
//! virtual machine each fresh page may also cost the host a fault. Local files skip both:
//!
//! - [`read_ranges`] reads with `pread` into buffers taken from a small pool; the parquet
//!   reader gets slices of them, and a buffer goes back to the pool when its last slice drops.
//! - [`DirectFile`] writes through `O_DIRECT` from a reused, page-aligned chunk buffer
//!   (straight from that buffer to the device, no page-cache copy), to a hidden staging file
//!   renamed into place when complete. Filesystems without `O_DIRECT` (tmpfs) get ordinary
//!   writes from the same buffer.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use memmap2::MmapMut;
use parking_lot::Mutex;

/// Reads of at least this many bytes use pooled buffers; smaller ones (footers, small
/// chunks) are cheap to allocate.
const POOLED_MIN: usize = 1 << 20;
/// Bytes of idle read buffers kept for reuse (all threads together).
const READ_POOL_BYTES: usize = 256 << 20;
/// Ranges closer than this are read with one `pread` (the gap is read and skipped).
const COALESCE_GAP: u64 = 1 << 20;

/// Idle read buffers, oldest first.
static READ_BUFFERS: Mutex<VecDeque<Vec<u8>>> = Mutex::new(VecDeque::new());

/// A read buffer on loan; dropped, it goes back to the pool (oldest idle buffers make room).
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() < POOLED_MIN || buf.capacity() > READ_POOL_BYTES {
            return;
        }
        let mut pool = READ_BUFFERS.lock();
        let mut held: usize = pool.iter().map(Vec::capacity).sum();
        while held + buf.capacity() > READ_POOL_BYTES {
            match pool.pop_front() {
                Some(old) => held -= old.capacity(),
                None => return,
            }
        }
        pool.push_back(buf);
    }
}

/// A buffer of `n` initialized bytes: an idle pooled one that fits (not more than twice the
/// size), or a new one with room for slightly larger reads later.
fn take_buffer(n: usize) -> Vec<u8> {
    if n < POOLED_MIN {
        return vec![0; n];
    }
    let reused = {
        let mut pool = READ_BUFFERS.lock();
        let fit = (0..pool.len())
            .filter(|&i| (n..=2 * n).contains(&pool[i].capacity()))
            .min_by_key(|&i| pool[i].capacity());
        fit.and_then(|i| pool.remove(i))
    };
    let mut buf =
        reused.unwrap_or_else(|| Vec::with_capacity((n + n / 8).next_multiple_of(POOLED_MIN)));
    // A reused buffer is initialized up to its old length: only growth is zeroed.
    if buf.len() > n {
        buf.truncate(n);
    } else {
        buf.resize(n, 0);
    }
    buf
}

/// Reads `ranges` of `file`: ranges less than [`COALESCE_GAP`] apart share one `pread` into
/// one buffer, and each range comes back as a slice of it.
pub(crate) fn read_ranges(file: &File, ranges: &[Range<u64>]) -> std::io::Result<Vec<Bytes>> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].start);
    let mut out = vec![Bytes::new(); ranges.len()];
    let mut at = 0;
    while at < order.len() {
        let start = ranges[order[at]].start;
        let mut end = ranges[order[at]].end;
        let mut last = at + 1;
        while last < order.len() && ranges[order[last]].start <= end + COALESCE_GAP {
            end = end.max(ranges[order[last]].end);
            last += 1;
        }
        let mut buf = take_buffer((end - start) as usize);
        file.read_exact_at(&mut buf, start)?;
        let span = Bytes::from_owner(Pooled(buf));
        for &i in &order[at..last] {
            let r = &ranges[i];
            out[i] = span.slice((r.start - start) as usize..(r.end - start) as usize);
        }
        at = last;
    }
    Ok(out)
}

/// Bytes a [`DirectFile`] sends to the file at once; a multiple of every block size.
const CHUNK: usize = 8 << 20;
/// Alignment of `O_DIRECT` offsets and lengths (and of the chunk buffer, a page).
const BLOCK: usize = 4096;
/// Idle chunk buffers kept for the next files.
const CHUNK_POOL: usize = 4;

static CHUNK_BUFFERS: Mutex<Vec<MmapMut>> = Mutex::new(Vec::new());
static STAGING: AtomicU64 = AtomicU64::new(0);

/// A chunk buffer on loan; dropped, it goes back to the pool (if the pool has room).
struct ChunkBuf(Option<MmapMut>);

impl ChunkBuf {
    fn take() -> std::io::Result<Self> {
        let buf = match CHUNK_BUFFERS.lock().pop() {
            Some(b) => b,
            None => MmapMut::map_anon(CHUNK)?,
        };
        Ok(ChunkBuf(Some(buf)))
    }
}

impl std::ops::Deref for ChunkBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl std::ops::DerefMut for ChunkBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        let mut pool = CHUNK_BUFFERS.lock();
        if let Some(buf) = self.0.take()
            && pool.len() < CHUNK_POOL
        {
            pool.push(buf);
        }
    }
}

impl std::fmt::Debug for ChunkBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkBuf")
    }
}

/// A local file being written: whole chunks go out with `O_DIRECT` from a page-aligned buffer;
/// the last, partial chunk is padded to a block and the file truncated to its length. It is
/// written under a hidden staging name and renamed into place by [`DirectFile::finish`];
/// dropped unfinished, it removes the staging file.
#[derive(Debug)]
pub(crate) struct DirectFile {
    file: File,
    /// Empty once the file is renamed into place.
    staging: PathBuf,
    target: PathBuf,
    buf: ChunkBuf,
    filled: usize,
    written: u64,
    direct: bool,
}

impl DirectFile {
    /// Starts `target` (its directory must exist).
    pub(crate) fn create(target: &Path) -> std::io::Result<Self> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let n = STAGING.fetch_add(1, Ordering::Relaxed);
        let staging = target.with_file_name(format!(".{name}.{}-{n}.volley", std::process::id()));
        let open = |flags| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(flags)
                .open(&staging)
        };
        let (file, direct) = match open(libc::O_DIRECT) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(0)?, false),
            Err(e) => return Err(e),
        };
        Ok(DirectFile {
            file,
            staging,
            target: target.to_path_buf(),
            buf: ChunkBuf::take()?,
            filled: 0,
            written: 0,
            direct,
        })
    }

    /// Appends `data`.
    pub(crate) fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(CHUNK - self.filled);
            self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == CHUNK {
                self.send(CHUNK)?;
                self.written += CHUNK as u64;
                self.filled = 0;
            }
        }
        Ok(())
    }

    /// Writes the buffer's first `len` bytes at the end of what is written; a filesystem that
    /// refuses `O_DIRECT` at the first write gets ordinary writes from then on.
    fn send(&mut self, len: usize) -> std::io::Result<()> {
        match self.file.write_all_at(&self.buf[..len], self.written) {
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.direct = false;
                self.file = OpenOptions::new().write(true).open(&self.staging)?;
                self.file.write_all_at(&self.buf[..len], self.written)
            }
            r => r,
        }
    }

    /// Writes what is left, truncates to the exact length and renames the file into place.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        let tail = self.filled;
        if tail > 0 {
            let len = if self.direct {
                let padded = tail.next_multiple_of(BLOCK);
                self.buf[tail..padded].fill(0);
                padded
            } else {
                tail
            };
            self.send(len)?;
            self.written += tail as u64;
            self.filled = 0;
            if len != tail {
                self.file.set_len(self.written)?;
            }
        }
        std::fs::rename(&self.staging, &self.target)?;
        self.staging = PathBuf::new();
        Ok(())
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        if !self.staging.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the temp dir, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("volley-local-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TestDir(p)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    #[test]
    fn a_direct_file_holds_exactly_its_bytes_and_appears_only_when_finished() {
        let dir = TestDir::new("exact");
        // Tails of every kind: none, less than a block, a chunk and a bit.
        for len in [0, 1, BLOCK - 1, CHUNK, 2 * CHUNK + 12_345] {
            let target = dir.path().join(format!("f-{len}.bin"));
            let data = pattern(len);
            let mut f = DirectFile::create(&target).unwrap();
            for piece in data.chunks(1_000_003) {
                f.write_all(piece).unwrap();
            }
            assert!(!target.exists(), "a file appears only when finished");
            f.finish().unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), data, "{len} bytes");
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with('.')),
            "staging files left: {names:?}"
        );
    }

    #[test]
    fn a_direct_file_dropped_unfinished_leaves_nothing() {
        let dir = TestDir::new("dropped");
        let target = dir.path().join("never.bin");
        let mut f = DirectFile::create(&target).unwrap();
        f.write_all(&pattern(CHUNK + 10)).unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn ranges_read_back_exactly_whether_coalesced_or_not() {
        let dir = TestDir::new("ranges");
        let path = dir.path().join("data.bin");
        let data = pattern(6 << 20);
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        // Out of order, overlapping, adjacent, far apart, small and large.
        let ranges = [
            (5 << 20)..(6 << 20),
            0..10,
            10..(2 << 20),
            (1 << 20)..(1 << 20) + 100,
            (4 << 20) + 7..(4 << 20) + 9,
        ];
        for _ in 0..3 {
            let got = read_ranges(&file, &ranges).unwrap();
            for (r, b) in ranges.iter().zip(&got) {
                assert_eq!(&b[..], &data[r.start as usize..r.end as usize], "{r:?}");
            }
        }
        let past_end = read_ranges(&file, std::slice::from_ref(&((6 << 20)..(6 << 20) + 1)));
        assert!(past_end.is_err(), "reading past the end is an error");
    }
}

//! A node's footprint on its machine, set up when it starts: the allocator's thresholds, the
//! sweep of what dead nodes left behind, and a check of the shared-memory directory.

/// Sets glibc's mmap and trim thresholds once per process (see
/// [`crate::Config::malloc_mmap_threshold`]); other C libraries are left alone.
pub(crate) fn tune_allocator(threshold: usize) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if threshold == 0 {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    ONCE.call_once(|| {
        let t = threshold.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: mallopt only sets allocator parameters; it is called with valid options
        // and values, before this runtime allocates its buffers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, t);
            libc::mallopt(libc::M_TRIM_THRESHOLD, t);
        }
    });
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    ONCE.call_once(|| {});
}

/// Removes what nodes of dead processes left behind (a driver killed with SIGKILL cannot
/// clean up): their session directories `session_<pid>_<node>` and their shared-memory
/// segments `volley-<node>-*`. A live process's session is never touched.
pub(crate) fn sweep_dead_sessions(temp_dir: &std::path::Path, shm_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((pid, node)) = name
            .strip_prefix("session_")
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(pid, node)| Some((pid.parse::<i32>().ok()?, node.to_string())))
        else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if alive {
            continue;
        }
        let prefix = format!("volley-{node}-");
        if let Ok(segs) = std::fs::read_dir(shm_dir) {
            for s in segs.flatten() {
                if s.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(s.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

/// Says so on stderr when the object store's budget exceeds the free space of its
/// shared-memory directory: objects past that space fail to be created there (with an
/// error naming the directory, never a crash).
pub(crate) fn warn_if_shm_is_small(shm_dir: &std::path::Path, budget: u64) {
    let Ok(path) = std::ffi::CString::new(shm_dir.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: statvfs(3) fills the zeroed plain C struct it is given from a NUL-terminated
    // path that outlives the call.
    let free = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return;
        }
        st.f_bavail as u64 * st.f_frsize as u64
    };
    if budget > free {
        eprintln!(
            "volley: the object store's budget ({budget} bytes) is larger than the free space \
             of its shared-memory directory {} ({free} bytes): objects past that fail to be \
             created there; lower object_store_memory or set shm_dir",
            shm_dir.display()
        );
    }
}

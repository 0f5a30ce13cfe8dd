//! SIGTERM as a clean shutdown. While a node runs, SIGTERM shuts it down (workers
//! stopped, segments, spill files and the session directory removed) and the process then
//! dies of the signal, as it would have without Volley. Where the program installed a
//! handler of its own before `init` (or ignores SIGTERM), that is left alone. A second
//! SIGTERM during the shutdown kills at once: the default action is back by then.
//!
//! The handler only writes a byte to a pipe (async-signal-safe); a watcher thread, started
//! by `init` and ended by `shutdown`, does the work. The pipe is made once per process and
//! kept, so a late handler never writes into a descriptor that was reused.

use std::sync::OnceLock;
use std::thread::JoinHandle;

use parking_lot::Mutex;

/// The pipe's ends (read, write), made on first use.
static PIPE: OnceLock<Option<(libc::c_int, libc::c_int)>> = OnceLock::new();
/// The watcher thread of the running node.
static WATCHER: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

const TERM: u8 = 1;
const QUIT: u8 = 0;

extern "C" fn on_sigterm(_: libc::c_int) {
    if let Some(Some((_, w))) = PIPE.get() {
        let b = TERM;
        // SAFETY: write(2) of one byte from a live local to the pipe's write end, which is
        // never closed; async-signal-safe.
        unsafe {
            libc::write(*w, (&b as *const u8).cast(), 1);
        }
    }
}

fn pipe() -> Option<(libc::c_int, libc::c_int)> {
    *PIPE.get_or_init(|| {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2(2) writes two descriptors into the array it is given.
        (unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0).then_some((fds[0], fds[1]))
    })
}

/// The current SIGTERM action's handler address.
fn current_handler() -> libc::sighandler_t {
    // SAFETY: sigaction(2) with a null new action only reads the current one into `old`,
    // a zeroed plain C struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGTERM, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

fn set_handler(handler: libc::sighandler_t) {
    // SAFETY: sigaction(2) with a zeroed action whose handler is SIG_DFL or `on_sigterm`
    // (an `extern "C" fn(c_int)` that only calls write(2)) and an empty mask.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGTERM, &act, std::ptr::null_mut());
    }
}

fn ours() -> libc::sighandler_t {
    on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t
}

/// Takes SIGTERM for the node starting now, where it has its default action.
pub(crate) fn install() {
    let mut watcher = WATCHER.lock();
    if watcher.is_some() || current_handler() != libc::SIG_DFL {
        return;
    }
    let Some((read, _)) = pipe() else { return };
    let Ok(thread) = std::thread::Builder::new()
        .name("volley-sigterm".into())
        .spawn(move || watch(read))
    else {
        return;
    };
    set_handler(ours());
    *watcher = Some(thread);
}

fn watch(read: libc::c_int) {
    let mut b = 0u8;
    loop {
        // SAFETY: read(2) of one byte into a live local from the pipe's read end.
        let n = unsafe { libc::read(read, (&mut b as *mut u8).cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n != 1 || b == QUIT {
            return;
        }
        // A second SIGTERM from here on kills at once.
        set_handler(libc::SIG_DFL);
        crate::core::node::shutdown();
        // SAFETY: raise(2) of SIGTERM, whose action is the default again: the process dies
        // of the signal it was sent.
        unsafe {
            libc::raise(libc::SIGTERM);
        }
        return;
    }
}

/// Gives SIGTERM back (when the handler is still ours) and ends the watcher thread; called
/// when the node has shut down.
pub(crate) fn uninstall() {
    let Some(thread) = WATCHER.lock().take() else {
        return;
    };
    if current_handler() == ours() {
        set_handler(libc::SIG_DFL);
    }
    if thread.thread().id() == std::thread::current().id() {
        return; // the watcher itself, shutting down for a SIGTERM: it raises it next
    }
    if let Some((_, w)) = pipe() {
        let b = QUIT;
        // SAFETY: write(2) of one byte from a live local to the pipe's write end.
        unsafe {
            libc::write(w, (&b as *const u8).cast(), 1);
        }
    }
    let _ = thread.join();
}

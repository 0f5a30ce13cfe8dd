//! The node's worker processes: started on demand (each connects back over the node's Unix
//! socket), leased to tasks and given back, and stopped when they have been idle too long
//! beyond the soft limit (Ray's `num_workers_soft_limit` and
//! `idle_worker_killing_time_threshold_ms`).

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{
    CallChannel, FromWorker, HANDOFF_PREFIX_ENV, INLINE_MAX_ENV, SendAhead, ToWorker, WorkerProc,
    WorkerShared, read_frame, write_frame,
};
use crate::config::Config;
use crate::core::foreign::serve_request;
use crate::core::node::NodeInner;
use crate::error::{Error, Result};

/// Serves a worker's client channel until it closes. No thread waits on it: the node's
/// I/O runtime watches the socket, and each request is read and served on a blocking
/// thread (bound to the node).
async fn serve_client(node: Weak<NodeInner>, shared: Arc<WorkerShared>, mut ch: UnixStream) {
    loop {
        // Not watchable: read (blocking) on the blocking thread.
        let watched = super::readable(ch.as_raw_fd()).await;
        let (node, shared) = (node.clone(), shared.clone());
        let served = tokio::task::spawn_blocking(move || {
            let arrived = !watched || super::arrives_within(&ch, Duration::ZERO);
            let open = !arrived || serve_one(&node, &shared, &mut ch);
            open.then_some(ch)
        })
        .await;
        match served {
            Ok(Some(open)) => ch = open,
            _ => return,
        }
    }
}

/// Reads one request from a worker's client channel and answers it; false when the
/// channel is done (closed, broken, or the node is gone).
fn serve_one(node: &Weak<NodeInner>, shared: &WorkerShared, ch: &mut UnixStream) -> bool {
    let Ok(FromWorker::Request { sync, req }) = read_frame::<FromWorker>(ch) else {
        return false;
    };
    let Some(node) = node.upgrade() else {
        return false;
    };
    let reply = crate::core::node::enter(&node, || {
        shared.apply(&node, sync);
        serve_request(&node, shared, req)
    });
    drop(node);
    write_frame(ch, &ToWorker::Reply(reply)).is_ok()
}

type Arrivals = Sender<(u32, UnixStream)>;

/// Idle task workers, oldest first, with when each went idle.
struct Idle {
    list: Mutex<Vec<(WorkerProc, Instant)>>,
    /// Wakes the culler: a worker went idle, or the pool closed.
    wake: Condvar,
    /// Idle workers kept however long they are idle.
    soft_limit: usize,
    /// How long a worker past the soft limit may stay idle.
    threshold: Duration,
}

/// The node's worker processes.
pub(crate) struct WorkerPool {
    command: Option<Vec<String>>,
    start_timeout: Duration,
    socket: PathBuf,
    listener: Mutex<Option<JoinHandle<()>>>,
    pending: Arc<Mutex<HashMap<u64, Arrivals>>>,
    idle: Arc<Idle>,
    /// The thread that stops workers idle past the threshold (started with the first
    /// worker given back past the soft limit).
    culler: Mutex<Option<JoinHandle<()>>>,
    /// Pids of every live worker by token (killed at shutdown).
    live: Arc<Mutex<HashMap<u64, u32>>>,
    next_token: AtomicU64,
    closed: Arc<AtomicBool>,
}

impl WorkerPool {
    pub(crate) fn new(config: &Config, session_dir: &std::path::Path) -> Self {
        WorkerPool {
            command: config.worker_command.clone(),
            start_timeout: config.worker_start_timeout,
            socket: session_dir.join("workers.sock"),
            listener: Mutex::new(None),
            pending: Arc::new(Mutex::new(HashMap::new())),
            idle: Arc::new(Idle {
                list: Mutex::new(Vec::new()),
                wake: Condvar::new(),
                soft_limit: config
                    .num_workers_soft_limit
                    .unwrap_or_else(|| config.resolved_num_cpus().ceil().max(1.0) as usize),
                threshold: config.idle_worker_killing_time_threshold,
            }),
            culler: Mutex::new(None),
            live: Arc::new(Mutex::new(HashMap::new())),
            next_token: AtomicU64::new(1),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts the listener the first time a worker is needed.
    fn listen(&self) -> Result<()> {
        let mut l = self.listener.lock();
        if l.is_some() {
            return Ok(());
        }
        let listener = UnixListener::bind(&self.socket)
            .map_err(|e| Error::io(format!("binding {}", self.socket.display()), e))?;
        let pending = self.pending.clone();
        let closed = self.closed.clone();
        let h = std::thread::Builder::new()
            .name("volley-workers".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if closed.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    // A hello that never comes must not stall the others.
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let Ok(FromWorker::Hello { token, channel }) = read_frame(&mut conn) else {
                        continue;
                    };
                    let _ = conn.set_read_timeout(None);
                    if let Some(tx) = pending.lock().get(&token) {
                        let _ = tx.send((channel, conn));
                    }
                }
            })
            .map_err(|e| Error::io("starting the worker listener", e))?;
        *l = Some(h);
        Ok(())
    }

    /// Starts a worker process with `channels` call channels.
    pub(crate) fn spawn(&self, node: &Arc<NodeInner>, channels: u32) -> Result<WorkerProc> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        let cmd = self
            .command
            .as_ref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "this function runs in a worker process, but no worker command is configured \
                 (Config::worker_command / VOLLEY_WORKER_COMMAND)"
                        .into(),
                )
            })?;
        self.listen()?;
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel();
        self.pending.lock().insert(token, tx);
        let mut command = Command::new(&cmd[0]);
        // As Ray does: one thread for OpenMP / BLAS pools in workers, unless the user set
        // it (their idle pools otherwise spin on the node's cores).
        for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"] {
            if std::env::var_os(var).is_none() {
                command.env(var, "1");
            }
        }
        let spawned = command
            .args(&cmd[1..])
            .env("VOLLEY_WORKER_SOCKET", &self.socket)
            .env("VOLLEY_WORKER_TOKEN", token.to_string())
            .env("VOLLEY_WORKER_CHANNELS", channels.to_string())
            .env("VOLLEY_NODE_ID", node.id.to_string())
            .env("VOLLEY_JOB_ID", node.job.to_string())
            .env(
                INLINE_MAX_ENV,
                node.config.max_inline_object_size.to_string(),
            )
            .env(
                HANDOFF_PREFIX_ENV,
                node.shm_dir.join(format!("{}w{token}-", node.shm_prefix)),
            )
            .stdin(Stdio::piped())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                self.pending.lock().remove(&token);
                return Err(Error::io(format!("starting worker process {:?}", cmd), e));
            }
        };
        self.live.lock().insert(token, child.id());
        let got = self.collect(child, &rx, channels);
        self.pending.lock().remove(&token);
        let (child, mut conns) = match got {
            Ok(x) => x,
            Err(e) => {
                self.live.lock().remove(&token);
                return Err(e);
            }
        };
        let shared = Arc::new(WorkerShared {
            pid: child.id(),
            held: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashSet::new()),
        });
        let client_ch = conns
            .pop()
            .ok_or_else(|| Error::Internal("no client channel".into()))?;
        node.io_runtime()?.spawn(serve_client(
            Arc::downgrade(node),
            shared.clone(),
            client_ch,
        ));
        Ok(WorkerProc {
            token,
            child,
            calls: Mutex::new(
                conns
                    .into_iter()
                    .map(|stream| CallChannel {
                        stream,
                        arena: None,
                    })
                    .collect(),
            ),
            ahead: Mutex::new(SendAhead::default()),
            shared,
            live: self.live.clone(),
        })
    }

    /// Waits for the `channels + 1` connections of a new worker, in channel order.
    fn collect(
        &self,
        mut child: Child,
        rx: &Receiver<(u32, UnixStream)>,
        channels: u32,
    ) -> Result<(Child, Vec<UnixStream>)> {
        let deadline = Instant::now() + self.start_timeout;
        let mut slots: Vec<Option<UnixStream>> = (0..=channels).map(|_| None).collect();
        let mut missing = slots.len();
        while missing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            // Wake now and then to notice a worker that exited before connecting.
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok((ch, conn)) => {
                    if let Some(slot) = slots.get_mut(ch as usize)
                        && slot.is_none()
                    {
                        *slot = Some(conn);
                        missing -= 1;
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(Error::Io {
                            context: format!("starting a worker process (pid {})", child.id()),
                            message: format!("it exited with {status} before connecting"),
                        });
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(Error::Io {
                            context: "starting a worker process".into(),
                            message: format!(
                                "it did not connect within {:?} (worker_start_timeout)",
                                self.start_timeout
                            ),
                        });
                    }
                }
            }
        }
        Ok((child, slots.into_iter().flatten().collect()))
    }

    /// An idle task worker (the one idle for the shortest time), or a new one.
    pub(crate) fn lease(&self, node: &Arc<NodeInner>) -> Result<WorkerProc> {
        match self.idle() {
            Some(w) => Ok(w),
            None => self.spawn(node, 1),
        }
    }

    /// An idle task worker (the one idle for the shortest time), if any.
    pub(crate) fn idle(&self) -> Option<WorkerProc> {
        self.idle.list.lock().pop().map(|(w, _)| w)
    }

    /// Takes a task worker back for reuse.
    pub(crate) fn give_back(&self, w: WorkerProc) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let past_limit = {
            let mut list = self.idle.list.lock();
            list.push((w, Instant::now()));
            list.len() > self.idle.soft_limit
        };
        if past_limit {
            self.start_culler();
            self.idle.wake.notify_one();
        }
    }

    fn start_culler(&self) {
        let mut culler = self.culler.lock();
        if culler.is_some() || self.closed.load(Ordering::Acquire) {
            return;
        }
        let (idle, closed) = (self.idle.clone(), self.closed.clone());
        let spawned = std::thread::Builder::new()
            .name("volley-worker-culler".into())
            .spawn(move || cull(&idle, &closed));
        // Without the thread, idle workers are kept until shutdown (as before culling).
        *culler = spawned.ok();
    }

    /// Kills every worker (their calls fail at once) and stops the listener.
    pub(crate) fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        for pid in self.live.lock().values() {
            // SAFETY: kill(2) on a child this pool started and has not reaped: a worker is
            // reaped only under this lock, after it left the map.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
        self.idle.wake.notify_all();
        if let Some(h) = self.culler.lock().take() {
            let _ = h.join();
        }
        let idle: Vec<_> = self.idle.list.lock().drain(..).collect();
        drop(idle);
        if let Some(h) = self.listener.lock().take() {
            // Wake the accept loop so it sees `closed`.
            let _ = UnixStream::connect(&self.socket);
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Stops idle workers beyond the soft limit once they have been idle for the threshold,
/// oldest first, until the pool closes.
fn cull(idle: &Idle, closed: &AtomicBool) {
    let mut list = idle.list.lock();
    loop {
        if closed.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let excess = list.len().saturating_sub(idle.soft_limit);
        let expired = list[..excess]
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) >= idle.threshold)
            .count();
        if expired > 0 {
            let stopped: Vec<_> = list.drain(..expired).collect();
            // Stopping a process waits for it: not under the lock.
            parking_lot::MutexGuard::unlocked(&mut list, || drop(stopped));
            continue;
        }
        match list.get(..excess).and_then(|l| l.first()) {
            Some((_, since)) => {
                let due = (*since + idle.threshold).saturating_duration_since(now);
                idle.wake.wait_for(&mut list, due);
            }
            None => idle.wake.wait(&mut list),
        }
    }
}

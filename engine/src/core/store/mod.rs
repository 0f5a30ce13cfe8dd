//! The node's object store: a byte budget, pinning, reference counting, lazy shared-memory
//! segments and spilling.
//!
//! # Entry states
//!
//! ```text
//!   create_pending ──► Pending ──seal──► Ready ──free──► (gone)
//!                         │                ▲ │
//!                         └──fail──► Failed │ └─ forms: in-process data? · segment? · spill file?
//! ```
//! A `Ready` object has at least one form. The budget counts *resident* bytes: the
//! in-process data plus the segment. Spilling writes the object to its spill file and drops
//! both resident forms; a later `get` restores the in-process form (the spill file is kept
//! until the object is freed, so spilling it again costs nothing).
//!
//! # Invariants
//! - `resident <= budget` at all times: room is made (by spilling) *before* bytes are admitted.
//! - Victims: objects larger than `max_inline_object_size` before small ones (spilling a
//!   small object frees little and costs a file), each group least recently used first.
//! - Pinned objects (`pins > 0`) and busy ones (being spilled or restored) are never spilled.
//! - An entry is removed when its reference count (handles + task args + containing objects)
//!   reaches zero; its segment file and spill file are deleted then.
//! - Waiters and callbacks run outside the lock.
//!
//! Making room (admission against the budget, picking and writing spill victims) is in
//! `spilling.rs`.

mod spilling;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use self::spilling::pinned_bytes;
use crate::core::ids::ObjectId;
use crate::core::object::{ObjectData, encode_ipc};
use crate::core::shm::Segment;
use crate::core::spill::{SpillFile, Spiller};
use crate::error::{Error, Result};

/// Something waiting for an object to be sealed or failed.
pub(crate) enum Waiter {
    /// Count one notification on a signal.
    Signal(Arc<Signal>),
    /// Run a callback with the outcome.
    Callback(Box<dyn FnOnce(Result<(), Error>) + Send>),
}

/// A counter one thread blocks on until it reaches a target.
///
/// The waiter spins briefly (a few microseconds, yielding) before parking: most waits for a
/// trivial task end within that time, and a futex wake-up costs more than the whole task.
#[derive(Default)]
pub(crate) struct Signal {
    count: AtomicUsize,
    target: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

/// How long a waiter spins before parking.
const SPIN: Duration = Duration::from_micros(20);

impl Signal {
    pub(crate) fn notify(&self) {
        let c = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if c >= self.target.load(Ordering::Acquire) {
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Waits until at least `n` notifications arrived or `deadline` passes; returns the count.
    pub(crate) fn wait_for(&self, n: usize, deadline: Option<Instant>) -> usize {
        let spin_until = Instant::now() + SPIN;
        while self.count.load(Ordering::Acquire) < n && Instant::now() < spin_until {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
        let mut g = self.lock.lock();
        self.target.store(n, Ordering::Release);
        loop {
            let c = self.count.load(Ordering::Acquire);
            if c >= n {
                return c;
            }
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut g, d).timed_out() {
                        return self.count.load(Ordering::Acquire);
                    }
                }
                None => self.cv.wait(&mut g),
            }
        }
    }
}

enum State {
    Pending,
    Ready(Ready),
    Failed(Error),
}

struct Ready {
    data: Option<ObjectData>,
    segment: Option<Arc<Segment>>,
    spill: Option<SpillFile>,
    size: u64,
    busy: bool,
}

impl Ready {
    fn resident(&self) -> u64 {
        self.data.as_ref().map_or(0, |_| self.size)
            + self.segment.as_ref().map_or(0, |s| s.len() as u64)
    }
}

struct Entry {
    state: State,
    refs: u32,
    pins: u32,
    last_access: u64,
    waiters: Vec<Waiter>,
    contains: Vec<ObjectId>,
    /// What lives as long as the object (an actor anchor's handle on its actor).
    keep: Option<Box<dyn std::any::Any + Send>>,
    /// How to make it again (its task's lineage; the owner table's), shared by the
    /// task's outputs and dropped with the last of them.
    rebuild: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ObjectId, Entry>,
    resident: u64,
    peak_resident: u64,
    tick: u64,
    spills_in_flight: usize,
    counters: Counters,
    closed: bool,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    spilled_objects: u64,
    spilled_bytes: u64,
    restored_objects: u64,
    restored_bytes: u64,
    segments_created: u64,
}

/// A snapshot of the store's own accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// The byte budget.
    pub budget: u64,
    /// Bytes resident now (in-process data + segments).
    pub resident_bytes: u64,
    /// The highest `resident_bytes` ever seen.
    pub peak_resident_bytes: u64,
    /// Objects in the store (any state).
    pub num_objects: u64,
    /// Objects whose only form is their spill file.
    pub num_spilled_now: u64,
    /// Bytes of objects currently pinned.
    pub pinned_bytes: u64,
    /// Shared-memory segments alive.
    pub num_segments: u64,
    /// Objects spilled since start.
    pub spilled_objects_total: u64,
    /// Bytes written to spill files since start.
    pub spilled_bytes_total: u64,
    /// Objects restored since start.
    pub restored_objects_total: u64,
    /// Bytes read back from spill files since start.
    pub restored_bytes_total: u64,
    /// Segments created since start.
    pub segments_created_total: u64,
}

/// The copy of an object a store holds ([`Store::copy_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreCopy {
    /// Its task has not finished.
    Pending,
    /// Sealed: in memory, in its spill file, or both; `size` bytes.
    Ready {
        in_memory: bool,
        spilled: bool,
        size: u64,
    },
}

/// Keeps an object pinned while alive.
pub(crate) struct PinGuard {
    store: Weak<Store>,
    id: ObjectId,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(s) = self.store.upgrade() {
            s.unpin(self.id);
        }
    }
}

/// The object store of one node.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    space: Condvar,
    budget: u64,
    high_water: u64,
    full_timeout: Duration,
    small_object: u64,
    shm_dir: PathBuf,
    shm_prefix: String,
    spiller: Spiller,
    me: Weak<Store>,
}

/// Settings of a store.
pub(crate) struct StoreConfig {
    pub(crate) budget: u64,
    pub(crate) spilling_threshold: f64,
    pub(crate) full_timeout: Duration,
    pub(crate) small_object: u64,
    pub(crate) shm_dir: PathBuf,
    pub(crate) shm_prefix: String,
}

impl Store {
    pub(crate) fn new(cfg: StoreConfig, spiller: Spiller) -> Arc<Store> {
        let high_water = ((cfg.budget as f64) * cfg.spilling_threshold) as u64;
        Arc::new_cyclic(|me| Store {
            inner: Mutex::new(Inner::default()),
            space: Condvar::new(),
            budget: cfg.budget,
            high_water: high_water.max(1),
            full_timeout: cfg.full_timeout,
            small_object: cfg.small_object,
            shm_dir: cfg.shm_dir,
            shm_prefix: cfg.shm_prefix,
            spiller,
            me: me.clone(),
        })
    }

    /// Makes a lost object pending again so that its task can seal it anew (lineage
    /// reconstruction): an object whose only form is a spill file that is gone. Its
    /// references and waiters stay. False when it is not in that state (freed, resident,
    /// or being restored by someone else).
    pub(crate) fn reset_lost(&self, id: ObjectId) -> bool {
        let mut g = self.inner.lock();
        let Some(entry) = g.entries.get_mut(&id) else {
            return false;
        };
        let State::Ready(r) = &mut entry.state else {
            return false;
        };
        if r.busy || r.data.is_some() || r.segment.is_some() {
            return false;
        }
        let contains = std::mem::take(&mut entry.contains);
        let spill = r.spill.take();
        entry.state = State::Pending;
        drop(g);
        // What it contained is sealed again with it.
        self.release_many(contains);
        if let Some(f) = spill {
            self.spiller.delete(f);
        }
        true
    }

    /// Registers an object that a task will produce, with `refs` initial references.
    pub(crate) fn create_pending(&self, id: ObjectId, refs: u32) {
        let mut g = self.inner.lock();
        g.entries.entry(id).or_insert(Entry {
            state: State::Pending,
            refs,
            pins: 0,
            last_access: 0,
            waiters: Vec::new(),
            contains: Vec::new(),
            keep: None,
            rebuild: None,
        });
    }

    /// What the object was sealed with to make it again (see `seal_rebuildable`).
    pub(crate) fn rebuild_info(
        &self,
        id: ObjectId,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.inner
            .lock()
            .entries
            .get(&id)
            .and_then(|e| e.rebuild.clone())
    }

    /// Stores a new, ready object with `refs` references (a `put`).
    pub(crate) fn put(
        &self,
        id: ObjectId,
        data: ObjectData,
        nested: Vec<ObjectId>,
        refs: u32,
    ) -> Result<()> {
        self.create_pending(id, refs);
        self.seal(id, data, nested)
    }

    /// Seals a pending object with its data; it adopts the references the caller took on the
    /// `nested` objects (see `serialize_holding`). Sealing an object that is already sealed or
    /// failed (a cancelled task finishing anyway) or that was freed keeps the first outcome
    /// and gives those references back.
    pub(crate) fn seal(&self, id: ObjectId, data: ObjectData, nested: Vec<ObjectId>) -> Result<()> {
        self.seal_rebuildable(id, data, nested, None)
    }

    /// [`Store::seal`], keeping `rebuild` with the object (its task's lineage) until it is
    /// freed.
    pub(crate) fn seal_rebuildable(
        &self,
        id: ObjectId,
        data: ObjectData,
        nested: Vec<ObjectId>,
        rebuild: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Result<()> {
        let size = data.size();
        let mut g = self.inner.lock();
        match g.entries.get(&id) {
            Some(Entry {
                state: State::Pending,
                ..
            }) => {}
            _ => {
                drop(g);
                self.release_many(nested);
                return Ok(());
            }
        }
        if let Err(e) = self.reserve(&mut g, size) {
            drop(g);
            self.fail(id, e.clone());
            self.release_many(nested);
            return Err(e);
        }
        let tick = next_tick(&mut g);
        let Some(entry) = g.entries.get_mut(&id) else {
            // Freed while we made room: give the bytes back.
            g.resident -= size;
            drop(g);
            self.release_many(nested);
            return Ok(());
        };
        if !matches!(entry.state, State::Pending) {
            g.resident -= size;
            drop(g);
            self.release_many(nested);
            return Ok(());
        }
        entry.state = State::Ready(Ready {
            data: Some(data),
            segment: None,
            spill: None,
            size,
            busy: false,
        });
        entry.last_access = tick;
        entry.contains = nested;
        if rebuild.is_some() {
            entry.rebuild = rebuild;
        }
        let waiters = std::mem::take(&mut entry.waiters);
        drop(g);
        fire(waiters, Ok(()));
        Ok(())
    }

    /// Marks a pending object failed (first outcome wins).
    pub(crate) fn fail(&self, id: ObjectId, err: Error) {
        let mut g = self.inner.lock();
        let Some(entry) = g.entries.get_mut(&id) else {
            return;
        };
        if !matches!(entry.state, State::Pending) {
            return;
        }
        entry.state = State::Failed(err.clone());
        let waiters = std::mem::take(&mut entry.waiters);
        drop(g);
        fire(waiters, Err(err));
    }

    /// `Some(Ok)` when ready, `Some(Err)` when failed, `None` while pending. An unknown id is
    /// an `ObjectLost` error.
    pub(crate) fn status(&self, id: ObjectId) -> Option<Result<()>> {
        let g = self.inner.lock();
        status_of(&g, id)
    }

    /// The copy of the object this store holds: `None` when it holds none (unknown, freed or
    /// failed).
    pub(crate) fn copy_of(&self, id: ObjectId) -> Option<StoreCopy> {
        let g = self.inner.lock();
        match &g.entries.get(&id)?.state {
            State::Pending => Some(StoreCopy::Pending),
            State::Ready(r) => Some(StoreCopy::Ready {
                in_memory: r.data.is_some() || r.segment.is_some(),
                spilled: r.spill.is_some(),
                size: r.size,
            }),
            State::Failed(_) => None,
        }
    }

    /// Calls `waiter` when the object is sealed or failed — now, if it already is.
    pub(crate) fn on_ready(&self, id: ObjectId, waiter: Waiter) {
        let mut g = self.inner.lock();
        let outcome = match g.entries.get_mut(&id) {
            Some(Entry {
                state: State::Pending,
                waiters,
                ..
            }) => {
                waiters.push(waiter);
                return;
            }
            _ => status_of(&g, id).unwrap_or(Ok(())),
        };
        drop(g);
        fire(vec![waiter], outcome);
    }

    /// The object's data (restoring it from its spill file if needed). With `pin`, the object
    /// stays pinned until the returned guard is dropped.
    pub(crate) fn get_data(
        &self,
        id: ObjectId,
        pin: bool,
    ) -> Result<(ObjectData, Option<Arc<PinGuard>>)> {
        let mut g = self.inner.lock();
        loop {
            let tick = next_tick(&mut g);
            let entry = g
                .entries
                .get_mut(&id)
                .ok_or_else(|| lost(id, "it was freed"))?;
            entry.last_access = tick;
            let ready = match &mut entry.state {
                State::Ready(r) => r,
                State::Failed(e) => return Err(e.clone()),
                State::Pending => {
                    return Err(Error::Internal(format!("object {id} read before ready")));
                }
            };
            if let Some(data) = &ready.data {
                let data = data.clone();
                return Ok((data, self.pin_locked(entry, id, pin)));
            }
            if let Some(seg) = &ready.segment {
                let seg = seg.clone();
                // Pinned while we decode; the guard unpins on drop (at once unless `pin`).
                entry.pins += 1;
                let guard = PinGuard {
                    store: self.me.clone(),
                    id,
                };
                drop(g);
                let data = seg.read()?;
                return Ok((data, pin.then(|| Arc::new(guard))));
            }
            if ready.busy {
                // Someone else is restoring or spilling it: wait for them.
                self.space.wait_for(&mut g, Duration::from_millis(50));
                continue;
            }
            let Some(file) = ready.spill.clone() else {
                return Err(Error::Internal(format!("object {id} has no form")));
            };
            let size = ready.size;
            ready.busy = true;
            if let Err(e) = self.reserve(&mut g, size) {
                set_busy(&mut g, id, false);
                return Err(e);
            }
            let restored = MutexGuard::unlocked(&mut g, || self.spiller.read(id, &file));
            let entry = match g.entries.get_mut(&id) {
                Some(e) => e,
                None => {
                    g.resident -= size;
                    return Err(lost(id, "it was freed while being restored"));
                }
            };
            let State::Ready(ready) = &mut entry.state else {
                return Err(Error::Internal(format!(
                    "object {id} changed state while restoring"
                )));
            };
            ready.busy = false;
            match restored {
                Ok(data) => {
                    ready.data = Some(data.clone());
                    g.counters.restored_objects += 1;
                    g.counters.restored_bytes += file.len;
                    let entry = g.entries.get_mut(&id).ok_or_else(|| lost(id, "freed"))?;
                    let guard = self.pin_locked(entry, id, pin);
                    self.space.notify_all();
                    return Ok((data, guard));
                }
                Err(e) => {
                    g.resident -= size;
                    self.space.notify_all();
                    return Err(e);
                }
            }
        }
    }

    fn pin_locked(&self, entry: &mut Entry, id: ObjectId, pin: bool) -> Option<Arc<PinGuard>> {
        pin.then(|| {
            entry.pins += 1;
            Arc::new(PinGuard {
                store: self.me.clone(),
                id,
            })
        })
    }

    fn unpin(&self, id: ObjectId) {
        let mut g = self.inner.lock();
        if let Some(e) = g.entries.get_mut(&id) {
            e.pins = e.pins.saturating_sub(1);
            if e.pins == 0 {
                self.space.notify_all();
            }
        }
    }

    /// The object's shared-memory segment, created on first use.
    pub(crate) fn segment(&self, id: ObjectId) -> Result<Arc<Segment>> {
        // Hold a pin so the object is not spilled between reading and sealing the segment.
        let (data, pin) = self.get_data(id, true)?;
        {
            let g = self.inner.lock();
            if let Some(Entry {
                state:
                    State::Ready(Ready {
                        segment: Some(s), ..
                    }),
                ..
            }) = g.entries.get(&id)
            {
                return Ok(s.clone());
            }
        }
        let buffers = encode_ipc(&data)?;
        let len = buffers.iter().map(|b| b.len() as u64).sum::<u64>();
        let mut g = self.inner.lock();
        self.reserve(&mut g, len)?;
        let path = self.shm_dir.join(format!("{}{id}", self.shm_prefix));
        let created = MutexGuard::unlocked(&mut g, || Segment::create(path, &buffers));
        let seg = match created {
            Ok(s) => Arc::new(s),
            Err(e) => {
                g.resident -= len;
                return Err(e);
            }
        };
        match g.entries.get_mut(&id).map(|e| &mut e.state) {
            Some(State::Ready(r)) if r.segment.is_none() => {
                r.segment = Some(seg.clone());
                g.counters.segments_created += 1;
            }
            Some(State::Ready(Ready {
                segment: Some(existing),
                ..
            })) => {
                // Raced with another creator: keep theirs (ours unlinks on drop).
                let existing = existing.clone();
                g.resident -= len;
                drop(g);
                drop(pin);
                return Ok(existing);
            }
            _ => {
                g.resident -= len;
                return Err(lost(id, "it was freed while its segment was written"));
            }
        }
        drop(g);
        drop(pin);
        Ok(seg)
    }

    /// Adds a reference.
    pub(crate) fn add_ref(&self, id: ObjectId) -> bool {
        let mut g = self.inner.lock();
        match g.entries.get_mut(&id) {
            Some(e) => {
                e.refs += 1;
                true
            }
            None => false,
        }
    }

    /// Ties `keep` to the object's life: it is dropped when the object is freed. False (and
    /// `keep` dropped now) when there is no such object.
    pub(crate) fn attach(&self, id: ObjectId, keep: Box<dyn std::any::Any + Send>) -> bool {
        let mut g = self.inner.lock();
        match g.entries.get_mut(&id) {
            Some(e) => {
                e.keep = Some(keep);
                true
            }
            None => {
                drop(g);
                drop(keep);
                false
            }
        }
    }

    /// Drops a reference; at zero the object and its segment and spill file are freed.
    pub(crate) fn release(&self, id: ObjectId) {
        self.release_many(vec![id]);
    }

    pub(crate) fn release_many(&self, mut ids: Vec<ObjectId>) {
        while !ids.is_empty() {
            let mut files = Vec::new();
            let mut segments = Vec::new();
            let mut kept = Vec::new();
            let mut next = Vec::new();
            let mut rebuilds = Vec::new();
            let mut freed = false;
            {
                let mut g = self.inner.lock();
                for id in ids.drain(..) {
                    let Some(e) = g.entries.get_mut(&id) else {
                        continue;
                    };
                    e.refs = e.refs.saturating_sub(1);
                    if e.refs > 0 {
                        continue;
                    }
                    let Some(e) = g.entries.remove(&id) else {
                        continue;
                    };
                    freed = true;
                    kept.extend(e.keep);
                    rebuilds.extend(e.rebuild);
                    if let State::Ready(r) = e.state {
                        g.resident -= r.resident();
                        files.extend(r.spill);
                        segments.extend(r.segment);
                    }
                    next.extend(e.contains);
                }
                if freed {
                    self.space.notify_all();
                }
            }
            drop(segments);
            // Outside the lock: an anchor's handle may stop its actor.
            drop(kept);
            drop(rebuilds);
            for f in files {
                self.spiller.delete(f);
            }
            ids = next;
        }
    }

    /// The store's accounting.
    pub(crate) fn stats(&self) -> StoreStats {
        let g = self.inner.lock();
        let mut s = StoreStats {
            budget: self.budget,
            resident_bytes: g.resident,
            peak_resident_bytes: g.peak_resident,
            num_objects: g.entries.len() as u64,
            num_spilled_now: 0,
            pinned_bytes: pinned_bytes(&g),
            num_segments: 0,
            spilled_objects_total: g.counters.spilled_objects,
            spilled_bytes_total: g.counters.spilled_bytes,
            restored_objects_total: g.counters.restored_objects,
            restored_bytes_total: g.counters.restored_bytes,
            segments_created_total: g.counters.segments_created,
        };
        for e in g.entries.values() {
            if let State::Ready(r) = &e.state {
                if r.data.is_none() && r.segment.is_none() {
                    s.num_spilled_now += 1;
                }
                if r.segment.is_some() {
                    s.num_segments += 1;
                }
            }
        }
        s
    }

    /// The spill URL.
    pub(crate) fn spill_url(&self) -> &str {
        self.spiller.url()
    }

    /// Fails every pending object with `Shutdown`, frees everything, stops the spiller.
    pub(crate) fn shutdown(&self) {
        let entries = {
            let mut g = self.inner.lock();
            g.closed = true;
            g.resident = 0;
            std::mem::take(&mut g.entries)
        };
        self.space.notify_all();
        let mut waiters = Vec::new();
        for (_, e) in entries {
            waiters.extend(e.waiters);
            if let State::Ready(r) = e.state {
                drop(r.segment);
                if let Some(f) = r.spill {
                    self.spiller.delete(f);
                }
            }
        }
        fire(waiters, Err(Error::Shutdown));
        self.spiller.shutdown();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("budget", &self.budget)
            .finish()
    }
}

fn set_busy(g: &mut Inner, id: ObjectId, busy: bool) {
    if let Some(Entry {
        state: State::Ready(r),
        ..
    }) = g.entries.get_mut(&id)
    {
        r.busy = busy;
    }
}

fn next_tick(g: &mut Inner) -> u64 {
    g.tick += 1;
    g.tick
}

fn status_of(g: &Inner, id: ObjectId) -> Option<Result<()>> {
    match g.entries.get(&id) {
        None => Some(Err(lost(id, "no such object (freed, or never created)"))),
        Some(e) => match &e.state {
            State::Pending => None,
            State::Ready(_) => Some(Ok(())),
            State::Failed(err) => Some(Err(err.clone())),
        },
    }
}

fn lost(id: ObjectId, reason: &str) -> Error {
    Error::ObjectLost {
        object: id.to_string(),
        reason: reason.to_string(),
    }
}

fn fire(waiters: Vec<Waiter>, outcome: Result<()>) {
    for w in waiters {
        match w {
            Waiter::Signal(s) => s.notify(),
            Waiter::Callback(f) => f(outcome.clone()),
        }
    }
}

//! `streaming_split`: one execution feeding `n` consumers (e.g. training workers) through
//! bounded queues, without materializing the dataset.
//!
//! A coordinator thread pulls the dataset's batches and hands them out:
//! - `equal = false`: each batch goes to the consumer that has received the fewest rows and
//!   has room in its queue. A consumer that goes away (its iterator dropped) is skipped from
//!   then on, and the batches still queued for it are handed to the others. Once the dataset
//!   has ended, a consumer whose queue is empty takes the batches still queued for the others
//!   before it ends, so a consumer that goes away after the rest have finished strands no row.
//! - `equal = true`: rows are dealt out in rounds of the same number of rows to every
//!   consumer, so all shards end with exactly `total / n` rows (the last `total % n` rows are
//!   dropped). A consumer that goes away makes equal shards impossible: the others get an
//!   error naming it, never a hang.
//!
//! Queues hold at most [`PREFETCH`] batches each (an error or a re-homed batch may go past
//! that, at most `n × PREFETCH` in all). The coordinator blocks on a condition variable while
//! every queue it may send to is full; it stops when the dataset ends, when it fails, or once
//! every consumer is gone.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::RecordBatch;
use parking_lot::{Condvar, Mutex};

use crate::data::Dataset;
use crate::error::{Error, Result};

/// Batches queued per consumer.
const PREFETCH: usize = 2;

#[derive(Default)]
struct Queue {
    items: VecDeque<Result<RecordBatch>>,
    /// Its iterator still exists.
    alive: bool,
    /// Rows handed to it so far.
    rows: u64,
}

impl Queue {
    fn push(&mut self, item: Result<RecordBatch>) {
        self.rows += item.as_ref().map_or(0, |b| b.num_rows() as u64);
        self.items.push_back(item);
    }
}

struct State {
    queues: Vec<Queue>,
    /// No more items will come.
    done: bool,
    equal: bool,
}

impl State {
    /// The live consumer with room and the fewest rows; `Err(())` when none is alive.
    fn pick(&self) -> std::result::Result<Option<usize>, ()> {
        let live = || self.queues.iter().enumerate().filter(|(_, q)| q.alive);
        if live().next().is_none() {
            return Err(());
        }
        Ok(live()
            .filter(|(_, q)| q.items.len() < PREFETCH)
            .min_by_key(|(_, q)| q.rows)
            .map(|(i, _)| i))
    }

    /// A batch queued for another live consumer, for consumer `me` whose queue is empty
    /// (taken from the back of the longest queue).
    fn steal(&mut self, me: usize) -> Option<Result<RecordBatch>> {
        let (_, victim) = self
            .queues
            .iter_mut()
            .enumerate()
            .filter(|(i, q)| *i != me && q.alive && !q.items.is_empty())
            .max_by_key(|(_, q)| q.items.len())?;
        let item = victim.items.pop_back()?;
        victim.rows -= item.as_ref().map_or(0, |b| b.num_rows() as u64);
        self.queues[me].rows += item.as_ref().map_or(0, |b| b.num_rows() as u64);
        Some(item)
    }

    /// Pushes `item` to every live consumer, past their limits.
    fn broadcast(&mut self, item: &Result<RecordBatch>) {
        for q in self.queues.iter_mut().filter(|q| q.alive) {
            q.push(item.clone());
        }
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// One consumer's share of a [`Dataset::streaming_split`].
pub struct SplitIter {
    index: usize,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SplitIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitIter")
            .field("index", &self.index)
            .finish()
    }
}

impl SplitIter {
    /// Which share this is (`0..n`).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Iterator for SplitIter {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut st = self.shared.state.lock();
        loop {
            if let Some(item) = st.queues[self.index].items.pop_front() {
                self.shared.changed.notify_all();
                return Some(item);
            }
            if st.done {
                // Errors are broadcast, so only batches are ever taken.
                return if st.equal { None } else { st.steal(self.index) };
            }
            self.shared.changed.wait(&mut st);
        }
    }
}

impl Drop for SplitIter {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        let q = &mut st.queues[self.index];
        q.alive = false;
        let left = std::mem::take(&mut q.items);
        if !st.equal {
            // Hand what it did not read to the others, fewest rows first.
            for item in left {
                let Some((_, q)) = st
                    .queues
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, q)| q.alive)
                    .min_by_key(|(_, q)| q.rows)
                else {
                    break;
                };
                q.push(item);
            }
        }
        self.shared.changed.notify_all();
    }
}

struct Coordinator {
    shared: Arc<Shared>,
}

impl Coordinator {
    /// Sends `b` to the live consumer with the fewest rows that has room, waiting for room;
    /// `false` when nobody is left.
    fn send_any(&self, b: RecordBatch) -> bool {
        let mut st = self.shared.state.lock();
        loop {
            match st.pick() {
                Err(()) => return false,
                Ok(Some(i)) => {
                    st.queues[i].push(Ok(b));
                    self.shared.changed.notify_all();
                    return true;
                }
                Ok(None) => self.shared.changed.wait(&mut st),
            }
        }
    }

    /// Sends `b` to consumer `i`, waiting for room; `false` if it is gone.
    fn send_to(&self, i: usize, b: RecordBatch) -> bool {
        let mut st = self.shared.state.lock();
        loop {
            let q = &mut st.queues[i];
            if !q.alive {
                return false;
            }
            if q.items.len() < PREFETCH {
                q.push(Ok(b));
                self.shared.changed.notify_all();
                return true;
            }
            self.shared.changed.wait(&mut st);
        }
    }

    /// Tells every consumer still there about `e`.
    fn fail_all(&self, e: Error) {
        self.shared.state.lock().broadcast(&Err(e));
        self.shared.changed.notify_all();
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.shared.state.lock().done = true;
        self.shared.changed.notify_all();
    }
}

/// Takes `rows` rows from the front of `buf` (slicing a batch that straddles the cut).
pub(crate) fn take_rows(buf: &mut VecDeque<RecordBatch>, mut rows: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    while rows > 0 {
        let Some(b) = buf.pop_front() else { break };
        if b.num_rows() <= rows {
            rows -= b.num_rows();
            out.push(b);
        } else {
            out.push(b.slice(0, rows));
            buf.push_front(b.slice(rows, b.num_rows() - rows));
            rows = 0;
        }
    }
    out
}

fn run(batches: impl Iterator<Item = Result<RecordBatch>>, co: Coordinator, n: usize, equal: bool) {
    let mut buf: VecDeque<RecordBatch> = VecDeque::new();
    let mut buffered = 0usize;
    // Rows each consumer gets per round (equal): the first batch's size.
    let mut per_round = 0usize;
    for b in batches {
        let b = match b {
            Ok(b) => b,
            Err(e) => return co.fail_all(e),
        };
        if b.num_rows() == 0 {
            continue;
        }
        if !equal {
            if !co.send_any(b) {
                return;
            }
            continue;
        }
        per_round = per_round.max(b.num_rows().div_ceil(n));
        buffered += b.num_rows();
        buf.push_back(b);
        while buffered >= per_round * n {
            if !deal(&co, n, &mut buf, per_round) {
                return;
            }
            buffered -= per_round * n;
        }
    }
    if equal && buffered >= n {
        // The last round: as many rows to each as all can get.
        deal(&co, n, &mut buf, buffered / n);
    }
}

/// Gives `rows` rows to every consumer (equal split); on a vanished consumer tells the
/// others and returns `false`.
fn deal(co: &Coordinator, n: usize, buf: &mut VecDeque<RecordBatch>, rows: usize) -> bool {
    for i in 0..n {
        for piece in take_rows(buf, rows) {
            if !co.send_to(i, piece) {
                co.fail_all(Error::InvalidArgument(format!(
                    "streaming_split(equal=true): consumer {i} of {n} went away before the end; \
                     the other shards cannot stay equal"
                )));
                return false;
            }
        }
    }
    true
}

impl Dataset {
    /// Splits the dataset into `n` iterators fed by one streaming execution (for `n`
    /// training workers). See the module docs for how rows are dealt and what happens when a
    /// consumer goes away.
    pub fn streaming_split(&self, n: usize, equal: bool) -> Result<Vec<SplitIter>> {
        if n == 0 {
            return Err(Error::InvalidArgument(
                "streaming_split needs n >= 1".into(),
            ));
        }
        let batches = self.iter_batches()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queues: (0..n)
                    .map(|_| Queue {
                        alive: true,
                        ..Queue::default()
                    })
                    .collect(),
                done: false,
                equal,
            }),
            changed: Condvar::new(),
        });
        let co = Coordinator {
            shared: shared.clone(),
        };
        // The coordinator pulls the execution on the caller's runtime.
        let rt = crate::Runtime::current()?;
        std::thread::Builder::new()
            .name("volley-split".into())
            .spawn(move || rt.enter(|| run(batches, co, n, equal)))
            .map_err(|e| Error::Io {
                context: "starting the streaming_split coordinator".into(),
                message: e.to_string(),
            })?;
        Ok((0..n)
            .map(|index| SplitIter {
                index,
                shared: shared.clone(),
            })
            .collect())
    }
}

//! Making room: the byte budget's admission and spilling (which objects go, how they are
//! written with the lock released, what the budget gets back).

use std::sync::Arc;
use std::time::Instant;

use parking_lot::MutexGuard;

use super::{Entry, Inner, State, Store};
use crate::core::ids::ObjectId;
use crate::core::object::ObjectData;
use crate::core::shm::Segment;
use crate::core::spill::SpillFile;
use crate::error::{Error, Result};

impl Store {
    /// Makes room for `size` more resident bytes and counts them, spilling unpinned objects
    /// (least recently used first, larger first among equals) past the high-water mark. Waits
    /// up to the full time-out for pins to be released before failing with `ObjectStoreFull`.
    pub(super) fn reserve(&self, g: &mut MutexGuard<'_, Inner>, size: u64) -> Result<()> {
        if size > self.budget {
            return Err(self.full_error(g, size));
        }
        let deadline = Instant::now() + self.full_timeout;
        loop {
            if g.closed {
                return Err(Error::Shutdown);
            }
            if g.resident + size <= self.high_water {
                {
                    self.admit(g, size);
                    return Ok(());
                }
            }
            let need = g.resident + size - self.high_water;
            let victims = pick_victims(g, need, self.small_object);
            if !victims.is_empty() {
                self.spill(g, victims)?;
                continue;
            }
            if g.resident + size <= self.budget {
                {
                    self.admit(g, size);
                    return Ok(());
                }
            }
            if self.space.wait_until(g, deadline).timed_out() && g.spills_in_flight == 0 {
                if g.resident + size <= self.budget {
                    {
                        self.admit(g, size);
                        return Ok(());
                    }
                }
                return Err(self.full_error(g, size));
            }
        }
    }

    fn admit(&self, g: &mut Inner, size: u64) {
        g.resident += size;
        g.peak_resident = g.peak_resident.max(g.resident);
    }

    fn full_error(&self, g: &Inner, size: u64) -> Error {
        Error::ObjectStoreFull {
            needed: size,
            resident: g.resident,
            budget: self.budget,
            pinned: pinned_bytes(g),
        }
    }

    /// Spills `victims` (already marked busy) with the lock released, then drops their
    /// resident forms.
    fn spill(&self, g: &mut MutexGuard<'_, Inner>, victims: Vec<Victim>) -> Result<()> {
        g.spills_in_flight += 1;
        let results: Vec<(ObjectId, Result<Option<SpillFile>>)> = MutexGuard::unlocked(g, || {
            victims
                .into_iter()
                .map(|v| {
                    let r = match v.source {
                        // Already has a spill file: nothing to write.
                        None => Ok(None),
                        Some(src) => {
                            let data = match src {
                                Source::Data(d) => Ok(d),
                                Source::Segment(s) => s.read(),
                            };
                            data.and_then(|d| self.spiller.write(v.id, &d)).map(Some)
                        }
                    };
                    (v.id, r)
                })
                .collect()
        });
        g.spills_in_flight -= 1;
        let mut first_err = None;
        for (id, r) in results {
            let Some(Entry {
                state: State::Ready(ready),
                ..
            }) = g.entries.get_mut(&id)
            else {
                // Freed meanwhile: its file (if written) must go too.
                if let Ok(Some(f)) = r {
                    self.spiller.delete(f);
                }
                continue;
            };
            ready.busy = false;
            match r {
                Ok(file) => {
                    let written = file.as_ref().map_or(0, |f| f.len);
                    if let Some(f) = file {
                        ready.spill = Some(f);
                    }
                    let freed = ready.resident();
                    ready.data = None;
                    ready.segment = None;
                    g.resident -= freed;
                    if written > 0 {
                        g.counters.spilled_objects += 1;
                        g.counters.spilled_bytes += written;
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.space.notify_all();
        first_err.map_or(Ok(()), Err)
    }

    /// Spills `ids` now (those resident, ready and unpinned), freeing their memory; they are
    /// restored on access. Returns the resident bytes freed.
    pub(crate) fn spill_now(&self, ids: &[ObjectId]) -> Result<u64> {
        let mut g = self.inner.lock();
        let before = g.resident;
        let victims: Vec<Victim> = ids
            .iter()
            .filter_map(|id| take_victim(&mut g, *id))
            .collect();
        if victims.is_empty() {
            return Ok(0);
        }
        self.spill(&mut g, victims)?;
        Ok(before.saturating_sub(g.resident))
    }
}

enum Source {
    Data(ObjectData),
    Segment(Arc<Segment>),
}

struct Victim {
    id: ObjectId,
    /// What to write; `None` when a spill file already exists.
    source: Option<Source>,
}

fn pick_victims(g: &mut Inner, need: u64, small: u64) -> Vec<Victim> {
    let mut candidates: Vec<(u64, u64, ObjectId)> = g
        .entries
        .iter()
        .filter_map(|(id, e)| match &e.state {
            State::Ready(r) if e.pins == 0 && !r.busy && r.resident() > 0 => {
                Some((e.last_access, r.resident(), *id))
            }
            _ => None,
        })
        .collect();
    // Large objects first, each group least recently used first, larger first among equals.
    candidates.sort_by(|a, b| {
        (b.1 > small)
            .cmp(&(a.1 > small))
            .then(a.0.cmp(&b.0))
            .then(b.1.cmp(&a.1))
    });
    let mut freed = 0;
    let mut out = Vec::new();
    for (_, bytes, id) in candidates {
        if freed >= need {
            break;
        }
        if let Some(v) = take_victim(g, id) {
            out.push(v);
            freed += bytes;
        }
    }
    out
}

/// Marks `id` busy and returns what spilling it writes, if it is resident, ready, unpinned
/// and not already being spilled.
fn take_victim(g: &mut Inner, id: ObjectId) -> Option<Victim> {
    let Some(Entry {
        state: State::Ready(r),
        pins: 0,
        ..
    }) = g.entries.get_mut(&id)
    else {
        return None;
    };
    if r.busy || r.resident() == 0 {
        return None;
    }
    r.busy = true;
    let source = if r.spill.is_some() {
        None
    } else if let Some(d) = &r.data {
        Some(Source::Data(d.clone()))
    } else {
        r.segment.clone().map(Source::Segment)
    };
    Some(Victim { id, source })
}

pub(super) fn pinned_bytes(g: &Inner) -> u64 {
    g.entries
        .values()
        .filter(|e| e.pins > 0)
        .map(|e| match &e.state {
            State::Ready(r) => r.resident(),
            _ => 0,
        })
        .sum()
}

//! Ids as newtypes.
//!
//! An [`ObjectId`] is `(TaskId, index)`: the task that produced it (or, for `put`, a fresh
//! pseudo-task of the putter), and the return index. A [`TaskId`] carries the [`WorkerId`]
//! that submitted it — its *owner* — and a [`WorkerId`] carries its [`NodeId`], so any node
//! can tell from an object's id whom to ask about it.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A node (one per machine; the driver's in-process node in local mode).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A fresh random node id.
    pub fn random() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        NodeId(h.finish())
    }
}

/// A job (one driver program).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct JobId(pub u32);

/// A worker: the driver (index 0) or a worker thread/process of a node.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct WorkerId {
    /// The node it runs on.
    pub node: NodeId,
    /// Its index on that node; 0 is the driver.
    pub index: u32,
}

/// A task, named by its owner (the submitting worker) and a sequence number unique per node.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TaskId {
    /// The worker that submitted the task and owns its outputs.
    pub owner: WorkerId,
    /// Unique per owner node.
    pub seq: u64,
}

/// An object: output `index` of `task`. Objects made by `put` use a fresh pseudo-task id and
/// [`ObjectId::PUT_INDEX`].
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectId {
    /// The producing task.
    pub task: TaskId,
    /// Return index (0-based), or `PUT_INDEX`.
    pub index: u32,
}

/// An actor (named by its creation task).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ActorId(pub TaskId);

/// A placement group (named by its creation pseudo-task).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PlacementGroupId(pub TaskId);

impl PlacementGroupId {
    /// Fixed-width binary form (that of its ready object's id).
    pub fn to_bytes(self) -> [u8; ObjectId::LEN] {
        ObjectId {
            task: self.0,
            index: 0,
        }
        .to_bytes()
    }

    /// Parses [`PlacementGroupId::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        ObjectId::from_bytes(b).map(|o| PlacementGroupId(o.task))
    }
}

impl ObjectId {
    /// The index of objects created by `put`.
    pub const PUT_INDEX: u32 = u32::MAX;
    /// Bytes in [`ObjectId::to_bytes`].
    pub const LEN: usize = 24;

    /// The worker that owns this object.
    pub fn owner(&self) -> WorkerId {
        self.task.owner
    }

    /// Fixed-width binary form (Flight tickets, file names).
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..8].copy_from_slice(&self.task.owner.node.0.to_be_bytes());
        b[8..12].copy_from_slice(&self.task.owner.index.to_be_bytes());
        b[12..20].copy_from_slice(&self.task.seq.to_be_bytes());
        b[20..24].copy_from_slice(&self.index.to_be_bytes());
        b
    }

    /// Parses [`ObjectId::to_bytes`]; `None` when the length is wrong.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::LEN {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        Some(ObjectId {
            task: TaskId {
                owner: WorkerId {
                    node: NodeId(u64_at(0)),
                    index: u32_at(8),
                },
                seq: u64_at(12),
            },
            index: u32_at(20),
        })
    }
}

/// Ray's form: the id's 4 bytes, little-endian, in hex (job 1 is `01000000`).
impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.to_le_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.index)
    }
}
impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x}{:08x}{:016x}",
            self.owner.node.0, self.owner.index, self.seq
        )
    }
}
impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:08x}", self.task, self.index)
    }
}
impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Display for PlacementGroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! debug_as_display {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({})"), self)
            }
        }
    )*};
}
debug_as_display!(
    NodeId,
    WorkerId,
    TaskId,
    ObjectId,
    ActorId,
    PlacementGroupId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_id_round_trips_through_bytes() {
        let id = ObjectId {
            task: TaskId {
                owner: WorkerId {
                    node: NodeId(7),
                    index: 3,
                },
                seq: 99,
            },
            index: 2,
        };
        assert_eq!(ObjectId::from_bytes(&id.to_bytes()), Some(id));
        assert_eq!(id.owner().node, NodeId(7));
        assert_eq!(ObjectId::from_bytes(&[1, 2]), None);
        assert_eq!(id.to_string().len(), 48);
    }
}

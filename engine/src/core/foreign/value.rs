//! Values, refs and arguments as front ends hold them, and their wire forms between a worker
//! process and its node.

use std::ops::Range;
use std::sync::{Arc, Weak};

use arrow::buffer::Buffer;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::client::{WorkerClient, client};
use crate::core::api::RawRef;
use crate::core::ids::ObjectId;
use crate::core::layout::{ArgBytes, WireBody};
use crate::core::node::NodeInner;
use crate::core::object::{
    Block, BytesFormat, ObjectData, Value, decode_ipc, encode_ipc, note_nested_ref,
};
use crate::core::shm::Segment;
use crate::core::store::Store;
use crate::core::worker::{ReleaseLater, WireData, WireId};
use crate::error::{Error, Result};

/// A value a front end stores: pickled bytes or an Arrow block, and the refs inside it.
#[derive(Debug, Clone)]
pub struct PutValue {
    /// The data.
    pub data: ForeignValue,
    /// Ids of the refs serialized inside it (alive while it is stored).
    pub nested: Vec<ObjectId>,
}

/// A value as a front end reads it.
#[derive(Debug, Clone)]
pub enum ForeignValue {
    /// Pickled bytes.
    Pickle(Bytes),
    /// Arrow data (a table, or a pickle with out-of-band buffers): zero-copy, read from the
    /// store's memory or a mapped shared-memory segment.
    Arrow(Block),
}

impl ForeignValue {
    pub(super) fn into_data(self) -> ObjectData {
        match self {
            ForeignValue::Pickle(data) => ObjectData::Bytes {
                format: BytesFormat::Pickle,
                data,
            },
            ForeignValue::Arrow(b) => ObjectData::Arrow(b),
        }
    }

    pub(super) fn from_data(data: ObjectData) -> Result<Self> {
        match data {
            ObjectData::Arrow(b) => Ok(ForeignValue::Arrow(b)),
            ObjectData::Bytes {
                format: BytesFormat::Pickle,
                data,
            } => Ok(ForeignValue::Pickle(data)),
            ObjectData::Bytes { .. } => Err(Error::InvalidArgument(
                "the object was stored by Rust code (bincode), not by Python".into(),
            )),
        }
    }

    pub(super) fn to_wire(&self) -> Result<WireData> {
        Ok(match self {
            ForeignValue::Pickle(b) => WireData::Pickle(b.to_vec()),
            ForeignValue::Arrow(_) => inline_ipc(&encode_ipc(&self.clone().into_data())?),
        })
    }

    /// The wire form of a value a worker sends to the node. Arrow data that shares buffers
    /// with the call's argument segments (`args`, their address ranges here) is laid out
    /// buffer by buffer, the shared ones as references ([`crate::core::layout`]); other
    /// Arrow data larger than the inline threshold (`max_inline_object_size`) goes into a
    /// segment of its own that the node adopts (one copy, and none on the node's side); the
    /// rest inline.
    pub(super) fn to_wire_from_worker(
        &self,
        client: &WorkerClient,
        args: &[Option<Range<usize>>],
    ) -> Result<WireData> {
        let (ForeignValue::Arrow(block), Some(_)) = (self, &client.handoff_prefix) else {
            return self.to_wire();
        };
        if let Some(layout) = crate::core::layout::lay_out(block, args)? {
            let mut wire = layout.wire;
            wire.body = if layout.body_len <= client.inline_max {
                WireBody::Inline(concat_bytes(&layout.body))
            } else {
                WireBody::Handoff {
                    path: client.hand_off(&layout.body)?,
                }
            };
            return Ok(WireData::Buffers(wire));
        }
        let bufs = encode_ipc(&self.clone().into_data())?;
        if crate::core::object::encoded_len(&bufs) <= client.inline_max {
            return Ok(inline_ipc(&bufs));
        }
        Ok(WireData::Handoff {
            path: client.hand_off(&bufs)?,
        })
    }

    /// The value of a wire form. `node`: the node receiving a worker's value, which adopts
    /// handed-over segments (only under its own session prefix); `args`: the mappings of
    /// the call's argument segments, which a worker's result may refer to.
    pub(super) fn from_wire(
        w: WireData,
        node: Option<&NodeInner>,
        args: &ArgSegments,
    ) -> Result<Self> {
        match w {
            WireData::Pickle(b) => Ok(ForeignValue::Pickle(Bytes::from(b))),
            WireData::Ipc(b) => Self::from_data(decode_ipc(Buffer::from_vec(b))?),
            WireData::Segment { path, .. } => {
                let path = std::path::Path::new(&path);
                // In a worker, the node named one of its store's segments.
                let seg = match node {
                    None => crate::core::shm::map_store_segment(path)?,
                    Some(_) => crate::core::shm::map_segment(path)?,
                };
                Self::from_data(seg.data().clone())
            }
            WireData::Arena { path, .. } => Err(Error::Internal(format!(
                "an argument arena ({path}) named outside the call it was written for"
            ))),
            WireData::Handoff { path } => {
                check_handoff(node, &path)?;
                Self::from_data(crate::core::shm::adopt_segment(std::path::Path::new(
                    &path,
                ))?)
            }
            WireData::Buffers(wire) => {
                let body = match &wire.body {
                    WireBody::Inline(b) => Buffer::from(b.as_slice()),
                    WireBody::Handoff { path } => {
                        check_handoff(node, path)?;
                        crate::core::shm::adopt_file(std::path::Path::new(path))?
                    }
                };
                let segs = args
                    .0
                    .iter()
                    .map(|a| {
                        a.as_ref()
                            .map(|a| match &a.data {
                                // Only Arrow data keeps its own buffers in the encoding.
                                ObjectData::Arrow(block) => {
                                    ArgBytes::of_block(a.whole.clone(), block)
                                }
                                ObjectData::Bytes { .. } => {
                                    Ok(ArgBytes::new(a.whole.clone(), Vec::new()))
                                }
                            })
                            .transpose()
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ForeignValue::Arrow(crate::core::layout::rebuild(
                    &wire, &segs, &body,
                )?))
            }
        }
    }
}

/// A handed-over segment must lie under the receiving node's session prefix.
pub(super) fn check_handoff(node: Option<&NodeInner>, path: &str) -> Result<()> {
    let ours = node.is_some_and(|n| {
        let prefix = n.shm_dir.join(&n.shm_prefix);
        path.starts_with(prefix.to_string_lossy().as_ref()) && !path.contains("/../")
    });
    if ours {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "a handed-over segment outside this node's session: {path}"
        )))
    }
}

/// The segments of a call's arguments and the data they encode, by position (`None` for
/// arguments sent inline), which the node holds until it has read the call's outputs: they
/// may refer to them (resolved to the data's own buffers where the encoding shares them).
#[derive(Default)]
pub(crate) struct ArgSegments(pub(super) Vec<Option<ArgSegment>>);

/// An argument the worker maps rather than reads from the message.
pub(crate) struct ArgSegment {
    /// Its encoding as the node maps it: a store segment's mapping, or a view of the call
    /// channel's arena (which is not rewritten while the view lives).
    pub(super) whole: Buffer,
    /// The data it encodes.
    pub(super) data: ObjectData,
    /// The store's segment, held until the call is done (`None` for an arena's).
    pub(super) _segment: Option<Arc<Segment>>,
}

/// An IPC encoding inline in a message.
pub(super) fn inline_ipc(bufs: &[Buffer]) -> WireData {
    WireData::Ipc(concat_bytes(bufs))
}

/// The concatenation of `bufs`, for a message.
pub(super) fn concat_bytes(bufs: &[Buffer]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crate::core::object::encoded_len(bufs));
    for b in bufs {
        out.extend_from_slice(b.as_slice());
    }
    out
}

/// What the store holds for a foreign value.
pub(crate) struct ForeignObject {
    pub(super) data: ObjectData,
    pub(super) nested: Vec<ObjectId>,
    /// The worker's references to the nested refs, released once they are referenced here.
    pub(super) hold: Option<ReleaseLater>,
    /// The store of the nested refs, which takes a reference on each when this is stored.
    pub(super) store: Weak<Store>,
}

impl Value for ForeignObject {
    fn into_data(self) -> Result<ObjectData> {
        let store = self.store.upgrade();
        for id in self.nested {
            note_nested_ref(id, |id| {
                if let Some(s) = &store {
                    s.add_ref(id);
                }
            });
        }
        drop(self.hold);
        Ok(self.data)
    }

    fn from_data(data: &ObjectData) -> Result<Self> {
        Ok(ForeignObject {
            data: data.clone(),
            nested: Vec::new(),
            hold: None,
            store: Weak::new(),
        })
    }
}

/// A front end's reference to an object. In the driver it owns a count on the object; in a
/// worker the node counts it for the worker, and dropping it tells the node.
#[derive(Debug)]
pub struct ForeignRef {
    id: ObjectId,
    local: Option<RawRef>,
}

impl ForeignRef {
    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// A new reference to an object another reference keeps alive now (e.g. one just
    /// deserialized from a value).
    pub fn borrow(id: ObjectId) -> Result<Self> {
        super::api(|a| a.borrow(id))
    }

    /// A reference the node already counted for this process.
    pub(super) fn adopt(id: ObjectId) -> Self {
        ForeignRef { id, local: None }
    }

    pub(super) fn from_raw(raw: RawRef) -> Self {
        ForeignRef {
            id: raw.id(),
            local: Some(raw),
        }
    }

    /// The node's reference this one holds (`None` for a worker's).
    pub(super) fn into_raw(mut self) -> Option<RawRef> {
        self.local.take()
    }
}

impl Clone for ForeignRef {
    fn clone(&self) -> Self {
        if self.local.is_none()
            && let Some(c) = client()
        {
            c.acquired(self.id);
        }
        ForeignRef {
            id: self.id,
            local: self.local.clone(),
        }
    }
}

impl Drop for ForeignRef {
    fn drop(&mut self) {
        if self.local.is_none()
            && let Some(c) = client()
        {
            c.released(self.id);
        }
    }
}

pub(super) fn ids_from_wire(ids: &[WireId]) -> Result<Vec<ObjectId>> {
    ids.iter()
        .map(|b| {
            ObjectId::from_bytes(b)
                .ok_or_else(|| Error::InvalidArgument("a malformed object id".into()))
        })
        .collect()
}

pub(super) fn to_wire_ids(ids: impl IntoIterator<Item = ObjectId>) -> Vec<WireId> {
    ids.into_iter().map(ObjectId::to_bytes).collect()
}

/// The arguments of a call: the pickled `(args, kwargs)` structure with placeholders for
/// the top-level refs, the refs nested deeper inside it, and the top-level refs, which are
/// resolved to their values before the call runs.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ForeignArgs {
    /// The pickled structure.
    pub structure: Vec<u8>,
    /// Refs nested in the structure (kept alive for the call).
    pub nested: Vec<WireId>,
    /// Top-level ref arguments.
    pub refs: Vec<WireId>,
}

impl ForeignArgs {
    /// References on every ref they name (top-level and nested), to keep them alive for
    /// a call that runs later.
    pub(super) fn hold(&self) -> Result<Vec<ForeignRef>> {
        ids_from_wire(&self.refs)?
            .into_iter()
            .chain(ids_from_wire(&self.nested)?)
            .map(ForeignRef::borrow)
            .collect()
    }

    /// Builds the arguments from ids.
    pub fn new(structure: Vec<u8>, nested: &[ObjectId], refs: &[ObjectId]) -> Self {
        ForeignArgs {
            structure,
            nested: to_wire_ids(nested.iter().copied()),
            refs: to_wire_ids(refs.iter().copied()),
        }
    }
}

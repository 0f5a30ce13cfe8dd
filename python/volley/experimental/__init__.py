"""Ray's ``ray.experimental``: where objects are (``get_object_locations``)."""

from __future__ import annotations

from typing import Any, Dict, List

from volley import _native
from volley._api import ObjectRef, is_initialized


def get_object_locations(
    obj_refs: List[ObjectRef], timeout_ms: int = -1
) -> Dict[ObjectRef, Dict[str, Any]]:
    """Where each object's copies are, as Ray answers: ``{ref: {"node_ids": [...],
    "object_size": n, "did_spill": bool}}``. ``node_ids`` are the nodes holding it in memory
    (as ``get_runtime_context().get_node_id()`` names them), ``object_size`` its size in bytes
    (0 while its task runs), ``did_spill`` whether a copy lives in its spill file. Objects
    whose owner knows nothing of them (freed, or their task failed) are left out.

    The owner answers at once, so ``timeout_ms`` (Ray's bound on the lookup, negative for
    none) is never reached."""
    if not is_initialized():
        raise RuntimeError("Ray hasn't been initialized.")
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
        raise TypeError(f"timeout_ms must be an int, got {type(timeout_ms).__name__}")
    refs = list(obj_refs)
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(
                f"get_object_locations takes a list of ObjectRefs, got a {type(r).__name__}"
            )
    out: Dict[ObjectRef, Dict[str, Any]] = {}
    for ref, copies in zip(refs, _native.object_copies(refs)):
        if copies is not None:
            node_ids, size, spilled = copies
            out[ref] = {"node_ids": node_ids, "object_size": size, "did_spill": spilled}
    return out


def get_local_object_locations(obj_refs: List[ObjectRef]) -> Dict[ObjectRef, Dict[str, Any]]:
    """Ray's lookup that asks no other node: on one node, every object's owner is this
    node, so the answer is :func:`get_object_locations`'s."""
    return get_object_locations(obj_refs)


__all__ = ["get_local_object_locations", "get_object_locations"]

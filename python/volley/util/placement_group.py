"""Ray's ``ray.util.placement_group``: bundles of resources reserved together, all or
nothing, for the tasks and actors scheduled into them."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from volley import _native

_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
#: The driver's groups, by id: a group rebuilt from a pickle (``ray.get(pg.ready())``, or
#: one passed to a task) finds its native handle here.
_groups: Dict[bytes, Any] = {}
_specs: Dict[bytes, "PlacementGroup"] = {}


class PlacementGroupID:
    """A placement group's id."""

    def __init__(self, binary: bytes) -> None:
        self._binary = binary

    def binary(self) -> bytes:
        return self._binary

    def hex(self) -> str:
        return self._binary.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._binary == self._binary

    def __hash__(self) -> int:
        return hash(self._binary)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle on a placement group (what :func:`placement_group` returns)."""

    def __init__(self, id: PlacementGroupID, bundles: List[Dict[str, float]], strategy: str):
        self.id = id
        self.bundle_specs = bundles
        self.strategy = strategy

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> Any:
        """A ref that resolves (to this group) once its bundles are reserved: ``get`` it, or
        pass it to ``wait`` with a timeout. As in Ray, a zero-CPU task scheduled into the
        group's first bundle."""
        from volley.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        global _check_task
        if _check_task is None:
            from volley._api import remote

            _check_task = remote(_bundle_reservation_check)
        return _check_task.options(
            num_cpus=0, scheduling_strategy=PlacementGroupSchedulingStrategy(self, 0)
        ).remote(self)

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Whether the bundles were reserved within ``timeout_seconds``."""
        return bool(_native_group(self).wait(float(timeout_seconds)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self) -> Any:
        return (PlacementGroup, (self.id, self.bundle_specs, self.strategy))

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()}, {self.strategy}, {self.bundle_specs})"


def _bundle_reservation_check(pg: PlacementGroup) -> PlacementGroup:
    return pg


_check_task: Any = None


def _native_group(pg: PlacementGroup) -> Any:
    native = _groups.get(pg.id.binary())
    if native is None:
        raise ValueError(
            f"placement group {pg.id.hex()} is not one this driver created (or it was removed "
            "and forgotten); Volley manages placement groups from the driver"
        )
    return native


def placement_group(
    bundles: List[Dict[str, float]],
    strategy: str = "PACK",
    name: str = "",
    lifetime: Optional[str] = None,
    _max_cpu_fraction_per_node: float = 1.0,
    _soft_target_node_id: Optional[str] = None,
    bundle_label_selector: Optional[List[Dict[str, str]]] = None,
) -> PlacementGroup:
    """Reserves ``bundles`` (each a dict of resource amounts: ``{"CPU": 1, "GPU": 1}``)
    with ``strategy`` (``PACK``, ``SPREAD``, ``STRICT_PACK`` or ``STRICT_SPREAD``); returns
    at once, the group possibly still pending (see :meth:`PlacementGroup.ready`)."""
    if _native.is_worker():
        raise NotImplementedError(
            "placement_group() inside a task or actor is not supported by Volley yet; create "
            "the group in the driver and pass it"
        )
    if not isinstance(bundles, list) or not bundles:
        raise ValueError(
            "The placement group `bundles` argument must be a list of dictionaries "
            f"and cannot be empty. Received: {bundles!r}"
        )
    for bundle in bundles:
        if not isinstance(bundle, dict) or not bundle or all(v == 0 for v in bundle.values()):
            raise ValueError(
                "Bundles cannot be an empty dictionary or resources with only 0 values. "
                f"Bundles: {bundles}"
            )
        for k, v in bundle.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"bundle resource {k!r} must be a number >= 0, got {v!r}")
    if strategy not in _STRATEGIES:
        raise ValueError(
            f"Invalid placement group strategy {strategy}. "
            f"Supported strategies are: {list(_STRATEGIES)}."
        )
    if lifetime not in (None, "detached"):
        raise ValueError(
            "Placement group `lifetime` argument must be either `None` or "
            f"'detached'. Got {lifetime}."
        )
    for option, value, default in (
        ("name", name, ""),
        ("lifetime", lifetime, None),
        ("_max_cpu_fraction_per_node", _max_cpu_fraction_per_node, 1.0),
        ("_soft_target_node_id", _soft_target_node_id, None),
        ("bundle_label_selector", bundle_label_selector, None),
    ):
        if value != default:
            raise NotImplementedError(
                f"placement_group({option}=...) is not supported by Volley yet"
            )
    native = _native.placement_group(
        [[(str(k), float(v)) for k, v in b.items()] for b in bundles], strategy
    )
    pg = PlacementGroup(PlacementGroupID(native.binary()), [dict(b) for b in bundles], strategy)
    _groups[pg.id.binary()] = native
    _specs[pg.id.binary()] = pg
    return pg


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Frees the group's bundles; tasks and actors waiting for them fail."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group expects a PlacementGroup, got {placement_group!r}")
    _native_group(placement_group).remove()


def placement_group_table(placement_group: Optional[PlacementGroup] = None) -> Dict[str, Any]:
    """The state of one group (``placement_group_id``, ``strategy``, ``bundles``,
    ``state``), or of every group this driver made, by id."""
    if placement_group is not None:
        return _table_entry(placement_group.id.binary())
    return {id.hex(): _table_entry(id) for id in _groups}


def _table_entry(id: bytes) -> Dict[str, Any]:
    native = _groups.get(id)
    if native is None:
        raise ValueError(f"unknown placement group {id.hex()}")
    state = native.state()
    pg = _specs[id]
    return {
        "placement_group_id": id.hex(),
        "name": "",
        "strategy": pg.strategy,
        "bundles": dict(enumerate(pg.bundle_specs)),
        "state": "PENDING" if state == "INFEASIBLE" else state,
        "stats": {"scheduling_state": state},
    }


__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]

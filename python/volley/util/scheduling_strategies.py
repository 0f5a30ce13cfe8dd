"""Ray's ``ray.util.scheduling_strategies``: where a task or actor may run, passed as its
``scheduling_strategy`` option (besides the strings ``"DEFAULT"`` and ``"SPREAD"``)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple


class PlacementGroupSchedulingStrategy:
    """Run inside a placement group's reserved bundle (``placement_group_bundle_index=-1``:
    any bundle with room)."""

    def __init__(
        self,
        placement_group: Any,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: Optional[bool] = None,
    ) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id`` (hex, as ``get_runtime_context().get_node_id()`` gives
    it); with ``soft=True`` on another node when that one cannot."""

    def __init__(
        self,
        node_id: str,
        soft: bool,
        _spill_on_unavailable: bool = False,
        _fail_on_unavailable: bool = False,
    ) -> None:
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable


class NodeLabelSchedulingStrategy:
    """Ray's label-based strategy. Volley's nodes carry no labels yet: using it raises
    ``NotImplementedError``."""

    def __init__(self, hard: Dict[str, Any], *, soft: Optional[Dict[str, Any]] = None) -> None:
        self.hard = hard
        self.soft = soft


def _native_strategy(strategy: Any) -> Optional[Tuple[Any, ...]]:
    """The native form of a ``scheduling_strategy`` option (``None``: the default). Raises
    what Ray raises for a bad one, and ``NotImplementedError`` for what Volley lacks."""
    if strategy is None or strategy == "DEFAULT":
        return None
    if strategy == "SPREAD":
        return ("spread",)
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        pg = strategy.placement_group
        if pg is None or pg == "default":
            return None
        if strategy.placement_group_capture_child_tasks:
            raise NotImplementedError(
                "scheduling_strategy=PlacementGroupSchedulingStrategy("
                "placement_group_capture_child_tasks=True) is not supported by Volley yet; "
                "pass the strategy to the child tasks explicitly"
            )
        index = strategy.placement_group_bundle_index
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"placement_group_bundle_index must be an int, got {index!r}")
        if index < -1 or index >= pg.bundle_count:
            raise ValueError(
                f"placement_group_bundle_index must be -1 or in [0, {pg.bundle_count}) "
                f"for this placement group, got {index}"
            )
        return ("placement_group", pg.id.binary(), None if index == -1 else index)
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        if strategy._spill_on_unavailable or strategy._fail_on_unavailable:
            raise NotImplementedError(
                "NodeAffinitySchedulingStrategy's _spill_on_unavailable and "
                "_fail_on_unavailable are not supported by Volley yet"
            )
        node_id = strategy.node_id
        if not isinstance(node_id, str):
            raise TypeError(
                f"NodeAffinitySchedulingStrategy node_id must be a str, got {node_id!r}"
            )
        return ("node", node_id, bool(strategy.soft))
    if isinstance(strategy, NodeLabelSchedulingStrategy):
        raise NotImplementedError(
            "scheduling_strategy=NodeLabelSchedulingStrategy is not supported by Volley yet "
            "(nodes carry no labels)"
        )
    raise ValueError(
        f"Invalid scheduling_strategy {strategy!r}: expected 'DEFAULT', 'SPREAD', "
        "a PlacementGroupSchedulingStrategy or a NodeAffinitySchedulingStrategy"
    )


__all__ = [
    "NodeAffinitySchedulingStrategy",
    "NodeLabelSchedulingStrategy",
    "PlacementGroupSchedulingStrategy",
]

"""Ray's ``ray.util``: placement groups and scheduling strategies."""

from volley.util import scheduling_strategies
from volley.util.placement_group import (
    PlacementGroup,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = [
    "PlacementGroup",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
    "scheduling_strategies",
]

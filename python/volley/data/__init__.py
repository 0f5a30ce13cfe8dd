"""Volley Data: Ray Data's API (``import volley.data as rd`` or ``ray.data`` after
``import volley as ray``) on the engine's native streaming executor.

Reads, filters, projections, sorts, groupbys and writes run as native operators on the
node's threads; Python functions (``map_batches``, ``map``, ``filter(fn)``, ...) run in worker
processes, batches reaching them through shared memory without copies.
"""

from volley.data import aggregate, context, exceptions
from volley.data.dataset import (
    ActorPoolStrategy,
    DataContext,
    Dataset,
    ExecutionOptions,
    ExecutionResources,
    GroupedData,
    MaterializedDataset,
    Schema,
    from_arrow,
    from_items,
    from_numpy,
    from_pandas,
    range,
    read_csv,
    read_json,
    read_parquet,
)

__all__ = [
    "ActorPoolStrategy",
    "aggregate",
    "context",
    "exceptions",
    "DataContext",
    "Dataset",
    "ExecutionOptions",
    "ExecutionResources",
    "GroupedData",
    "MaterializedDataset",
    "Schema",
    "from_arrow",
    "from_items",
    "from_numpy",
    "from_pandas",
    "range",
    "read_csv",
    "read_json",
    "read_parquet",
]

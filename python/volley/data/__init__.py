"""Volley Data: Ray Data's API (``import volley.data as rd`` or ``ray.data`` after
``import volley as ray``) on the engine's native streaming executor.

Reads, filters, projections, sorts, groupbys and writes run as native operators on the
node's threads; Python functions (``map_batches``, ``map``, ``filter(fn)``, ...) run in worker
processes, batches reaching them through shared memory without copies.
"""

from volley.data import aggregate, context, datatype, exceptions, expressions
from volley.data.dataset import (
    ActorPoolStrategy,
    DataContext,
    Dataset,
    ExecutionOptions,
    ExecutionResources,
    GroupedData,
    MaterializedDataset,
    Schema,
    TaskPoolStrategy,
    from_arrow,
    from_arrow_refs,
    from_blocks,
    from_items,
    from_numpy,
    from_numpy_refs,
    from_pandas,
    from_pandas_refs,
    range,
    range_tensor,
    read_csv,
    read_json,
    read_parquet,
)
from volley.data.dataset import _Shard as DataIterator

#: Ray's other names for the same things.
DatasetContext = DataContext
DatasetIterator = DataIterator
NodeIdStr = str

#: Ray 2.60 ``ray.data`` names Volley refuses, and why (the README's table lists them).
_REFUSED = {
    **dict.fromkeys(
        """read_audio read_avro read_text read_binary_files read_clickhouse
            read_datasource read_delta read_delta_sharing_tables read_kafka
            read_hudi read_iceberg read_images read_lance read_lerobot read_mcap
            read_numpy read_mongo read_orc read_snowflake read_sql read_tfrecords
            read_unity_catalog read_videos read_zarr read_webdataset
            read_bigquery read_databricks_tables""".split(),
        "reads parquet, CSV and JSON",
    ),
    **dict.fromkeys(
        """from_daft from_dask from_mars from_modin from_spark from_tf
            from_torch from_huggingface""".split(),
        "takes Arrow, pandas, numpy and Python items",
    ),
    **dict.fromkeys(
        """Datasink Datasource ReadTask BlockBasedFileDatasink
            RowBasedFileDatasink ClickHouseTableSettings SinkMode SaveMode
            DatasetSummary FileShuffleConfig RandomSeedConfig
            MixStoppingCondition list_stats_summaries Catalog CatalogAccessMode
            ReaderFormat ResolvedSource DatabricksUnityCatalog KafkaAuthConfig
            Preprocessor""".split(),
        "custom data sources and sinks, catalogs and preprocessors are not implemented",
    ),
}


def __getattr__(name: str) -> object:
    if name in _REFUSED:
        raise NotImplementedError(
            f"ray.data.{name} is not supported by Volley yet ({_REFUSED[name]}); see the "
            "README's Ray Data compatibility table"
        )
    raise AttributeError(f"module 'volley.data' has no attribute {name!r}")


__all__ = [
    "ActorPoolStrategy",
    "aggregate",
    "context",
    "datatype",
    "expressions",
    "exceptions",
    "DataContext",
    "Dataset",
    "ExecutionOptions",
    "ExecutionResources",
    "GroupedData",
    "DataIterator",
    "DatasetContext",
    "DatasetIterator",
    "NodeIdStr",
    "TaskPoolStrategy",
    "MaterializedDataset",
    "Schema",
    "from_arrow",
    "from_arrow_refs",
    "from_blocks",
    "from_items",
    "from_numpy",
    "from_numpy_refs",
    "from_pandas",
    "from_pandas_refs",
    "range",
    "range_tensor",
    "read_csv",
    "read_json",
    "read_parquet",
]

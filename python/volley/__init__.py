"""Volley: Ray's Python API on a native Rust engine.

``import volley as ray`` and a Ray script runs unchanged::

    import volley as ray

    ray.init()

    @ray.remote
    def square(x):
        return x * x

    assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
    ray.shutdown()
"""

from volley import exceptions
from volley._api import (
    ActorClass,
    ActorHandle,
    ObjectRef,
    ObjectRefGenerator,
    RemoteFunction,
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    get_runtime_context,
    init,
    is_initialized,
    kill,
    method,
    nodes,
    put,
    remote,
    shutdown,
    wait,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    # `volley.data` (pyarrow, numpy) is imported on first use: workers and tasks-only
    # programs start faster without it.
    if name in ("data", "actor", "util"):
        import importlib

        return importlib.import_module(f"volley.{name}")
    raise AttributeError(f"module 'volley' has no attribute {name!r}")


__all__ = [
    "ActorClass",
    "ActorHandle",
    "ObjectRef",
    "ObjectRefGenerator",
    "RemoteFunction",
    "available_resources",
    "cancel",
    "actor",
    "cluster_resources",
    "data",
    "util",
    "exceptions",
    "get",
    "get_actor",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "wait",
]

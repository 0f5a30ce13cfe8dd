"""Volley's core API with Ray's names and semantics: ``init``, ``remote``, ``get``, ``put``,
``wait``, actors. Python functions and classes run in worker processes the node starts and
reuses; values travel through the node's shared-memory object store."""

from __future__ import annotations

import atexit
import inspect
import os
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, cast

from volley import _native
from volley import exceptions as exc
from volley._serialization import dumps, loads, register_function

ObjectRef = _native.ObjectRef

#: The pickled (args, kwargs) of a call above this size is shipped through the object
#: store (shared memory) instead of inline in the task.
_INLINE_ARGS = 100 << 10

_TASK_OPTIONS = {
    "num_returns",
    "num_cpus",
    "num_gpus",
    "memory",
    "resources",
    "max_retries",
    "retry_exceptions",
    "name",
    "scheduling_strategy",
    "runtime_env",
    "accelerator_type",
    "max_calls",
}
_ACTOR_OPTIONS = {
    "num_cpus",
    "num_gpus",
    "memory",
    "resources",
    "max_concurrency",
    "max_restarts",
    "max_task_retries",
    "name",
    "namespace",
    "lifetime",
    "scheduling_strategy",
    "runtime_env",
    "get_if_exists",
    "accelerator_type",
}
#: Async actors run this many calls at once unless ``max_concurrency`` says otherwise
#: (Ray's default is 1000; each concurrent call holds a channel to the worker here).
_ASYNC_DEFAULT_CONCURRENCY = 32

_init_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------------


def init(
    address: Optional[str] = None,
    *,
    num_cpus: Optional[float] = None,
    num_gpus: Optional[float] = None,
    resources: Optional[Dict[str, float]] = None,
    object_store_memory: Optional[int] = None,
    ignore_reinit_error: bool = False,
    _temp_dir: Optional[str] = None,
    **kwargs: Any,
) -> "RuntimeInfo":
    """Starts Volley in this process (local mode: a whole node inside the driver, workers
    on demand). Ray's other keyword arguments (``namespace``, ``include_dashboard``,
    ``log_to_driver``, ``runtime_env``...) are accepted and have no effect yet."""
    address = address or os.environ.get("VOLLEY_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if address not in (None, "", "local", "auto"):
        raise exc.VolleyValueError(
            f"init(address={address!r}): joining a cluster is not supported yet; "
            "call init() for local mode"
        )
    with _init_lock:
        if _native.is_initialized():
            if ignore_reinit_error:
                return RuntimeInfo()
            raise RuntimeError(
                "volley.init() was called twice; pass ignore_reinit_error=True to allow it"
            )
        _native.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            object_store_memory=object_store_memory,
            resources=list((resources or {}).items()) or None,
            worker_command=[sys.executable, "-m", "volley._worker"],
            temp_dir=_temp_dir,
        )
    return RuntimeInfo()


class RuntimeInfo(dict):
    """What ``init`` returns (Ray returns address information)."""

    def __init__(self) -> None:
        super().__init__(address="local", node_ip_address="127.0.0.1")


def shutdown() -> None:
    """Stops the runtime: kills worker processes, frees every object and segment."""
    _native.shutdown()


def is_initialized() -> bool:
    """Whether ``init`` has run (always true inside a worker)."""
    return _native.is_initialized()


atexit.register(shutdown)


# ---------------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------------


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Stores ``value`` in the object store; returns its ref."""
    if isinstance(value, ObjectRef):
        raise TypeError("put() of an ObjectRef is not allowed; pass the ref itself")
    payload, nested = dumps(value)
    return _native.put(payload, nested)


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _get_values(refs: List[ObjectRef], timeout: Optional[float]) -> List[Any]:
    if timeout is not None or not _is_main_thread() or _native.is_worker():
        raw = _native.get(refs, timeout)
    else:
        # Wake twice a second so Ctrl-C interrupts a long get.
        while True:
            try:
                raw = _native.get(refs, 0.5)
                break
            except exc.GetTimeoutError:
                continue
    return [loads(r) for r in raw]


def get(
    object_refs: Union[ObjectRef, Sequence[ObjectRef]], *, timeout: Optional[float] = None
) -> Any:
    """The value of a ref, or the values of a list of refs (waiting for them). Raises the
    task's error: a ``TaskError`` that is also an instance of the user's exception."""
    if isinstance(object_refs, ObjectRef):
        return _get_values([object_refs], timeout)[0]
    refs = list(object_refs)
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"get() expects ObjectRefs, got {type(r).__name__}")
    return _get_values(refs, timeout) if refs else []


def wait(
    object_refs: Sequence[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: Optional[float] = None,
    fetch_local: bool = True,
) -> Tuple[List[ObjectRef], List[ObjectRef]]:
    """``(ready, not_ready)`` once ``num_returns`` refs are ready or ``timeout`` passed."""
    refs = list(object_refs)
    if num_returns > len(refs):
        raise ValueError(f"num_returns={num_returns} exceeds the number of refs ({len(refs)})")
    flags = _native.wait(refs, num_returns, timeout)
    ready = [r for r, f in zip(refs, flags) if f]
    return ready, [r for r, f in zip(refs, flags) if not f]


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancels the task that produces ``object_ref``."""
    _native.cancel([object_ref], force, recursive)


async def _await_ref(ref: ObjectRef) -> Any:
    """``await ref``: the value, without blocking the event loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: get(ref))


def _future(ref: ObjectRef) -> Any:
    import concurrent.futures

    fut: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            fut.set_result(get(ref))
        except BaseException as e:  # noqa: BLE001 - handed to the future's owner
            fut.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return fut


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------


class _Slot:
    """Stands for the i-th top-level ref argument inside the pickled arguments."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __reduce__(self) -> Any:
        return (_Slot, (self.i,))


def _pack(
    args: Sequence[Any], kwargs: Dict[str, Any]
) -> Tuple[bytes, List[ObjectRef], List[ObjectRef]]:
    """``(structure, nested_refs, top_level_refs)`` for a call."""
    refs: List[ObjectRef] = []

    def slot(v: Any) -> Any:
        if isinstance(v, ObjectRef):
            refs.append(v)
            return _Slot(len(refs) - 1)
        return v

    a = [slot(v) for v in args]
    k = {n: slot(v) for n, v in kwargs.items()}
    payload, nested = dumps((a, k))
    if not isinstance(payload, bytes) or len(payload) > _INLINE_ARGS:
        # Large arguments go through the store (shared memory), one object each.
        a = [v if isinstance(v, _Slot) else slot(put(v)) for v in a]
        k = {n: v if isinstance(v, _Slot) else slot(put(v)) for n, v in k.items()}
        payload, nested = dumps((a, k))
    return payload, nested, refs


def _unpack(structure: Any, values: List[Any]) -> Tuple[list, dict]:
    a, k = loads(structure)
    fill = lambda v: values[v.i] if isinstance(v, _Slot) else v  # noqa: E731
    return [fill(v) for v in a], {n: fill(v) for n, v in k.items()}


# ---------------------------------------------------------------------------------------------
# Remote functions
# ---------------------------------------------------------------------------------------------


def _resources(opts: Dict[str, Any]) -> List[Tuple[str, float]]:
    return [(str(n), float(v)) for n, v in (opts.get("resources") or {}).items()]


def _check_options(opts: Dict[str, Any], allowed: set, what: str) -> None:
    bad = sorted(set(opts) - allowed)
    if bad:
        raise ValueError(f"invalid option(s) for {what}: {', '.join(bad)}")


class RemoteFunction:
    """A function run as tasks: ``f.remote(*args)`` returns refs to its results."""

    def __init__(self, function: Callable, options: Dict[str, Any]) -> None:
        _check_options(options, _TASK_OPTIONS, "a remote function")
        self._function = function
        self._options = options
        self._id: Optional[int] = None
        self.__name__ = getattr(function, "__name__", "remote_function")
        self.__doc__ = function.__doc__
        self.__wrapped__ = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"remote function {self.__name__} cannot be called directly; "
            f"use {self.__name__}.remote(...)"
        )

    def options(self, **options: Any) -> "RemoteFunction":
        """A copy with other options (``num_cpus``, ``num_returns``, ``max_retries``...)."""
        f = RemoteFunction(self._function, {**self._options, **options})
        f._id = self._id
        return f

    def _function_id(self) -> int:
        if self._id is None:
            self._id = register_function(self._function)
        return self._id

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submits a task; returns an ``ObjectRef`` (a list of them for ``num_returns > 1``)."""
        o = self._options
        structure, nested, refs = _pack(args, kwargs)
        num_returns = int(o.get("num_returns", 1))
        out = _native.submit_task(
            self._function_id(),
            structure,
            nested,
            refs,
            str(o.get("name") or getattr(self._function, "__qualname__", self.__name__)),
            num_returns=num_returns,
            num_cpus=float(o.get("num_cpus", 1.0)),
            num_gpus=float(o.get("num_gpus", 0.0)),
            memory=int(o.get("memory") or 0),
            resources=_resources(o),
            max_retries=o.get("max_retries"),
            retry_exceptions=bool(o.get("retry_exceptions", False)),
        )
        return out[0] if num_returns == 1 else out


# ---------------------------------------------------------------------------------------------
# Actors
# ---------------------------------------------------------------------------------------------


def method(*, num_returns: int = 1, concurrency_group: Optional[str] = None) -> Callable:
    """Decorates an actor method with options (Ray's ``@ray.method``)."""

    def wrap(m: Callable) -> Callable:
        cast(Any, m).__volley_num_returns__ = num_returns
        return m

    return wrap


def _is_async_class(cls: type) -> bool:
    return any(
        inspect.iscoroutinefunction(v) or inspect.isasyncgenfunction(v)
        for _, v in inspect.getmembers(cls, predicate=inspect.isfunction)
    )


class ActorClass:
    """A class whose instances are actors: ``Cls.remote(*args)`` returns a handle."""

    def __init__(self, cls: type, options: Dict[str, Any]) -> None:
        _check_options(options, _ACTOR_OPTIONS, "an actor class")
        self._cls = cls
        self._options = options
        self._id: Optional[int] = None
        self.__name__ = cls.__name__
        self.__doc__ = cls.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"actor class {self.__name__} cannot be instantiated directly; "
            f"use {self.__name__}.remote(...)"
        )

    def options(self, **options: Any) -> "ActorClass":
        c = ActorClass(self._cls, {**self._options, **options})
        c._id = self._id
        return c

    def _class_id(self) -> int:
        if self._id is None:
            self._id = register_function(self._cls)
        return self._id

    def remote(self, *args: Any, **kwargs: Any) -> "ActorHandle":
        """Starts the actor (its constructor runs in its own worker process)."""
        o = self._options
        if o.get("get_if_exists") and o.get("name"):
            try:
                return get_actor(o["name"])
            except ValueError:
                pass
        is_async = _is_async_class(self._cls)
        concurrency = o.get("max_concurrency")
        if concurrency is None:
            concurrency = _ASYNC_DEFAULT_CONCURRENCY if is_async else 1
        options = {
            "class_name": self._cls.__name__,
            "name": o.get("name"),
            "num_cpus": float(o.get("num_cpus", 0.0)),
            "num_gpus": float(o.get("num_gpus", 0.0)),
            "resources": _resources(o),
            "max_concurrency": int(concurrency),
            "max_restarts": int(o.get("max_restarts", 0)),
            "max_task_retries": int(o.get("max_task_retries", 0)),
            "detached": o.get("lifetime") == "detached",
        }
        structure, nested, refs = _pack(args, kwargs)
        native = _native.create_actor(self._class_id(), structure, nested, refs, options)
        return ActorHandle(native, _method_table(self._cls))


def _method_table(cls: type) -> Dict[str, int]:
    table = {}
    for name, m in inspect.getmembers(cls, predicate=callable):
        if name.startswith("__") and name != "__call__":
            continue
        table[name] = getattr(m, "__volley_num_returns__", 1)
    return table


class ActorMethod:
    """``handle.method.remote(*args)``."""

    def __init__(self, handle: "ActorHandle", name: str, num_returns: int) -> None:
        self._handle = handle
        self._name = name
        self._num_returns = num_returns

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"actor method {self._name} cannot be called directly; use .{self._name}.remote(...)"
        )

    def options(self, **options: Any) -> "ActorMethod":
        return ActorMethod(
            self._handle, self._name, int(options.get("num_returns", self._num_returns))
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        structure, nested, refs = _pack(args, kwargs)
        out = _native.call_actor(
            self._handle._native, self._name, structure, nested, refs, self._num_returns
        )
        return out[0] if self._num_returns == 1 else out


class ActorHandle:
    """A handle on an actor; methods are called with ``handle.method.remote(...)``."""

    def __init__(self, native: Any, methods: Dict[str, int]) -> None:
        self._native = native
        self._methods = methods

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_methods", {})
        if name not in methods:
            raise AttributeError(
                f"actor {self.__dict__['_native'].class_name()} has no method {name!r}"
            )
        return ActorMethod(self, name, methods[name])

    def __repr__(self) -> str:
        return f"Actor({self._native.class_name()}, {self._native.binary().hex()})"

    def __reduce__(self) -> Any:
        return (_rebuild_actor, (self._native.binary(), self._native.options(), self._methods))


def _rebuild_actor(binary: bytes, options: Dict[str, Any], methods: Dict[str, int]) -> ActorHandle:
    return ActorHandle(_native.ActorHandle._from_binary(binary, options), methods)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kills the actor's worker process: queued calls fail with ``ActorDiedError``; with
    ``no_restart=False`` it restarts if it has restarts left."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"kill() expects an actor handle, got {type(actor).__name__}")
    _native.kill_actor(actor._native, no_restart)


def get_actor(name: str, namespace: Optional[str] = None) -> ActorHandle:
    """The live actor named ``name`` (``ValueError`` if there is none, as in Ray)."""
    try:
        native = _native.get_actor(name)
    except exc.VolleyNotFoundError as e:
        raise ValueError(f"Failed to look up actor with name {name!r}: {e}") from None
    # A handle found by name does not know its class's method table: any attribute is a
    # method with one return.
    return ActorHandle(native, _AnyMethods())


class _AnyMethods(dict):
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and not name.startswith("__")

    def __getitem__(self, name: str) -> int:
        return 1


def remote(*args: Any, **options: Any) -> Any:
    """``@remote`` or ``@remote(num_cpus=..., ...)`` on a function or a class."""

    def make(obj: Any) -> Any:
        if inspect.isclass(obj):
            return ActorClass(obj, options)
        if callable(obj):
            return RemoteFunction(obj, options)
        raise TypeError("@remote decorates a function or a class")

    if len(args) == 1 and not options and callable(args[0]):
        return make(args[0])
    if args:
        raise TypeError("use @remote or @remote(option=value, ...)")
    return make


# ---------------------------------------------------------------------------------------------
# Cluster information
# ---------------------------------------------------------------------------------------------


def cluster_resources() -> Dict[str, float]:
    """Every resource of the cluster (``CPU``, ``GPU``, ``memory``, ``object_store_memory``,
    custom ones)."""
    return dict(_native.resources(False))


def available_resources() -> Dict[str, float]:
    """The resources free now."""
    return dict(_native.resources(True))


def nodes() -> List[Dict[str, Any]]:
    """The nodes of the cluster (one in local mode)."""
    return [
        {
            "NodeID": "local",
            "Alive": True,
            "NodeManagerAddress": "127.0.0.1",
            "Resources": cluster_resources(),
        }
    ]


class RuntimeContext:
    """What ``get_runtime_context()`` returns."""

    def get_job_id(self) -> str:
        return "01000000"

    def get_node_id(self) -> str:
        return "local"

    def get_task_name(self) -> Optional[str]:
        from volley import _worker

        return _worker.current_task_name()

    @property
    def worker_mode(self) -> str:
        return "WORKER_MODE" if _native.is_worker() else "SCRIPT_MODE"


def get_runtime_context() -> RuntimeContext:
    """Information on the running job, task and worker."""
    return RuntimeContext()

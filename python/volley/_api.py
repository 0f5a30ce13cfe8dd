"""Volley's core API with Ray's names and semantics: ``init``, ``remote``, ``get``, ``put``,
``wait``, actors. Python functions and classes run in worker processes the node starts and
reuses; values travel through the node's shared-memory object store."""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import sys
import threading
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from volley import _native, _serialization
from volley import exceptions as exc
from volley._serialization import dumps, loads, register_function

ObjectRef = _native.ObjectRef


def _counting(name: str, infinite: bool = True) -> Callable[[Any], Optional[str]]:
    """Ray's rule for a count option: None, 0 or a positive integer (-1: infinity)."""
    if infinite:
        return lambda x: (
            None
            if x is None or x >= -1
            else f"The keyword '{name}' only accepts None, 0, -1 or a positive integer, "
            "where -1 represents infinity."
        )
    return lambda x: (
        None
        if x is None or x >= 0
        else f"The keyword '{name}' only accepts None, 0 or a positive integer."
    )


def _quantity(name: str) -> Callable[[Any], Optional[str]]:
    return lambda x: (
        None if x is None or x >= 0 else f"The quantity of resource {name} cannot be negative"
    )


def _check_resources(resources: Optional[Dict[str, Any]]) -> Optional[str]:
    if resources is None:
        return None
    if "CPU" in resources or "GPU" in resources:
        return (
            "Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' "
            "in 'resources' keyword"
        )
    for name, quantity in resources.items():
        if not isinstance(quantity, (int, float)) or isinstance(quantity, bool):
            return f"The quantity of resource {name} must be a number, got {quantity!r}"
        if quantity < 0:
            return f"The quantity of resource {name} cannot be negative"
    return None


def _check_retry_exceptions(x: Any) -> Optional[str]:
    if isinstance(x, bool):
        return None
    if isinstance(x, (list, tuple)) and all(
        inspect.isclass(e) and issubclass(e, Exception) for e in x
    ):
        # Retrying every exception instead would do more than was asked.
        return (
            "retry_exceptions as a list of exception classes is not supported by Volley yet; "
            "pass True to retry every application exception"
        )
    return "retry_exceptions must be either a boolean or a list of exceptions"


def _check_num_returns(x: Any) -> Optional[str]:
    if x == "dynamic":
        return (
            "num_returns='dynamic' (Ray's older generator API) is not supported by Volley; "
            "use num_returns='streaming' (the default for a generator function)"
        )
    if x == "streaming":
        return None
    if x is None or (isinstance(x, int) and x >= 0):
        return None
    return (
        "The keyword 'num_returns' only accepts None, a non-negative integer, or "
        '"dynamic" (for generators)'
    )


def _check_strategy(x: Any) -> Optional[str]:
    from volley.util.scheduling_strategies import _native_strategy

    _native_strategy(x)  # raises what Ray raises, or NotImplementedError
    return None


def _check_runtime_env(x: Any) -> Optional[str]:
    if not x:
        return None
    for key in x:
        if key != "env_vars":
            raise NotImplementedError(
                f"runtime_env[{key!r}] is not supported by Volley yet; only "
                "runtime_env={'env_vars': {...}} is"
            )
    env = x["env_vars"]
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise TypeError("runtime_env['env_vars'] must be of type Dict[str, str]")
    return None


def _check_max_calls(x: Any) -> Optional[str]:
    message = _counting("max_calls", False)(x)
    if message is None and x:
        raise NotImplementedError(
            "max_calls is not supported by Volley yet (a worker process runs any number of "
            "calls); leave it at 0"
        )
    return message


_NUMBER = (int, float, type(None))
_COUNT = (int, type(None))
#: Each option Volley takes: (accepted types, value check). Ray's names and messages.
_COMMON_OPTIONS: Dict[str, Tuple[Any, Optional[Callable[[Any], Optional[str]]]]] = {
    "accelerator_type": ((str, type(None)), None),
    "memory": (_NUMBER, _quantity("memory")),
    "name": ((str, type(None)), None),
    "num_cpus": (_NUMBER, _quantity("num_cpus")),
    "num_gpus": (_NUMBER, _quantity("num_gpus")),
    "resources": ((dict, type(None)), _check_resources),
    "runtime_env": ((dict, type(None)), _check_runtime_env),
    "scheduling_strategy": (object, _check_strategy),
}
_TASK_OPTIONS = {
    **_COMMON_OPTIONS,
    "max_calls": (_COUNT, _check_max_calls),
    "max_retries": (_COUNT, _counting("max_retries")),
    "num_returns": ((int, str, type(None)), _check_num_returns),
    "retry_exceptions": ((bool, list, tuple), _check_retry_exceptions),
}
_ACTOR_OPTIONS = {
    **_COMMON_OPTIONS,
    "name": (
        (str, type(None)),
        lambda x: "Actor name cannot be an empty string." if x == "" else None,
    ),
    "get_if_exists": (bool, None),
    "lifetime": (
        (str, type(None)),
        lambda x: (
            None
            if x in (None, "detached", "non_detached")
            else "actor `lifetime` argument must be one of 'detached', 'non_detached' and 'None'."
        ),
    ),
    "max_concurrency": (_COUNT, _counting("max_concurrency", False)),
    "max_restarts": (_COUNT, _counting("max_restarts")),
    "max_task_retries": (_COUNT, _counting("max_task_retries")),
    "namespace": ((str, type(None)), lambda x: _namespace_error(x)),
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
    namespace: Optional[str] = None,
    runtime_env: Optional[Dict[str, Any]] = None,
    include_dashboard: Optional[bool] = None,
    log_to_driver: bool = True,
    configure_logging: bool = True,
    logging_level: Union[int, str] = "INFO",
    logging_format: Optional[str] = None,
    _temp_dir: Optional[str] = None,
    _system_config: Optional[Dict[str, Any]] = None,
    **kwargs: Any,
) -> "RuntimeInfo":
    """Starts Volley in this process (local mode: a whole node inside the driver, workers
    on demand). ``namespace`` is where this job's named actors live (tasks and actors it
    starts inherit it); ``runtime_env={"env_vars": {...}}`` is set in every task's and
    actor's environment; ``logging_level`` / ``logging_format`` configure the ``volley``
    logger (unless ``configure_logging=False``). ``include_dashboard=True`` warns: the
    local node serves no dashboard. ``_system_config`` takes Ray's
    ``num_workers_soft_limit``, ``idle_worker_killing_time_threshold_ms``,
    ``max_direct_call_object_size`` (the inline threshold) and ``max_lineage_bytes``. Ray's
    other arguments are refused with an error that names them."""
    system_config = _check_system_config(_system_config)
    if namespace is not None:
        _check_namespace(namespace)
    if runtime_env is not None:
        if not isinstance(runtime_env, dict):
            raise TypeError(f"runtime_env must be a dict, got {type(runtime_env)}")
        _check_runtime_env(runtime_env)
    _check_init_kwargs(kwargs, log_to_driver)
    if include_dashboard:
        import warnings

        warnings.warn(
            "include_dashboard=True: Volley's local mode serves no dashboard", stacklevel=2
        )
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
        if namespace is not None:
            os.environ[_NAMESPACE_ENV] = namespace  # workers start with this environment
        else:
            os.environ.pop(_NAMESPACE_ENV, None)
        _job_env_vars.clear()
        _job_env_vars.update((runtime_env or {}).get("env_vars") or {})
        if configure_logging:
            _configure_logging(logging_level, logging_format)
        _native.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            object_store_memory=object_store_memory,
            resources=list((resources or {}).items()) or None,
            worker_command=[sys.executable, "-m", "volley._worker"],
            temp_dir=_temp_dir,
            system_config=system_config,
        )
        _serialization.INLINE_MAX = _native.max_inline_object_size()
        _sigterm.install()
    return RuntimeInfo()


#: Ray ``init`` arguments Volley refuses while their default is changed, with why.
_INIT_REFUSED = {
    "local_mode": "local_mode=True (tasks run serially in the driver) is not supported; "
    "Volley's local mode runs workers on this machine",
    "job_config": "job_config is not supported yet; use runtime_env and namespace",
    "labels": "node labels are not supported yet",
    "dashboard_host": "Volley's local mode serves no dashboard",
    "dashboard_port": "Volley's local mode serves no dashboard",
    "logging_config": "logging_config is not supported; use logging_level and logging_format",
    "enable_resource_isolation": "resource isolation is not supported",
}


#: Ray ``_system_config`` keys Volley honours (non-negative integers).
_SYSTEM_CONFIG_KEYS = (
    "num_workers_soft_limit",
    "idle_worker_killing_time_threshold_ms",
    "max_direct_call_object_size",
    "max_lineage_bytes",
)


def _check_system_config(config: Optional[Dict[str, Any]]) -> List[Tuple[str, int]]:
    if config is None:
        return []
    if not isinstance(config, dict):
        raise TypeError(f"_system_config must be a dict, got {type(config)}")
    out = []
    for k, v in config.items():
        if k not in _SYSTEM_CONFIG_KEYS:
            raise NotImplementedError(
                f"init(_system_config={{{k!r}: ...}}) is not supported by Volley; it takes "
                + ", ".join(_SYSTEM_CONFIG_KEYS)
            )
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"_system_config[{k!r}] must be a non-negative int, got {v!r}")
        out.append((k, v))
    return out


def _check_init_kwargs(kwargs: Dict[str, Any], log_to_driver: bool) -> None:
    if not log_to_driver:
        raise NotImplementedError(
            "init(log_to_driver=False) is not supported by Volley yet: workers write to the "
            "driver's stdout and stderr"
        )
    unknown = []
    for k, v in kwargs.items():
        if k in _INIT_REFUSED:
            if v not in (None, False, {}):
                raise NotImplementedError(f"init({k}=...): {_INIT_REFUSED[k]}")
        else:
            unknown.append(k)
    if unknown:
        # Ray's own message for an argument it does not know.
        raise RuntimeError(f"Unknown keyword argument(s): {', '.join(unknown)}")


def _configure_logging(level: Union[int, str], fmt: Optional[str]) -> None:
    """Ray's ``configure_logging``: the package's logger at ``level``, with ``fmt``."""
    import logging

    logger = logging.getLogger("volley")
    logger.setLevel(logging.getLevelName(level) if isinstance(level, str) else level)
    if fmt is not None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(fmt))
        logger.handlers = [handler]
        logger.propagate = False


class _SigtermShutdown:
    """SIGTERM ends a driver as cleanly as Ctrl-C does: the runtime shuts down (workers
    stopped, every shared-memory segment freed), then the process exits with status 143.
    A handler the user installed before ``init`` is kept and called instead (it decides
    whether the process ends; ``atexit`` shuts the runtime down when it does). A second
    SIGTERM during the shutdown ends the process at once."""

    def __init__(self) -> None:
        self.previous: Any = None
        self.installed = False

    def install(self) -> None:
        import signal

        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; atexit still cleans up
        previous = signal.getsignal(signal.SIGTERM)
        if previous == self._handle:
            return
        self.previous = previous
        signal.signal(signal.SIGTERM, self._handle)
        self.installed = True

    def uninstall(self) -> None:
        import signal

        if self.installed and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) == self._handle:
                signal.signal(signal.SIGTERM, self.previous)
            self.installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        previous = self.previous
        if callable(previous):
            previous(signum, frame)
            return
        if previous == signal.SIG_IGN:
            return
        # The default action again: a second SIGTERM while shutting down kills at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.installed = False
        shutdown()
        raise SystemExit(128 + signum)


_sigterm = _SigtermShutdown()


class RuntimeInfo(dict):
    """What ``init`` returns (Ray returns address information)."""

    def __init__(self) -> None:
        super().__init__(address="local", node_ip_address="127.0.0.1")


def shutdown() -> None:
    """Stops the runtime: kills worker processes, frees every object and segment."""
    _sigterm.uninstall()
    _native.shutdown()


def is_initialized() -> bool:
    """Whether ``init`` has run (always true inside a worker)."""
    return _native.is_initialized()


_F = TypeVar("_F", bound=Callable[..., Any])


def _auto_init(fn: _F) -> _F:
    """Ray's auto-init on ``fn``: the first call that needs a runtime starts one as
    ``init()`` would (``RAY_ADDRESS`` / ``VOLLEY_ADDRESS`` honoured as ``init`` honours
    them), unless ``RAY_ENABLE_AUTO_CONNECT=0`` (or ``VOLLEY_ENABLE_AUTO_CONNECT=0``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _native.is_initialized():
            flag = os.environ.get("VOLLEY_ENABLE_AUTO_CONNECT") or os.environ.get(
                "RAY_ENABLE_AUTO_CONNECT", ""
            )
            if flag.strip() != "0":
                init(ignore_reinit_error=True)
        return fn(*args, **kwargs)

    return cast(_F, wrapper)


atexit.register(shutdown)


# ---------------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------------


@_auto_init
def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Stores ``value`` in the object store; returns its ref."""
    if _owner is not None:
        raise NotImplementedError(
            "put(_owner=...) is not supported by Volley yet: the object is owned by the caller"
        )
    if isinstance(value, ObjectRef):
        raise TypeError("put() of an ObjectRef is not allowed; pass the ref itself")
    payload, nested = dumps(value)
    return _native.put(payload, nested)


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _get_values(refs: List[ObjectRef], timeout: Optional[float]) -> List[Any]:
    if timeout is not None or not _is_main_thread():
        raw = _native.get(refs, timeout)
    else:
        # Wake twice a second so Ctrl-C (in a worker: a cancel) interrupts a long get.
        while True:
            try:
                raw = _native.get(refs, 0.5)
                break
            except exc.GetTimeoutError:
                continue
    return [loads(r) for r in raw]


@_auto_init
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


@_auto_init
def wait(
    object_refs: List[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: Optional[float] = None,
    fetch_local: bool = True,
) -> Tuple[List[ObjectRef], List[ObjectRef]]:
    """``(ready, not_ready)`` once ``num_returns`` refs are ready or ``timeout`` passed.
    ``fetch_local`` is honoured as it stands: on one node every ready object is local.
    Its arguments are checked as Ray checks them: a list of distinct refs, ``0 <
    num_returns <= len(object_refs)``, a non-negative timeout."""
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expected a list of ray.ObjectRef, got a single ray.ObjectRef")
    if not isinstance(object_refs, list):
        raise TypeError(f"wait() expected a list of ray.ObjectRef, got {type(object_refs)}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"The 'timeout' argument must be nonnegative. Received {timeout}")
    for r in object_refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(
                f"wait() expected a list of ray.ObjectRef, got list containing {type(r)}"
            )
    if not object_refs:
        return [], []
    if len(object_refs) != len(set(object_refs)):
        raise ValueError("Wait requires a list of unique object refs.")
    if num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns}.")
    if num_returns > len(object_refs):
        raise ValueError(
            "num_returns cannot be greater than the number of objects provided to ray.wait."
        )
    flags = _native.wait(object_refs, num_returns, timeout)
    ready = [r for r, f in zip(object_refs, flags) if f]
    return ready, [r for r, f in zip(object_refs, flags) if not f]


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
    if not isinstance(payload, bytes) or len(payload) > _serialization.INLINE_MAX:
        # Large arguments go through the store (shared memory), one object each (the call
        # itself carries their refs).
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
    out = [(str(n), float(v)) for n, v in (opts.get("resources") or {}).items()]
    accelerator = opts.get("accelerator_type")
    if accelerator:
        # As Ray does: a sliver of the resource a node with that accelerator advertises
        # (`init(resources={"accelerator_type:A100": 1})` here).
        out.append((f"accelerator_type:{accelerator}", 0.001))
    return out


def _strategy(opts: Dict[str, Any]) -> Optional[Tuple[Any, ...]]:
    from volley.util.scheduling_strategies import _native_strategy

    return _native_strategy(opts.get("scheduling_strategy"))


#: The job's ``runtime_env`` env_vars (``init(runtime_env=...)``), and those of the task
#: running on this thread of a worker (its child tasks and actors inherit them, as in Ray).
_job_env_vars: Dict[str, str] = {}
_task_env = threading.local()


def _env_vars(opts: Dict[str, Any]) -> Dict[str, str]:
    """What a task or actor's environment gets: the job's, its parent's, then its own."""
    own = (opts.get("runtime_env") or {}).get("env_vars") or {}
    inherited = getattr(_task_env, "vars", None) or {}
    if not (_job_env_vars or inherited or own):
        return _NO_ENV
    return {**_job_env_vars, **inherited, **own}


#: No env_vars to set (the common case, checked without building anything).
_NO_ENV: Dict[str, str] = {}
_NO_ENV_KEY: frozenset = frozenset()


class _WithEnv:
    """A function run with ``runtime_env`` env_vars set in the worker's environment for
    the call (restored after it: the worker is reused)."""

    def __init__(self, function: Callable, env: Dict[str, str]) -> None:
        self.function = function
        self.env = env
        self.__name__ = getattr(function, "__name__", "function")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__module__ = getattr(function, "__module__", __name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        saved = self._enter()
        try:
            result = self.function(*args, **kwargs)
        except BaseException:
            self._exit(saved)
            raise
        if inspect.isgenerator(result):
            return self._iterate(result, saved)
        self._exit(saved)
        return result

    def _iterate(self, gen: Any, saved: Any) -> Any:
        try:
            yield from gen
        finally:
            self._exit(saved)

    def _enter(self) -> Any:
        saved = ({k: os.environ.get(k) for k in self.env}, getattr(_task_env, "vars", None))
        os.environ.update(self.env)
        _task_env.vars = self.env
        return saved

    def _exit(self, saved: Any) -> None:
        before, inherited = saved
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _task_env.vars = inherited


def _registered(
    obj: Any, options: Dict[str, Any], ids: Dict[frozenset, int], with_env: Any, what: str
) -> int:
    """The id of ``obj`` registered to run with the environment ``options`` give it (the
    job's, inherited and own ``runtime_env`` env_vars), wrapped in ``with_env`` if any."""
    env = _env_vars(options)
    key = frozenset(env.items()) if env else _NO_ENV_KEY
    fid = ids.get(key)
    if fid is None:
        fid = ids[key] = register_function(with_env(obj, env) if env else obj, what)
    return fid


class _ActorWithEnv:
    """An actor class whose worker process runs with ``runtime_env`` env_vars set (for
    the actor's whole life: the process is its own)."""

    def __init__(self, cls: type, env: Dict[str, str]) -> None:
        self.cls = cls
        self.env = env
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        os.environ.update(self.env)
        _task_env.vars = self.env
        return self.cls(*args, **kwargs)


def _check_options(opts: Dict[str, Any], allowed: Dict[str, Any], what: str) -> None:
    """Ray's checks of ``@remote(...)`` / ``.options(...)``: at once, with Ray's messages."""
    for k, v in opts.items():
        if k not in allowed:
            raise ValueError(
                f"Invalid option keyword {k} for {what}. Valid ones are {list(allowed)}."
            )
        types, check = allowed[k]
        # A bool is an int to isinstance, not to an option that counts.
        wrong_bool = (
            isinstance(v, bool)
            and bool not in (types if isinstance(types, tuple) else (types,))
            and types is not object
        )
        if wrong_bool or not isinstance(v, types):
            raise TypeError(
                f"The type of keyword '{k}' must be {types}, but received type {type(v)}"
            )
        message = check(v) if check is not None else None
        if message:
            raise ValueError(message)
    if what == "actors":
        if opts.get("max_restarts", 0) == 0 and opts.get("max_task_retries", 0) != 0:
            raise ValueError(
                "'max_task_retries' cannot be set if 'max_restarts' "
                "is 0 or if 'max_restarts' is not set."
            )
        if opts.get("get_if_exists") and not opts.get("name"):
            raise ValueError("The actor name must be specified to use `get_if_exists`.")


def _namespace_error(namespace: Any) -> Optional[str]:
    if namespace == "":
        return '"" is not a valid namespace. Pass None to not specify a namespace.'
    return None


def _check_namespace(namespace: Any) -> None:
    """Ray's ``validate_namespace``."""
    if not isinstance(namespace, str):
        raise TypeError("namespace must be None or a string.")
    message = _namespace_error(namespace)
    if message:
        raise ValueError(message)


class _Binder:
    """Checks a call's arguments against a signature the way calling it would (Ray raises
    ``TypeError`` at ``.remote()``). A call with positional arguments only, whose count the
    signature takes, is accepted without building a ``BoundArguments``."""

    __slots__ = ("sig", "min_pos", "max_pos", "ok_shapes")

    def __init__(self, fn: Callable, skip_first: bool) -> None:
        try:
            sig: Optional[inspect.Signature] = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: nothing to check
            sig = None
        if sig is not None and skip_first:
            params = list(sig.parameters.values())[1:]
            sig = sig.replace(parameters=params)
        self.sig = sig
        # Whether arguments bind depends only on their count and keyword names: the shapes
        # seen to bind are remembered (a few; calls repeat their shape).
        self.ok_shapes: set = set()
        self.min_pos, self.max_pos = 0, -1
        if sig is not None:
            kinds = [p.kind for p in sig.parameters.values()]
            plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            required_kw = any(
                p.kind == inspect.Parameter.KEYWORD_ONLY and p.default is p.empty
                for p in sig.parameters.values()
            )
            if not required_kw:
                positional = [p for p in sig.parameters.values() if p.kind in plain]
                self.min_pos = sum(1 for p in positional if p.default is p.empty)
                var = inspect.Parameter.VAR_POSITIONAL in kinds
                self.max_pos = 1 << 30 if var else len(positional)

    def check(self, args: Sequence[Any], kwargs: Dict[str, Any]) -> None:
        if self.sig is None or (not kwargs and self.min_pos <= len(args) <= self.max_pos):
            return
        shape = (len(args), frozenset(kwargs))
        if shape in self.ok_shapes:
            return
        try:
            self.sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(str(e)) from None
        if len(self.ok_shapes) < 64:
            self.ok_shapes.add(shape)


class RemoteFunction:
    """A function run as tasks: ``f.remote(*args)`` returns refs to its results."""

    def __init__(self, function: Callable, options: Dict[str, Any]) -> None:
        _check_options(options, _TASK_OPTIONS, "remote functions")
        self._function = function
        self._options = options
        # Its registered id, per environment it runs with (see `_env_vars`).
        self._ids: Dict[frozenset, int] = {}
        self._binder: Optional[_Binder] = None
        # What every .remote() passes to the engine besides the function and arguments
        # (worked out on first use: the options do not change).
        self._submit: Optional[Dict[str, Any]] = None
        # A generator function streams its outputs unless num_returns says otherwise.
        self._streaming = options.get("num_returns") == "streaming" or (
            "num_returns" not in options and inspect.isgeneratorfunction(function)
        )
        self.__name__ = getattr(function, "__name__", "remote_function")
        self.__doc__ = function.__doc__
        self.__wrapped__ = function

    def __getstate__(self) -> Dict[str, Any]:
        # The argument check is rebuilt on first use where the function arrives.
        return {**self.__dict__, "_binder": None, "_submit": None}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"remote function {self.__name__} cannot be called directly; "
            f"use {self.__name__}.remote(...)"
        )

    def options(self, **options: Any) -> "RemoteFunction":
        """A copy with other options (``num_cpus``, ``num_returns``, ``max_retries``...)."""
        f = RemoteFunction(self._function, {**self._options, **options})
        f._ids, f._binder = self._ids, self._binder
        return f

    def _function_id(self) -> int:
        return _registered(self._function, self._options, self._ids, _WithEnv, "remote function")

    @_auto_init
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submits a task; returns an ``ObjectRef`` (a list of them for ``num_returns > 1``).
        Arguments the function does not take raise ``TypeError`` here, as in Ray."""
        if self._binder is None:
            self._binder = _Binder(self._function, skip_first=False)
        self._binder.check(args, kwargs)
        submit = self._submit
        if submit is None:
            submit = self._submit = self._submit_options()
        structure, nested, refs = _pack(args, kwargs)
        out = _native.submit_task(self._function_id(), structure, nested, refs, **submit)
        if self._streaming:
            return ObjectRefGenerator(out)
        num_returns = submit["num_returns"]
        if num_returns == 0:
            return None
        return out[0] if num_returns == 1 else out

    def _submit_options(self) -> Dict[str, Any]:
        o = self._options
        streaming = self._streaming
        return dict(
            name=str(o.get("name") or getattr(self._function, "__qualname__", self.__name__)),
            num_returns=1 if streaming else int(o.get("num_returns", 1)),
            num_cpus=float(o.get("num_cpus", 1.0)),
            num_gpus=float(o.get("num_gpus", 0.0)),
            memory=int(o.get("memory") or 0),
            resources=_resources(o),
            max_retries=o.get("max_retries"),
            retry_exceptions=bool(o.get("retry_exceptions", False)),
            streaming=streaming,
            strategy=_strategy(o),
        )


class ObjectRefGenerator:
    """What a generator task's ``.remote()`` returns (Ray's ``ObjectRefGenerator``): an
    iterator of refs to its outputs, each as soon as the task yields it. If the task
    raises, iterating raises its error after the outputs it yielded."""

    def __init__(self, native: Any) -> None:
        self._native = native

    def __iter__(self) -> "ObjectRefGenerator":
        return self

    def __next__(self) -> ObjectRef:
        ref = self._next(None)
        if ref is None:
            raise StopIteration
        return ref

    def _next(self, timeout: Optional[float]) -> Optional[ObjectRef]:
        if timeout is not None or not _is_main_thread():
            return self._native.next_ref(timeout)
        while True:  # wake twice a second so Ctrl-C interrupts the wait
            try:
                return self._native.next_ref(0.5)
            except exc.GetTimeoutError:
                continue

    def __repr__(self) -> str:
        return "ObjectRefGenerator()"


# ---------------------------------------------------------------------------------------------
# Actors
# ---------------------------------------------------------------------------------------------


def method(*, num_returns: int = 1, concurrency_group: Optional[str] = None) -> Callable:
    """Decorates an actor method with options (Ray's ``@ray.method``)."""
    if concurrency_group is not None:
        raise NotImplementedError(
            "@method(concurrency_group=...) is not supported by Volley yet; an actor's "
            "calls share its max_concurrency"
        )

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
        _check_options(options, _ACTOR_OPTIONS, "actors")
        self._cls = cls
        self._options = options
        self._ids: Dict[frozenset, int] = {}
        # The constructor's argument check, the methods' num_returns and argument checks:
        # worked out once per class, shared by its .options() copies.
        self._calls: Optional[Tuple[_Binder, Dict[str, int], Dict[str, _Binder]]] = None
        self.__name__ = cls.__name__
        self.__doc__ = cls.__doc__

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "_calls": None}

    def __getattr__(self, name: str) -> Any:
        # The class's own attributes (constants, static and class methods), as in Ray: the
        # actor's methods reach them through the decorated name.
        cls = self.__dict__.get("_cls")
        if cls is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls, name)

    def __mro_entries__(self, bases: tuple) -> tuple:
        raise exc.ActorClassInheritanceException(
            f"Attempted to define a subclass of actor class '{self.__name__}'. Inheriting "
            "from actor classes is not currently supported. You can instead inherit from a "
            "non-actor base class and make the derived class an actor class (with "
            "@ray.remote)."
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"actor class {self.__name__} cannot be instantiated directly; "
            f"use {self.__name__}.remote(...)"
        )

    def options(self, **options: Any) -> "ActorClass":
        c = ActorClass(self._cls, {**self._options, **options})
        c._ids, c._calls = self._ids, self._calls
        return c

    def _class_id(self) -> int:
        return _registered(self._cls, self._options, self._ids, _ActorWithEnv, "actor")

    @_auto_init
    def remote(self, *args: Any, **kwargs: Any) -> "ActorHandle":
        """Starts the actor (its constructor runs in its own worker process)."""
        o = self._options
        if self._calls is None:
            self._calls = (_Binder(self._cls, skip_first=False), *_method_table(self._cls))
        ctor, table, binders = self._calls
        ctor.check(args, kwargs)
        if o.get("get_if_exists") and o.get("name"):
            try:
                return get_actor(o["name"], o.get("namespace"))
            except ValueError:
                pass
        is_async = _is_async_class(self._cls)
        concurrency = o.get("max_concurrency")
        if concurrency is None:
            concurrency = _ASYNC_DEFAULT_CONCURRENCY if is_async else 1
        options = {
            "class_name": self._cls.__name__,
            "name": _qualified(o.get("name"), o.get("namespace")),
            "num_cpus": float(o.get("num_cpus", 0.0)),
            "num_gpus": float(o.get("num_gpus", 0.0)),
            "memory": int(o.get("memory") or 0),
            "resources": _resources(o),
            "scheduling_strategy": _strategy(o),
            "max_concurrency": int(concurrency),
            "max_restarts": int(o.get("max_restarts", 0)),
            "max_task_retries": int(o.get("max_task_retries", 0)),
            "detached": o.get("lifetime") == "detached",
        }
        structure, nested, refs = _pack(args, kwargs)
        native = _native.create_actor(self._class_id(), structure, nested, refs, options)
        return ActorHandle(native, table, binders)


def _method_table(cls: type) -> Tuple[Dict[str, int], Dict[str, _Binder]]:
    """Each method's ``num_returns``, and what checks a call's arguments against it."""
    table, binders = {}, {}
    for name, m in inspect.getmembers(cls, predicate=callable):
        if name.startswith("__") and name != "__call__":
            continue
        table[name] = getattr(m, "__volley_num_returns__", 1)
        raw = inspect.getattr_static(cls, name, None)
        # A plain function takes `self` first; static and class methods do not show it.
        plain = inspect.isfunction(raw)
        binders[name] = _Binder(m, skip_first=plain)
    return table, binders


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
        for k in options:
            if k != "num_returns":
                raise NotImplementedError(
                    f"actor method option {k!r} is not supported by Volley yet "
                    "(only num_returns is)"
                )
        return ActorMethod(
            self._handle, self._name, int(options.get("num_returns", self._num_returns))
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        binder = self._handle.__dict__["_binders"].get(self._name)
        if binder is not None:
            binder.check(args, kwargs)
        structure, nested, refs = _pack(args, kwargs)
        out = _native.call_actor(
            self._handle._native, self._name, structure, nested, refs, self._num_returns
        )
        return out[0] if self._num_returns == 1 else out


class ActorHandle:
    """A handle on an actor; methods are called with ``handle.method.remote(...)``."""

    def __init__(
        self, native: Any, methods: Dict[str, int], binders: Optional[Dict[str, _Binder]] = None
    ) -> None:
        self._native = native
        self._methods = methods
        # Argument checks of the methods; a handle rebuilt from a pickle has none (the
        # call is checked in the actor's process then).
        self._binders = binders or {}

    def __getattr__(self, name: str) -> ActorMethod:
        if name == "__ray_terminate__":
            # Queued like any call: those sent before it finish, then the actor exits.
            return ActorMethod(self, name, 1)
        methods = self.__dict__.get("_methods", {})
        if name not in methods:
            raise AttributeError(
                f"actor {self.__dict__['_native'].class_name()} has no method {name!r}"
            )
        return ActorMethod(self, name, methods[name])

    def __repr__(self) -> str:
        return f"Actor({self._native.class_name()}, {self._native.binary().hex()})"

    def __reduce__(self) -> Any:
        # Sent inside a value or a call, a handle carries an anchor: a nested ref that keeps
        # the actor alive while the value, the pending call or the rebuilt handle lives.
        anchor = _native.actor_anchor(self._native) if _serialization.tracking_refs() else None
        state = (self._native.binary(), self._native.options(), self._methods, anchor)
        return (_rebuild_actor, state)


def _rebuild_actor(
    binary: bytes, options: Dict[str, Any], methods: Dict[str, int], anchor: Any = None
) -> ActorHandle:
    handle = ActorHandle(_native.ActorHandle._from_binary(binary, options), methods)
    handle.__dict__["_anchor"] = anchor
    return handle


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kills the actor's worker process: queued calls fail with ``ActorDiedError``; with
    ``no_restart=False`` it restarts if it has restarts left."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supported for actors. Got: {type(actor)}.")
    _native.kill_actor(actor._native, no_restart)


#: The namespace of this job's named actors (``init(namespace=...)``; workers inherit it).
_NAMESPACE_ENV = "VOLLEY_NAMESPACE"


def _qualified(name: Optional[str], namespace: Optional[str]) -> Optional[str]:
    """The engine's name of a named actor: its namespace (the job's unless given) and name."""
    if name is None:
        return None
    ns = namespace if namespace is not None else os.environ.get(_NAMESPACE_ENV)
    return name if not ns else f"{ns}\x1f{name}"


@_auto_init
def get_actor(name: str, namespace: Optional[str] = None) -> ActorHandle:
    """The live actor named ``name`` in ``namespace`` (the job's when ``None``);
    ``ValueError`` if there is none, as in Ray."""
    if not isinstance(name, str):
        raise TypeError(f"get_actor() expects the actor's name as a str, got {type(name)}")
    if not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    if namespace is not None:
        _check_namespace(namespace)
    try:
        native = _native.get_actor(cast(str, _qualified(name, namespace)))
    except exc.VolleyNotFoundError:
        where = f" in namespace {namespace!r}" if namespace else ""
        raise ValueError(
            f"Failed to look up actor with name {name!r}{where}: no live actor has that name"
        ) from None
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


@_auto_init
def cluster_resources() -> Dict[str, float]:
    """Every resource of the cluster (``CPU``, ``GPU``, ``memory``, ``object_store_memory``,
    custom ones)."""
    return dict(_native.resources(False))


@_auto_init
def available_resources() -> Dict[str, float]:
    """The resources free now."""
    return dict(_native.resources(True))


@_auto_init
def nodes() -> List[Dict[str, Any]]:
    """The nodes of the cluster (one in local mode)."""
    node_id, _ = _native.node_and_job()
    return [
        {
            "NodeID": node_id,
            "Alive": True,
            "NodeManagerAddress": "127.0.0.1",
            "NodeManagerHostname": os.uname().nodename,
            "Resources": cluster_resources(),
        }
    ]


class RuntimeContext:
    """What ``get_runtime_context()`` returns."""

    def get_job_id(self) -> str:
        """The job's id, in hex (Ray's form: ``01000000`` for job 1)."""
        return str(_native.node_and_job()[1])

    def get_node_id(self) -> str:
        """The id (hex) of the node this process runs on."""
        return str(_native.node_and_job()[0])

    def get_task_name(self) -> Optional[str]:
        from volley import _worker

        return _worker.current_task_name()

    @property
    def worker_mode(self) -> str:
        return "WORKER_MODE" if _native.is_worker() else "SCRIPT_MODE"


@_auto_init
def get_runtime_context() -> RuntimeContext:
    """Information on the running job, task and worker."""
    return RuntimeContext()

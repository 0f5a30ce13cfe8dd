"""The worker process: ``python -m volley._worker``, started by the node.

It connects its call channels to the node (``volley._native.worker_connect``) and serves
calls on them: one thread per channel (an actor with ``max_concurrency = n`` has ``n``),
running tasks, an actor's constructor and its methods. An async actor's coroutines run on
one event loop thread. Tasks inside the worker use the same API as the driver: their
requests go to the node over the channel of the call they run in. The process exits when
the node closes its channels, or when the node's process dies (its stdin reaches EOF).
"""

from __future__ import annotations

import inspect
import os
import threading
import traceback
from typing import Any, Dict, List, Optional

from volley import _native
from volley._serialization import _cloudpickle, dumps, loads

_functions: Dict[int, Any] = {}


_instance: Any = None
_loop: Any = None
#: True while a task's own code runs on the main thread: the node's cancel signal (SIGUSR2)
#: raises ``KeyboardInterrupt`` there then, and is ignored otherwise.
_interruptible = False
_local = threading.local()
_THIS_FILE = os.path.abspath(__file__)


class _ActorExit(SystemExit):
    """Raised by ``exit_actor`` (and a ``__ray_terminate__`` call) inside an actor: the
    worker runs the process's ``atexit`` handlers and ends."""


def current_task_name() -> Optional[str]:
    """The name of the task or method running on this thread (None in the driver)."""
    return getattr(_local, "task", None)


def in_actor() -> bool:
    """Whether this worker process holds an actor."""
    return _instance is not None


def _exit_actor() -> None:
    """Ends the actor as Ray's ``exit_actor`` does: ``atexit`` handlers run, the node ends
    the actor (no restart), and the process exits (interpreter teardown is skipped, as when
    the node closes the worker)."""
    import atexit
    import sys

    atexit._run_exitfuncs()
    try:
        _native.exit_actor()  # no restart: the node ends the actor before the process exits
    except Exception:  # noqa: BLE001 - the node may already be ending it
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream is no reason not to exit
            pass
    os._exit(0)


def _function(fn_id: int) -> Any:
    f = _functions.get(fn_id)
    if f is None:
        f = _cloudpickle().loads(_native.function_bytes(fn_id))
        _functions[fn_id] = f
    return f


def _event_loop() -> Any:
    import asyncio

    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        threading.Thread(target=_loop.run_forever, name="volley-actor-loop", daemon=True).start()
    return _loop


def _user_traceback(e: BaseException) -> str:
    """The traceback of the user's code only: frames of this file are left out."""
    te = traceback.TracebackException(type(e), e, e.__traceback__)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if os.path.abspath(f.filename) != _THIS_FILE]
    )
    return "".join(te.format())


def _run(kind: str, method: Optional[str], fn_id: int, args: List[Any]) -> Any:
    global _instance
    from volley._api import _unpack

    values = [loads(a) for a in args[1:]]
    fargs, fkwargs = _unpack(args[0], values)
    if kind == "task":
        return _function(fn_id)(*fargs, **fkwargs)
    if kind == "init":
        _instance = _function(fn_id)(*fargs, **fkwargs)
        return None
    if method is None:
        raise ValueError(f"an actor call of kind {kind!r} without a method name")
    if method == "__ray_terminate__":
        raise _ActorExit(0)
    result = getattr(_instance, method)(*fargs, **fkwargs)
    if inspect.iscoroutine(result):
        import asyncio

        result = asyncio.run_coroutine_threadsafe(result, _event_loop()).result()
    return result


#: ``num_returns`` of a generator call (the engine's ``STREAMING_RETURNS``): each value the
#: function yields is sent to the node as it comes, and the call ends with no outputs.
_STREAMING = 2**32 - 1


def _outputs(result: Any, num_returns: int) -> List[Any]:
    if num_returns == _STREAMING:
        if not inspect.isgenerator(result):
            raise TypeError(
                "a task with num_returns='streaming' must be a generator function; it "
                f"returned {type(result).__name__}"
            )
        for value in result:
            _native.worker_emit(*dumps(value, copy_buffers=False))
        return []
    if inspect.isgenerator(result):
        raise TypeError(
            "the function is a generator: call it as a task (num_returns='streaming'); "
            "generator actor methods are not supported yet"
        )
    if num_returns == 1:
        results = [result]
    else:
        results = list(result)
        if len(results) != num_returns:
            raise ValueError(
                f"the function returned {len(results)} values but num_returns={num_returns}"
            )
    out = []
    for r in results:
        payload, nested = dumps(r, copy_buffers=False)
        out.append((payload, nested))
    return out


def _serve(channel: int) -> None:
    global _interruptible
    while True:
        call = _native.worker_next_call(channel)
        if call is None:
            return
        kind, method, name, fn_id, args, num_returns = call
        # The arguments may live in memory the node rewrites for its next call: nothing
        # here may hold them once the call is reported (worker_finish_ok empties
        # `outputs`; the node is told when user code kept them, and then leaves them be).
        del call
        _local.task = name
        # A task on the main thread can be cancelled while its code runs (a generator's
        # too, as it is iterated).
        _interruptible = kind == "task" and threading.current_thread() is threading.main_thread()
        try:
            try:
                outputs = _outputs(_run(kind, method, fn_id, args), num_returns)
            finally:
                _interruptible = False
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
            del args
            if isinstance(e, _ActorExit):
                _exit_actor()
            message = _user_traceback(e)
            try:
                payload: Optional[bytes] = _cloudpickle().dumps(e)
            except Exception:  # an exception that does not pickle: its text is enough
                payload = None
            _native.worker_finish_err(channel, message, payload)
        else:
            del args
            _native.worker_finish_ok(channel, outputs)
        finally:
            _local.task = None


def _on_cancel(signum: int, frame: Any) -> None:
    if _interruptible:
        raise KeyboardInterrupt("the task was cancelled")


def main() -> None:
    import signal
    import sys

    signal.signal(signal.SIGUSR2, _on_cancel)
    # Run as `python -m volley._worker`, this module is `__main__`: code that imports it by
    # name (the runtime context, exit_actor) must find this instance, not a fresh copy.
    sys.modules["volley._worker"] = sys.modules[__name__]
    try:
        channels = _native.worker_connect()
    except OSError:
        if not os.path.exists(os.environ.get("VOLLEY_WORKER_SOCKET", "")):
            # The node shut down while this worker was starting: nothing to serve.
            os._exit(1)
        raise
    from volley import _serialization

    _serialization.INLINE_MAX = _native.max_inline_object_size()
    threads = [
        threading.Thread(target=_serve, args=(ch,), name=f"volley-call-{ch}", daemon=True)
        for ch in range(1, channels)
    ]
    for t in threads:
        t.start()
    _serve(0)
    for t in threads:
        t.join()
    # Skip interpreter teardown: the node is gone or done with this process.
    os._exit(0)


if __name__ == "__main__":
    main()

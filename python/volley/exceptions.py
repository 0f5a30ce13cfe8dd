"""Volley's exceptions, with Ray's names as aliases (``RayTaskError``, ``RayActorError``...).

The engine maps each of its errors to one class here (``python/src/lib.rs``, ``to_py_err``).
A task that raised gives a :class:`TaskError` that is *also* an instance of the user's own
exception class, so ``except ValueError`` catches a remote ``ValueError``; its message is
the user's traceback from the worker, shown once.
"""

from __future__ import annotations

import pickle
from typing import Optional


class VolleyError(Exception):
    """Base class of every Volley error."""


class VolleyValueError(VolleyError, ValueError):
    """A bad argument or option."""


class VolleyNotFoundError(VolleyError, LookupError):
    """A named thing (actor, function) does not exist."""


class VolleyDataError(VolleyError, ValueError):
    """Bad input data: a corrupt file, conflicting schemas."""


class VolleyNotInitializedError(VolleyError, RuntimeError):
    """The API was used before ``volley.init()``."""


class VolleyIOError(VolleyError, OSError):
    """An I/O error (file, URL, socket)."""


class VolleyShutdownError(VolleyError, RuntimeError):
    """The runtime is shutting down."""


class VolleyInternalError(VolleyError, RuntimeError):
    """A bug in Volley: please report it."""


class GetTimeoutError(VolleyError, TimeoutError):
    """``get`` or ``wait`` ran out of time."""


class TaskCancelledError(VolleyError):
    """The task was cancelled."""


class ActorDiedError(VolleyError):
    """The actor is dead: killed, out of restarts, or its constructor raised."""


class ObjectLostError(VolleyError):
    """The object cannot be found or restored."""


class ObjectNotLocalError(VolleyError):
    """The object is held by another node, which this one cannot reach: not lost, only not
    here (e.g. a ref saved by another session)."""


class ObjectStoreFullError(VolleyError, MemoryError):
    """The object store cannot make room: everything in it is in use."""


class InfeasibleError(VolleyError):
    """The resources asked for can never be met by the cluster."""


class ActorClassInheritanceException(VolleyError, TypeError):
    """A class statement named an actor class as a base (Ray's exception of that name)."""


class TaskError(VolleyError):
    """A task or actor method raised (or its worker died); see :attr:`cause`."""

    def __init__(self, message: str, task: str = "", cause: Optional[BaseException] = None):
        super().__init__(message)
        self.task = task
        self.cause = cause
        self._message = message

    def __str__(self) -> str:
        return self._message


class UserCodeException(VolleyError):
    """A user function of a ``volley.data`` transformation raised (Ray's
    ``ray.data.exceptions.UserCodeException``). The error raised is also a ``TaskError`` and
    an instance of the user's exception class, which is its ``__cause__``."""


class WorkerCrashedError(TaskError):
    """The worker process running the task died, and no retries were left."""


#: Ray's names.
RayError = VolleyError
RayTaskError = TaskError
RayActorError = ActorDiedError
ActorError = ActorDiedError

_DUAL_CLASSES: dict = {}


def _dual_class(cause_cls: type, user_code: bool = False) -> type:
    """``TaskError(<cause_cls>)``: a subclass of both (and of ``UserCodeException`` for a
    data transformation's function: ``user_code``), made once per class."""
    cls = _DUAL_CLASSES.get((cause_cls, user_code))
    if cls is None:

        def __init__(self, message, task="", cause=None):
            TaskError.__init__(self, message, task, cause)

        def __getattr__(self, name):
            cause = self.__dict__.get("cause")
            if cause is None:
                raise AttributeError(name)
            return getattr(cause, name)

        bases: tuple = (TaskError, cause_cls)
        name = f"TaskError({cause_cls.__name__})"
        if user_code:
            bases, name = (UserCodeException, *bases), f"UserCodeException({cause_cls.__name__})"
        try:
            cls = type(
                name,
                bases,
                {"__init__": __init__, "__getattr__": __getattr__, "__str__": TaskError.__str__},
            )
        except TypeError:  # a class that cannot be subclassed (final, or a layout clash)
            cls = _dual_class(Exception, user_code) if cause_cls is not Exception else TaskError
        _DUAL_CLASSES[(cause_cls, user_code)] = cls
    return cls


#: Where a data transformation's user function fails (the engine names its operator so).
_USER_CODE_TASKS = ("MapBatches(", "MapGroups(")


def _task_failure(task: str, cause: str, message: str, payload: Optional[bytes]) -> TaskError:
    """Builds the exception for a failed task (called by the native module)."""
    if cause == "worker_died":
        return WorkerCrashedError(f"task {task} failed: {message}", task)
    user = None
    if payload is not None:
        try:
            user = pickle.loads(payload)
        except Exception:  # an exception that does not unpickle: keep the text
            user = None
    if isinstance(user, TaskError):
        # Raised again by a task that got it from its own dependency: keep the original.
        return user
    user_code = task.startswith(_USER_CODE_TASKS)
    if isinstance(user, BaseException) and isinstance(user, Exception):
        err = _dual_class(type(user), user_code)(message, task, user)
        err.args = user.args
        err.__cause__ = user
        return err
    if user_code:
        return _dual_class(Exception, True)(message, task, user)
    return TaskError(message, task, user)


__all__ = [
    "UserCodeException",
    "VolleyError",
    "VolleyValueError",
    "VolleyNotFoundError",
    "VolleyDataError",
    "VolleyNotInitializedError",
    "VolleyIOError",
    "VolleyShutdownError",
    "VolleyInternalError",
    "GetTimeoutError",
    "TaskCancelledError",
    "ActorDiedError",
    "ObjectLostError",
    "ObjectNotLocalError",
    "ObjectStoreFullError",
    "InfeasibleError",
    "ActorClassInheritanceException",
    "TaskError",
    "WorkerCrashedError",
    "RayError",
    "RayTaskError",
    "RayActorError",
    "ActorError",
]

"""Ray's ``ray.actor`` module: :func:`exit_actor`, and the handle and class types."""

from __future__ import annotations

from volley import _native
from volley._api import ActorClass, ActorHandle, ActorMethod
from volley._worker import _ActorExit


def exit_actor() -> None:
    """Ends the actor this is called in, from one of its methods: ``atexit`` handlers run,
    the process exits, and calls to the actor then raise ``ActorDiedError``."""
    from volley import _worker

    if not _native.is_worker() or not _worker.in_actor():
        raise TypeError(
            "exit_actor API is called on a non-actor worker. Call this API inside an actor "
            "method if you want to exit the actor."
        )
    raise _ActorExit(0)


__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor"]

"""Init -> first task result, then an idle local cluster, for Ray or Volley's Python API.

    python startup.py ray|volley IDLE_SECONDS

Prints ``{"init_to_first_task_s": s}`` as soon as the first task's result is back, then stays
idle for IDLE_SECONDS (the parent samples the idle process tree's memory meanwhile) and shuts
down. Exits with status 3 when the package is not installed.
"""

from __future__ import annotations

import importlib
import json
import sys
import time

from pipelines import UNAVAILABLE


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("ray", "volley"):
        sys.exit(f"usage: {sys.argv[0]} ray|volley IDLE_SECONDS")
    try:
        api = importlib.import_module(sys.argv[1])
    except ImportError as e:
        print(f"not available: {e}", file=sys.stderr)
        sys.exit(UNAVAILABLE)
    idle = float(sys.argv[2])

    @api.remote
    def one() -> int:
        return 1

    t = time.perf_counter()
    api.init()
    result = api.get(one.remote())
    elapsed = time.perf_counter() - t
    if result != 1:
        sys.exit(f"first task returned {result!r}, expected 1")
    print(json.dumps({"init_to_first_task_s": elapsed}), flush=True)
    time.sleep(idle)
    api.shutdown()


if __name__ == "__main__":
    main()

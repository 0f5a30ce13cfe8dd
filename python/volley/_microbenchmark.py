"""``volley microbenchmark``: Ray's core micro-benchmarks through Volley's Python API.

The same workloads as ``ray microbenchmark`` (``ray._private.ray_perf``) with its metric
names, so the two print comparable lines: tasks and actor methods that return ``0`` run in
worker processes, and ``put`` / ``get`` go through the node's store. Each metric runs a 1 s
warm-up, then ``--trials`` trials of ``--duration`` seconds, and prints
``<name> per second <mean> +- <stddev>`` (``GB/s`` for the gigabytes metric).

Differences from Ray's, stated here rather than hidden:

- ``1_n_actor_calls_async``: Ray submits from inside a client actor that holds the
  handles; here the driver submits to the ``n`` actors (Ray's ``n``: half the CPUs).
- ``--pause`` replaces Ray's 10 s sleep before each metric (default 0 here).

``volley microbenchmark --rust`` runs the engine's own micro-benchmarks instead (the Rust
core without Python: tasks, actors and the store in one process).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Any, Callable, List, Optional

_PARSER_DESCRIPTION = "Ray's core micro-benchmarks through Volley's Python API."


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="volley microbenchmark", description=_PARSER_DESCRIPTION)
    p.add_argument("--filter", help="only metrics whose name contains this")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per trial (Ray: 2)")
    p.add_argument("--trials", type=int, default=4, help="trials per metric (Ray: 4)")
    p.add_argument("--pause", type=float, default=0.0, help="seconds to sleep before each metric")
    p.add_argument("--num-cpus", type=int, default=None, help="the local cluster's CPUs")
    return p


class _Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: List[tuple] = []

    def wanted(self, name: str) -> bool:
        return not self.args.filter or self.args.filter in name

    def timeit(
        self, name: str, fn: Callable[[], Any], multiplier: float = 1, unit: str = ""
    ) -> None:
        """Ray's ``timeit``: calls ``fn`` in steps for each trial; a rate per second of
        ``multiplier`` units per call."""
        if not self.wanted(name):
            return
        time.sleep(self.args.pause)
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < min(1.0, self.args.duration):
            fn()
            count += 1
        step = count // 10 + 1
        rates = []
        for _ in range(self.args.trials):
            start, count = time.perf_counter(), 0
            while time.perf_counter() - start < self.args.duration:
                for _ in range(step):
                    fn()
                count += step
            rates.append(multiplier * count / (time.perf_counter() - start))
        mean = statistics.fmean(rates)
        sd = statistics.pstdev(rates)
        if unit:
            line = f"{name} {mean:.3f} {unit} +- {sd:.3f}"
        else:
            line = f"{name} per second {mean:.2f} +- {sd:.2f}"
        print(line, flush=True)
        self.results.append((name, mean, sd))


def run(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    import numpy as np

    import volley as ray

    ray.init(num_cpus=args.num_cpus)
    try:
        _benchmarks(ray, np, _Runner(args))
    finally:
        ray.shutdown()
    return 0


def _benchmarks(ray: Any, np: Any, r: _Runner) -> None:
    @ray.remote
    def small_value() -> int:
        return 0

    class _Actor:
        def small_value(self) -> int:
            return 0

    # Not a decorator: a type checker keeps a decorated class's own type.
    Actor = ray.remote(_Actor)

    value = ray.put(0)
    r.timeit("single_client_get_calls_Plasma_Store", lambda: ray.get(value))
    r.timeit("single_client_put_calls_Plasma_Store", lambda: ray.put(0))
    if r.wanted("single_client_put_gigabytes"):
        arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)
        r.timeit("single_client_put_gigabytes", lambda: ray.put(arr), 8 * 0.1, unit="GB/s")
        del arr

    def tasks_and_get_batch() -> None:
        ray.get([small_value.remote() for _ in range(1000)])

    r.timeit("single_client_tasks_and_get_batch", tasks_and_get_batch)
    r.timeit("single_client_tasks_sync", lambda: ray.get(small_value.remote()))
    r.timeit("single_client_tasks_async", tasks_and_get_batch, 1000)

    if r.wanted("1_1_actor_calls_sync") or r.wanted("1_1_actor_calls_async"):
        a = Actor.remote()
        r.timeit("1_1_actor_calls_sync", lambda: ray.get(a.small_value.remote()))
        r.timeit(
            "1_1_actor_calls_async",
            lambda: ray.get([a.small_value.remote() for _ in range(1000)]),
            1000,
        )
        ray.kill(a)
    if r.wanted("1_n_actor_calls_async"):
        n, n_cpu = 5000, max(1, multiprocessing.cpu_count() // 2)
        actors = [Actor.remote() for _ in range(n_cpu)]

        def one_to_n() -> None:
            ray.get([a.small_value.remote() for a in actors for _ in range(n)])

        r.timeit("1_n_actor_calls_async", one_to_n, n * n_cpu)
        for a in actors:
            ray.kill(a)


if __name__ == "__main__":
    import sys

    sys.exit(run())

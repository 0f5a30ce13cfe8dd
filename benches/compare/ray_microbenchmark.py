"""``ray microbenchmark`` restricted to the metrics compared with ``volley microbenchmark``.

The CLI command runs ``ray._private.ray_perf.main``, which times every metric (about 20 s
each, including a 10 s pause before each against noisy neighbours) and then the Ray Client
benchmarks; its only filter (``TESTS_TO_RUN``) is one substring. This script runs the same
``main`` with its ``timeit`` wrapped so that only the wanted metrics run, skips the Ray Client
part, and prints one JSON line: ``[{"name": ..., "mean": ..., "stddev": ...}, ...]`` with
names in Ray's own result form (``1:1 actor calls sync`` -> ``1_1_actor_calls_sync``).

    python ray_microbenchmark.py METRIC[,METRIC...] [--pause SECONDS]

``--pause`` replaces Ray's 10 s pause before each metric (a quick mode for smoke runs).
Written against ray 2.60.0 (pinned in requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import re


def metric_name(title: str) -> str:
    """Ray's metric title as a name: ``1:1 actor calls sync`` -> ``1_1_actor_calls_sync``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", help="comma-separated metric names")
    parser.add_argument("--pause", type=float, default=None, help="seconds before each metric")
    args = parser.parse_args()
    wanted = set(args.metrics.split(","))

    import ray
    from ray._private import ray_perf

    timeit = ray_perf.timeit

    def wanted_only(title, fn, multiplier=1, **kwargs):
        if metric_name(title) not in wanted:
            return [None]
        if args.pause is not None:
            kwargs["warmup_time_sec"] = args.pause
        return timeit(title, fn, multiplier, **kwargs)

    ray_perf.timeit = wanted_only
    ray_perf.client_microbenchmark_main = lambda results: results
    results = [r for r in ray_perf.main() if r is not None]
    metrics = [
        {"name": metric_name(t), "mean": float(m), "stddev": float(s)} for t, m, s in results
    ]
    print(json.dumps({"version": ray.__version__, "metrics": metrics}), flush=True)


if __name__ == "__main__":
    main()

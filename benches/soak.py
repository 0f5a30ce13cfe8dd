"""Soak run: one driver runs many small pipelines and many tasks; the process tree's memory,
shared memory, file descriptors and threads must stay flat.

    .venv/bin/python benches/soak.py [--pipelines 1000] [--tasks 200000] [--warmup 0.25]

A sampler thread records every second: RSS of the driver and its workers, bytes of the
`/dev/shm/volley-*` files, open descriptors and threads of the tree. For each phase (the
pipelines, then the tasks) it prints each metric's first, last and largest value and its
slope per minute (least squares) after the phase's warm-up (its first quarter): a phase
that starts more threads or workers shows as a step between phases, a leak as a slope. A
benchmark, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import glob
import os
import threading
import time
from typing import Dict, List, Tuple

import pyarrow.compute as pc
import volley


def _tree(root: int) -> List[int]:
    """``root`` and its (live) descendants."""
    parent: Dict[int, int] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.split("/")[2])] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier]
        tree += frontier
    return tree


def _status(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sample() -> Dict[str, float]:
    pids = _tree(os.getpid())
    shm = 0
    for path in glob.glob("/dev/shm/volley-*"):
        try:
            shm += os.stat(path).st_blocks * 512
        except OSError:
            pass
    return {
        "rss_mib": sum(_status(p, "VmRSS") for p in pids) / 1024,
        "shm_mib": shm / (1 << 20),
        "fds": float(sum(_fds(p) for p in pids)),
        "threads": float(sum(_status(p, "Threads") for p in pids)),
        "processes": float(len(pids)),
    }


def slope(points: List[Tuple[float, float]]) -> float:
    """Least-squares slope of ``(t, v)`` points, per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / var if var else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument(
        "--warmup", type=float, default=0.25, help="share of each phase left out of its slope"
    )
    args = ap.parse_args()

    volley.init(num_cpus=2)
    samples: List[Tuple[str, float, Dict[str, float]]] = []
    phase = ["pipelines"]
    stop = threading.Event()
    start = time.monotonic()

    def sampler() -> None:
        while not stop.is_set():
            samples.append((phase[0], time.monotonic() - start, sample()))
            stop.wait(1.0)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()

    def double(t):
        return t.set_column(0, "id", pc.multiply(t.column("id"), 2))

    @volley.remote
    def square(x):
        return x * x

    expected = 2 * sum(range(10_000))
    for _ in range(args.pipelines):
        ds = volley.data.range(10_000).map_batches(double, batch_format="pyarrow")
        assert ds.sum("id") == expected
    phase[0] = "tasks"
    done = 0
    while done < args.tasks:
        n = min(1000, args.tasks - done)
        assert volley.get([square.remote(i) for i in range(n)])[-1] == (n - 1) ** 2
        done += n
    stop.set()
    thread.join()
    elapsed = time.monotonic() - start
    volley.shutdown()

    print(
        f"soak: {args.pipelines} pipelines and {args.tasks} tasks in {elapsed:.1f} s, "
        f"{len(samples)} samples"
    )
    print(f"{'phase':<10} {'metric':<10} {'first':>9} {'last':>9} {'max':>9} {'slope/min':>10}")
    for name in ("pipelines", "tasks"):
        points = [(t, s) for p, t, s in samples if p == name]
        if not points:
            continue
        t0, t1 = points[0][0], points[-1][0]
        warm = [(t, s) for t, s in points if t >= t0 + args.warmup * (t1 - t0)]
        for key in points[0][1]:
            values = [s[key] for _, s in points]
            print(
                f"{name:<10} {key:<10} {values[0]:>9.1f} {values[-1]:>9.1f} "
                f"{max(values):>9.1f} {slope([(t, s[key]) for t, s in warm]):>10.2f}"
            )


if __name__ == "__main__":
    main()

"""Volley's Python API, core figures (issue 4): each in a fresh process.

    .venv/bin/python benches/python_core.py [--repeat N]

- init -> first task result (the task runs in a worker process the node starts);
- trivial tasks submitted asynchronously, per second (submit N, then get all);
- synchronous actor call round trip;
- pipelined actor calls per second (submit N calls, then get all);
- the memory floor of the process tree (driver + workers, PSS from smaps_rollup) once a
  task and an actor have run and the runtime is idle.

Prints one line per figure: the median of --repeat fresh processes, and all runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import volley as ray
ray.init(num_cpus=2)

@ray.remote
def noop(x=None):
    return x

ray.get(noop.remote())
first = time.perf_counter() - t0

n = 20000
ray.get([noop.remote() for _ in range(200)])
t = time.perf_counter()
ray.get([noop.remote() for _ in range(n)])
tasks_async = n / (time.perf_counter() - t)

@ray.remote
class A:
    def f(self, x=None):
        return x

a = A.remote()
ray.get(a.f.remote())
m = 2000
t = time.perf_counter()
for _ in range(m):
    ray.get(a.f.remote())
sync_rt = (time.perf_counter() - t) / m

k = 20000
t = time.perf_counter()
ray.get([a.f.remote() for _ in range(k)])
pipelined = k / (time.perf_counter() - t)

def pss(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0

def tree(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out

time.sleep(1.0)
procs = tree(os.getpid())
floor_mib = sum(pss(p) for p in procs) / 1024
ray.shutdown()
print(json.dumps({
    "init_to_first_task_s": first,
    "tasks_async_per_s": tasks_async,
    "actor_call_sync_ms": sync_rt * 1000,
    "actor_calls_pipelined_per_s": pipelined,
    "memory_floor_mib": floor_mib,
    "processes": len(procs),
}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run(
            [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=600
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for key in runs[0]:
        vals = [r[key] for r in runs]
        print(
            f"{key:30s} median {statistics.median(vals):12.4f}   runs {[round(v, 4) for v in vals]}"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

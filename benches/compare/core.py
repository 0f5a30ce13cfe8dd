"""Core side by side: ``ray microbenchmark`` and ``volley microbenchmark`` on the metrics
both report, init -> first task result, and the memory floor of an idle local cluster."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import proctree
import report
from pipelines import UNAVAILABLE

HERE = Path(__file__).resolve().parent

#: The compared metrics (Ray's names) and their units. Ray reports no get throughput;
#: Volley's put+get round trip of a 100 MiB Arrow object stands in for it, alone.
METRICS = [
    ("single_client_tasks_sync", "/s"),
    ("single_client_tasks_async", "/s"),
    ("1_1_actor_calls_sync", "/s"),
    ("1_1_actor_calls_async", "/s"),
    ("1_n_actor_calls_async", "/s"),
    ("single_client_put_calls_Plasma_Store", "/s"),
    ("single_client_get_calls_Plasma_Store", "/s"),
    ("single_client_put_gigabytes", "GB/s"),
    ("put_get_100MiB_arrow_in_process", "µs"),
]

#: Ray's metrics among ``METRICS``.
RAY_METRICS = [name for name, _ in METRICS if name != "put_get_100MiB_arrow_in_process"]


class CoreError(Exception):
    """A core benchmark did not produce its figures."""


@dataclass
class Metric:
    mean: float
    stddev: float


@dataclass
class Startup:
    """Init -> first task result and the idle floor, over fresh processes."""

    times_s: list[float] = field(default_factory=list)
    floors_kib: list[int] = field(default_factory=list)
    procs: list[int] = field(default_factory=list)


@dataclass
class CoreResults:
    ray: dict[str, Metric] | str = "not run"
    ray_version: str = "?"
    volley: dict[str, Metric] | str = "not run"
    #: System label -> its figures, or why there are none.
    startup: dict[str, Startup | str] = field(default_factory=dict)
    quick: bool = False
    idle_s: float = 10.0

    @property
    def failed(self) -> list[str]:
        """What failed (not what is unavailable)."""
        failures = [
            f"{who} microbenchmark: {r}"
            for who, r in (("ray", self.ray), ("volley", self.volley))
            if isinstance(r, str) and not r.startswith("not available")
        ]
        failures += [
            f"{who} startup: {r}"
            for who, r in self.startup.items()
            if isinstance(r, str) and not r.startswith("not available")
        ]
        return failures


def ray_microbenchmark(python: str, quick: bool) -> tuple[str, dict[str, Metric]]:
    """Ray's version and figures for ``RAY_METRICS`` (see ``ray_microbenchmark.py``)."""
    cmd = [python, str(HERE / "ray_microbenchmark.py"), ",".join(RAY_METRICS)]
    if quick:
        cmd += ["--pause", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    if out.returncode != 0:
        raise CoreError(f"ray microbenchmark exited with {out.returncode}:\n{out.stderr[-3000:]}")
    lines = [line for line in out.stdout.splitlines() if line.startswith('{"version"')]
    if not lines:
        raise CoreError(f"ray microbenchmark printed no results:\n{out.stdout[-3000:]}")
    printed = json.loads(lines[-1])
    results = {r["name"]: Metric(r["mean"], r["stddev"]) for r in printed["metrics"]}
    if missing := set(RAY_METRICS) - results.keys():
        raise CoreError(f"ray microbenchmark did not report {sorted(missing)}")
    return printed["version"], results


#: ``<name> per second <mean> +- <sd>`` or ``<name> <mean> <unit> +- <sd>``.
_VOLLEY_LINE = re.compile(r"^(\S+) (?:per second ([\d.]+)|([\d.]+) \S+) \+- ([\d.]+)$")


def volley_microbenchmark(volley: Path, quick: bool) -> dict[str, Metric]:
    """Volley's figures for ``METRICS``, one ``volley microbenchmark --filter`` per metric."""
    results = {}
    for name, _ in METRICS:
        cmd = [str(volley), "microbenchmark", "--filter", name]
        if quick:
            cmd += ["--duration", "0.2", "--trials", "1"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise CoreError(f"{' '.join(cmd)} exited with {out.returncode}:\n{out.stderr[-3000:]}")
        for line in out.stdout.splitlines():
            if (m := _VOLLEY_LINE.match(line)) and m[1] == name:
                results[name] = Metric(float(m[2] or m[3]), float(m[4]))
        if name not in results:
            raise CoreError(f"{' '.join(cmd)} did not report {name}:\n{out.stdout[-2000:]}")
    return results


def startup(cmd: list[str], idle_s: float, runs: int) -> Startup:
    """Runs ``cmd`` (which prints ``{"init_to_first_task_s": s}`` and then idles ``idle_s``)
    ``runs`` times; the floor of a run is the median PSS of its process tree over the second
    half of the idle time."""
    figures = Startup()
    for _ in range(runs):
        m = proctree.measure(cmd, cwd=str(HERE))
        if m.returncode == UNAVAILABLE:
            raise CoreError(f"not available ({m.stderr_tail(1)})")
        ready = [(t, json.loads(line)) for t, line in m.stdout if line.startswith("{")]
        if m.returncode != 0 or not ready:
            raise CoreError(f"{' '.join(cmd)} exited with {m.returncode}:\n{m.stderr_tail()}")
        t_ready, figures_line = ready[-1]
        window = [
            s
            for s in m.samples
            if t_ready + idle_s / 2 <= s.t <= min(t_ready + idle_s, m.exited_at)
        ]
        if not window:
            raise CoreError(f"no memory samples while {' '.join(cmd)} was idle")
        figures.times_s.append(figures_line["init_to_first_task_s"])
        figures.floors_kib.append(int(statistics.median(s.pss_kib for s in window)))
        figures.procs.append(max(s.procs for s in window))
    return figures


def run_core(python: str, bin_dir: Path, runs: int, quick: bool, idle_s: float) -> CoreResults:
    """Runs every core benchmark, printing progress; failures are recorded, not raised."""
    results = CoreResults(quick=quick, idle_s=idle_s)
    volley = bin_dir / "volley"

    mode = ", quick" if quick else ""
    print(f"core: ray microbenchmark ({len(RAY_METRICS)} metrics{mode}) ...", flush=True)
    try:
        results.ray_version, results.ray = ray_microbenchmark(python, quick)
    except CoreError as e:
        print(f"core: ray microbenchmark FAILED: {e}", flush=True)
        results.ray = str(e)
    print(f"core: volley microbenchmark ({len(METRICS)} metrics{mode}) ...", flush=True)
    try:
        results.volley = volley_microbenchmark(volley, quick)
    except CoreError as e:
        print(f"core: volley microbenchmark FAILED: {e}", flush=True)
        results.volley = str(e)

    idle = f"{idle_s:g}"
    for label, cmd in [
        ("Ray (Python)", [python, str(HERE / "startup.py"), "ray", idle]),
        ("Volley (Python)", [python, str(HERE / "startup.py"), "volley", idle]),
        ("Volley (Rust, in-process)", [str(bin_dir / "data_bench"), "startup", idle]),
    ]:
        print(f"core: init -> first task, idle floor: {label}, {runs} runs ...", flush=True)
        try:
            s = startup(cmd, idle_s, runs)
            results.startup[label] = s
            print(
                f"core:   {report.seconds(statistics.median(s.times_s))} to first result, "
                f"idle floor {report.memory(int(statistics.median(s.floors_kib)))}",
                flush=True,
            )
        except CoreError as e:
            print(f"core:   {e}", flush=True)
            results.startup[label] = str(e)
    return results


def markdown(results: CoreResults) -> list[str]:
    """The core section of the results file."""
    lines = ["## Core", ""]
    if results.quick:
        lines += ["Quick mode (short trials, no pauses): a smoke test, not figures to quote.", ""]
    lines += [
        f"`ray microbenchmark` (Ray {results.ray_version}, its own method: 4 trials of 2 s "
        "after a pause) against `volley microbenchmark` (Rust API, 3 trials of 1 s), on the "
        "metrics both report. Rates: higher is better.",
        "",
    ]
    rows = []
    for name, unit in METRICS:
        cells = []
        for side in (results.ray, results.volley):
            if isinstance(side, str):
                cells.append("failed" if not side.startswith("not available") else "n/a")
            elif name in side:
                m = side[name]
                cells.append(f"{m.mean:,.{1 if unit == '/s' else 3}f} {unit} ± {m.stddev:,.2g}")
            else:
                cells.append("—")
        ray_m = results.ray.get(name) if isinstance(results.ray, dict) else None
        vol_m = results.volley.get(name) if isinstance(results.volley, dict) else None
        speedup = report.ratio(vol_m.mean, ray_m.mean) if ray_m and vol_m else "—"
        rows.append([f"`{name}`", *cells, speedup])
    lines += report.table(["metric", "Ray", "Volley (Rust)", "Volley ÷ Ray"], rows)
    for who, side in (("Ray", results.ray), ("Volley", results.volley)):
        if isinstance(side, str):
            lines += ["", f"{who} microbenchmark: {side.splitlines()[0]}"]

    lines += [
        "",
        f"Init → first task result (median, min–max over fresh processes) and the memory "
        f"floor of the idle local cluster: PSS of the whole process tree, median over the "
        f"second half of {results.idle_s:g} s idle after the first result.",
        "",
    ]
    rows = []
    for label, s in results.startup.items():
        if isinstance(s, str):
            rows.append([label, s.splitlines()[0], "", ""])
        else:
            rows.append(
                [
                    label,
                    f"{report.seconds(statistics.median(s.times_s))} "
                    f"({report.seconds(min(s.times_s))}–{report.seconds(max(s.times_s))})",
                    report.memory(int(statistics.median(s.floors_kib))),
                    str(max(s.procs)),
                ]
            )
    lines += report.table(["system", "init → first task", "idle floor (PSS)", "processes"], rows)
    return lines

"""Core side by side: ``ray microbenchmark``, ``volley microbenchmark`` (Volley's Python
API, the same workloads) and ``volley microbenchmark --rust`` (the Rust core alone) on the
metrics they report, init -> first task result, and the memory floor of an idle local
cluster."""

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

#: The compared metrics (Ray's names) and their units. The last one is the Rust core's
#: alone (a put+get round trip of a 100 MiB Arrow object).
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
    #: ``volley microbenchmark`` (Python API).
    volley_py: dict[str, Metric] | str = "not run"
    #: ``volley microbenchmark --rust``.
    volley_rust: dict[str, Metric] | str = "not run"
    #: System label -> its figures, or why there are none.
    startup: dict[str, Startup | str] = field(default_factory=dict)
    #: System label -> µs per ``map_batches`` UDF call on 1-row batches, or why there is none.
    udf_call_us: dict[str, float | str] = field(default_factory=dict)
    quick: bool = False
    idle_s: float = 10.0

    def sides(self) -> list[tuple[str, dict[str, Metric] | str]]:
        return [
            ("Ray", self.ray),
            ("Volley (Python)", self.volley_py),
            ("Volley (Rust core)", self.volley_rust),
        ]

    @property
    def failed(self) -> list[str]:
        """What failed (not what is unavailable)."""
        failures = [
            f"{who} microbenchmark: {r}"
            for who, r in self.sides()
            if isinstance(r, str) and not r.startswith("not available")
        ]
        failures += [
            f"{who} {what}: {r}"
            for what, figures in (("startup", self.startup), ("UDF call", self.udf_call_us))
            for who, r in figures.items()
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


def volley_microbenchmark(cmd: list[str], metrics: list[str], quick: bool) -> dict[str, Metric]:
    """Volley's figures for ``metrics``: ``cmd`` (a ``volley microbenchmark`` command line)
    once per metric, with ``--filter``."""
    results = {}
    for name in metrics:
        run = [*cmd, "--filter", name]
        if quick:
            run += ["--duration", "0.2", "--trials", "1"]
        out = subprocess.run(run, capture_output=True, text=True, cwd=HERE)
        if out.returncode != 0:
            raise CoreError(f"{' '.join(run)} exited with {out.returncode}:\n{out.stderr[-3000:]}")
        for line in out.stdout.splitlines():
            if (m := _VOLLEY_LINE.match(line)) and m[1] == name:
                results[name] = Metric(float(m[2] or m[3]), float(m[4]))
        if name not in results:
            raise CoreError(f"{' '.join(run)} did not report {name}:\n{out.stdout[-2000:]}")
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
    for attr, label, cmd, metrics in [
        (
            "volley_py",
            "volley microbenchmark (Python API)",
            [python, "-m", "volley._microbenchmark"],
            RAY_METRICS,
        ),
        (
            "volley_rust",
            "volley microbenchmark --rust",
            [str(volley), "microbenchmark"],
            [name for name, _ in METRICS],
        ),
    ]:
        print(f"core: {label} ({len(metrics)} metrics{mode}) ...", flush=True)
        try:
            setattr(results, attr, volley_microbenchmark(cmd, metrics, quick))
        except CoreError as e:
            print(f"core: {label} FAILED: {e}", flush=True)
            setattr(results, attr, str(e))

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

    rows = "2000" if quick else "20000"
    for label, system in [("Ray (Python)", "ray"), ("Volley (Python)", "volley")]:
        print(f"core: map_batches UDF call overhead: {label} ...", flush=True)
        out = subprocess.run(
            [python, str(HERE.parent / "udf_overhead.py"), system, "--rows", rows],
            capture_output=True,
            text=True,
        )
        lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode != 0 or not lines:
            tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
            results.udf_call_us[label] = f"failed (status {out.returncode}): {tail}"
        else:
            results.udf_call_us[label] = json.loads(lines[-1])["per_call_us"]
        print(f"core:   {results.udf_call_us[label]} µs per call", flush=True)
    return results


def markdown(results: CoreResults) -> list[str]:
    """The core section of the results file."""
    lines = ["## Core", ""]
    if results.quick:
        lines += ["Quick mode (short trials, no pauses): a smoke test, not figures to quote.", ""]
    lines += [
        f"`ray microbenchmark` (Ray {results.ray_version}, its own method: 4 trials of 2 s "
        "after a pause) against `volley microbenchmark` (the same workloads through Volley's "
        "Python API, Ray's method without the pause; its 1:n metric submits from the driver, "
        "Ray's from an actor) and `volley microbenchmark --rust` (the Rust core alone, 3 trials "
        "of 1 s), on the metrics they report. Rates: higher is better.",
        "",
    ]
    rows = []
    ray = results.ray if isinstance(results.ray, dict) else {}
    py = results.volley_py if isinstance(results.volley_py, dict) else {}
    for name, unit in METRICS:
        cells = []
        for _, side in results.sides():
            if isinstance(side, str):
                cells.append("failed" if not side.startswith("not available") else "n/a")
            elif name in side:
                m = side[name]
                cells.append(f"{m.mean:,.{1 if unit == '/s' else 3}f} {unit} ± {m.stddev:,.2g}")
            else:
                cells.append("—")
        speedup = report.ratio(py[name].mean, ray[name].mean) if name in ray and name in py else "—"
        rows.append([f"`{name}`", *cells, speedup])
    lines += report.table(
        ["metric", "Ray", "Volley (Python)", "Volley (Rust core)", "Volley (Python) ÷ Ray"], rows
    )
    for who, side in results.sides():
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
    lines += [
        "",
        "Overhead of one `map_batches` Python UDF call (`benches/udf_overhead.py`): an "
        "identity pyarrow UDF over `range(N)` in 2 blocks on 2 CPUs with `batch_size=1` "
        "(N calls) against whole blocks (2 calls); the difference over N.",
        "",
    ]
    lines += report.table(
        ["system", "µs per call"],
        [[k, f"{v:.3g} µs" if isinstance(v, float) else v] for k, v in results.udf_call_us.items()],
    )
    return lines


def summary_markdown(results: CoreResults) -> list[str]:
    """The README's core summary: a few metrics and the startup figures, Ray against
    Volley's Python API."""
    lines = ["Core, Python API (Ray's microbenchmark workloads; init and idle floor):", ""]
    rows = []
    sides = [results.ray, results.volley_py]
    for name, unit in METRICS:
        if not all(isinstance(s, dict) and name in s for s in sides):
            continue
        ray, volley = (s[name].mean for s in sides)
        fmt = "{:,.0f} {}" if unit == "/s" else "{:.3g} {}"
        rows.append(
            [
                f"`{name}`",
                fmt.format(ray, unit),
                fmt.format(volley, unit),
                report.ratio(volley, ray),
            ]
        )
    starts = [results.startup.get(k) for k in ("Ray (Python)", "Volley (Python)")]
    if all(isinstance(s, Startup) for s in starts):
        t = [statistics.median(s.times_s) for s in starts]
        m = [int(statistics.median(s.floors_kib)) for s in starts]
        rows.append(
            [
                "init → first task",
                report.seconds(t[0]),
                report.seconds(t[1]),
                report.ratio(t[0], t[1]),
            ]
        )
        rows.append(
            ["idle floor (PSS)", report.memory(m[0]), report.memory(m[1]), report.ratio(m[0], m[1])]
        )
    calls = [results.udf_call_us.get(k) for k in ("Ray (Python)", "Volley (Python)")]
    if all(isinstance(c, float) for c in calls):
        rows.append(
            [
                "`map_batches` UDF call (1-row batches)",
                f"{calls[0]:.3g} µs",
                f"{calls[1]:.3g} µs",
                report.ratio(calls[0], calls[1]),
            ]
        )
    lines += report.table(["figure", "Ray", "Volley", "Volley's advantage"], rows)
    return [*lines, ""]

"""Volley against Ray Data, Daft and pyarrow on the same machine, side by side.

    .venv-bench/bin/python benches/compare/run.py [--systems ...] [--pipelines ...]
        [--runs N] [--data DIR] [--out FILE] [--parts data,core] [--quick]

(``make bench-compare`` creates ``.venv-bench``, builds the binaries, generates the data and
runs this.) For every pipeline, for every system in turn, a fresh process starts the
system, runs the pipeline once as a warm-up and then ``--runs`` times; it reports the wall
time of each run, while this process samples the peak memory of the whole process tree
(``proctree.py``); then a second fresh process runs it once cold, timed from its start
(interpreter, imports and init included) to its result. Every system's result is checked
against the reference (pyarrow, else the first system that ran): the row count and the sum,
minimum and maximum of every column (total UTF-8 length for strings), read back from the
parquet files for the write pipelines (and checked sorted for ``sort_write``). Any mismatch
or failure is printed, marked in the results file, and makes the exit status 1.

The core part runs ``ray microbenchmark`` and ``volley microbenchmark`` on the metrics both
report, and init -> first task result with the idle memory floor (``core.py``).

The results go to ``benches/results/<YYYY-MM-DD>.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import core
import proctree
import report
from pipelines import PIPELINES, UNAVAILABLE, Stats, agree, combine_stats, table_stats

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: Float sums of different systems may differ in their last bits (summation order).
REL_TOL = 1e-9

#: Environment of the measured processes: no telemetry, no progress bars, unbuffered output.
CHILD_ENV = {
    "PYTHONUNBUFFERED": "1",
    "DO_NOT_TRACK": "1",
    "DAFT_ANALYTICS_ENABLED": "0",
    "DAFT_PROGRESS_BAR": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@dataclass(frozen=True)
class SystemSpec:
    """A compared system."""

    name: str
    #: Its name in the results file.
    label: str
    #: ``pipelines_<x>.py`` for Python systems; ``None`` for the Rust binary ``data_bench``.
    script: str | None


SYSTEMS = {
    s.name: s
    for s in [
        SystemSpec("volley-rust", "Volley (Rust API)", None),
        SystemSpec("volley-py", "Volley (Python API)", "pipelines_volley.py"),
        SystemSpec("ray", "Ray Data", "pipelines_ray.py"),
        SystemSpec("daft", "Daft", "pipelines_daft.py"),
        SystemSpec("pyarrow", "pyarrow", "pipelines_pyarrow.py"),
    ]
}

#: Pipelines ``data_bench`` does not have: a pandas UDF needs Python.
RUST_LACKS = {"map_pandas_write"}


class BenchError(Exception):
    """A measurement that produced no usable result."""


@dataclass
class Result:
    """One (system, pipeline) measurement."""

    system: str
    pipeline: str
    #: ``ok``, ``failed``, ``mismatch``, ``not available`` or ``n/a``.
    status: str
    note: str = ""
    times_s: list[float] = field(default_factory=list)
    #: Process start to result of the cold run.
    cold_s: float | None = None
    stats: Stats | None = None
    peak_pss_kib: int = 0
    peak_procs: int = 0


@dataclass
class Setup:
    """What every measurement needs."""

    python: str
    bin_dir: Path
    data: Path
    scratch: Path
    runs: int
    timeout: float
    #: System name -> its version, for the available systems.
    versions: dict[str, str]
    #: System name -> why it is not available.
    unavailable: dict[str, str]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Volley against Ray Data, Daft and pyarrow, side by side.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated: %(default)s")
    parser.add_argument(
        "--pipelines", default=",".join(PIPELINES), help="comma-separated: %(default)s"
    )
    parser.add_argument("--runs", type=int, default=3, help="measured runs after the warm-up")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("VOLLEY_BENCH_DIR", "/tmp/volley-bench-data")),
        help="dataset directory with big/ and small/ (data_bench generate DIR)",
    )
    parser.add_argument("--out", type=Path, help="results file (benches/results/<date>.md)")
    parser.add_argument("--parts", default="data,core", help="data, core or both")
    parser.add_argument(
        "--quick", action="store_true", help="core part in short trials (smoke test)"
    )
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds for the floor")
    parser.add_argument("--bin-dir", type=Path, default=target / "release")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per process")
    parser.add_argument(
        "--readme",
        type=Path,
        help="also replace the summary between the bench-compare markers in this file",
    )
    args = parser.parse_args()
    for option, known in (
        ("systems", SYSTEMS),
        ("pipelines", PIPELINES),
        ("parts", ("data", "core")),
    ):
        chosen = [x for x in getattr(args, option).split(",") if x]
        if unknown := [x for x in chosen if x not in known]:
            parser.error(f"--{option}: unknown {unknown}; known: {', '.join(known)}")
        setattr(args, option, chosen)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def check_systems(systems: list[str], python: str, bin_dir: Path) -> tuple[dict, dict]:
    """Versions of the available systems, and why the others are not available."""
    versions, unavailable = {}, {}
    for name in systems:
        spec = SYSTEMS[name]
        if spec.script is None:
            binary = bin_dir / "data_bench"
            if not binary.exists():
                sys.exit(
                    f"run.py: {binary} is missing; build it with\n"
                    "  cargo build --profile bench -p volley-benches --bin data_bench"
                )
            versions[name] = report.git_version(REPO)
            continue
        out = subprocess.run(
            [python, str(HERE / spec.script), "--check"], capture_output=True, text=True, cwd=HERE
        )
        if out.returncode == UNAVAILABLE and name.startswith("volley"):
            sys.exit(f"run.py: Volley's package is not importable here:\n{out.stderr}")
        if out.returncode == UNAVAILABLE:
            unavailable[name] = out.stderr.strip().splitlines()[-1]
        elif out.returncode != 0:
            sys.exit(f"run.py: {spec.script} --check failed:\n{out.stderr}")
        else:
            versions[name] = json.loads(out.stdout.splitlines()[-1])["version"]
    return versions, unavailable


def command(spec: SystemSpec, pipeline: str, setup: Setup, out: Path, cold: bool) -> list[str]:
    """The child process of one measurement: warm (a warm-up and ``setup.runs`` runs) or
    cold (one run, reported as soon as its result is in)."""
    if spec.script is None:
        runs = ["1", "--cold"] if cold else [str(setup.runs)]
        return [
            str(setup.bin_dir / "data_bench"),
            "run",
            pipeline,
            str(setup.data),
            *runs,
            "--json",
            "--out",
            str(out),
        ]
    return [
        setup.python,
        str(HERE / spec.script),
        pipeline,
        str(setup.data),
        str(out),
        "cold" if cold else str(setup.runs),
    ]


def read_back(out: Path, check_sorted: bool) -> Stats:
    """The statistics of every column of the parquet files under ``out``; with
    ``check_sorted``, also checks that each file is sorted by ``value`` and that the files'
    ranges do not overlap."""
    import numpy as np
    import pyarrow.parquet as pq

    files = sorted(out.rglob("*.parquet"))
    if not files:
        raise BenchError(f"no parquet files written under {out}")
    stats, ranges = [], []
    for f in files:
        table = pq.read_table(f)
        stats.append(table_stats([table]))
        if check_sorted and table.num_rows:
            v = table.column("value").to_numpy()
            if (np.diff(v) < 0).any():
                raise BenchError(f"{f.name} is not sorted by value")
            ranges.append((v[0], v[-1], f.name))
    ranges.sort()
    for (_, high, a), (low, _, b) in zip(ranges, ranges[1:], strict=False):
        if high > low:
            raise BenchError(f"{a} and {b} overlap: the output is not sorted by value")
    return combine_stats(stats)


def written_rows(out: Path) -> int:
    """Rows of the parquet files under ``out`` (from their footers)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in out.rglob("*.parquet"))


def child_report(m: proctree.Measured) -> tuple[float, dict]:
    """The second the child printed its report, and the report."""
    reports = [(t, json.loads(line)) for t, line in m.stdout if line.startswith('{"')]
    if m.returncode != 0 or not reports or "times_s" not in reports[-1][1]:
        raise BenchError(f"exited with status {m.returncode}:\n{m.stderr_tail()}")
    return reports[-1]


def measure(spec: SystemSpec, pipeline: str, setup: Setup) -> Result:
    """Runs one (system, pipeline) measurement: a warm process, then a cold one."""
    out = setup.scratch / f"{spec.name}-{pipeline}"
    result = Result(spec.name, pipeline, "ok")
    writes = PIPELINES[pipeline].writes
    try:
        for cold in (False, True):
            shutil.rmtree(out, ignore_errors=True)
            m = proctree.measure(
                command(spec, pipeline, setup, out, cold),
                env=CHILD_ENV,
                cwd=str(HERE),
                timeout=setup.timeout,
            )
            if m.timed_out:
                raise BenchError(f"timed out after {setup.timeout:g} s")
            if m.returncode == UNAVAILABLE:
                result.status, result.note = "not available", m.stderr_tail(1)
                return result
            at, child = child_report(m)
            if m.killed:
                result.note = f"killed {len(m.killed)} processes left running: {m.killed[:3]}"
            if not cold:
                result.times_s = child["times_s"]
                result.peak_pss_kib, result.peak_procs = m.peak_pss_kib, m.peak_procs
                result.stats = (
                    read_back(out, check_sorted=pipeline == "sort_write")
                    if writes
                    else child["stats"]
                )
                continue
            result.cold_s = at
            cold_rows = written_rows(out) if writes else child["stats"]["rows"]
            if cold_rows != result.stats["rows"]:
                raise BenchError(
                    f"the cold run gave {cold_rows} rows, the warm one {result.stats['rows']}"
                )
    except BenchError as e:
        result.status, result.note = "failed", str(e)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return result


def verify(results: list[Result]) -> Result | None:
    """Marks results that disagree with the reference (pyarrow, else the first that ran) as
    ``mismatch``; returns the reference."""
    ran = [r for r in results if r.status == "ok"]
    reference = next((r for r in ran if r.system == "pyarrow"), ran[0] if ran else None)
    for r in ran:
        if diffs := agree(r.stats, reference.stats, REL_TOL):
            r.status = "mismatch"
            r.note = f"differs from {reference.system}'s: {'; '.join(diffs)}"
    return reference


def progress_line(r: Result) -> str:
    if r.status != "ok":
        return f"{r.status.upper()}: {r.note}"
    t = r.times_s
    return (
        f"median {report.seconds(statistics.median(t))} "
        f"({report.seconds(min(t))}–{report.seconds(max(t))}), "
        f"cold {report.seconds(r.cold_s)}, "
        f"peak {report.memory(r.peak_pss_kib)} in {r.peak_procs} processes, "
        f"{r.stats['rows']:,} rows"
    )


def run_data(systems: list[str], pipelines: list[str], setup: Setup) -> dict[str, list[Result]]:
    """Every (pipeline, system) measurement, systems interleaved within each pipeline."""
    todo = [(p, s) for p in pipelines for s in systems]
    results: dict[str, list[Result]] = {p: [] for p in pipelines}
    for i, (pipeline, system) in enumerate(todo, 1):
        prefix = f"[{i:>2}/{len(todo)}] {system:<11} {pipeline:<17}"
        if system in setup.unavailable:
            r = Result(system, pipeline, "not available", setup.unavailable[system])
        elif system == "volley-rust" and pipeline in RUST_LACKS:
            r = Result(system, pipeline, "n/a", "no pandas in the Rust API")
        else:
            print(f"{prefix} running ...", flush=True)
            r = measure(SYSTEMS[system], pipeline, setup)
        print(f"{prefix} {progress_line(r)}", flush=True)
        results[pipeline].append(r)
    for pipeline, rs in results.items():
        reference = verify(rs)
        for r in rs:
            if r.status == "mismatch":
                print(f"CHECK FAILED: {pipeline}: {r.system}: {r.note}", flush=True)
        if reference and all(r.status != "mismatch" for r in rs):
            print(f"check ok: {pipeline}: {len([r for r in rs if r.status == 'ok'])} systems agree")
    return results


def input_rows(data: Path) -> dict[str, tuple[int, int]]:
    """Files and rows of ``big`` and ``small`` (from the parquet footers)."""
    import pyarrow.dataset as ds

    sizes = {}
    for part in ("big", "small"):
        d = ds.dataset(data / part, format="parquet")
        sizes[part] = (len(d.files), d.count_rows())
    return sizes


def data_markdown(results: dict[str, list[Result]], setup: Setup, sizes: dict) -> list[str]:
    """The data-pipeline section of the results file."""
    lines = [
        "## Data pipelines",
        "",
        f"Each system runs each pipeline in a fresh process: start, one warm-up, then "
        f"{setup.runs} timed runs (wall time of the pipeline alone: the median is the warm "
        "figure). Cold: a second fresh process runs the pipeline once, timed from the "
        "process's start to the result (interpreter, imports, init included), as a fresh "
        "notebook kernel or a batch job sees it. Peak PSS (of the warm process) is sampled every "
        "50 ms (less often when a sample is slow: the sampler takes at most a tenth of a core) "
        "over the whole process tree, helpers included (Ray's GCS, raylet, dashboard, "
        "workers). Ratios are the peer's figure over Volley's: above 1, Volley is faster or "
        "smaller. Rows/s counts input rows.",
    ]
    for pipeline, rs in results.items():
        p = PIPELINES[pipeline]
        files, rows = sizes[p.input]
        ok = [r for r in rs if r.status == "ok"]
        volley = next((r for r in ok if r.system == "volley-py"), None) or next(
            (r for r in ok if r.system == "volley-rust"), None
        )
        header = ["system", "median", "min–max", "cold", "rows/s", "peak PSS", "processes"]
        if volley:
            header += [
                f"time ÷ {volley.system}",
                f"cold ÷ {volley.system}",
                f"memory ÷ {volley.system}",
            ]
        table = []
        for r in rs:
            label = f"{SYSTEMS[r.system].label} {setup.versions.get(r.system, '')}".strip()
            if r.status != "ok":
                note = r.note.splitlines()[0] if r.note else ""
                table.append([label, f"{r.status}: {note}"] + [""] * (len(header) - 2))
                continue
            median = statistics.median(r.times_s)
            row = [
                label,
                report.seconds(median),
                f"{report.seconds(min(r.times_s))}–{report.seconds(max(r.times_s))}",
                report.seconds(r.cold_s),
                report.rate(rows / median),
                report.memory(r.peak_pss_kib),
                str(r.peak_procs),
            ]
            if volley:
                row += [
                    report.ratio(median, statistics.median(volley.times_s)),
                    report.ratio(r.cold_s, volley.cold_s),
                    report.ratio(r.peak_pss_kib, volley.peak_pss_kib),
                ]
            table.append(row)
        lines += [
            "",
            f"### `{pipeline}`: {p.title}",
            "",
            f"Input: {p.input}, {files:,} files, {rows:,} rows.",
            "",
        ]
        lines += report.table(header, table)
        if ok:
            shown = ", ".join(
                f"{k} {v:.12g}" if isinstance(v, float) else f"{k} {v!r}"
                for k, v in ok[0].stats.items()
                if not isinstance(v, str) or len(v) <= 24
            )
            agreeing = [r.system for r in ok if r.status == "ok"]
            lines += ["", f"Checked: {shown}; agree: {', '.join(agreeing)}."]
    return lines


#: The README's summary lies between these lines.
README_BEGIN = "<!-- bench-compare:begin (written by benches/compare/run.py --readme) -->"
README_END = "<!-- bench-compare:end -->"


def summary_markdown(results: dict[str, list[Result]], systems: list[str]) -> list[str]:
    """One table over every pipeline: each system's warm median, cold run and peak PSS, and
    the best peer's times over Volley's (Python API where it ran, else Rust); then one line
    per pipeline saying what it does."""
    header = [
        "pipeline",
        *(SYSTEMS[s].label for s in systems),
        "best peer ÷ Volley (warm)",
        "(cold)",
    ]
    rows = []
    for pipeline, rs in results.items():
        by = {r.system: r for r in rs}
        cells = []
        for s in systems:
            r = by.get(s)
            if r is None or r.status in ("n/a", "not available"):
                cells.append("—")
            elif r.status != "ok":
                cells.append(r.status)
            else:
                cells.append(
                    f"{report.seconds(statistics.median(r.times_s))}, "
                    f"cold {report.seconds(r.cold_s)}, {report.memory(r.peak_pss_kib)}"
                )
        ok = {r.system: r for r in rs if r.status == "ok"}
        volley = ok.get("volley-py", ok.get("volley-rust"))
        peers = [r for s, r in ok.items() if not s.startswith("volley")]
        ratios = ["—", "—"]
        if volley and peers:
            warm = min(statistics.median(r.times_s) for r in peers)
            ratios = [
                report.ratio(warm, statistics.median(volley.times_s)),
                report.ratio(min(r.cold_s for r in peers), volley.cold_s),
            ]
        rows.append([f"`{pipeline}`", *cells, *ratios])
    return [
        "Data pipelines: warm median wall time, the cold run (process start to result: "
        "imports and init included), peak PSS of the process tree. Above 1× in the last "
        "columns, Volley is faster than every peer. Every system runs on 2 CPUs, and every "
        "output is checked equal across systems (rows; sum, min and max of every column).",
        "",
        *report.table(header, rows),
        "",
        *(f"- `{name}`: {PIPELINES[name].title}." for name in results),
        "",
    ]


def update_readme(readme: Path, results_file: str, lines: list[str]) -> None:
    """Replaces the text between the markers (which must be there) with ``lines``."""
    text = readme.read_text()
    try:
        head, rest = text.split(README_BEGIN, 1)
        _, tail = rest.split(README_END, 1)
    except ValueError:
        sys.exit(f"run.py: {readme} has no {README_BEGIN!r} ... {README_END!r} section")
    body = [
        README_BEGIN,
        "",
        f"From [{results_file}]({results_file}) (all figures, the machine, the command).",
        "",
        *lines,
        README_END,
    ]
    readme.write_text(head + "\n".join(body) + tail)


def main() -> None:
    args = parse_args()
    try:
        import pyarrow  # noqa: F401  (the read-back checks need it)
    except ImportError:
        sys.exit("run.py: pyarrow is missing; run with .venv-bench/bin/python (make bench-compare)")

    started = datetime.datetime.now()
    out = args.out or REPO / "benches" / "results" / f"{started:%Y-%m-%d}.md"
    python = sys.executable
    systems = args.systems if "data" in args.parts else []
    versions, unavailable = check_systems(systems, python, args.bin_dir)
    for name, reason in unavailable.items():
        print(f"{name}: not available ({reason})", flush=True)

    doc = [
        f"# Volley against Ray Data, Daft and pyarrow — {started:%Y-%m-%d}",
        "",
        f"- Machine: {report.machine()}",
        f"- Python {sys.version.split()[0]}; "
        + ", ".join(f"{SYSTEMS[n].label} {v}" for n, v in versions.items()),
        f"- Command: `{shlex.join([Path(python).name, *sys.argv])}`",
    ]
    failures = []
    readme_lines: list[str] = []
    if "data" in args.parts:
        for d in ("big", "small"):
            if not (args.data / d).is_dir():
                sys.exit(
                    f"run.py: {args.data / d} is missing; generate the data with\n"
                    f"  {args.bin_dir / 'data_bench'} generate {args.data}"
                )
        sizes = input_rows(args.data)
        setup = Setup(
            python=python,
            bin_dir=args.bin_dir,
            data=args.data,
            scratch=args.data / "compare-out",
            runs=args.runs,
            timeout=args.timeout,
            versions=versions,
            unavailable=unavailable,
        )
        results = run_data(systems, args.pipelines, setup)
        shutil.rmtree(setup.scratch, ignore_errors=True)
        doc += [
            f"- Data: `{args.data}`: big {sizes['big'][0]:,} files, {sizes['big'][1]:,} rows; "
            f"small {sizes['small'][0]:,} files, {sizes['small'][1]:,} rows",
            "",
        ]
        doc += data_markdown(results, setup, sizes)
        readme_lines += summary_markdown(results, systems)
        failures += [
            f"{r.system} {r.pipeline}: {r.status}: {r.note.splitlines()[0] if r.note else ''}"
            for rs in results.values()
            for r in rs
            if r.status in ("failed", "mismatch")
        ]
    if "core" in args.parts:
        core_results = core.run_core(python, args.bin_dir, args.runs, args.quick, args.idle)
        doc += ["", *core.markdown(core_results)]
        readme_lines += core.summary_markdown(core_results)
        failures += core_results.failed

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(doc) + "\n")
    print(f"wrote {out}")
    if args.readme:
        try:
            shown = str(out.resolve().relative_to(args.readme.resolve().parent))
        except ValueError:
            shown = str(out)
        update_readme(args.readme, shown, readme_lines)
        print(f"updated the summary in {args.readme}")
    if failures:
        print("\nFAILED:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

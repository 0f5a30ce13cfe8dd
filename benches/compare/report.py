"""Formatting of the results file: the machine it ran on and figures in readable units."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def machine() -> str:
    """One line: CPU model, cores, memory, kernel."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        total_kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return (
        f"{model}, {os.cpu_count()} cores, {total_kib / 2**20:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}"
    )


def git_version(repo: Path) -> str:
    """The checkout's commit (``-dirty`` with local changes)."""
    out = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else "unknown commit"


def seconds(s: float) -> str:
    return f"{s:.3g} s" if s >= 0.001 else f"{s * 1e6:.3g} µs"


def memory(kib: int) -> str:
    mib = kib / 1024
    return f"{mib:.0f} MiB" if mib < 1024 else f"{mib / 1024:.2f} GiB"


def rate(per_second: float, unit: str = "rows/s") -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            return f"{per_second / scale:.3g} {prefix} {unit}"
    return f"{per_second:.3g} {unit}"


def ratio(x: float, reference: float) -> str:
    return f"{x / reference:.2f}×" if reference > 0 else "—"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]

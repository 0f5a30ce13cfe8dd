"""Peak memory of a measured command's whole process tree, sampled from ``/proc``.

A process belongs to a measurement when it descends from the measured command (following
the parent links in ``/proc/<pid>/stat``) or carries the measurement's tag in its
environment (``VOLLEY_BENCH_TAG``, set for the command and inherited by everything it
starts), and stays a member once seen. The tag and the memory of members catch helpers that
detach or are re-parented to init when their parent ends — Ray's GCS, raylet, dashboard and
workers; the parent links catch those that rewrite their environment with their process
title (``ray::IDLE``) — so an engine with helper processes never looks smaller than it is.
Memory is the proportional set size (``Pss`` of ``/proc/<pid>/smaps_rollup``) summed over the
members: shared pages (an object store in shared memory, libraries) count once in
total, split among the processes that map them.

Processes of the measurement still alive when the command exits are sampled until they end
(a daemon shutting down still holds its memory), for up to ``grace`` seconds, then killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

#: Environment variable carrying a measurement's tag.
TAG_VAR = "VOLLEY_BENCH_TAG"


def _stat(pid: int) -> tuple[int, int] | None:
    """Parent pid and start time (clock ticks since boot) of ``pid``; ``None`` once gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = text[text.rindex(b")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def _pss_kib(pid: int) -> int:
    """Proportional set size of ``pid`` in KiB (0 once gone or for a zombie)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


class ProcessTree:
    """The processes of one measurement: descendants of ``root`` and tagged processes."""

    def __init__(self, root: int, tag: str) -> None:
        self.root = root
        self._needle = f"{TAG_VAR}={tag}".encode()
        # (pid, start time) -> whether its environment carries the tag; read once per process.
        self._tagged: dict[tuple[int, int], bool] = {}
        # (pid, start time) of every process found to be a member so far.
        self._known: set[tuple[int, int]] = set()

    def _has_tag(self, pid: int, start: int) -> bool:
        key = (pid, start)
        if key not in self._tagged:
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read()
                self._tagged[key] = self._needle in env.split(b"\0")
            except OSError:
                self._tagged[key] = False
        return self._tagged[key]

    def members(self) -> list[int]:
        """The pids that belong to the measurement now."""
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and (s := _stat(int(name))) is not None:
                stats[int(name)] = s
        children = defaultdict(list)
        for pid, (ppid, _) in stats.items():
            children[ppid].append(pid)
        roots = [
            pid
            for pid, (_, start) in stats.items()
            if pid == self.root or (pid, start) in self._known or self._has_tag(pid, start)
        ]
        found: set[int] = set()
        while roots:
            pid = roots.pop()
            if pid not in found:
                found.add(pid)
                roots.extend(children[pid])
        self._known.update((pid, stats[pid][1]) for pid in found)
        return sorted(found)


@dataclass
class Sample:
    """The process tree at one instant."""

    #: Seconds since the command started.
    t: float
    pss_kib: int
    procs: int


@dataclass
class Measured:
    """A finished command with its memory samples."""

    returncode: int
    #: Lines the command printed on stdout, with the second (since start) each arrived.
    stdout: list[tuple[float, str]]
    stderr: str
    samples: list[Sample]
    #: Seconds from start to the command's exit.
    exited_at: float
    timed_out: bool
    #: Command lines of processes of the measurement killed because they outlived it.
    killed: list[str] = field(default_factory=list)

    @property
    def peak_pss_kib(self) -> int:
        return max((s.pss_kib for s in self.samples), default=0)

    @property
    def peak_procs(self) -> int:
        return max((s.procs for s in self.samples), default=0)

    def stderr_tail(self, lines: int = 25) -> str:
        return "\n".join(self.stderr.rstrip().splitlines()[-lines:])


def measure(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    interval: float = 0.05,
    timeout: float | None = None,
    grace: float = 15.0,
) -> Measured:
    """Runs ``cmd`` to completion, sampling its process tree every ``interval`` seconds (or
    less often where a sample is slow: see below)."""
    tag = uuid.uuid4().hex
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), TAG_VAR: tag},
        cwd=cwd,
    )
    stdout: list[tuple[float, str]] = []
    stderr: list[str] = []

    def read_stdout() -> None:
        for line in proc.stdout:
            stdout.append((time.monotonic() - start, line.rstrip("\n")))

    readers = [
        threading.Thread(target=read_stdout, daemon=True),
        threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True),
    ]
    for r in readers:
        r.start()

    tree = ProcessTree(proc.pid, tag)
    samples: list[Sample] = []

    def sample() -> list[int]:
        pids = tree.members()
        samples.append(Sample(time.monotonic() - start, sum(map(_pss_kib, pids)), len(pids)))
        return pids

    timed_out = False
    while proc.poll() is None:
        tick = time.monotonic()
        pids = sample()
        if timeout is not None and tick - start > timeout:
            timed_out = True
            _kill(pids)
            proc.wait()
            break
        # A sample costs CPU the measured system could use (more, the more processes it
        # has): the pause after each is at least 9 times its cost, so the sampler takes at
        # most a tenth of one core.
        cost = time.monotonic() - tick
        time.sleep(max(interval - cost, 9 * cost))
    exited_at = time.monotonic() - start

    # Helpers that outlive the command still count until they exit; then they are killed.
    killed = []
    while pids := [p for p in sample() if p != proc.pid]:
        if time.monotonic() - start - exited_at > grace:
            killed = [_cmdline(p) for p in pids]
            _kill(pids)
            break
        time.sleep(interval)

    for r in readers:
        r.join(timeout=5)
    return Measured(
        returncode=proc.returncode,
        stdout=stdout,
        stderr="".join(stderr),
        samples=samples,
        exited_at=exited_at,
        timed_out=timed_out,
        killed=killed,
    )


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

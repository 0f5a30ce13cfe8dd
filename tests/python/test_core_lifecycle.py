"""Lifecycle: shutdown and a killed driver leave no processes and no segments behind.
(Its own module: it starts and stops runtimes itself.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

from conftest import children, shm_segments, wait_until


def test_shutdown_and_a_killed_driver_leave_nothing_behind(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys, time
        import volley
        volley.init(num_cpus=2)

        @volley.remote
        def pid():
            return os.getpid()

        pids = volley.get([pid.remote() for _ in range(4)])
        big = volley.put(bytes(1 << 20) * 4)
        @volley.remote
        def size(b):
            return len(b)
        assert volley.get(size.remote(big)) == 4 << 20
        print(" ".join(map(str, sorted(set(pids)))), flush=True)
        if sys.argv[1] == "kill":
            time.sleep(60)
        volley.shutdown()
        """
    )
    path = tmp_path / "driver.py"
    path.write_text(script)
    before = shm_segments()
    for mode in ("shutdown", "kill"):
        p = subprocess.Popen([sys.executable, str(path), mode], stdout=subprocess.PIPE, text=True)
        pids = [int(x) for x in p.stdout.readline().split()]
        assert pids, "the driver ran its tasks"
        if mode == "kill":
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        # The workers notice their node is gone and exit.
        assert wait_until(
            lambda pids=pids: not any(os.path.exists(f"/proc/{q}") for q in pids), 20
        ), mode
        if mode == "shutdown":
            assert shm_segments() - before == set()
    # A killed driver cannot unlink its segments; the next init sweeps them.
    import volley

    volley.init(num_cpus=1)
    volley.shutdown()
    assert shm_segments() - before == set(), "segments of the killed driver were not swept"
    assert children(os.getpid()) == []


def test_volley_microbenchmark_reports_rays_metric_names():
    # The console script: `volley microbenchmark` measures the Python API, `--rust` the core.
    volley = shutil.which("volley", path=os.path.dirname(sys.executable))
    assert volley, "the volley console script is not installed"
    for extra, name in [
        ([], "1_1_actor_calls_sync"),
        (["--rust"], "single_client_tasks_async"),
    ]:
        out = subprocess.run(
            [volley, "microbenchmark", *extra, "--filter", name, "--duration", "0.1"]
            + ["--trials", "2"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        lines = [line for line in out.stdout.splitlines() if line.startswith(name + " ")]
        assert len(lines) == 1, out.stdout
        words = lines[0].split()
        assert words[1:3] == ["per", "second"] and float(words[3]) > 0, lines[0]

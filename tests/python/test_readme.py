"""The README's Python quick start runs as written."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_python_quick_start_runs(tmp_path):
    blocks = python_blocks()
    assert blocks, "the README has a Python quick start"
    for i, code in enumerate(blocks):
        script = tmp_path / f"readme_{i}.py"
        script.write_text(code)
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (
            f"README python block {i} failed:\n{done.stdout}\n{done.stderr}"
        )

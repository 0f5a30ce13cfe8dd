"""The ``volley`` console script: the engine's command line (``volley microbenchmark``...),
run in this process through the native module."""

from __future__ import annotations

import sys

from volley import _native


def main() -> None:
    sys.exit(_native.cli_main(["volley", *sys.argv[1:]]))

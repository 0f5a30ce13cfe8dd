"""The ``volley`` console script: the engine's command line, run in this process through
the native module, except ``volley microbenchmark``, which measures the Python API (Ray's
``ray microbenchmark`` does the same for Ray); ``volley microbenchmark --rust`` runs the
engine's own."""

from __future__ import annotations

import sys

from volley import _native


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["microbenchmark"]:
        if "--rust" not in args:
            from volley import _microbenchmark

            sys.exit(_microbenchmark.run(args[1:]))
        args.remove("--rust")
    sys.exit(_native.cli_main(["volley", *args]))

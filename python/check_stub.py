"""Checks that volley/_native.pyi and the built volley._native declare the same surface:
the same module-level functions and classes, and the same public methods per class.
Run by `make lint`; exits 1 listing every difference."""

from __future__ import annotations

import ast
import inspect
import pathlib
import sys

import volley._native as native

STUB = pathlib.Path(__file__).parent / "volley" / "_native.pyi"


# Dunder methods that every class has; only the ones the stub declares are compared.
def stub_surface() -> dict:
    tree = ast.parse(STUB.read_text())
    out: dict = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = None
        elif isinstance(node, ast.ClassDef):
            out[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return out


def module_surface(declared: dict) -> dict:
    out: dict = {}
    for name, obj in vars(native).items():
        if name.startswith("__"):
            continue
        if inspect.isclass(obj):
            own = {n for n in vars(obj) if not n.startswith("__")}
            # Dunders count where the class defines them itself and the stub names them.
            dunders = {
                n for n in (declared.get(name) or set()) if n.startswith("__") and n in vars(obj)
            }
            out[name] = own | dunders
        elif callable(obj):
            out[name] = None
    return out


def main() -> int:
    stub = stub_surface()
    mod = module_surface(stub)
    problems = []
    for name in sorted(set(stub) | set(mod)):
        if name not in mod:
            problems.append(f"{name}: in the stub, not in the module")
        elif name not in stub:
            problems.append(f"{name}: in the module, not in the stub")
        elif stub[name] is not None or mod[name] is not None:
            s, m = stub[name] or set(), mod[name] or set()
            for meth in sorted(s - m):
                problems.append(f"{name}.{meth}: in the stub, not in the module")
            for meth in sorted(m - s):
                problems.append(f"{name}.{meth}: in the module, not in the stub")
    for p in problems:
        print(f"_native.pyi: {p}")
    if not problems:
        print("_native.pyi: matches the module")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The pipelines on Volley's Python package: the Ray Data pipelines of
``pipelines_ray.py`` with ``import volley as ray``, as the package promises (``map_native``
writes its expression in Volley's SQL form). Until the package is installed, the child
reports the system as not available."""

from __future__ import annotations

from pipelines import System, child_main
from pipelines_ray import ray_api_system


def load() -> System:
    """Volley's pipelines through its Python API."""
    import volley
    import volley.data  # noqa: F401  (a subpackage: imported for volley.data)

    return ray_api_system(volley, lambda ds: ds.with_column("value", "value * 2.0"))


if __name__ == "__main__":
    child_main(load)

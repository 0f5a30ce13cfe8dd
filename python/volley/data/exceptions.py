"""Ray's ``ray.data.exceptions``."""

from volley.exceptions import UserCodeException

__all__ = ["UserCodeException"]

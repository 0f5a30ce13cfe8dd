"""Ray's ``ray.data.context``: the execution settings a dataset reads when it runs."""

from volley.data.dataset import DataContext, ExecutionOptions, ExecutionResources

__all__ = ["DataContext", "ExecutionOptions", "ExecutionResources"]

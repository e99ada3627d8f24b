"""The KRM Functions Specification layer: ResourceList I/O, results and exit codes.

Nothing here knows about SPIFFE. See ``resourcelist`` for the wire format, ``results`` for
the result objects and ``runner`` for the process entry point that turns a Python function
into a kpt function.
"""

from .resourcelist import ANN_INDEX, ANN_LOCAL_CONFIG, ANN_PATH, KptfileView, ResourceList, resource_ref
from .results import ResourceRef, Result, Severity, error, info, warning
from .runner import run_function

__all__ = [
    "Result", "ResourceRef", "Severity", "error", "info", "warning",
    "ResourceList", "KptfileView", "resource_ref", "run_function",
    "ANN_PATH", "ANN_INDEX", "ANN_LOCAL_CONFIG",
]

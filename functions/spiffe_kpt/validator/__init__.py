"""The validator: check the package's identities without trusting what earlier steps wrote.

Re-derives every identity (SPIFFE ID conformance, collisions, dangling workload references,
context) and compares with what the specializer recorded. See README.md beside this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# The body is function.py; these names load it on first use (see spiffe_kpt.lazy).
__all__ = ["NAME", "main", "validate_package"]
__getattr__ = exports(__name__, __all__)

if TYPE_CHECKING:
    from .function import NAME, main, validate_package

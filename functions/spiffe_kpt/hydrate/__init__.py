"""hydrate: the whole chain (specialize, make attestable, register, authorize, validate) in one step.

For porch, where every pipeline step is a container start: one process, one YAML parse and
one dump instead of five. The result is the same as running the functions one after
another; ``tests/test_hydrate.py`` checks that on every example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# The body is function.py; these names load it on first use (see spiffe_kpt.lazy).
__all__ = ["MUTATORS", "NAME", "VALIDATOR", "hydrate", "main"]
__getattr__ = exports(__name__, __all__)

if TYPE_CHECKING:
    from .function import MUTATORS, NAME, VALIDATOR, hydrate, main

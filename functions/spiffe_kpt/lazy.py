"""The function packages' re-exports, loaded on first use (PEP 562 module ``__getattr__``).

A function package's ``__init__`` only names what it offers (``main``, the function, the helpers
other packages use); its body is ``<package>.function``, imported the first time one of those
names is read. Importing one of its modules (the validator reads ``authorization.checks``,
``python -m spiffe_kpt.authorization.diagram`` runs one) therefore never loads the body first:
no module needs a delayed import to dodge a cycle, and each console script pays only for its code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any


def exports(package: str, names: Iterable[str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``names`` come from ``package.function``."""
    offered = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in offered:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.function"), name)
        setattr(sys.modules[package], name, value)  # later reads skip this hook
        return value

    return __getattr__

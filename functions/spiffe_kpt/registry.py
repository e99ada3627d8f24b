"""The project's functions by their console-script name, for the one-step chain and the tests."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from .krm import ResourceList

# name -> (module, function). Imported lazily: each console script pays only for its own code.
FUNCTIONS: dict[str, tuple[str, str]] = {
    "spiffe-specializer": ("spiffe_kpt.specializer", "specialize"),
    "spiffe-validator": ("spiffe_kpt.validator", "validate_package"),
    "spiffe-attestation": ("spiffe_kpt.attestation", "make_attestable"),
    "spiffe-registration": ("spiffe_kpt.registration", "register"),
    "spiffe-authorization": ("spiffe_kpt.authorization", "authorize"),
    "spiffe-access": ("spiffe_kpt.access", "access"),
}


def get(name: str) -> Callable[[ResourceList], None]:
    module, attr = FUNCTIONS[name]
    return getattr(import_module(module), attr)

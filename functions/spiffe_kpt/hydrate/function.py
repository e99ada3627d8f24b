"""spiffe-hydrate: the function itself (``__init__`` re-exports it; its docstring says what it does)."""

from __future__ import annotations

import sys

from .. import registry
from ..api.schema import validated_once
from ..krm import ResourceList, run_function

NAME = "spiffe-hydrate"
MUTATORS = ("spiffe-specializer", "spiffe-attestation", "spiffe-registration", "spiffe-authorization", "spiffe-access")
VALIDATOR = "spiffe-validator"


def hydrate(rl: ResourceList) -> None:
    with validated_once():  # each WorkloadIdentity's schema is checked once, not once per step
        _hydrate(rl)


def _hydrate(rl: ResourceList) -> None:
    for name in MUTATORS:
        _run_step(rl, name)
        if rl.has_errors():
            return  # later steps would only repeat the error; the runner restores the input
    # Like kpt, run the validator for its results only.
    items = rl.items
    rl.items = list(items)
    _run_step(rl, VALIDATOR)
    rl.items = items


def _run_step(rl: ResourceList, name: str) -> None:
    start = len(rl.results)
    registry.get(name)(rl)
    for result in rl.results[start:]:
        result.tags.setdefault("function", name)


def main() -> None:
    sys.exit(run_function(hydrate, NAME))


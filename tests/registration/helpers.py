"""Helpers of the registration tests: the example packages that register, and the chain that does it.

The helpers every test shares (run, find, errors, the_result, ...) are in tests/pkgtools.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spiffe_kpt import registry

from ..pkgtools import EXAMPLES, run_in_process

SPIRE_API = "spire.spiffe.io/v1alpha1"
CHAIN = ["spiffe-specializer", "spiffe-attestation", "spiffe-registration"]


def examples_with_registration() -> list[Path]:
    out = []
    for cfg in sorted(EXAMPLES.rglob(".expected/config.yaml")):
        pkg = cfg.parent.parent
        kptfile = (pkg / "Kptfile").read_text()
        if "registration" in kptfile and "exitCode: 0" in cfg.read_text():
            out.append(pkg)
    return out


def render_chain(items: list[dict[str, Any]], names: list[str] = CHAIN) -> tuple[list, list, int]:
    return run_in_process(items, [registry.get(n) for n in names])

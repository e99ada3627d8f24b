"""Shared helpers of the attestation and registration tests: run functions, find items and results."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from spiffe_kpt import registry
from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.runner import process

from ..pkgtools import EXAMPLES, read_package, run_in_process

WI_API = "workloadidentity.nephio.org/v1alpha1"
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


def items_of(name: str) -> list[dict[str, Any]]:
    return read_package(EXAMPLES / name)


def render_chain(items: list[dict[str, Any]], names: list[str] = CHAIN) -> tuple[list, list, int]:
    return run_in_process(items, [registry.get(n) for n in names])


def run(items: list[dict[str, Any]], fn: Callable | str) -> tuple[dict[str, Any], int]:
    """One function over items through the wire format: (output ResourceList, exit code)."""
    if isinstance(fn, str):
        fn = registry.get(fn)
    text = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})
    out, code = process(text, fn, "test")
    return yamlio.load(out), code


def find(items: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(i for i in items if i["kind"] == kind and i["metadata"]["name"] == name)


def of_kind(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [i for i in items if i["kind"] == kind]


def results_of(doc: dict[str, Any], severity: str) -> list[dict[str, Any]]:
    return [r for r in doc.get("results") or [] if r["severity"] == severity]


def the_result(doc: dict[str, Any], severity: str, kind: str, name: str, field: str | None,
               *fragments: str) -> dict[str, Any]:
    """The one result of that severity about that resource and field; every fragment is in its message."""
    matching = [r for r in results_of(doc, severity)
                if r.get("resourceRef", {}).get("kind") == kind and r["resourceRef"]["name"] == name
                and (field is None or r.get("field", {}).get("path") == field)]
    assert matching, doc.get("results")
    for fragment in fragments:
        assert fragment in matching[0]["message"], matching[0]["message"]
    return matching[0]


def assert_failed_untouched(doc: dict[str, Any], code: int, items_in: list[dict[str, Any]]) -> None:
    """Exit 1, and the items come back exactly as they went in."""
    assert code == 1
    assert yamlio.dump(doc["items"]) == yamlio.dump(items_in)

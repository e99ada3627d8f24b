"""Render the 5G core's packages through the migration's phases, in process, through kpt's wire format."""

from __future__ import annotations

import copy
from typing import Any

from spiffe_kpt import registry

from ..pkgtools import EXAMPLES, find, of_kind, read_package, run_in_process

A = "core.telco-operator.net"
B = "telco.operator"
PIPELINE = ("spiffe-specializer", "spiffe-attestation", "spiffe-registration", "spiffe-authorization",
            "spiffe-validator")


def package(name: str) -> list[dict[str, Any]]:
    return read_package(EXAMPLES / "5g-core" / name)


def context(items: list[dict[str, Any]]) -> dict[str, Any]:
    return next(i for i in items if i.get("kind") == "IdentityContext")


def set_phase(items: list[dict[str, Any]], phase: str | None, to: str = B) -> list[dict[str, Any]]:
    items = copy.deepcopy(items)
    spec = context(items)["spec"]
    if phase is None:
        spec.pop("migration", None)
    else:
        spec["migration"] = {"to": to, "phase": phase}
    return items


def render(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    return run_in_process(items, [registry.get(n) for n in PIPELINE])


def through(name: str, *phases: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The package rendered in each phase in turn (as a user moves it); the last render's items and results."""
    items, results = package(name), []
    for phase in phases:
        items, results, code = render(set_phase(items, phase))
        assert code == 0, [r["message"] for r in results if r["severity"] == "error"]
    return items, results


def spiffeids(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"] for o in of_kind(items, "ClusterSPIFFEID")}


def principals(items: list[dict[str, Any]], name: str) -> list[str]:
    pol = [o for o in of_kind(items, "AuthorizationPolicy") if o["metadata"]["name"] == name][0]
    return [p for r in pol["spec"]["rules"] for f in r.get("from", []) for p in f["source"]["principals"]]


def csi_driver(items: list[dict[str, Any]], deployment: str) -> str:
    dep = find(items, "Deployment", deployment)
    vols = dep["spec"]["template"]["spec"]["volumes"]
    return next(v["csi"]["driver"] for v in vols if v["name"] == "spiffe-workload-api")


def without_paths(items: list[dict[str, Any]], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    from ..pkgtools import strip_annotations
    return sorted(strip_annotations([i for i in items if i["kind"] in kinds]),
                  key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]))

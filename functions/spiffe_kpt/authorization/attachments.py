"""Multus attachments a package describes: its NetworkAttachmentDefinitions and the networks
its pods request (annotation ``k8s.v1.cni.cncf.io/networks``).

Both are written as ``<namespace>/<name>``, the form of ``k8s.v1.cni.cncf.io/policy-for``.
Traffic on a secondary interface bypasses NetworkPolicy and the mesh, so under default deny each
network a pod is attached to needs its own MultiNetworkPolicy baseline, whether or not a rule
names it (``pod_attachments``).
The annotation has two forms (Multus' network-selection annotation): a comma list of
``[namespace/]name[@interface]``, or a JSON list of objects with ``name`` and optional
``namespace`` and ``interface``; a name without namespace is in the pod's namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..api import workloads as wl
from .model import Network

NAD_API_VERSION = "k8s.cni.cncf.io/v1"
NAD_KIND = "NetworkAttachmentDefinition"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
# Multus: replaces the cluster's default network for the pod ('[ns/]name').
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
# A NetworkAttachmentDefinition without metadata.namespace lands in whatever namespace the
# package is applied to (kpt set-namespace, a ConfigSync namespace repository): it matches a
# network of that name in any namespace.
ANY_NAMESPACE = "*"


@dataclass(frozen=True)
class Requested:
    """The networks a workload's pods request; ``problem`` says why the annotation could not be read."""

    refs: frozenset[str]
    problem: str = ""


def defined(items: Iterable[dict[str, Any]]) -> frozenset[str]:
    """``<namespace>/<name>`` of every NetworkAttachmentDefinition in the package."""
    out = set()
    for o in items:
        if o.get("kind") != NAD_KIND or o.get("apiVersion") != NAD_API_VERSION:
            continue
        name, ns = wl.name(o), wl.namespace(o)
        if name:
            out.add(f"{ns or ANY_NAMESPACE}/{name}")
    return frozenset(out)


def requested(workload: dict[str, Any]) -> Requested:
    """The networks the workload's pod template requests (secondary, and a replaced default network)."""
    meta = wl.pod_template(workload).get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(ann, dict):
        return Requested(frozenset())
    ns = wl.namespace(workload)
    found = parse(str(ann[NETWORKS_ANNOTATION]), ns) if ann.get(NETWORKS_ANNOTATION) is not None \
        else Requested(frozenset())
    default = str(ann.get(DEFAULT_NETWORK_ANNOTATION) or "").strip()
    if default:
        found = Requested(found.refs | {default if "/" in default else f"{ns}/{default}"}, found.problem)
    return found


def parse(value: str, namespace: str) -> Requested:
    text = value.strip()
    # As Multus decides: any of '[', '{', '"' makes it JSON (which must then be a list).
    if not any(c in text for c in '[{"'):
        refs = set()
        for entry in text.split(","):
            entry = entry.strip().split("@", 1)[0]
            if entry:
                refs.add(entry if "/" in entry else f"{namespace}/{entry}")
        return Requested(frozenset(refs))
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return Requested(frozenset(), f"its {NETWORKS_ANNOTATION} annotation is not valid JSON ({exc})")
    if not isinstance(doc, list):
        return Requested(frozenset(), f"its {NETWORKS_ANNOTATION} annotation is JSON but not a list of networks")
    refs = set()
    for entry in doc:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            refs.add(f"{entry.get('namespace') or namespace}/{entry['name']}")
    return Requested(frozenset(refs))


def exists(ref: str, nads: frozenset[str]) -> bool:
    return ref in nads or f"{ANY_NAMESPACE}/{ref.rpartition('/')[2]}" in nads


def pod_attachments(items: list[dict[str, Any]], namespaces: list[str]) -> list[Network]:
    """Every secondary network a pod of the package's workloads in ``namespaces`` requests, sorted.
    Unreadable annotations contribute nothing here (the rule checks report them)."""
    scope = set(namespaces)
    found: set[str] = set()
    for obj in items:
        if not wl.is_workload(obj) or wl.namespace(obj) not in scope:
            continue
        meta = wl.pod_template(obj).get("metadata")
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        value = ann.get(NETWORKS_ANNOTATION) if isinstance(ann, dict) else None
        if isinstance(value, str):
            found.update(parse(value, wl.namespace(obj)).refs)
    networks = (Network(*ref.split("/", 1)) for ref in found if "/" in ref)
    return sorted(networks, key=lambda n: n.ref)

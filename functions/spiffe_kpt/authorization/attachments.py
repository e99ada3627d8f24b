"""The Multus attachments of the package's pods: the networks zero trust must close.

A pod asks Multus for secondary interfaces with the pod-template annotation
``k8s.v1.cni.cncf.io/networks``, in one of two forms (Multus's documented syntax): a comma
list of ``[<namespace>/]<name>[@<interface>]``, or a JSON list of objects with ``name`` and
optional ``namespace``. A name without namespace is a NetworkAttachmentDefinition in the pod's
namespace. Traffic on such an interface bypasses NetworkPolicy and the mesh, so under default
deny each of these networks needs its own MultiNetworkPolicy baseline, whether or not a rule
names it (an attachment no rule names would otherwise accept anything).
"""

from __future__ import annotations

import json
from typing import Any

from ..api import workloads as wl
from .model import Network

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"


def requested_networks(annotation: str, namespace: str) -> list[Network]:
    """The networks one networks annotation asks for; malformed entries are skipped (Multus
    refuses such a pod; reporting it is the validator's)."""
    text = annotation.strip()
    out: list[Network] = []
    if text.startswith("["):
        try:
            entries = json.loads(text)
        except ValueError:
            return []
        for e in entries if isinstance(entries, list) else []:
            if isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"]:
                ns = e.get("namespace")
                out.append(Network(ns if isinstance(ns, str) and ns else namespace, e["name"]))
        return out
    for part in text.split(","):
        ref = part.strip().split("@")[0]
        if ref:
            ns, _, name = ref.rpartition("/")
            if name:
                out.append(Network(ns or namespace, name))
    return out


def pod_attachments(items: list[dict[str, Any]], namespaces: list[str]) -> list[Network]:
    """Every network a pod of the package's workloads in ``namespaces`` is attached to, sorted."""
    scope = set(namespaces)
    found: set[Network] = set()
    for obj in items:
        if not wl.is_workload(obj) or wl.namespace(obj) not in scope:
            continue
        meta = wl.pod_template(obj).get("metadata")
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        value = ann.get(NETWORKS_ANNOTATION) if isinstance(ann, dict) else None
        if isinstance(value, str):
            found.update(requested_networks(value, wl.namespace(obj)))
    return sorted(found, key=lambda n: n.ref)

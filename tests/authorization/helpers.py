"""Render an authorization example in-process and turn it into an evaluator Cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spiffe_kpt import registry

from ..pkgtools import EXAMPLES, read_package, run_in_process
from .evaluator import Cluster, Pod

AUTHZ_5G = EXAMPLES / "authz-5g-like"
PIPELINE = ["spiffe-specializer", "spiffe-authorization"]
# The 5G core as Nephio deploys it: three packages, UPF on edge01, SMF and AMF on regional;
# their Kptfiles run the whole chain (the service accounts attestation creates are the ones
# the SPIFFE IDs name).
FIVE_G_CORE = EXAMPLES / "5g-core"
FIVE_G_CORE_PIPELINE = ["spiffe-specializer", "spiffe-attestation", "spiffe-registration", "spiffe-authorization",
                        "spiffe-validator"]
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"


def render(pkg: Path | list[dict[str, Any]], steps: list[str] = PIPELINE) -> tuple[list, list, int]:
    items = read_package(pkg) if isinstance(pkg, Path) else pkg
    return run_in_process(items, [registry.get(s) for s in steps])


def generated(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in items if "workloadidentity.nephio.org/owner" in ((o.get("metadata") or {}).get("annotations") or {})]


def network_refs(annotation: str, namespace: str) -> frozenset[str]:
    """'<ns>/<nad>' of a pod's Multus networks annotation, in either of its forms: a comma
    list of '[ns/]name[@interface]', or a JSON list of {"name", "namespace"?, ...}."""
    text = annotation.strip()
    if text.startswith("["):
        return frozenset(f"{n.get('namespace') or namespace}/{n['name']}" for n in json.loads(text))
    out = set()
    for n in text.split(","):
        n = n.strip().split("@")[0]
        if n:
            out.add(n if "/" in n else f"{namespace}/{n}")
    return frozenset(out)


def cluster_of(items: list[dict[str, Any]]) -> Cluster:
    """Pods as the workloads would run them (labels, namespace, networks, SPIFFE ID from the
    identity's status), one intruder pod without identity per namespace, and generated policy."""
    ids = {o["status"]["workloadRef"]["name"] if "workloadRef" in (o.get("status") or {}) else o["spec"]["workloadRef"]["name"]:
           (o.get("status") or {}).get("spiffeID", "")
           for o in items if o.get("kind") == "WorkloadIdentity"}
    pods: dict[str, Pod] = {}
    namespaces = set()
    for o in items:
        if o.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        tpl = o["spec"]["template"]
        ns = o["metadata"]["namespace"]
        namespaces.add(ns)
        refs = network_refs(str((tpl["metadata"].get("annotations") or {}).get(NETWORKS_ANNOTATION, "")), ns)
        pods[o["metadata"]["name"]] = Pod(o["metadata"]["name"], ns, tuple(sorted(tpl["metadata"]["labels"].items())),
                                          principal=ids.get(o["metadata"]["name"], ""), networks=refs)
    all_nets = frozenset().union(*(p.networks for p in pods.values()))
    for ns in sorted(namespaces):
        # An unidentified pod on every network: nothing may reach it and it may reach nothing.
        pods[f"intruder-{ns}"] = Pod(f"intruder-{ns}", ns, (("app.kubernetes.io/name", "intruder"),),
                                     networks=all_nets)
    return Cluster(pods, generated(items))

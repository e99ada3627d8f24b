"""The attestation mutator: make each workload attestable exactly as its WorkloadIdentity declares.

SPIRE's Kubernetes workload attestor identifies a pod by facts the API server vouches for:
its namespace, service account and labels. This function puts those facts on the workloads
(namespace, ``serviceAccountName`` and the identity's selector labels on the pod template),
creates the ServiceAccount when the package lacks it, and mounts the SPIFFE CSI volume where
``spec.workloadAPI.csi`` asks. It refuses to overwrite anything a person wrote that
contradicts the identity, and refuses selectors that would also match another workload's
pods. See README.md beside this file.
"""

from __future__ import annotations

import posixpath
import sys
from typing import Any

from ..api import workloads as wl
from ..api.ownership import Desired, mark, owner_of, sync
from ..api.resolve import Identity, Resolution, resolve
from ..krm import ResourceList, error, info, run_function
from ..krm.resourcelist import file_path, resource_ref
from ..krm.results import Result, name_list
from .overlap import PodSet, find_overlaps
from .podspec import (DEFAULT_MOUNT_PATH, DEFAULT_SOCKET_NAME, CSIRequest, add_labels, mount_csi,
                      set_service_account)

NAME = "spiffe-attestation"
SERVICE_ACCOUNT = ("v1", "ServiceAccount")
# Every namespace has it; Kubernetes creates it, so the package never needs to.
BUILTIN_SERVICE_ACCOUNTS = frozenset({"default"})


def final_pod_sets(items: list[dict[str, Any]], identities: list[Identity]) -> list[PodSet]:
    """Every workload's pods as they will run: identity labels added, namespace defaulted."""
    by_workload = {id(i.workload): i for i in identities}
    out = []
    for obj in items:
        if not wl.is_workload(obj):
            continue
        ident = by_workload.get(id(obj))
        labels = wl.pod_labels(obj)
        ns = wl.namespace(obj)
        if ident is not None:
            labels = {**labels, **ident.labels_to_add}
            ns = ident.namespace
        out.append(PodSet(resource_ref(obj), ns, labels))
    return out


def check_selector_overlaps(items: list[dict[str, Any]], identities: list[Identity]) -> list[Result]:
    """Errors for identities whose pod selector also matches another workload's pods (same namespace)."""
    by_ref = {i.workload_ref: i for i in identities}
    overlaps = find_overlaps([(i.workload_ref, i.namespace, i.selector_labels) for i in identities],
                             final_pod_sets(items, identities))
    out = []
    for o in overlaps:
        ident = by_ref[o.selector_of]
        sel = ", ".join(f"{k}={v}" for k, v in sorted(ident.selector_labels.items()))
        out.append(error(
            f"WorkloadIdentity {ident.name}: its pod selector ({sel}) also matches the pods of {o.also_matches} "
            f"in namespace {ident.namespace!r}, so SPIRE would give those pods the identity of {ident.workload_ref}. "
            "Select on a label only this workload's pods carry: add one under spec.selector.labels "
            "(the mutator puts it on the pod template) or list it under spec.selector.labelKeys",
            ident.ref, "spec.selector", current_value=sel))
    return out


def _pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template, created along its path when absent (a bare Pod is its own template)."""
    node = obj
    for key in wl.pod_template_path(obj["kind"]):
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    return node


def _set_namespace(obj: dict[str, Any], namespace: str) -> None:
    meta = obj.setdefault("metadata", {})
    if meta.get("namespace"):
        return
    # Right after the name, where people write it.
    items = list(meta.items())
    meta.clear()
    for k, v in items:
        meta[k] = v
        if k == "name":
            meta["namespace"] = namespace
    meta.setdefault("namespace", namespace)


def _csi_request(ident: Identity) -> CSIRequest | None:
    csi = (ident.spec.get("workloadAPI") or {}).get("csi")
    if not csi:
        return None
    return CSIRequest(tuple(csi["containers"]), csi.get("mountPath", DEFAULT_MOUNT_PATH),
                      csi.get("socketName", DEFAULT_SOCKET_NAME))


def attest_workload(ident: Identity) -> list[Result]:
    """Edit the identity's workload in place; errors (and no CSI edit) where it would overwrite."""
    obj = ident.workload
    _set_namespace(obj, ident.namespace)
    pod = _pod_template(obj)
    set_service_account(pod, ident.service_account)
    add_labels(pod, ident.labels_to_add)
    sel_path = wl.WORKLOAD_KINDS[obj["kind"]][2]
    if sel_path is not None and obj.get("spec", {}).get("selector") is None:
        # Only a workload with no selector at all gets one: a selector of an existing Deployment,
        # StatefulSet or DaemonSet is immutable, so changing it would fail every apply.
        obj["spec"]["selector"] = {"matchLabels": dict(ident.selector_labels)}
    req = _csi_request(ident)
    out: list[Result] = []
    if req is not None:
        for i, problem in mount_csi(pod, req):
            path = f"spec.workloadAPI.csi.containers[{i}]" if i >= 0 else "spec.workloadAPI.csi"
            out.append(error(f"WorkloadIdentity {ident.name}: cannot mount the SPIFFE CSI volume into "
                             f"{ident.workload_ref}: {problem}", ident.ref, path))
    return out


def desired_service_accounts(identities: list[Identity]) -> list[Desired]:
    """One ServiceAccount per (namespace, name) the identities run as, owned by the first identity."""
    seen: dict[tuple[str, str], Desired] = {}
    for ident in sorted(identities, key=lambda i: i.name):
        key = (ident.namespace, ident.service_account)
        if ident.service_account in BUILTIN_SERVICE_ACCOUNTS or key in seen:
            continue
        obj = mark({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": ident.service_account, "namespace": ident.namespace}},
                   ident.condition_type)
        folder = posixpath.dirname(file_path(ident.workload))
        seen[key] = Desired(obj, posixpath.join(folder, f"serviceaccount-{ident.service_account}.yaml"))
    return list(seen.values())


def make_attestable(rl: ResourceList) -> None:
    res: Resolution = resolve(rl)
    rl.extend(res.results)
    if not res.ok:
        return
    overlaps = check_selector_overlaps(rl.items, res.identities)
    if overlaps:
        rl.extend(overlaps)
        return
    for ident in res.identities:
        rl.extend(attest_workload(ident))
    if rl.has_errors():
        return

    # A ServiceAccount we created stays while a workload still runs as it, even once its
    # identity is gone: deleting it would stop that workload's pods from being created.
    in_use = {(wl.namespace(o), wl.service_account(o)) for o in rl.items if wl.is_workload(o)}
    report = sync(rl, frozenset({SERVICE_ACCOUNT}), desired_service_accounts(res.identities),
                  keep=lambda sa: (resource_ref(sa).namespace, resource_ref(sa).name) in in_use)
    # A hand-written ServiceAccount of that name is exactly what the package should have: nothing to do.
    if report.created:
        rl.add(info("created ServiceAccount " + name_list(
            [f"{resource_ref(o).namespace}/{resource_ref(o).name}" for o in report.created])
            + f" (not in the package; {'its workload runs' if len(report.created) == 1 else 'their workloads run'} as it now)"))
    for o in report.deleted:
        rl.add(info(f"deleted ServiceAccount {resource_ref(o).namespace}/{resource_ref(o).name}: its "
                    f"identity ({owner_of(o)}) is gone and no workload runs as it", resource_ref(o)))
    if res.identities:
        rl.add(info(f"made {len(res.identities)} workload{'s' if len(res.identities) != 1 else ''} attestable"))
    else:
        rl.add(info("no WorkloadIdentity in the package; nothing to make attestable"))


def main() -> None:
    sys.exit(run_function(make_attestable, NAME))


if __name__ == "__main__":
    main()

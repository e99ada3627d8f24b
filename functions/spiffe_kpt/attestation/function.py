"""spiffe-attestation: the function itself (``__init__`` re-exports it; its docstring says what it does)."""

from __future__ import annotations

import posixpath
import sys
from typing import Any

from ..api import migration
from ..api import workloads as wl
from ..api.context import Context
from ..api.ownership import Desired, mark, owner_of, sync
from ..api.paths import get_path
from ..api.resolve import Identity, Resolution, resolve
from ..krm import ResourceList, error, info, run_function, warning
from ..krm.resourcelist import file_path, is_local_config, resource_ref
from ..krm.results import Result, name_list
from .overlap import PodSet, find_overlaps
from .podspec import (
    CSI_DRIVER,
    DEFAULT_MOUNT_PATH,
    DEFAULT_SOCKET_NAME,
    CSIRequest,
    add_labels,
    mount_csi,
    set_service_account,
)

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


def _csi_request(ident: Identity, ctx: Context | None) -> CSIRequest | None:
    csi = get_path(ident.spec, "workloadAPI", "csi")
    if not csi:
        return None
    driver, known = migration.csi_driver(ctx) if ctx is not None else (CSI_DRIVER, (CSI_DRIVER,))
    return CSIRequest(tuple(csi["containers"]), csi.get("mountPath", DEFAULT_MOUNT_PATH),
                      csi.get("socketName", DEFAULT_SOCKET_NAME), driver, known)


def attest_workload(ident: Identity, ctx: Context | None = None) -> list[Result]:
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
    req = _csi_request(ident, ctx)
    out: list[Result] = []
    if req is not None:
        for i, problem in mount_csi(pod, req):
            path = f"spec.workloadAPI.csi.containers[{i}]" if i >= 0 else "spec.workloadAPI.csi"
            out.append(error(f"WorkloadIdentity {ident.name}: cannot mount the SPIFFE CSI volume into "
                             f"{ident.workload_ref}: {problem}", ident.ref, path))
    return out


Account = tuple[str, str]  # namespace, name


def creates_service_account(ident: Identity) -> bool:
    """spec.createServiceAccount (default true): false says another package owns the account."""
    return ident.spec.get("createServiceAccount", True) is not False


def external_accounts(identities: list[Identity]) -> dict[Account, Identity]:
    """The accounts some identity says exist elsewhere, each with the first identity that says so.

    One such identity is enough: the account is one object, and creating it here as well is
    exactly the duplicate (two packages declaring it) the author wanted to avoid."""
    out: dict[Account, Identity] = {}
    for ident in sorted(identities, key=lambda i: i.name):
        if not creates_service_account(ident):
            out.setdefault((ident.namespace, ident.service_account), ident)
    return out


def desired_service_accounts(identities: list[Identity],
                             external: dict[Account, Identity] | None = None) -> list[Desired]:
    """One ServiceAccount per (namespace, name) the identities run as, owned by the first identity;
    none for the built-in ``default`` and for accounts marked as existing elsewhere."""
    seen: dict[tuple[str, str], Desired] = {}
    for ident in sorted(identities, key=lambda i: i.name):
        key = (ident.namespace, ident.service_account)
        if ident.service_account in BUILTIN_SERVICE_ACCOUNTS or key in seen or key in (external or {}):
            continue
        obj = mark({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": ident.service_account, "namespace": ident.namespace}},
                   ident.condition_type)
        folder = posixpath.dirname(file_path(ident.workload))
        seen[key] = Desired(obj, posixpath.join(folder, f"serviceaccount-{ident.service_account}.yaml"))
    return list(seen.values())


def _account(obj: dict[str, Any]) -> Account:
    ref = resource_ref(obj)
    return ref.namespace, ref.name


def _created_message(created: list[dict[str, Any]], identities: list[Identity]) -> str:
    """One line for every account created in this run, with the way to say it exists elsewhere."""
    accounts = [f"{resource_ref(o).namespace}/{resource_ref(o).name}" for o in created]
    if len(created) == 1:
        ns, name = _account(created[0])
        owner = next((i.name for i in sorted(identities, key=lambda i: i.name)
                      if (i.namespace, i.service_account) == (ns, name)), "")
        return (f"created ServiceAccount {accounts[0]}: the package lacks it and its workload runs as it. If "
                f"another package owns it, set spec.createServiceAccount: false on WorkloadIdentity {owner}")
    return (f"created ServiceAccounts {name_list(accounts)}: the package lacks them and their workloads run as "
            "them. If another package owns one, set spec.createServiceAccount: false on its WorkloadIdentity")


def check_external_accounts(items: list[dict[str, Any]], identities: list[Identity],
                            external: dict[Account, Identity]) -> list[Result]:
    """Warnings where the package disagrees with itself about who owns an account."""
    out: list[Result] = []
    if not external:
        return out
    for ident in identities:
        marker = external.get((ident.namespace, ident.service_account))
        if marker is not None and creates_service_account(ident):
            out.append(warning(
                f"WorkloadIdentity {ident.name} runs as ServiceAccount {ident.namespace}/{ident.service_account}, "
                f"which WorkloadIdentity {marker.name} says exists elsewhere (spec.createServiceAccount: false), "
                "so it is not created for this identity either. Set spec.createServiceAccount: false here too, "
                f"or remove it from {marker.name} if this package should create the account",
                ident.ref, "spec.createServiceAccount"))
    for obj in items:
        if obj.get("kind") != "ServiceAccount" or obj.get("apiVersion") != "v1" or owner_of(obj) \
                or is_local_config(obj):
            continue
        marker = external.get(_account(obj))
        if marker is not None:
            where = file_path(obj)
            out.append(warning(
                f"WorkloadIdentity {marker.name} says ServiceAccount {marker.namespace}/{marker.service_account} "
                "exists elsewhere (spec.createServiceAccount: false), but the package declares it"
                f"{f' ({where})' if where else ''}: ConfigSync reports an object two packages declare as a "
                "management conflict. Delete it here if another package owns it, else remove "
                "spec.createServiceAccount: false",
                marker.ref, "spec.createServiceAccount"))
    return out


RBAC_API = "rbac.authorization.k8s.io/v1"
BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})


def _bound_accounts(items: list[dict[str, Any]]) -> dict[Account, dict[str, Any]]:
    """ServiceAccounts that the package's RoleBindings and ClusterRoleBindings bind, each with the
    first binding that does."""
    out: dict[Account, dict[str, Any]] = {}
    for obj in items:
        if obj.get("kind") not in BINDING_KINDS or obj.get("apiVersion") != RBAC_API:
            continue
        subjects = obj.get("subjects")
        for s in subjects if isinstance(subjects, list) else []:
            if isinstance(s, dict) and s.get("kind") == "ServiceAccount" and isinstance(s.get("name"), str):
                ns = s.get("namespace") or resource_ref(obj).namespace
                out.setdefault((str(ns), s["name"]), obj)
    return out


def check_bound_accounts(items: list[dict[str, Any]], generated: list[dict[str, Any]],
                         identities: list[Identity]) -> list[Result]:
    """Warn where this function generates an account the package's RBAC binds without declaring it.

    A package whose RoleBinding names an account it does not declare was usually written for an
    account that exists elsewhere: a chart rendered with serviceAccount.create=false keeps its
    RoleBinding, an RBAC package owns the account. Creating it here then duplicates the owner's
    object. An identity that says spec.createServiceAccount: true explicitly owns the account, and
    is not warned."""
    bound = _bound_accounts(items) if generated else {}
    out: list[Result] = []
    for sa in generated:
        binding = bound.get(_account(sa))
        if binding is None:
            continue
        users = sorted((i for i in identities if (i.namespace, i.service_account) == _account(sa)), key=lambda i: i.name)
        if not users or any(i.spec.get("createServiceAccount") is True for i in users):
            continue
        b = resource_ref(binding)
        out.append(warning(
            f"WorkloadIdentity {users[0].name}: the package declares no ServiceAccount {'/'.join(_account(sa))}, so "
            f"spiffe-attestation generates it, but {b.kind} {b.name} binds it as an account that exists: if another "
            "package owns it (an RBAC package, a chart rendered with serviceAccount.create=false), set "
            "spec.createServiceAccount: false, or else set it to true to say this package owns the account",
            users[0].ref, "spec.createServiceAccount"))
    return out


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
        rl.extend(attest_workload(ident, res.context))
    if rl.has_errors():
        return

    external = external_accounts(res.identities)
    rl.extend(check_external_accounts(rl.items, res.identities, external))
    # A ServiceAccount we created stays while a workload still runs as it, even once its
    # identity is gone (deleting it would stop that workload's pods from being created),
    # unless an identity now says the account exists elsewhere.
    in_use = {(wl.namespace(o), wl.service_account(o)) for o in rl.items if wl.is_workload(o)}
    desired = desired_service_accounts(res.identities, external)
    report = sync(rl, frozenset({SERVICE_ACCOUNT}), desired,
                  keep=lambda sa: _account(sa) in in_use and _account(sa) not in external)
    # A hand-written account of that name (a conflict) is the package's own: not generated.
    handwritten = {id(d.obj) for d, _ in report.conflicts}
    generated = [d.obj for d in desired if id(d.obj) not in handwritten]
    rl.extend(check_bound_accounts(rl.items, generated, res.identities))
    # A hand-written ServiceAccount of that name is exactly what the package should have: nothing to do.
    if report.created:
        rl.add(info(_created_message(report.created, res.identities)))
    for o in report.deleted:
        marker = external.get(_account(o))
        why = (f"WorkloadIdentity {marker.name} says it exists elsewhere (spec.createServiceAccount: false)"
               if marker is not None else f"its identity ({owner_of(o)}) is gone and no workload runs as it")
        rl.add(info(f"deleted ServiceAccount {resource_ref(o).namespace}/{resource_ref(o).name}: {why}",
                    resource_ref(o)))
    if res.identities:
        rl.add(info(f"made {len(res.identities)} workload{'s' if len(res.identities) != 1 else ''} attestable"))
    else:
        rl.add(info("no WorkloadIdentity in the package; nothing to make attestable"))


def main() -> None:
    sys.exit(run_function(make_attestable, NAME))


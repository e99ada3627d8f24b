"""spiffe-authorization: the function itself (``__init__`` re-exports it; its docstring says what it does)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .. import API_VERSION
from ..api.context import IDENTITY_CONTEXT
from ..api.ownership import Desired, conflict_results, mark, owner_of, sync
from ..api.resolve import Resolution, condition_type, resolve
from ..krm import ResourceList, error, info, run_function, warning
from ..krm.resourcelist import ANN_LOCAL_CONFIG, resource_ref
from ..krm.results import Result, name_list
from . import diagram, istio, linkerd, multinetworkpolicy, networkpolicy
from .attachments import pod_attachments
from .model import PolicyModel, Port
from .rules import resolve_rules

NAME = "spiffe-authorization"
FOLDER = "authorization"
DIAGRAM_NAME = "authorization-diagram"
DIAGRAM_KEY = "diagram.mmd"

Builder = Callable[[PolicyModel], tuple[list[tuple[str, dict[str, Any]]], list[Result]]]
BUILDERS: dict[str, Builder] = {
    "istio": istio.build,
    "networkpolicy": networkpolicy.build,
    "multinetworkpolicy": multinetworkpolicy.build,
    "linkerd": linkerd.build,
}
KINDS = istio.KINDS | networkpolicy.KINDS | multinetworkpolicy.KINDS | linkerd.KINDS | {("v1", "ConfigMap")}


def enforcers(model: PolicyModel, network: bool, port: Port) -> list[str]:
    """Enabled backends that enforce a port of a rule: meshes carry single TCP ports on the pod network only."""
    out = []
    for b in model.backends:
        if b == "multinetworkpolicy" and network or b == "networkpolicy" and not network \
                or b == "istio" and not network and port.meshable \
                or b == "linkerd" and not network and port.protocol == "TCP" and not port.end:
            out.append(b)
    return out


def coverage_warnings(model: PolicyModel) -> list[Result]:
    out = []
    for rule in model.egress_rules:
        if not model.default_deny:
            out.append(info(
                f"egress rule {rule.label}: with IdentityContext spec.policy.defaultDeny false the client's egress "
                "is not isolated, so nothing is generated for it (it may already reach every peer); egress rules "
                "take effect under defaultDeny", rule.target.ref, rule.field_path))
            continue
        need = "multinetworkpolicy" if rule.network is not None else "networkpolicy"
        if need not in model.backends:
            enabled = ", ".join(model.backends) or "none"
            out.append(warning(
                f"egress rule {rule.label}: egress is enforced by {need} only, which is not enabled "
                f"(IdentityContext spec.policy.backends: {enabled}); the client is not isolated by it either way. "
                f"Add {need} to spec.policy.backends", rule.target.ref, f"{rule.field_path}.ports"))
    if model.default_deny and model.attachments and "multinetworkpolicy" not in model.backends:
        enabled = ", ".join(model.backends) or "none"
        out.append(warning(
            f"the package's pods are attached to the Multus networks {', '.join(n.ref for n in model.attachments)}, "
            "whose traffic bypasses NetworkPolicy and the mesh: under defaultDeny only multinetworkpolicy closes "
            f"them, and it is not enabled (IdentityContext spec.policy.backends: {enabled}), so they accept "
            "anything. Add multinetworkpolicy to spec.policy.backends"))
    for rule in model.rules:
        bare = [p for p in rule.ports if not enforcers(model, rule.network is not None, p)]
        if bare:
            enabled = ", ".join(model.backends) or "none"
            need = "multinetworkpolicy" if rule.network is not None else "networkpolicy"
            out.append(warning(
                f"rule {rule.label}: {', '.join(map(str, bare))} is enforced by no enabled backend "
                f"(IdentityContext spec.policy.backends: {enabled}); add {need} to spec.policy.backends",
                rule.target.ref, f"{rule.field_path}.ports"))
    return out


def diagram_configmap(model: PolicyModel) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": DIAGRAM_NAME, "annotations": {ANN_LOCAL_CONFIG: "true"}},
            "data": {DIAGRAM_KEY: diagram.mermaid(model)}}


def authorize(rl: ResourceList) -> None:
    res: Resolution = resolve(rl)
    rl.extend(res.results)
    if not res.ok:
        return
    rr = resolve_rules(res.identities, res.context, rl.items)
    rl.extend(rr.errors)
    if rl.has_errors():
        return
    model = rr.model
    model.attachments = pod_attachments(rl.items, model.namespaces)
    ctx = res.context
    baseline_owner = f"{API_VERSION}.{IDENTITY_CONTEXT}.{ctx.ref.name}" if ctx.ref else ""

    desired: list[Desired] = []
    for backend in model.backends:
        objs, results = BUILDERS[backend](model)
        rl.extend(results)
        for identity, obj in objs:
            owner = condition_type(identity) if identity else baseline_owner
            ns = obj["metadata"].get("namespace", "")
            desired.append(Desired(mark(obj, owner), f"{FOLDER}/{ns}/{backend}.yaml"))
    if (model.rules or model.egress_rules) and baseline_owner:
        desired.append(Desired(mark(diagram_configmap(model), baseline_owner), f"{FOLDER}/diagram.yaml"))

    # Only what identities and the context own is this function's: spire-config's NetworkPolicies
    # and ConfigMaps (owner SpireDeployment) in a package that holds both survive.
    ours = (f"{API_VERSION}.WorkloadIdentity.", f"{API_VERSION}.{IDENTITY_CONTEXT}.")
    # spiffe-access's authentication ConfigMap is owned by the context too: of the context's
    # ConfigMaps only the diagram is this function's.
    report = sync(rl, frozenset(KINDS), desired, keep=lambda obj: not owner_of(obj).startswith(ours) or (
        obj.get("kind") == "ConfigMap" and resource_ref(obj).name != DIAGRAM_NAME))
    if report.conflicts:
        rl.extend(conflict_results(report, error))
        return
    rl.extend(coverage_warnings(model))
    if rr.waiting:
        rl.add(info(f"no authorization policy yet for {name_list(sorted(rr.waiting))}: "
                    f"{'; '.join(ctx.missing) or 'the context is not complete'}"))
    for o in report.deleted:
        rl.add(info(f"deleted {resource_ref(o).kind} {resource_ref(o).name}: its rule or owner "
                    f"{owner_of(o)} is gone, or its backend is no longer enabled", resource_ref(o)))
    counts: dict[str, int] = {}
    for d in desired:
        counts[d.obj["kind"]] = counts.get(d.obj["kind"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
    backends = ", ".join(model.backends) or "no backend"
    n = len(model.rules) + len(model.egress_rules)
    egress = f", {len(model.egress_rules)} of them egress" if model.egress_rules else ""
    rl.add(info(f"authorization from {n} rule{'s' if n != 1 else ''}{egress} "
                f"({backends}, defaultDeny {'on' if model.default_deny else 'off'}): generated {summary}"))


def main() -> None:
    sys.exit(run_function(authorize, NAME))


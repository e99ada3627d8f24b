"""Validator checks for the authorization rules (called by spiffe-validator).

Re-derives the policy model and reports: every rule error the generator would report, for
ingress and egress rules alike (unknown identities, empty 'from'/'to' without allowAll,
conflicting ports, unresolvable named ports, bad peers), ingress ports no
container declares, and workloads that default deny will isolate although they have no
identity and no explicit exemption.
"""

from __future__ import annotations

from typing import Any

from .. import API_GROUP
from ..api import workloads as wl
from ..api.resolve import Resolution
from ..krm.resourcelist import annotations, resource_ref
from ..krm.results import Result, warning
from .rules import resolve_rules

# On a workload: "true" says it is meant to have no identity under zero trust (it is then
# isolated by default deny unless a hand-written policy opens it).
POLICY_EXEMPT = f"{API_GROUP}/policy-exempt"


def check_authorization(items: list[dict[str, Any]], res: Resolution) -> list[Result]:
    rr = resolve_rules(res.identities, res.context, items)
    out: list[Result] = rr.errors + rr.advisories
    model = rr.model
    if not (model.backends and model.default_deny and model.namespaces):
        return out
    scope = set(model.namespaces)
    claimed = {i.workload_ref for i in res.identities}
    for obj in items:
        if not wl.is_workload(obj) or wl.namespace(obj) not in scope:
            continue
        ref = resource_ref(obj)
        if ref in claimed or str(annotations(obj).get(POLICY_EXEMPT, "")).lower() == "true":
            continue
        out.append(warning(
            f"{ref} runs in namespace {wl.namespace(obj)!r}, which default deny isolates, but has no "
            "WorkloadIdentity: all its traffic will be denied. Give it a WorkloadIdentity with ingress rules, or "
            f"annotate it {POLICY_EXEMPT}: \"true\" to say that is intended", ref, "metadata.annotations"))
    return out

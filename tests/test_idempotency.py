"""render(render(x)) == render(x) for the identity functions, over generated packages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.generate import context, workload
from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.runner import process
from spiffe_kpt.specializer import specialize
from spiffe_kpt.validator import validate_package

KPTFILE = {"apiVersion": "kpt.dev/v1", "kind": "Kptfile", "metadata": {"name": "pkg"},
           "status": {"conditions": [{"type": "someone.else/v1.Thing.x", "status": "True", "reason": "Mine"}]}}


@st.composite
def packages(draw):
    n = draw(st.integers(1, 12))
    items = [KPTFILE, context(cluster=draw(st.sampled_from(["edge-1", "core-a"])))]
    items[1]["spec"]["idFormat"] = draw(st.sampled_from(["istio", "cluster", "region", "opaque"]))
    if draw(st.booleans()):
        items[1]["spec"]["trustDomain"] = ""  # context not injected yet
    for i in range(n):
        deploy, wi = workload(i, namespaces=draw(st.integers(1, 3)))
        if draw(st.booleans()):
            del deploy["spec"]["template"]["spec"]["serviceAccountName"]
        items.extend([deploy, wi])
    return items


def _render(items):
    text = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})
    out, code = process(text, specialize, "s")
    assert code == 0, out
    return out


@given(packages())
@settings(max_examples=60, deadline=None)
def test_specializer_is_idempotent_and_validator_agrees(items) -> None:
    once = _render(items)
    twice = _render(yamlio.load(once)["items"])
    assert once == twice
    _, code = process(once, validate_package, "v")
    ctx = next(i for i in items if i["kind"] == "IdentityContext")
    # Valid input always validates, except a context that was never given a trust domain.
    assert code == (1 if not ctx["spec"]["trustDomain"] else 0)


@given(packages(), st.data())
@settings(max_examples=30, deadline=None)
def test_removing_an_identity_removes_its_condition_and_gate_only(items, data) -> None:
    rendered = yamlio.load(_render(items))["items"]
    wis = [i for i in rendered if i["kind"] == "WorkloadIdentity"]
    gone = data.draw(st.sampled_from(wis))["metadata"]["name"]
    again = yamlio.load(_render([i for i in rendered if i is not None and not (
        i["kind"] == "WorkloadIdentity" and i["metadata"]["name"] == gone)]))["items"]
    kptfile = next(i for i in again if i["kind"] == "Kptfile")
    types = [c["type"] for c in kptfile["status"]["conditions"]]
    assert "someone.else/v1.Thing.x" in types, "conditions of other owners survive"
    assert not any(t.endswith(f".WorkloadIdentity.{gone}") for t in types)
    gates = [g["conditionType"] for g in (kptfile.get("info") or {}).get("readinessGates", [])]
    assert not any(g.endswith(f".WorkloadIdentity.{gone}") for g in gates)
    assert len(gates) == len(wis) - 1

"""The resolved access model (access.grants): clients by SPIFFE ID, issuers, audiences, and the
mistakes of the model itself (unknown identity, trust domain without issuer or not federated)."""

from __future__ import annotations

import copy
from typing import Any

from spiffe_kpt.access import grants as g
from spiffe_kpt.api.resolve import resolve
from spiffe_kpt.krm.resourcelist import ResourceList

from ..pkgtools import WI_API

TD = "edge.example.net"
ISSUER = {"url": "https://oidc.edge.example.net"}
CTX = {"apiVersion": WI_API, "kind": "IdentityContext",
       "metadata": {"name": "ctx", "annotations": {"config.kubernetes.io/local-config": "true"}},
       "spec": {"trustDomain": TD, "clusterName": "edge01", "idFormat": "istio", "jwtIssuer": ISSUER,
                "federation": [{"trustDomain": "mgmt.example.net", "bundleEndpointURL": "https://b.mgmt.example.net",
                                "bundleEndpointProfile": {"type": "https_web"},
                                "jwtIssuer": {"url": "https://oidc.mgmt.example.net"}},
                               {"trustDomain": "nojwt.example.net", "bundleEndpointURL": "https://b.nojwt.example.net",
                                "bundleEndpointProfile": {"type": "https_web"}}]}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ctl", "namespace": "ops"},
          "spec": {"selector": {"matchLabels": {"app": "ctl"}},
                   "template": {"metadata": {"labels": {"app": "ctl"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
WI = {"apiVersion": WI_API, "kind": "WorkloadIdentity",
      "metadata": {"name": "ctl", "annotations": {"config.kubernetes.io/local-config": "true"}},
      "spec": {"workloadRef": {"kind": "Deployment", "name": "ctl"}}}


def grant(clients: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    spec = spec or {"kubernetes": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                                    "namespaces": ["ops"]}]}
    return {"apiVersion": WI_API, "kind": "AccessGrant",
            "metadata": {"name": "g", "annotations": {"config.kubernetes.io/local-config": "true"}},
            "spec": {"clients": clients, **spec}}


def read(*extra: dict[str, Any], ctx: dict[str, Any] = CTX) -> tuple[g.GrantSet, list, g.AccessSettings]:
    rl = ResourceList(items=[copy.deepcopy(o) for o in (ctx, DEPLOY, WI, *extra)])
    res = resolve(rl)
    assert res.ok, res.results
    results: list = []
    return g.read_grants(rl, res, results), results, g.access_settings(res.context)


def test_clients_resolve_to_ids_prefixes_and_trust_domains() -> None:
    gs, results, settings = read(grant([
        {"identity": "ctl"}, {"spiffeID": "spiffe://mgmt.example.net/ns/a/sa/b", "cluster": "mgmt"},
        {"spiffeIDPrefix": "spiffe://edge.example.net/ns/upf/"}, {"trustDomain": "mgmt.example.net"},
        {"spiffeIDPrefix": "spiffe://mgmt.example.net/"}]))
    assert results == []
    [gr] = gs.grants
    assert [(c.kind, c.value, c.trust_domain) for c in gr.clients] == [
        ("id", "spiffe://edge.example.net/ns/ops/sa/ctl", TD),
        ("id", "spiffe://mgmt.example.net/ns/a/sa/b", "mgmt.example.net"),
        ("prefix", "spiffe://edge.example.net/ns/upf/", TD),
        ("trustDomain", "mgmt.example.net", "mgmt.example.net"),
        ("trustDomain", "mgmt.example.net", "mgmt.example.net")]
    assert gr.clients[0].identity == "ctl" and gr.clients[1].cluster == "mgmt"
    assert gr.clients[2].covers("spiffe://edge.example.net/ns/upf/sa/upf")
    assert not gr.clients[2].covers("spiffe://edge.example.net/ns/upfx/sa/upf")
    assert gr.kubernetes[0].namespaces == ("ops",) and not gr.kubernetes[0].cluster_scope
    assert settings.kubernetes_audience == "kubernetes:edge01" and settings.username_prefix == "spiffe:"
    assert g.client_audiences(gs, settings) == {"ctl": ["kubernetes:edge01"]}
    assert set(g.issuers(resolve(ResourceList(items=[copy.deepcopy(CTX)])).context)) == {TD, "mgmt.example.net"}


def test_unknown_identity_is_an_error_naming_the_field() -> None:
    _, results, _ = read(grant([{"identity": "nope"}]))
    [r] = results
    assert "'nope' is not a WorkloadIdentity of this package (identities: ctl)" in r.message
    assert r.field_path == "spec.clients[0].identity" and r.resource_ref.kind == "AccessGrant"


def test_trust_domain_without_issuer_or_not_federated() -> None:
    _, results, _ = read(grant([{"trustDomain": "nojwt.example.net"}, {"spiffeID": "spiffe://other.net/a"}]))
    assert [r.field_path for r in results] == ["spec.clients[0].trustDomain", "spec.clients[1].spiffeID"]
    assert "spec.federation[1] has no jwtIssuer" in results[0].message
    assert "neither this cluster's (edge.example.net) nor a federation peer" in results[1].message
    ctx = copy.deepcopy(CTX)
    del ctx["spec"]["jwtIssuer"]
    _, results, _ = read(grant([{"identity": "ctl"}]), ctx=ctx)
    [r] = results
    assert "declares no JWT issuer for it" in r.message and "Add spec.jwtIssuer" in r.message


def test_namespaces_xor_cluster_scope_and_empty_grant() -> None:
    _, results, _ = read(grant([{"identity": "ctl"}], kubernetes=[
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]))
    assert [r.field_path for r in results] == ["spec.kubernetes[0].clusterScope"]
    _, results, _ = read(grant([{"identity": "ctl"}], kubernetes=[]))
    assert [r.field_path for r in results] == ["spec"] and "grants nothing" in results[0].message


def test_context_checks_prefix_audience_and_issuer_clash() -> None:
    ctx = copy.deepcopy(CTX)
    ctx["spec"]["access"] = {"kubernetes": {"usernamePrefix": "system:", "audience": "same"},
                             "secrets": {"audience": "same"}}
    ctx["spec"]["federation"][0]["jwtIssuer"] = ISSUER
    res = resolve(ResourceList(items=[ctx]))
    fields = [r.field_path for r in g.check_context(res.context)]
    assert fields == ["spec.access.kubernetes.usernamePrefix", "spec.access.secrets.audience",
                      "spec.federation[0].jwtIssuer.url"]

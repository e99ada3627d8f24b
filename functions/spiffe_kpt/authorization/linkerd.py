"""Linkerd backend (optional): Server + AuthorizationPolicy + MeshTLSAuthentication.

Semantics this relies on (Linkerd's authorization-policy docs): once a ``Server`` selects a
pod's port, only clients an ``AuthorizationPolicy`` targeting that Server authorizes may reach
it; ``MeshTLSAuthentication.spec.identities`` lists the mTLS identities that count, with ``*``
meaning every authenticated client. SPIFFE IDs are written there as they are: that is what a
Linkerd mesh whose proxies present SPIRE-issued identities (mesh expansion, Linkerd 2.15+)
matches. Linkerd has no SPIFFE path-prefix match (its ``*.`` wildcard is DNS-style), so
prefix and trust-domain peers are reported, not widened. Like Istio, Linkerd proxies TCP on
the pod network only; whole-namespace default deny is the namespace annotation
``config.linkerd.io/default-inbound-policy: deny``, which belongs to the namespace's owner.
"""

from __future__ import annotations

from typing import Any

from ..krm.results import Result, info, name_list, warning
from .model import PolicyModel

GROUP = "policy.linkerd.io"
SERVER_API = f"{GROUP}/v1beta3"
POLICY_API = f"{GROUP}/v1alpha1"
KINDS = frozenset({(SERVER_API, "Server"), (POLICY_API, "AuthorizationPolicy"),
                   (POLICY_API, "MeshTLSAuthentication")})


def build(model: PolicyModel) -> tuple[list[tuple[str, dict[str, Any]]], list[Result]]:
    objs: list[tuple[str, dict[str, Any]]] = []
    results: list[Result] = []
    if model.default_deny and model.namespaces:
        results.append(info(
            "linkerd: for zero trust on ports no rule names, annotate the namespaces "
            f"{name_list(model.namespaces)} with config.linkerd.io/default-inbound-policy: deny (the generated "
            "Servers already restrict the ports the rules name)"))
    for rule in model.egress_rules:
        results.append(info(
            f"linkerd: egress rule {rule.label} {model.egress_enforcement(rule)}: "
            "Linkerd authorizes at the server (Server, AuthorizationPolicy), by the ingress "
            "rules of the peer's package", rule.target.ref, rule.field_path))
    for rule in model.rules:
        t = rule.target
        if rule.network is not None:
            continue  # Multus traffic does not pass through the proxy; multinetworkpolicy's
        skipped = [p for p in rule.ports if p.protocol != "TCP"]
        if skipped:
            results.append(warning(
                f"linkerd: rule {rule.label} allows {', '.join(map(str, skipped))}, which Linkerd cannot enforce "
                "(the proxy carries TCP only); those ports are left to the network backends", t.ref,
                f"{rule.field_path}.ports"))
        ranges = [p for p in rule.ports if p.protocol == "TCP" and p.end]
        if ranges:
            results.append(warning(
                f"linkerd: rule {rule.label} allows {', '.join(map(str, ranges))}, but a Server selects one port, so "
                "no Server is generated for a range: the namespace's default inbound policy decides those ports "
                "(under zero trust, deny). List the ports the rule needs one by one", t.ref, f"{rule.field_path}.ports"))
        identities: list[str] = []
        if rule.allow_all:
            identities = ["*"]
            if any(p.protocol == "TCP" and not p.end for p in rule.ports):
                results.append(info(
                    f"linkerd: rule {rule.label} allows any peer (allowAll) as MeshTLSAuthentication '*', which "
                    "admits every meshed client: a client without a Linkerd proxy is refused", t.ref,
                    f"{rule.field_path}.allowAll"))
        for peer in rule.peers:
            if peer.kind in ("identity", "spiffeID"):
                sid = peer.endpoint.spiffe_id if peer.endpoint is not None else peer.value
                for one in model.also(sid):
                    if one not in identities:
                        identities.append(one)
            else:
                results.append(warning(
                    f"linkerd: rule {rule.label} allows {peer}, but MeshTLSAuthentication cannot match a SPIFFE "
                    "ID prefix or trust domain; this peer stays denied by linkerd. List exact spiffeIDs instead",
                    t.ref, peer.field_path))
        tcp = [p for p in rule.ports if p.protocol == "TCP" and not p.end]
        if not tcp:
            continue
        authn = f"{t.identity}-{rule.name}"
        if identities:
            objs.append((t.identity, {"apiVersion": POLICY_API, "kind": "MeshTLSAuthentication",
                                      "metadata": {"name": authn, "namespace": t.namespace},
                                      "spec": {"identities": identities}}))
        for p in tcp:
            server = f"{t.identity}-{p.number}"
            objs.append((t.identity, {"apiVersion": SERVER_API, "kind": "Server",
                                      "metadata": {"name": server, "namespace": t.namespace},
                                      "spec": {"podSelector": {"matchLabels": t.labels}, "port": p.number}}))
            if identities:
                objs.append((t.identity, {
                    "apiVersion": POLICY_API, "kind": "AuthorizationPolicy",
                    "metadata": {"name": f"{server}-{rule.name}", "namespace": t.namespace},
                    "spec": {"targetRef": {"group": GROUP, "kind": "Server", "name": server},
                             "requiredAuthenticationRefs": [{"group": GROUP, "kind": "MeshTLSAuthentication",
                                                             "name": authn}]}}))
    return objs, results

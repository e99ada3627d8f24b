"""Istio backend: AuthorizationPolicy and PeerAuthentication (security.istio.io/v1).

Semantics this relies on (Istio's authorization docs): a request to a workload that any ALLOW
policy selects is denied unless one of those policies' rules matches it; an
AuthorizationPolicy with an empty spec in a namespace ("allow-nothing") selects every workload
there and matches nothing, so it denies everything no other ALLOW policy allows. Principals
are the peer's SPIFFE ID without ``spiffe://`` and only exist under mutual TLS, hence a
PeerAuthentication STRICT for each workload of the package (selected by its identity labels,
named after the identity). Not namespace-wide: packages that share a namespace (an SMF and an
AMF package in one core namespace) would emit the same object and collide in ConfigSync, and a
namespace-wide STRICT would also refuse plaintext to workloads no package of ours describes.
A trailing ``*`` is a prefix match.

The sidecar only carries TCP: UDP and SCTP rules, and rules bound to a Multus network (whose
traffic does not pass through the sidecar's interface), are left to the network backends and
named in a result. Declared egress rules (``spec.egress``) get an info each: Istio authorizes
at the server (the server's package lists this client), and restricting a client's outbound
traffic would need an egress gateway or a Sidecar resource, which is not generated.
"""

from __future__ import annotations

from typing import Any

from ..krm.results import Result, info, name_list, warning
from .model import MESH_RANGE_LIMIT, PolicyModel, Rule

API_VERSION = "security.istio.io/v1"
AUTHZ = "AuthorizationPolicy"
PEER_AUTHN = "PeerAuthentication"
KINDS = frozenset({(API_VERSION, AUTHZ), (API_VERSION, PEER_AUTHN)})
ALLOW_NOTHING = "allow-nothing"


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace}


def build(model: PolicyModel) -> tuple[list[tuple[str, dict[str, Any]]], list[Result]]:
    """Resources as (owner identity or '' for a namespace baseline, object), and results."""
    objs: list[tuple[str, dict[str, Any]]] = []
    results: list[Result] = []
    if model.default_deny:
        for ns in model.namespaces:
            objs.append(("", {"apiVersion": API_VERSION, "kind": AUTHZ,
                              "metadata": _meta(model.baseline_name(ALLOW_NOTHING, ns), ns),
                              "spec": {}}))
    for identity in sorted(model.endpoints):
        ep = model.endpoints[identity]
        objs.append((identity, {"apiVersion": API_VERSION, "kind": PEER_AUTHN,
                                "metadata": _meta(identity, ep.namespace),
                                "spec": {"selector": {"matchLabels": ep.labels}, "mtls": {"mode": "STRICT"}}}))

    by_target: dict[str, list[Rule]] = {}
    for rule in model.rules:
        skipped = [p for p in rule.ports if p.protocol != "TCP"]
        too_long = [p for p in rule.ports if p.protocol == "TCP" and not p.meshable]
        if rule.network is not None:
            results.append(info(
                f"istio: rule {rule.label} is bound to Multus network {rule.network.ref}, whose traffic does not "
                "pass through the sidecar; it is left to multinetworkpolicy", rule.target.ref,
                f"{rule.field_path}.network"))
            continue
        if skipped:
            results.append(warning(
                f"istio: rule {rule.label} allows {', '.join(map(str, skipped))}, which Istio cannot enforce (the "
                "sidecar carries TCP only); those ports are left to the network backends", rule.target.ref,
                f"{rule.field_path}.ports"))
        if too_long:
            # The sidecar captures every inbound TCP port: a port no ALLOW rule lists is denied,
            # so this is a narrowing, not something left to the other backends.
            results.append(warning(
                f"istio: rule {rule.label} allows {', '.join(map(str, too_long))}, more than {MESH_RANGE_LIMIT} "
                "ports, which an AuthorizationPolicy cannot list (it has no port ranges): the sidecar captures them "
                "and Istio denies them. Narrow the range, or exclude it from the sidecar "
                "(traffic.sidecar.istio.io/excludeInboundPorts) so the network backends alone decide",
                rule.target.ref, f"{rule.field_path}.ports"))
        if rule.allow_all and any(p.meshable for p in rule.ports):
            results.append(info(
                f"istio: rule {rule.label} allows any peer (allowAll), but the workload's PeerAuthentication is "
                "STRICT: a client without a mesh certificate (no sidecar) is refused before authorization. For such "
                "clients, exclude the port from the sidecar (traffic.sidecar.istio.io/excludeInboundPorts)",
                rule.target.ref, f"{rule.field_path}.allowAll"))
        if any(p.meshable for p in rule.ports):
            by_target.setdefault(rule.target.identity, []).append(rule)

    for identity, rules in by_target.items():
        target = rules[0].target
        # One Istio rule per set of peers, with the ports of every rule that names them.
        by_peers: dict[tuple[str, ...] | None, list[str]] = {}
        for rule in rules:
            principals = {q for p in rule.peers for q in model.also(p.principal)}  # both IDs while migrating
            ports = by_peers.setdefault(None if rule.allow_all else tuple(sorted(principals)), [])
            ports.extend(str(n) for p in rule.ports if p.meshable for n in p.numbers if str(n) not in ports)
        spec_rules = []
        for principals, ports in by_peers.items():
            entry: dict[str, Any] = {}
            if principals is not None:
                entry["from"] = [{"source": {"principals": list(principals)}}]
            entry["to"] = [{"operation": {"ports": ports}}]
            spec_rules.append(entry)
        objs.append((identity, {
            "apiVersion": API_VERSION, "kind": AUTHZ, "metadata": _meta(identity, target.namespace),
            "spec": {"selector": {"matchLabels": target.labels}, "action": "ALLOW", "rules": spec_rules}}))

    for rule in model.egress_rules:
        results.append(info(
            f"istio: egress rule {rule.label} {model.egress_enforcement(rule)}: "
            "Istio authorizes at the server, by the ingress rules of the peer's package; "
            "restricting a client's outbound traffic in Istio would need an egress gateway or a Sidecar resource, "
            "which this function does not generate", rule.target.ref, rule.field_path))
    if model.non_istio_ids and model.rules:
        results.append(info(
            "istio: the SPIFFE IDs of " + name_list(sorted(model.non_istio_ids)) + " do not follow Istio's "
            "'ns/<namespace>/sa/<serviceAccount>' shape. The generated policies match exact principals (and "
            "prefixes), which works for any ID; what does not work for these IDs is Istio's 'namespaces' "
            "source matching and trust-domain aliases (meshConfig.trustDomainAliases rewrite only ns/sa IDs), "
            "so a trust-domain migration needs both IDs listed in the rules"))
    return objs, results

"""A small policy evaluator written from each backend's documented semantics, for the tests.

Deliberately independent of ``spiffe_kpt.authorization``: it reads only the generated
resources, the way the cluster would, so a bug in the generator cannot hide in the proof.

- NetworkPolicy (kubernetes.io docs, "Network Policies"): a pod selected by a policy whose
  policyTypes include a direction is isolated in that direction; it then admits exactly the
  union of those policies' rules. A connection needs the server's ingress and the client's
  egress. A peer with podSelector and namespaceSelector selects those pods in those
  namespaces; podSelector alone means the policy's namespace; an absent 'from'/'to' means
  every peer; an absent 'ports' every port; protocol defaults to TCP.
- MultiNetworkPolicy: the same, per network; a policy applies to the networks its
  k8s.v1.cni.cncf.io/policy-for annotation names (a bare name means the policy's namespace).
- Istio AuthorizationPolicy (istio.io docs, "Authorization Policy"): ALLOW policies of the
  pod's namespace whose selector matches (none = all pods); if there are none the request is
  allowed; otherwise it must match a rule: a rule without 'from' matches any source, principals
  match exactly or with a '*' prefix/suffix; without 'to' any port. An empty spec has no rules.
  Sidecars intercept TCP on the pod network only: other traffic is not Istio's to decide.
- Linkerd: a Server selecting the pod's port admits only clients an AuthorizationPolicy on
  that Server authenticates (MeshTLSAuthentication identities, '*' = any); a port no Server
  selects follows the namespace's default inbound policy: 'deny' in the namespaces the
  generator tells users to annotate under zero trust, 'all-unauthenticated' elsewhere.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

POD_NETWORK = ""
POLICY_FOR = "k8s.v1.cni.cncf.io/policy-for"


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    principal: str = ""  # SPIFFE ID, '' when the pod has none
    ip: str = ""
    networks: frozenset[str] = frozenset()  # '<ns>/<nad>' the pod is attached to
    in_cluster: bool = True


@dataclass(frozen=True)
class Flow:
    src: str
    dst: str
    port: int
    protocol: str
    network: str = POD_NETWORK


@dataclass
class Cluster:
    pods: dict[str, Pod]
    objects: list[dict[str, Any]] = field(default_factory=list)
    # Namespaces annotated config.linkerd.io/default-inbound-policy: deny (as the generator advises).
    linkerd_deny_namespaces: frozenset[str] = frozenset()

    def of(self, api: str, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("apiVersion") == api and o.get("kind") == kind]


def _labels(pod: Pod) -> dict[str, str]:
    return dict(pod.labels)


def selector_matches(sel: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if sel is None:
        return False
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in sel.get("matchExpressions") or []:
        has, val = expr["key"] in labels, labels.get(expr["key"])
        op = expr["operator"]
        if op == "In" and val not in expr.get("values", []) or op == "NotIn" and val in expr.get("values", []) \
                or op == "Exists" and not has or op == "DoesNotExist" and has:
            return False
    return True


def _ns_labels(ns: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": ns}


def _peer_matches(peer: dict[str, Any], pod: Pod, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        if not pod.ip:
            return False
        ip = ipaddress.ip_address(pod.ip)
        return ip in ipaddress.ip_network(peer["ipBlock"]["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in peer["ipBlock"].get("except") or [])
    if not pod.in_cluster:
        return False  # selectors only ever select pods of this cluster
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], _ns_labels(pod.namespace)):
            return False
    elif pod.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], _labels(pod))


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    # endPort: the ports port..endPort (NetworkPolicy's port range).
    return any(p.get("protocol", "TCP") == protocol
               and (p.get("port") is None or p["port"] <= port <= p.get("endPort", p["port"])) for p in ports)


def _direction_allows(policies: list[dict[str, Any]], subject: Pod, other: Pod, flow: Flow, direction: str) -> bool:
    key, peer_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [p for p in policies if p["metadata"].get("namespace") == subject.namespace
                 and direction in (p["spec"].get("policyTypes") or ["Ingress"])
                 and selector_matches(p["spec"].get("podSelector") or {}, _labels(subject))]
    if not selecting:
        return True  # not isolated in this direction
    for pol in selecting:
        for rule in pol["spec"].get(key) or []:
            peers = rule.get(peer_key)
            if (peers is None or any(_peer_matches(pr, other, pol["metadata"]["namespace"]) for pr in peers)) \
                    and _port_matches(rule.get("ports"), flow.port, flow.protocol):
                return True
    return False


def _l3_allows(policies: list[dict[str, Any]], c: Cluster, flow: Flow) -> bool:
    src, dst = c.pods[flow.src], c.pods[flow.dst]
    ok = _direction_allows(policies, dst, src, flow, "Ingress")
    if src.in_cluster:  # another cluster's egress is not ours to evaluate
        ok = ok and _direction_allows(policies, src, dst, flow, "Egress")
    return ok


def networkpolicy_allows(c: Cluster, flow: Flow) -> bool:
    assert flow.network == POD_NETWORK
    return _l3_allows(c.of("networking.k8s.io/v1", "NetworkPolicy"), c, flow)


def _multinetworkpolicies(c: Cluster, flow: Flow) -> list[dict[str, Any]]:
    def for_network(p: dict[str, Any]) -> bool:
        ns = p["metadata"]["namespace"]
        refs = [r.strip() for r in str((p["metadata"].get("annotations") or {}).get(POLICY_FOR, "")).split(",")]
        return flow.network in [r if "/" in r else f"{ns}/{r}" for r in refs if r]
    return [p for p in c.of("k8s.cni.cncf.io/v1beta1", "MultiNetworkPolicy") if for_network(p)]


def multinetworkpolicy_allows(c: Cluster, flow: Flow) -> bool:
    assert flow.network != POD_NETWORK
    return _l3_allows(_multinetworkpolicies(c, flow), c, flow)


def side_allows(c: Cluster, flow: Flow, backend: str, side: str) -> bool:
    """One end's decision alone: 'ingress' at the server (every backend), 'egress' at the client
    (the network backends; the meshes authorize at the server only)."""
    if backend in ("istio", "linkerd"):
        assert side == "ingress"
        return EVALUATORS[backend](c, flow)
    policies = c.of("networking.k8s.io/v1", "NetworkPolicy") if backend == "networkpolicy" \
        else _multinetworkpolicies(c, flow)
    src, dst = c.pods[flow.src], c.pods[flow.dst]
    if side == "ingress":
        return _direction_allows(policies, dst, src, flow, "Ingress")
    return _direction_allows(policies, src, dst, flow, "Egress")


def _principal_matches(patterns: list[str], principal: str) -> bool:
    for p in patterns:
        if p == "*" or p == principal or p.endswith("*") and principal.startswith(p[:-1]) \
                or p.startswith("*") and principal.endswith(p[1:]):
            return True
    return False


def istio_allows(c: Cluster, flow: Flow) -> bool:
    """Only for TCP on the pod network (what the sidecar sees)."""
    assert flow.protocol == "TCP" and flow.network == POD_NETWORK
    src, dst = c.pods[flow.src], c.pods[flow.dst]
    principal = src.principal.removeprefix("spiffe://") if src.principal else ""
    policies = [p for p in c.of("security.istio.io/v1", "AuthorizationPolicy")
                if p["metadata"]["namespace"] == dst.namespace
                and (p.get("spec") or {}).get("action", "ALLOW") == "ALLOW"
                and ("selector" not in (p.get("spec") or {}) or selector_matches(p["spec"]["selector"], _labels(dst)))]
    strict = any(p["metadata"]["namespace"] == dst.namespace and p["spec"].get("mtls", {}).get("mode") == "STRICT"
                 and ("selector" not in p["spec"] or selector_matches(p["spec"]["selector"], _labels(dst)))
                 for p in c.of("security.istio.io/v1", "PeerAuthentication"))
    if strict and not principal:
        return False  # plaintext is refused before authorization, whatever the ALLOW policies say
    if not policies:
        return True
    for pol in policies:
        for rule in (pol.get("spec") or {}).get("rules") or []:
            froms = rule.get("from")
            src_ok = froms is None or any(_principal_matches(f["source"].get("principals", ["*"]), principal)
                                          for f in froms if principal)
            tos = rule.get("to")
            port_ok = tos is None or any(str(flow.port) in (t["operation"].get("ports") or [str(flow.port)])
                                         for t in tos)
            if src_ok and port_ok:
                return True
    return False


def linkerd_allows(c: Cluster, flow: Flow) -> bool:
    assert flow.protocol == "TCP" and flow.network == POD_NETWORK
    src, dst = c.pods[flow.src], c.pods[flow.dst]
    servers = [s for s in c.of("policy.linkerd.io/v1beta3", "Server")
               if s["metadata"]["namespace"] == dst.namespace and s["spec"]["port"] == flow.port
               and selector_matches(s["spec"]["podSelector"], _labels(dst))]
    if not servers:
        return dst.namespace not in c.linkerd_deny_namespaces  # the namespace's default inbound policy
    authns = {(a["metadata"]["namespace"], a["metadata"]["name"]): a["spec"].get("identities") or []
              for a in c.of("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication")}
    for pol in c.of("policy.linkerd.io/v1alpha1", "AuthorizationPolicy"):
        ns = pol["metadata"]["namespace"]
        if not any(pol["spec"]["targetRef"]["name"] == s["metadata"]["name"] and ns == s["metadata"]["namespace"]
                   for s in servers):
            continue
        for ref in pol["spec"].get("requiredAuthenticationRefs") or []:
            ids = authns.get((ns, ref["name"]), [])
            if "*" in ids and src.principal or src.principal and src.principal in ids:
                return True
    return False


def governed(backend: str, flow: Flow) -> bool:
    """Which flows a backend decides on at all."""
    if backend in ("istio", "linkerd"):
        return flow.protocol == "TCP" and flow.network == POD_NETWORK
    if backend == "networkpolicy":
        return flow.network == POD_NETWORK
    return flow.network != POD_NETWORK


EVALUATORS = {"istio": istio_allows, "networkpolicy": networkpolicy_allows,
              "multinetworkpolicy": multinetworkpolicy_allows, "linkerd": linkerd_allows}


def allowed(c: Cluster, flow: Flow, backends: list[str]) -> bool:
    """End to end: every backend that decides on the flow must allow it."""
    return all(EVALUATORS[b](c, flow) for b in backends if governed(b, flow))

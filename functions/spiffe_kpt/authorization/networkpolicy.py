"""Kubernetes NetworkPolicy backend (networking.k8s.io/v1), and the peer/port logic that
MultiNetworkPolicy shares (its spec is NetworkPolicy's).

Semantics this relies on (Kubernetes docs): a pod selected by any policy of a direction is
isolated in that direction, and then allowed exactly the union of those policies' rules; a
connection needs the server's ingress and the client's egress to allow it. So, under zero
trust, each namespace of the package's identities gets one ``default-deny-<identity>`` policy
(named after the package's first identity there, so packages sharing a namespace don't collide; every pod,
both directions, DNS egress kept), each protected workload an ``<identity>-ingress`` policy,
and each client an ``<identity>-egress`` policy towards the servers it may reach: those of the
package whose ingress rules name it, and the peers of its own declared egress rules
(``spec.egress``, for servers in other packages or clusters), merged into that one policy
without repeating a peer and port the other already opens.

Peers are selected by the same attestation attributes the registrations use: the identity's
selector labels and the namespace's immutable ``kubernetes.io/metadata.name`` label. A peer
outside the package is selected by namespace when its ID (or prefix) in this trust domain names
a namespace of this cluster (Istio's ``/ns/<ns>/...``, or the ``cluster``/``region`` format with
this cluster's name), and by namespace and its ``podLabels`` when the rule gives them; by ipBlock
when it runs in a peer cluster whose CIDRs the context lists; otherwise it cannot be expressed: a
warning says why, and the peer stays denied (never an empty, allow-all peer). Every selection
wider than the rule (a namespace, an address range) gets a result naming the flows it admits
beyond the rule. Entries with the same peers are merged into one.
"""

from __future__ import annotations

import json
from typing import Any

from ..krm.results import Result, info, warning
from .model import NAMESPACE_NAME_LABEL, Peer, PolicyModel, Port, Rule

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
KINDS = frozenset({(API_VERSION, KIND)})
DEFAULT_DENY = "default-deny"


def ns_selector(namespace: str) -> dict[str, Any]:
    return {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}


def ports_of(ports: list[Port]) -> list[dict[str, Any]]:
    return [{"protocol": p.protocol, "port": p.number, **({"endPort": p.end} if p.end else {})} for p in ports]


def peers_of(rule: Rule, backend: str, results: list[Result], model: PolicyModel | None = None
             ) -> list[dict[str, Any]]:
    """The rule's peers as NetworkPolicyPeers, each distinct peer once; a result for every peer
    selected more widely than the rule says (by namespace or address: which flows it admits
    beyond the rule) and a warning for every peer that cannot be expressed (it stays denied)."""
    out: list[dict[str, Any]] = []
    allows = "allows" if rule.direction == "ingress" else "may reach"
    label = f"{rule.what} {rule.label}"

    def add(entry: dict[str, Any]) -> None:
        if entry not in out:  # two IDs of one namespace are one namespaceSelector
            out.append(entry)

    for peer in rule.peers:
        if peer.endpoint is not None:
            add({"podSelector": {"matchLabels": peer.endpoint.labels},
                 "namespaceSelector": ns_selector(peer.endpoint.namespace)})
        elif peer.cidrs:
            for c in peer.cidrs:
                add({"ipBlock": {"cidr": c}})
            results.append(_by_address(rule, peer, backend, model))
        elif peer.cluster:
            results.append(warning(
                f"{backend}: {label} {allows} {peer}, but {backend} cannot select pods of another "
                f"cluster and IdentityContext spec.policy.peerClusters gives no CIDRs for {peer.cluster!r}; "
                f"this peer stays denied by {backend}. Add the peer's address ranges (pod CIDRs, or its addresses on "
                "the rule's Multus network) to spec.policy.peerClusters",
                rule.target.ref, peer.field_path))
        elif peer.namespace and peer.pod_labels:
            add({"podSelector": {"matchLabels": dict(peer.pod_labels)},
                 "namespaceSelector": ns_selector(peer.namespace)})
        elif peer.namespace:
            add({"namespaceSelector": ns_selector(peer.namespace)})
            results.append(info(
                f"{backend}: {label} {allows} {peer}, a workload outside the package, which {backend} selects by "
                f"its namespace only: beyond the rule, {_beyond(rule, f'every pod of namespace {peer.namespace!r}')}. "
                "Add podLabels (the labels of its pods) to the peer to select only its pods",
                rule.target.ref, peer.field_path))
        else:
            results.append(warning(
                f"{backend}: {label} {allows} {peer}, which {backend} cannot select: {peer.advice}. This peer stays "
                f"denied by {backend}", rule.target.ref, peer.field_path))
    return out


def _beyond(rule: Rule, who: str) -> str:
    """The flows a peer selected too widely adds: '<who> may reach <target> on <ports>'."""
    ports = ", ".join(map(str, rule.ports))
    on = f" on network {rule.network.ref}" if rule.network is not None else ""
    if rule.direction == "ingress":
        return f"{who} may reach {rule.target.identity} on {ports}{on}"
    return f"{rule.target.identity} may reach {who} on {ports}{on}"


def _mesh_checks(rule: Rule, model: PolicyModel | None) -> str:
    """The enabled mesh that checks an ingress peer's SPIFFE ID on the rule's path, '' if none:
    meshes see single TCP ports on the pod network only, and authorize at the server."""
    if model is None or rule.direction != "ingress" or rule.network is not None \
            or not all(p.meshable for p in rule.ports):
        return ""
    linkerd = all(not p.end for p in rule.ports)
    return next((b for b in ("istio", "linkerd") if model.enabled(b) and (b == "istio" or linkerd)), "")


def _by_address(rule: Rule, peer: Peer, backend: str, model: PolicyModel | None) -> Result:
    """A peer admitted by spec.policy.peerClusters address ranges. A warning when nothing else
    checks who is behind the address on the server's side: then the range alone decides who
    gets in (anyone holding such an address, on the pod network or the same Multus network)."""
    who = f"any workload holding an address in {', '.join(peer.cidrs)} (whatever its identity or namespace)"
    head = (f"{backend}: {rule.what} {rule.label} {'allows' if rule.direction == 'ingress' else 'may reach'} "
            f"{peer} by the address ranges spec.policy.peerClusters gives for cluster {peer.cluster}: beyond the "
            f"rule, {_beyond(rule, who)}")
    mesh = _mesh_checks(rule, model)
    if mesh:
        return info(f"{head}; {mesh} still checks the SPIFFE ID", rule.target.ref, peer.field_path)
    if rule.direction == "egress":
        return info(f"{head}; who the server is, is checked only by its own cluster's policy",
                    rule.target.ref, peer.field_path)
    return warning(
        f"{head}, and no enabled backend checks the SPIFFE ID on this path (a Multus network, UDP, SCTP or a "
        "port range bypasses the mesh), so the address is the whole check. A peer in another cluster has no "
        "exact form: keep the range as narrow as its addresses (see 'Network-level peers' in the "
        "authorization README)", rule.target.ref, peer.field_path)


def ingress_entry(rule: Rule, peers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One ingress rule; None when no peer could be expressed (an entry without 'from' would
    admit everyone, the opposite of what the rule says)."""
    if rule.allow_all:
        return {"ports": ports_of(rule.ports)}
    if not peers:
        return None
    return {"from": peers, "ports": ports_of(rule.ports)}


def build(model: PolicyModel) -> tuple[list[tuple[str, dict[str, Any]]], list[Result]]:
    objs: list[tuple[str, dict[str, Any]]] = []
    results: list[Result] = []
    if model.default_deny:
        for ns in model.namespaces:
            spec: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
            if model.dns.allow:
                spec["egress"] = [{
                    "to": [{"namespaceSelector": ns_selector(model.dns.namespace),
                            "podSelector": {"matchLabels": dict(model.dns.pod_labels)}}],
                    "ports": [{"protocol": "UDP", "port": model.dns.port},
                              {"protocol": "TCP", "port": model.dns.port}]}]
            if model.enabled("istio") and model.istiod.allow:
                spec.setdefault("egress", []).append({
                    "to": [{"namespaceSelector": ns_selector(model.istiod.namespace),
                            "podSelector": {"matchLabels": dict(model.istiod.pod_labels)}}],
                    "ports": [{"protocol": "TCP", "port": model.istiod.port}]})
            objs.append(("", {"apiVersion": API_VERSION, "kind": KIND,
                              "metadata": {"name": model.baseline_name(DEFAULT_DENY, ns), "namespace": ns}, "spec": spec}))

    ingress: dict[str, list[dict[str, Any]]] = {}
    egress: dict[str, list[dict[str, Any]]] = {}
    for rule in model.rules:
        if rule.network is not None:
            continue  # secondary-network traffic is MultiNetworkPolicy's
        # Seeded even when no peer can be expressed: the policy must exist to isolate the target
        # when defaultDeny is off (an empty ingress list then denies all, as the rules demand).
        entries = ingress.setdefault(rule.target.identity, [])
        entry = ingress_entry(rule, peers_of(rule, "networkpolicy", results, model))
        if entry is not None:
            entries.append(entry)
        if model.default_deny:
            add_egress(rule, egress)
    if model.default_deny:
        for rule in model.egress_rules:
            if rule.network is None:
                add_declared_egress(rule, egress, "networkpolicy", results, model)
    objs.extend(policies(model, ingress, egress, lambda ident, direction: f"{ident}-{direction}", {}))
    return objs, results


def add_egress(rule: Rule, egress: dict[str, list[dict[str, Any]]]) -> None:
    """The client side of an ingress rule: only clients in the package are ours to open (a client
    in another package opens its own egress with spec.egress)."""
    target = rule.target
    for peer in rule.peers:
        if peer.endpoint is not None:
            merge_entry(entries_of(egress, peer.endpoint.identity), {
                "to": [{"podSelector": {"matchLabels": target.labels},
                        "namespaceSelector": ns_selector(target.namespace)}],
                "ports": ports_of(rule.ports)})


def add_declared_egress(rule: Rule, egress: dict[str, list[dict[str, Any]]], backend: str,
                        results: list[Result], model: PolicyModel | None = None) -> None:
    """A declared egress rule (spec.egress) at its client, in the same per-client policy as the
    egress derived from the package's ingress rules. Seeded even when no peer can be expressed:
    the client stays isolated (default deny) and the warning says which peer stays denied."""
    entries = entries_of(egress, rule.target.identity)
    if rule.allow_all:
        merge_entry(entries, {"ports": ports_of(rule.ports)})
        return
    peers = peers_of(rule, backend, results, model)
    if peers:
        merge_entry(entries, {"to": peers, "ports": ports_of(rule.ports)})


class EgressEntries(list):
    """A client's egress entries plus an index of what they already open, so that merging an
    entry costs what the entry holds, not what the client already has (a client named by
    thousands of rules made the earlier scan quadratic)."""

    def __init__(self) -> None:
        super().__init__()
        self.any_peer_ports: set[str] = set()   # ports open towards every peer
        self.any_peer_any_port = False
        self.peer_any_port: set[str] = set()    # peers reachable on every port
        self.pairs: set[tuple[str, str]] = set()

    def covered(self, peer: dict[str, Any] | None, port: dict[str, Any]) -> bool:
        if self.any_peer_any_port:
            return True
        pk = _key(port)
        if pk in self.any_peer_ports:
            return True
        if peer is None:
            return False
        rk = _key(peer)
        return rk in self.peer_any_port or (rk, pk) in self.pairs

    def add(self, entry: dict[str, Any]) -> None:
        self.append(entry)
        ports = entry.get("ports")
        if "to" not in entry:
            if not ports:
                self.any_peer_any_port = True
            self.any_peer_ports.update(_key(p) for p in ports or [])
            return
        for peer in entry["to"]:
            rk = _key(peer)
            if not ports:
                self.peer_any_port.add(rk)
            self.pairs.update((rk, _key(p)) for p in ports or [])


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def entries_of(egress: dict[str, list[dict[str, Any]]], identity: str) -> EgressEntries:
    entries = egress.get(identity)
    if entries is None:
        entries = egress[identity] = EgressEntries()
    return entries  # type: ignore[return-value]


def merge_entry(entries: EgressEntries, entry: dict[str, Any]) -> None:
    """Append an egress entry, leaving out what earlier entries already open: a peer whose every
    port is allowed towards it is dropped, an entry left with no peer is not added. So a declared
    egress that repeats one derived from an ingress rule of the package adds nothing."""
    if "to" not in entry:
        if not all(entries.covered(None, p) for p in entry["ports"]):
            entries.add(entry)
        return
    peers = [pr for pr in entry["to"] if not all(entries.covered(pr, p) for p in entry["ports"])]
    if peers:
        entries.add({"to": peers, "ports": entry["ports"]})


def merged(entries: list[dict[str, Any]], peers_key: str) -> list[dict[str, Any]]:
    """Entries with the same peers as one entry with the ports of all (in first-seen order): two
    rules towards one destination are one NetworkPolicy rule, not two. The union of entries is
    what a policy allows, so this changes nothing but the reading."""
    out: list[dict[str, Any]] = []
    by_peers: dict[str, dict[str, Any]] = {}
    for entry in entries:
        key = _key(sorted(_key(p) for p in entry[peers_key])) if peers_key in entry else ""
        first = by_peers.get(key)
        if first is None:
            first = by_peers[key] = {**entry, "ports": list(entry["ports"])}
            out.append(first)
            continue
        first["ports"].extend(p for p in entry["ports"] if p not in first["ports"])
    return out


def policies(model: PolicyModel, ingress: dict[str, list[dict[str, Any]]], egress: dict[str, list[dict[str, Any]]],
              name: Any, ann: dict[str, str], api_version: str = API_VERSION, kind: str = KIND
              ) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for direction, entries, key in (("ingress", ingress, "ingress"), ("egress", egress, "egress")):
        for ident in sorted(entries):
            ep = model.endpoints[ident]
            meta: dict[str, Any] = {"name": name(ident, direction), "namespace": ep.namespace}
            if ann:
                meta["annotations"] = dict(ann)
            out.append((ident, {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {
                "podSelector": {"matchLabels": ep.labels},
                "policyTypes": [direction.capitalize()],
                key: merged(entries[ident], "from" if direction == "ingress" else "to")}}))
    return out

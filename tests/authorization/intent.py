"""What a rendered package's rules mean, read from the rules themselves, and what each backend
has said it does differently: the oracle of test_intent.

Independent of ``spiffe_kpt.authorization``, like the evaluator: it reads the WorkloadIdentity
rules as the README documents them (peers by identity, exact ID, ID prefix, trust domain, with
'cluster' and 'podLabels'; ports and ranges; networks) and the results the render returned,
and builds a world of pods to try them on: the package's pods, a pod for every peer the rules
name, placed where its ID says it runs, a decoy next to each (same namespace or same address
range, another ID), a stranger, kube-dns and istiod.

A flow is decided at two ends: the server's ingress (every backend) and, under default deny,
the client's egress (the network backends). For each end and backend, the expected decision is
the rules' intent, changed only where a result of the render announced a difference for that
rule, peer or port: a peer selected by namespace or by address (wider), a peer a backend cannot
select (denied), ports a mesh denies or does not carry, plaintext clients a mesh refuses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from .evaluator import POD_NETWORK, Cluster, Flow, Pod
from .helpers import cluster_of, generated

PEER_PATH = re.compile(r"^spec\.(ingress|egress)\[(\d+)\]\.(?:from|to)\[(\d+)\]$")
RULE_PATH = re.compile(r"^spec\.(ingress|egress)\[(\d+)\]")
NS_IN_PATH = re.compile(r"^(?:(?:/region/[^/]+)?/cluster/([^/]+))?/ns/([^/]+)/")


@dataclass
class Rule:
    identity: str
    direction: str
    index: int
    peers: list[dict[str, Any]]
    allow_all: bool
    ports: list[tuple[int, int, str]]  # first, last, protocol
    network: str  # '' for the pod network, else '<ns>/<name>'


@dataclass
class Said:
    """What the render's results announce, per (backend, identity, direction, rule, peer)."""
    denied: set[tuple] = field(default_factory=set)
    by_namespace: dict[tuple, str] = field(default_factory=dict)
    by_address: dict[tuple, list[str]] = field(default_factory=dict)
    # (backend, identity, direction, rule) -> ports the backend denies although the rule allows them
    ports_denied: dict[tuple, set[tuple[int, int, str]]] = field(default_factory=dict)
    plaintext_refused: set[tuple] = field(default_factory=set)  # (backend, identity, direction, rule)


@dataclass
class World:
    cluster: Cluster
    rules: list[Rule]
    backends: list[str]
    default_deny: bool
    trust_domain: str
    cluster_name: str
    pod_of: dict[str, str]  # identity -> its pod
    id_of: dict[str, str]  # identity -> SPIFFE ID
    namespaces: set[str]  # the package's namespaces (where its baselines apply)
    pod_cluster: dict[str, str]  # pod -> cluster it runs in ('' = this one)
    said: Said
    dns: dict[str, Any]
    istiod: dict[str, Any]


def _ports(raw: list[dict[str, Any]], named: dict[str, tuple[int, str]]) -> list[tuple[int, int, str]]:
    out = []
    for p in raw:
        if isinstance(p["port"], str):
            number, proto = named[p["port"]]
            out.append((number, number, p.get("protocol", proto)))
        else:
            out.append((p["port"], p.get("endPort", p["port"]), p.get("protocol", "TCP")))
    return out


def _named_ports(workload: dict[str, Any]) -> dict[str, tuple[int, str]]:
    spec = workload["spec"]["template"]["spec"]
    return {p["name"]: (p["containerPort"], p.get("protocol", "TCP"))
            for c in spec.get("containers", []) + spec.get("initContainers", []) for p in c.get("ports") or []
            if p.get("name")}


def read_rules(items: list[dict[str, Any]]) -> tuple[list[Rule], dict[str, str], dict[str, str], dict[str, str]]:
    """Rules, identity -> workload name, identity -> SPIFFE ID, identity -> namespace."""
    workloads = {o["metadata"]["name"]: o for o in items if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")}
    rules: list[Rule] = []
    wl_of, id_of, ns_of = {}, {}, {}
    wis = [o for o in items if o.get("kind") == "WorkloadIdentity"]
    for wi in wis:
        name = wi["metadata"]["name"]
        wl_of[name] = wi["spec"]["workloadRef"]["name"]
        id_of[name] = (wi.get("status") or {}).get("spiffeID", "")
        ns_of[name] = workloads[wl_of[name]]["metadata"]["namespace"]
    for wi in wis:
        name = wi["metadata"]["name"]
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for i, r in enumerate(wi["spec"].get(direction) or []):
                if direction == "ingress":
                    named = _named_ports(workloads[wl_of[name]])
                else:  # a name is the servers' port: every 'to' peer is an identity then
                    named = {}
                    for p in r.get("to") or []:
                        if "identity" in p:
                            named.update(_named_ports(workloads[wl_of[p["identity"]]]))
                net = r.get("network") or ""
                if net and "/" not in net:
                    net = f"{ns_of[name]}/{net}"
                rules.append(Rule(name, direction, i, list(r.get(key) or []), bool(r.get("allowAll")),
                                  _ports(r["ports"], named), net))
    return rules, wl_of, id_of, ns_of


def read_said(results: list[dict[str, Any]]) -> Said:
    said = Said()
    for r in results:
        msg, path = r["message"], (r.get("field") or {}).get("path", "")
        backend = msg.split(":")[0]
        ident = (r.get("resourceRef") or {}).get("name", "")
        peer = PEER_PATH.match(path)
        if peer:
            key = (backend, ident, peer.group(1), int(peer.group(2)), int(peer.group(3)))
            if "stays denied" in msg:
                said.denied.add(key)
            elif "selects by its namespace only" in msg:
                said.by_namespace[key] = re.search(r"every pod of namespace '([^']+)'", msg).group(1)
            elif "by the address ranges" in msg:
                said.by_address[key] = re.search(r"holding an address in (.+?) \(", msg).group(1).split(", ")
            continue
        rule = RULE_PATH.match(path)
        if not rule:
            continue
        key = (backend, ident, rule.group(1), int(rule.group(2)))
        if "Istio denies them" in msg or "no Server is generated for a range" in msg:
            listed = re.search(r"allows (.+?), (?:more than|but a Server)", msg).group(1)
            for item in listed.split(", "):
                proto, ports = item.split(" ")
                first, _, last = ports.partition("-")
                said.ports_denied.setdefault(key, set()).add((int(first), int(last or first), proto))
        elif "is refused" in msg and "allowAll" in msg:
            said.plaintext_refused.add(key)
    return said


def _cidr_host(cidr: str, n: int) -> str:
    net = ipaddress.ip_network(cidr)
    return str(net[min(n, net.num_addresses - 1)])


def build_world(items: list[dict[str, Any]], results: list[dict[str, Any]]) -> World:
    ctx = next(o for o in items if o.get("kind") == "IdentityContext")
    policy = ctx["spec"].get("policy") or {}
    wc = next((o for o in items if o.get("kind") == "WorkloadCluster"), None)
    cluster_name = ctx["spec"].get("clusterName") or (wc or {}).get("spec", {}).get("clusterName", "")
    td = ctx["spec"]["trustDomain"]
    peer_cidrs = {c["name"]: c["cidrs"] for c in policy.get("peerClusters") or []}
    rules, wl_of, id_of, ns_of = read_rules(items)
    c = cluster_of(items)
    c.objects = generated(items)
    default_deny = policy.get("defaultDeny", True)
    namespaces = {p.namespace for p in c.pods.values()}
    if default_deny:
        c.linkerd_deny_namespaces = frozenset(namespaces)  # as the generator's info advises
    networks = frozenset(n for p in c.pods.values() for n in p.networks) | {r.network for r in rules if r.network}
    pod_cluster = {p: "" for p in c.pods}
    dns = {"namespace": "kube-system", "podLabels": {"k8s-app": "kube-dns"}, "port": 53, "allow": True,
           **(policy.get("dns") or {})}
    istiod = {"namespace": "istio-system", "podLabels": {"app": "istiod"}, "port": 15012, "allow": True,
              **(policy.get("istiod") or {})}
    c.pods["kube-dns"] = Pod("kube-dns", dns["namespace"], tuple(sorted(dns["podLabels"].items())))
    c.pods["istiod"] = Pod("istiod", istiod["namespace"], tuple(sorted(istiod["podLabels"].items())))
    pod_cluster.update({"kube-dns": "", "istiod": ""})
    c.pods["stranger"] = Pod("stranger", "elsewhere", (("app", "stranger"),), principal="spiffe://stranger.example/x",
                             ip="203.0.113.9", networks=networks, in_cluster=False)
    pod_cluster["stranger"] = "nowhere"
    # One pod per exact ID, whichever rules name it, with every podLabels given for it: a
    # workload has one set of labels.
    labels_of: dict[str, dict[str, str]] = {}
    for rule in rules:
        for p in rule.peers:
            if "spiffeID" in p and p.get("podLabels"):
                labels_of.setdefault(p["spiffeID"], {}).update(p["podLabels"])
    k = 0
    seen: set[tuple[str, str]] = set()
    for rule in rules:
        for p in rule.peers:
            if "identity" in p or p.get("spiffeID") in id_of.values() and not p.get("cluster"):
                continue  # a pod of the package: already there
            if "spiffeID" in p:
                if (p["spiffeID"], p.get("cluster", "")) in seen:
                    continue
                seen.add((p["spiffeID"], p.get("cluster", "")))
            k += 1
            if "spiffeID" in p:
                principal = p["spiffeID"]
            elif "spiffeIDPrefix" in p:
                principal = p["spiffeIDPrefix"] + f"peer{k}"
            else:
                principal = f"spiffe://{p['trustDomain']}/peer{k}"
            peer_td, path = principal[len("spiffe://"):].split("/", 1)[0], "/" + principal[len("spiffe://"):].split("/", 1)[1]
            m = NS_IN_PATH.match(path)
            where = p.get("cluster", "")
            if where == cluster_name:
                where = ""
            if not where and peer_td == td and m and m.group(1) in (None, cluster_name):
                ns = m.group(2)  # a pod of this cluster, in the namespace its ID names
                labels = tuple(sorted((labels_of.get(principal) or p.get("podLabels") or {"peer": f"p{k}"}).items()))
                c.pods[f"peer{k}"] = Pod(f"peer{k}", ns, labels, principal=principal, networks=networks)
                c.pods[f"decoy{k}"] = Pod(f"decoy{k}", ns, (("peer", f"d{k}"),),
                                          principal=f"spiffe://{td}/ns/{ns}/sa/decoy{k}-not-named", networks=networks)
                pod_cluster[f"peer{k}"] = pod_cluster[f"decoy{k}"] = ""
                continue
            cidrs = peer_cidrs.get(where) or []
            ip = _cidr_host(cidrs[0], 5) if cidrs else f"198.51.100.{k % 250 + 1}"
            c.pods[f"peer{k}"] = Pod(f"peer{k}", "remote", (("peer", f"p{k}"),), principal=principal, ip=ip,
                                     networks=networks, in_cluster=False)
            pod_cluster[f"peer{k}"] = where or "unknown"
            if cidrs:  # another workload of the same range, with another identity
                c.pods[f"decoy{k}"] = Pod(f"decoy{k}", "remote", (("peer", f"d{k}"),),
                                          principal=f"spiffe://decoy.example/d{k}", ip=_cidr_host(cidrs[0], 6),
                                          networks=networks, in_cluster=False)
                pod_cluster[f"decoy{k}"] = where
    pod_of = {ident: wl for ident, wl in wl_of.items() if wl in c.pods}
    return World(c, rules, list(policy.get("backends") or []), default_deny, td, cluster_name, pod_of, id_of,
                 namespaces, pod_cluster, read_said(results), dns, istiod)


# ---- intent

def _principal_matches(p: dict[str, Any], pod: Pod) -> bool:
    if "spiffeID" in p:
        return pod.principal == p["spiffeID"]
    if "spiffeIDPrefix" in p:
        return pod.principal.startswith(p["spiffeIDPrefix"])
    return pod.principal.startswith(f"spiffe://{p['trustDomain']}/")


def peer_matches(w: World, rule: Rule, j: int, pod_name: str, backend: str) -> bool:
    """Whether peer j of the rule is this pod, as the rule says, or as the backend announced."""
    key = (backend, rule.identity, rule.direction, rule.index, j)
    pod = w.cluster.pods[pod_name]
    if key in w.said.denied:
        return False
    if key in w.said.by_namespace:
        return pod.in_cluster and pod.namespace == w.said.by_namespace[key]
    if key in w.said.by_address:
        return bool(pod.ip) and any(ipaddress.ip_address(pod.ip) in ipaddress.ip_network(c)
                                    for c in w.said.by_address[key])
    p = rule.peers[j]
    if "identity" in p:
        return w.pod_of.get(p["identity"]) == pod_name
    # An ID is one identity wherever it runs: 'cluster' says where to find it (for the network
    # backends' address ranges), it does not make the same ID elsewhere someone else.
    return _principal_matches(p, pod)


def _port_in(rule: Rule, flow: Flow, backend: str, w: World) -> bool:
    denied = w.said.ports_denied.get((backend, rule.identity, rule.direction, rule.index), set())
    return any(proto == flow.protocol and first <= flow.port <= last and (first, last, proto) not in denied
               for first, last, proto in rule.ports)


def _rule_admits(w: World, rule: Rule, other: str, flow: Flow, backend: str) -> bool:
    if rule.network != flow.network or not _port_in(rule, flow, backend, w):
        return False
    if rule.allow_all:
        key = (backend, rule.identity, rule.direction, rule.index)
        return not (key in w.said.plaintext_refused and not w.cluster.pods[other].principal)
    return any(peer_matches(w, rule, j, other, backend) for j in range(len(rule.peers)))


def expected_ingress(w: World, flow: Flow, backend: str) -> bool:
    """Under default deny: the server admits exactly what its ingress rules say."""
    target = next((i for i, pod in w.pod_of.items() if pod == flow.dst), None)
    if target is None:
        return False  # default deny: no rule of the package opens a pod without identity
    return any(_rule_admits(w, r, flow.src, flow, backend) for r in w.rules
               if r.identity == target and r.direction == "ingress")


def expected_egress(w: World, flow: Flow, backend: str) -> bool:
    """Under default deny, at the client: DNS and (with istio) istiod, the servers of the package
    whose ingress rules name it, and its own egress rules."""
    if flow.network == POD_NETWORK:
        if flow.dst == "kube-dns" and w.dns["allow"] and flow.port == w.dns["port"] and flow.protocol in ("UDP", "TCP"):
            return True
        if flow.dst == "istiod" and "istio" in w.backends and w.istiod["allow"] and flow.port == w.istiod["port"] \
                and flow.protocol == "TCP":
            return True
    client = next((i for i, pod in w.pod_of.items() if pod == flow.src), None)
    if client is None:
        return False
    for r in w.rules:
        if r.direction == "egress" and r.identity == client and _rule_admits(w, r, flow.dst, flow, backend):
            return True
        if r.direction == "ingress" and w.pod_of.get(r.identity) == flow.dst and r.network == flow.network \
                and _port_in(r, flow, backend, w) \
                and any(p.get("identity") == client or p.get("spiffeID") == w.id_of[client] and not p.get("cluster")
                        for p in r.peers):
            return True
    return False


def universe(w: World) -> list[Flow]:
    """Every flow with an end in the package's namespaces, on every plane both ends share, on
    every port a rule names (each end of a range and one past it) and a few no rule names."""
    ports: set[tuple[int, str]] = {(53, "UDP"), (53, "TCP"), (15012, "TCP"), (9999, "TCP")}
    for r in w.rules:
        for first, last, proto in r.ports:
            ports.update((n, proto) for n in {first, last, min(last + 1, 65535), (first + last) // 2})
            ports.update((first, other) for other in ("TCP", "UDP", "SCTP") if other != proto)
    flows = []
    pods = w.cluster.pods
    for s in sorted(pods):
        for d in sorted(pods):
            src, dst = pods[s], pods[d]
            if s == d or not (src.in_cluster and src.namespace in w.namespaces
                              or dst.in_cluster and dst.namespace in w.namespaces):
                continue
            for net in (POD_NETWORK, *sorted(src.networks & dst.networks)):
                flows.extend(Flow(s, d, n, proto, net) for n, proto in sorted(ports))
    return flows

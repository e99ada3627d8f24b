"""Resolve the package's ingress and egress rules into the policy model, with results for every mistake.

Input: the identities ``api.resolve`` produced and the context. One pass over the rules with
dict look-ups (identities by name and by SPIFFE ID, container ports by name): linear in the
number of rules, peers and identities, never quadratic.

Two kinds of findings come back: ``errors`` (the rules cannot mean anything: unknown
identity, empty ``from`` without ``allowAll``, a port declared by two rules) and
``advisories`` (the rules mean something but may not do what the author thinks: a port no
container declares); the validator reports advisories, the generator does not repeat them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..api import migration
from ..api import workloads as wl
from ..api.context import Context
from ..api.paths import get_path
from ..api.peers import PEER_KINDS, parse_peer_id, peer_kinds
from ..api.resolve import Identity
from ..identity.spiffeid import SpiffeIDError
from ..krm.results import Result, error, name_list, warning
from . import attachments
from .inputs import check_mesh_trust, check_network, check_peer_clusters, unattached_network
from .model import BACKENDS, DnsEgress, Endpoint, IstiodEgress, Network, Peer, PolicyModel, Port, Rule

DIRECTIONS = ("ingress", "egress")
# The peer list of a rule: who may connect (ingress), whom this workload may connect to (egress).
PEERS_KEY = {"ingress": "from", "egress": "to"}
_ISTIO_PATH = re.compile(r"^/ns/([^/]+)/sa/([^/]+)$")
# The project's cluster-scoped ID formats ('cluster', 'region') name the cluster as well: such an
# ID names a namespace of this cluster when its cluster is the context's.
_CLUSTER_PATH = re.compile(r"^(?:/region/[^/]+)?/cluster/([^/]+)/ns/([^/]+)/sa/[^/]+$")
# The same for a spiffeIDPrefix: every ID under '/ns/<ns>/' (or '/cluster/<c>/ns/<ns>/') is one
# of namespace <ns>, in the formats this project writes. Group 1: cluster, group 2: namespace.
_PREFIX_NS = re.compile(r"^(?:(?:/region/[^/]+)?/cluster/([^/]+))?/ns/([^/]+)(?:/.*)?$")
_PREFIX_CLUSTER = re.compile(r"^(?:/region/[^/]+)?/cluster/([^/]+)(?:/.*)?$")


@dataclass
class RuleResolution:
    model: PolicyModel
    errors: list[Result] = field(default_factory=list)
    advisories: list[Result] = field(default_factory=list)
    # Identities whose rules wait for context (no SPIFFE ID yet).
    waiting: list[str] = field(default_factory=list)


class PolicySettings(NamedTuple):
    """IdentityContext spec.policy, as the rules need it."""

    backends: tuple[str, ...]
    default_deny: bool
    dns: DnsEgress
    peer_clusters: dict[str, tuple[str, ...]]  # name -> CIDRs


def read_policy_settings(ctx: Context) -> PolicySettings:
    policy = ctx.spec.get("policy") or {}
    return PolicySettings(
        backends=tuple(b for b in BACKENDS if b in (policy.get("backends") or [])),
        default_deny=policy.get("defaultDeny", True),
        dns=_kept_egress(policy.get("dns") or {}, DnsEgress()),
        peer_clusters={c["name"]: tuple(c["cidrs"]) for c in policy.get("peerClusters") or []})


def read_istiod_egress(ctx: Context) -> IstiodEgress:
    """spec.policy.istiod: the control-plane egress kept under default deny with the istio backend."""
    return _kept_egress(get_path(ctx.spec, "policy", "istiod", default={}), IstiodEgress())


def _kept_egress(spec: dict[str, Any], default: Any) -> Any:
    """An egress kept open under default deny (spec.policy.dns, spec.policy.istiod), its unset
    fields taken from ``default``."""
    return type(default)(
        allow=spec.get("allow", default.allow),
        namespace=spec.get("namespace", default.namespace),
        pod_labels=tuple(sorted((spec.get("podLabels") or dict(default.pod_labels)).items())),
        port=spec.get("port", default.port))


def endpoint_of(ident: Identity) -> Endpoint:
    return Endpoint(identity=ident.name, namespace=ident.namespace,
                    selector=tuple(sorted(ident.selector_labels.items())),
                    spiffe_id=str(ident.spiffe_id), ref=ident.ref)


def container_ports(workload: dict[str, Any]) -> tuple[dict[str, Port], set[tuple[int, str]]]:
    """Named ports and the (number, protocol) pairs the workload's containers declare."""
    named: dict[str, Port] = {}
    exposed: set[tuple[int, str]] = set()
    spec = wl.pod_spec(workload)
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            if not isinstance(p, dict) or not isinstance(p.get("containerPort"), int):
                continue
            port = Port(p["containerPort"], str(p.get("protocol") or "TCP"), str(p.get("name") or ""))
            exposed.add((port.number, port.protocol))
            if port.name:
                named[port.name] = port
    return named, exposed


def resolve_rules(identities: list[Identity], ctx: Context, items: list[dict[str, Any]]) -> RuleResolution:
    """``items``: the package, for the Multus attachments it defines."""
    settings = read_policy_settings(ctx)
    model = PolicyModel(backends=settings.backends, default_deny=settings.default_deny, dns=settings.dns,
                        istiod=read_istiod_egress(ctx),
                        migration=ctx.migration if ctx.migration is not None and ctx.migration.twins else None)
    out = RuleResolution(model)
    out.errors.extend(check_peer_clusters(ctx))
    by_name = {i.name: i for i in identities}
    ready = [i for i in identities if i.spiffe_id is not None]
    for ident in ready:
        model.endpoints[ident.name] = endpoint_of(ident)
        if not _ISTIO_PATH.match(ident.spiffe_id.path):  # type: ignore[union-attr]
            model.non_istio_ids.append(ident.name)
    model.namespaces = sorted({e.namespace for e in model.endpoints.values()})
    resolver = _RuleResolver(ctx=ctx, out=out, by_name=by_name,
                             by_id={e.spiffe_id: e for e in model.endpoints.values()},
                             clusters=settings.peer_clusters, nads=attachments.defined(items))
    for ident in identities:
        if not (ident.spec.get("ingress") or ident.spec.get("egress")):
            continue
        if ident.spiffe_id is None:
            out.waiting.append(ident.name)
            # Still check what can be checked without context, so mistakes show early.
        for direction in DIRECTIONS:
            rules = ident.spec.get(direction) or []
            if rules:
                resolver.identity_rules(ident, rules, direction)
    return out


@dataclass
class _RuleResolver:
    """The look-ups every rule of a package is resolved against, and the findings it collects."""

    ctx: Context
    out: RuleResolution
    by_name: dict[str, Identity]
    by_id: dict[str, Endpoint]  # SPIFFE ID -> endpoint of an identity of the package
    clusters: dict[str, tuple[str, ...]]  # spec.policy.peerClusters: name -> CIDRs
    nads: frozenset[str]  # the Multus attachments the package defines

    def identity_rules(self, ident: Identity, rules: list[dict[str, Any]], direction: str) -> None:
        out = self.out
        named, exposed = container_ports(ident.workload)
        requested = attachments.requested(ident.workload)
        egress = direction == "egress"
        peers_key = PEERS_KEY[direction]
        target = out.model.endpoints.get(ident.name)
        seen_names: dict[str, int] = {}
        # (port, protocol, network) -> rule that declared it: two rules for one port is a conflict.
        claimed: dict[tuple[int, str, str], str] = {}
        for i, raw in enumerate(rules):
            path = f"spec.{direction}[{i}]"
            rname = raw["name"]
            before = len(out.errors)
            if rname in seen_names:
                out.errors.append(error(
                    f"WorkloadIdentity {ident.name}: two {direction} rules are named {rname!r} "
                    f"(spec.{direction}[{seen_names[rname]}] and {path}); rule names must be unique within an identity",
                    ident.ref, f"{path}.name", current_value=rname))
            seen_names.setdefault(rname, i)

            peers = self._peers(ident, rname, raw, path, direction)
            allow_all = bool(raw.get("allowAll"))
            if not raw.get(peers_key) and not allow_all:
                what = ("would let this workload reach every peer; list the servers under 'to', or set allowAll: true "
                        "if it really may connect to anyone on these ports") if egress else \
                    ("would let every peer in; list the peers under 'from', or set allowAll: true if the port really "
                     "is open to all")
                out.errors.append(error(
                    f"WorkloadIdentity {ident.name}: {direction} rule {rname!r} has no {peers_key!r}, which {what}",
                    ident.ref, f"{path}.{peers_key}"))
            elif raw.get(peers_key) and allow_all:
                out.errors.append(error(
                    f"WorkloadIdentity {ident.name}: {direction} rule {rname!r} sets allowAll: true and lists peers "
                    f"under {peers_key!r}; choose one (allowAll accepts every peer, so the list would mean nothing)",
                    ident.ref, f"{path}.allowAll", current_value=True))

            network = None
            if raw.get("network"):
                ns, _, name = raw["network"].rpartition("/")
                network = Network(ns or ident.namespace, name)
                where = (ident, rname, direction, network, raw["network"], f"{path}.network", self.nads, requested)
                for found, into in ((check_network(*where), out.errors), (unattached_network(*where), out.advisories)):
                    if found is not None:
                        into.append(found)

            ports: list[Port] = []
            for k, rp in enumerate(raw["ports"]):
                ppath = f"{path}.ports[{k}]"
                if egress:
                    port = self._egress_port(ident, rname, rp, ppath, raw)
                else:
                    port = self._ingress_port(ident, rname, rp, ppath, named)
                if port is None:
                    continue
                key = (port.number, port.protocol, network.ref if network else "")
                other = claimed.get(key)
                if other is not None and other != rname:
                    on = f" on network {network.ref}" if network else ""
                    out.errors.append(error(
                        f"WorkloadIdentity {ident.name}: {direction} rules {other!r} and {rname!r} both declare "
                        f"{port}{on}; a port's peers are declared once, so merge the two rules' {peers_key!r} lists "
                        "into one rule", ident.ref, ppath, current_value=rp.get("port")))
                    continue
                claimed[key] = rname
                if port not in ports:
                    ports.append(port)
                if not egress and not port.end and (port.number, port.protocol) not in exposed:
                    out.advisories.append(warning(
                        f"WorkloadIdentity {ident.name}: ingress rule {rname!r} allows {port}, but no container of "
                        f"{ident.workload_ref} declares that port; add it to the container's ports (or fix the "
                        "rule) so the allowed port is the one the workload serves", ident.ref, ppath,
                        current_value=rp.get("port")))
                if egress:
                    for peer in peers:
                        server = self.by_name.get(peer.value) if peer.kind == "identity" else None
                        if server is None or port.end:
                            continue
                        if (port.number, port.protocol) in container_ports(server.workload)[1]:
                            continue
                        out.advisories.append(warning(
                            f"WorkloadIdentity {ident.name}: egress rule {rname!r} allows {port} to {peer.value}, but no "
                            f"container of {server.workload_ref} declares that port; add it to that container's ports "
                            "(or fix the rule) so the opened port is one the server serves", ident.ref, ppath,
                            current_value=rp.get("port")))
            if not egress:
                out.errors.extend(check_mesh_trust(ident, rname, peers, ports, network, out.model.backends, self.ctx))
            if len(out.errors) == before and target is not None:
                rule = Rule(name=rname, target=target, peers=peers, ports=ports, network=network, allow_all=allow_all,
                            field_path=path, description=str(raw.get("description") or ""), direction=direction)
                (out.model.egress_rules if egress else out.model.rules).append(rule)


    def _ingress_port(self, ident: Identity, rname: str, rp: dict[str, Any], path: str,
                      named: dict[str, Port]) -> Port | None:
        out = self.out
        value = rp["port"]
        if "endPort" in rp:
            return self._port_range(ident, rname, rp, path, "ingress")
        if isinstance(value, int):
            return Port(value, rp.get("protocol", "TCP"))
        found = named.get(value)
        if found is None:
            have = ", ".join(sorted(named)) or "none"
            out.errors.append(error(
                f"WorkloadIdentity {ident.name}: ingress rule {rname!r} names port {value!r}, but no container of "
                f"{ident.workload_ref} has a port of that name (named ports: {have}); use a port number or add "
                "the name to the container port", ident.ref, f"{path}.port", current_value=value))
            return None
        if rp.get("protocol") and rp["protocol"] != found.protocol:
            out.errors.append(error(
                f"WorkloadIdentity {ident.name}: ingress rule {rname!r} says port {value!r} is {rp['protocol']}, "
                f"but the container port {value!r} is {found.protocol} {found.number}; remove 'protocol' or make "
                "them agree", ident.ref, f"{path}.protocol", current_value=rp["protocol"],
                proposed_value=found.protocol))
            return None
        return found


    def _port_range(self, ident: Identity, rname: str, rp: dict[str, Any], path: str, direction: str) -> Port | None:
        """'port' to 'endPort' (NetworkPolicy's port range): numbers only, in order."""
        out = self.out
        value, end = rp["port"], rp["endPort"]
        if not isinstance(value, int) or end < value:
            why = "a port number, not a name," if not isinstance(value, int) else f"at most endPort ({end})"
            out.errors.append(error(
                f"WorkloadIdentity {ident.name}: {direction} rule {rname!r} gives endPort {end}, so 'port' must be "
                f"{why}: the range is port..endPort. Fix 'port', or remove endPort for a single port",
                ident.ref, f"{path}.port", current_value=value))
            return None
        return Port(value, rp.get("protocol", "TCP"), end=end if end != value else 0)


    def _egress_port(self, ident: Identity, rname: str, rp: dict[str, Any], path: str,
                     raw: dict[str, Any]) -> Port | None:
        """An egress port is the server's: a name resolves only when every peer is an identity of
        this package whose workload has a container port of that name (one number, one protocol)."""
        out, by_name = self.out, self.by_name
        value = rp["port"]
        if "endPort" in rp:
            return self._port_range(ident, rname, rp, path, "egress")
        if isinstance(value, int):
            return Port(value, rp.get("protocol", "TCP"))
        found: set[Port] = set()
        unresolvable = not raw.get("to")
        for p in raw.get("to") or []:
            peer = by_name.get(p.get("identity", "")) if set(p) == {"identity"} else None
            port = container_ports(peer.workload)[0].get(value) if peer is not None else None
            if port is None:
                unresolvable = True
            else:
                found.add(Port(port.number, port.protocol, value))
        if unresolvable or len(found) != 1:
            out.errors.append(error(
                f"WorkloadIdentity {ident.name}: egress rule {rname!r} names port {value!r}, which can only be resolved "
                "when every 'to' peer is an identity of this package whose workload has one container port of that "
                "name; use the server's port number (and protocol)", ident.ref, f"{path}.port", current_value=value))
            return None
        port = found.pop()
        if rp.get("protocol") and rp["protocol"] != port.protocol:
            out.errors.append(error(
                f"WorkloadIdentity {ident.name}: egress rule {rname!r} says port {value!r} is {rp['protocol']}, but the "
                f"servers' container port {value!r} is {port.protocol} {port.number}; remove 'protocol' or make them "
                "agree", ident.ref, f"{path}.protocol", current_value=rp["protocol"], proposed_value=port.protocol))
            return None
        return port


    def _peers(self, ident: Identity, rname: str, raw: dict[str, Any], path: str, direction: str) -> list[Peer]:
        out, ctx = self.out, self.ctx
        peers: list[Peer] = []
        key = PEERS_KEY[direction]
        for j, p in enumerate(raw.get(key) or []):
            fpath = f"{path}.{key}[{j}]"
            kinds = peer_kinds(p)
            if len(kinds) != 1:
                out.errors.append(error(
                    f"WorkloadIdentity {ident.name}: {direction} rule {rname!r}: each {key!r} entry sets exactly one of "
                    f"{', '.join(PEER_KINDS)}; this one sets {', '.join(kinds) or 'none'}. Split it into one entry "
                    "per peer", ident.ref, fpath))
                continue
            kind = kinds[0]
            value = p[kind]
            named_cluster = p.get("cluster", "")
            # For a SPIFFE ID peer, naming this very cluster is the same as not naming one.
            cluster = "" if named_cluster == ctx.cluster_name else named_cluster
            if kind == "identity":
                if named_cluster:
                    # Also when it names this cluster: the package may be deployed to other clusters,
                    # where the same words would name another one.
                    fix = (f"remove 'cluster' (the package is deployed to cluster {named_cluster!r} here, but to "
                           "any other cluster it is cloned to the same 'cluster' would name a different one)"
                           if not cluster else
                           f"for a peer in cluster {cluster!r} use its spiffeID (or spiffeIDPrefix) with 'cluster'")
                    out.errors.append(error(
                        f"WorkloadIdentity {ident.name}: {direction} rule {rname!r}: 'identity' names a WorkloadIdentity "
                        f"of this package, which always runs in the package's own cluster, so it takes no 'cluster'; "
                        f"{fix}", ident.ref, f"{fpath}.cluster", current_value=named_cluster))
                    continue
                if p.get("podLabels"):
                    out.errors.append(error(
                        f"WorkloadIdentity {ident.name}: {direction} rule {rname!r}: podLabels is for peers outside the "
                        f"package; identity {value!r} is selected by its own selector labels. Remove podLabels",
                        ident.ref, f"{fpath}.podLabels"))
                    continue
                peer_ident = self.by_name.get(value)
                if peer_ident is None:
                    known = name_list(sorted(self.by_name)) or "none"
                    out.errors.append(error(
                        f"WorkloadIdentity {ident.name}: {direction} rule {rname!r} "
                        f"{'may reach' if direction == 'egress' else 'allows'} identity {value!r}, which is "
                        f"not a WorkloadIdentity of this package (identities: {known}); fix the name, or use "
                        "spiffeID for a workload outside the package", ident.ref, f"{fpath}.identity",
                        current_value=value))
                    continue
                ep = out.model.endpoints.get(value)
                if ep is not None:
                    peers.append(Peer(kind, value, fpath, ep.principal, endpoint=ep))
                continue
            try:
                pid = parse_peer_id(kind, value)
                principal, td, spath = pid.principal, pid.trust_domain, pid.path
            except SpiffeIDError as exc:
                out.errors.append(error(f"WorkloadIdentity {ident.name}: {direction} rule {rname!r}: {kind} {value!r} is "
                                        f"not valid: {exc}", ident.ref, f"{fpath}.{kind}", current_value=value))
                continue
            known = value if value in self.by_id else migration.twin_id(ctx, value)
            if kind == "spiffeID" and not cluster and known in self.by_id:
                # An exact ID of an identity in the package (in either domain of a migration): select its
                # pods like an 'identity' peer.
                ep = self.by_id[known]
                peers.append(Peer(kind, value, fpath, principal, endpoint=ep))
                continue
            namespace = _local_namespace(kind, td, spath, cluster, ctx)
            labels = tuple(sorted((p.get("podLabels") or {}).items()))
            if labels and not namespace:
                out.errors.append(error(
                    f"WorkloadIdentity {ident.name}: {direction} rule {rname!r}: podLabels selects the peer's pods in "
                    f"this cluster by namespace and labels, but {value!r}{' (cluster ' + cluster + ')' if cluster else ''} "
                    "names no namespace of this cluster (an ID or prefix '.../ns/<namespace>/...' of this trust domain and "
                    "cluster). Remove podLabels; a peer of another cluster is admitted by the address ranges of "
                    "spec.policy.peerClusters", ident.ref, f"{fpath}.podLabels"))
                continue
            peers.append(Peer(kind, value, fpath, principal, cluster=cluster, cidrs=self.clusters.get(cluster, ()),
                              namespace=namespace, pod_labels=labels,
                              advice="" if namespace or cluster else _unselectable_advice(kind, td, spath, ctx)))
        return peers


def _local_namespace(kind: str, td: str, spath: str, cluster: str, ctx: Context) -> str:
    """The namespace of this cluster an out-of-package peer's ID (or every ID under its prefix)
    lives in, in Istio's ns/sa format or the project's cluster/region formats; '' when none."""
    if cluster or (td != ctx.trust_domain and not migration.accepts_domain(ctx, td)) or kind == "trustDomain":
        return ""
    if kind == "spiffeID":
        m, c = _ISTIO_PATH.match(spath), _CLUSTER_PATH.match(spath)
        if m:
            return m.group(1)
        return c.group(2) if c and c.group(1) == ctx.cluster_name else ""
    m = _PREFIX_NS.match(spath)
    return m.group(2) if m and m.group(1) in (None, ctx.cluster_name) else ""


def _unselectable_advice(kind: str, td: str, spath: str, ctx: Context) -> str:
    """Why a network backend cannot select this peer, and what would let it."""
    other = _PREFIX_CLUSTER.match(spath)
    if td != ctx.trust_domain:
        return (f"its trust domain {td!r} is not this cluster's ({ctx.trust_domain}) and no 'cluster' is given. "
                "If it runs in another cluster, add 'cluster' and that cluster's address ranges to "
                "spec.policy.peerClusters; otherwise only a mesh backend admits it")
    if other and other.group(1) != ctx.cluster_name:
        return (f"its ID names cluster {other.group(1)!r}, not this one, and no 'cluster' is given. Add "
                f"'cluster: {other.group(1)}' and that cluster's address ranges to spec.policy.peerClusters")
    what = {"spiffeID": "the ID", "spiffeIDPrefix": "the prefix"}.get(kind, "a whole trust domain")
    return (f"{what} names no namespace of this cluster, so no selector can pick its pods. If it runs here, "
            "name it by an ID or spiffeIDPrefix of its namespace ('.../ns/<namespace>/...', with podLabels for "
            "its pods); if it runs in another cluster, add 'cluster' and spec.policy.peerClusters")

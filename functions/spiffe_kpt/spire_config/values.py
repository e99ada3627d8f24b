"""The SpireDeployment values resource: typed domain objects and every check on them.

``read_values`` turns the plain dict into dataclasses with defaults filled in, after the JSON
Schema (schemas/SpireDeployment.json) has caught type and shape errors. ``check_values``
then rejects what would deploy a broken or unsafe SPIRE: placeholders, invalid trust
domains, TTLs the CA cannot honour, an edge server that cannot survive the offline window
it promises, inconsistent class names. Each problem is a ``Problem`` with the field path
and a message that says how to fix it; nothing here knows about kpt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.conventions import default_class_name
from ..identity.spiffeid import SpiffeIDError, parse, validate_trust_domain
from .durations import DurationError, format_duration, parse_duration

KIND = "SpireDeployment"

ROOT, DOWNSTREAM, AGENT = "root-server", "downstream-server", "agent"

# Names people leave in when they copy an example: shipping any of them would make every
# deployment share one trust domain or one cluster name (Nephio's packages ship example.org).
PLACEHOLDER_TRUST_DOMAINS = frozenset({"example.org", "example.com", "example.net", "example", "domain.test",
                                       "trust.domain", "your.trust.domain", "changeme", "todo"})
PLACEHOLDER_SUFFIXES = (".example", ".invalid", ".example.org", ".example.com", ".example.net")
PLACEHOLDER_CLUSTERS = frozenset({"example", "example-cluster", "cluster", "changeme", "todo", "my-cluster"})

# SPIRE rotates its CA so that an SVID never outlives it: the longest SVID TTL it can honour
# is min(ca_ttl / 6, 7 days) (pkg/server/ca/manager MaxSVIDTTLForCATTL, SPIRE 1.13).
SVID_TTL_DIVISOR = 6
SVID_TTL_CAP = 7 * 24 * 3600


@dataclass(frozen=True)
class Problem:
    path: str  # field path inside the values resource, kpt style (spec.ca.ttl)
    message: str


@dataclass
class UpstreamAuthority:
    type: str  # disk | cert-manager | vault
    options: dict[str, Any]


@dataclass
class CA:
    ttl: str = "24h"
    key_type: str = "ec-p256"
    country: list[str] = field(default_factory=list)
    organization: list[str] = field(default_factory=list)
    common_name: str = ""
    upstream_authority: UpstreamAuthority | None = None


@dataclass
class ControllerManager:
    """One spire-controller-manager: the cluster it watches and how its entries are marked."""
    cluster: str
    class_name: str
    entry_id_prefix: str
    kubeconfig_secret: str = ""  # empty: the cluster the server runs in (in-cluster config)

    @property
    def remote(self) -> bool:
        return bool(self.kubeconfig_secret)


@dataclass
class WorkloadCluster:
    name: str
    mode: str  # central | nested
    class_name: str
    entry_id_prefix: str
    kubeconfig_secret: str


@dataclass
class Peer:
    trust_domain: str
    bundle_endpoint_url: str
    profile: str
    endpoint_spiffe_id: str = ""


@dataclass
class BundleEndpoint:
    profile: str
    port: int = 8443
    refresh_hint: str = ""
    serving_cert_secret: str = ""
    acme: dict[str, Any] | None = None


@dataclass
class Values:
    name: str
    role: str
    trust_domain: str
    cluster_name: str
    server_namespace: str = "spire-server"
    agent_namespace: str = "spire-system"
    log_level: str = "INFO"
    ca: CA = field(default_factory=CA)
    x509_ttl: str = "1h"
    jwt_ttl: str = "5m"
    class_name: str = ""
    entry_id_prefix: str = ""
    service_type: str = "ClusterIP"
    workload_clusters: list[WorkloadCluster] = field(default_factory=list)
    upstream_address: str = ""
    upstream_port: int = 8081
    upstream_root_ca_ttl: str = "24h"
    upstream_class_name: str = ""
    offline_tolerance: str = ""
    server_address: str = ""
    server_port: int = 8081
    kubelet_verification: str = "apiServerCA"
    bundle_endpoint: BundleEndpoint | None = None
    peers: list[Peer] = field(default_factory=list)

    @property
    def is_server(self) -> bool:
        return self.role in (ROOT, DOWNSTREAM)

    def controller_managers(self) -> list[ControllerManager]:
        """The local cluster's controller manager first, then one per remote cluster watched."""
        out = [ControllerManager(self.cluster_name, self.class_name, self.entry_id_prefix)]
        for wc in self.workload_clusters:
            out.append(ControllerManager(wc.name, wc.class_name, wc.entry_id_prefix, wc.kubeconfig_secret))
        return out


def default_entry_prefix(cluster: str) -> str:
    # Entry IDs are <prefix>.<uuid>; SPIRE caps entry IDs at 255 bytes, the prefix is kept short.
    return cluster.replace(".", "-")[:32].strip("-") or "cluster"


def read_values(obj: dict[str, Any]) -> Values:
    """Build Values from a schema-valid SpireDeployment dict, filling the defaults."""
    spec: dict[str, Any] = obj.get("spec") or {}
    name = str((obj.get("metadata") or {}).get("name", ""))
    cluster = str(spec["clusterName"])
    v = Values(name=name, role=spec["role"], trust_domain=str(spec["trustDomain"]), cluster_name=cluster)
    v.server_namespace = spec.get("serverNamespace", v.server_namespace)
    v.agent_namespace = spec.get("agentNamespace", v.agent_namespace)
    v.log_level = spec.get("logLevel", v.log_level)
    ca = spec.get("ca") or {}
    subject = ca.get("subject") or {}
    ua = ca.get("upstreamAuthority")
    v.ca = CA(ttl=ca.get("ttl", "24h"), key_type=ca.get("keyType", "ec-p256"),
              country=list(subject.get("country", [])), organization=list(subject.get("organization", [])),
              common_name=subject.get("commonName", ""),
              upstream_authority=UpstreamAuthority(ua["type"], dict(ua)) if ua else None)
    svid = spec.get("svid") or {}
    v.x509_ttl = svid.get("x509TTL", v.x509_ttl)
    v.jwt_ttl = svid.get("jwtTTL", v.jwt_ttl)
    cm = spec.get("controllerManager") or {}
    v.class_name = cm.get("className", default_class_name(cluster))
    v.entry_id_prefix = cm.get("entryIDPrefix", default_entry_prefix(cluster))
    v.service_type = (spec.get("service") or {}).get("type", v.service_type)
    for wc in spec.get("workloadClusters") or []:
        n = wc["name"]
        mode = wc.get("mode", "central")
        # A nested cluster's controller manager at the root registers only the downstream
        # server there, so its class is distinct from the one the edge's workloads use.
        default_cls = default_class_name(n) + ("-upstream" if mode == "nested" else "")
        v.workload_clusters.append(WorkloadCluster(
            n, mode, wc.get("className", default_cls), wc.get("entryIDPrefix", default_entry_prefix(n)),
            wc.get("kubeconfigSecret", f"spire-kubeconfig-{n.replace('.', '-')}")))
    up = spec.get("upstream") or {}
    v.upstream_address = up.get("address", "")
    v.upstream_port = up.get("port", 8081)
    v.upstream_root_ca_ttl = up.get("rootCATTL", "24h")
    v.upstream_class_name = up.get("className", default_class_name(cluster) + "-upstream")
    v.offline_tolerance = spec.get("offlineTolerance", "")
    srv = spec.get("server") or {}
    v.server_address = srv.get("address", "")
    v.server_port = srv.get("port", 8081)
    v.kubelet_verification = spec.get("kubeletVerification", v.kubelet_verification)
    fed = spec.get("federation") or {}
    be = fed.get("bundleEndpoint")
    if be:
        v.bundle_endpoint = BundleEndpoint(be["profile"], be.get("port", 8443), be.get("refreshHint", ""),
                                           be.get("servingCertSecret", ""), be.get("acme"))
    for p in fed.get("peers") or []:
        v.peers.append(Peer(p["trustDomain"], p["bundleEndpointURL"], p["profile"], p.get("endpointSPIFFEID", "")))
    return v


def _is_placeholder_td(td: str) -> bool:
    return td in PLACEHOLDER_TRUST_DOMAINS or td.endswith(PLACEHOLDER_SUFFIXES)


def check_values(v: Values, spec: dict[str, Any]) -> list[Problem]:
    """Every reason these values would deploy a broken or unsafe SPIRE."""
    out: list[Problem] = []
    p = out.append

    try:
        validate_trust_domain(v.trust_domain)
        if _is_placeholder_td(v.trust_domain):
            p(Problem("spec.trustDomain", f"trust domain {v.trust_domain!r} is a placeholder; set your own "
                      "trust domain (a DNS name you control, e.g. 'telco.acme.net') in every package of this "
                      "SPIRE deployment"))
    except SpiffeIDError as exc:
        p(Problem("spec.trustDomain", f"{exc}; set spec.trustDomain to a valid SPIFFE trust domain"))

    if v.cluster_name in PLACEHOLDER_CLUSTERS:
        p(Problem("spec.clusterName", f"cluster name {v.cluster_name!r} is a placeholder; set the name this "
                  "cluster has in your fleet (for Nephio, the WorkloadCluster's spec.clusterName)"))

    ttls: dict[str, float] = {}
    for path, text in (("spec.ca.ttl", v.ca.ttl), ("spec.svid.x509TTL", v.x509_ttl),
                       ("spec.svid.jwtTTL", v.jwt_ttl), ("spec.upstream.rootCATTL", v.upstream_root_ca_ttl),
                       ("spec.offlineTolerance", v.offline_tolerance)):
        if not text:
            continue
        try:
            ttls[path] = parse_duration(text)
        except DurationError as exc:
            p(Problem(path, str(exc)))

    if v.is_server:
        _check_server(v, spec, ttls, p)
    else:
        _check_agent(v, spec, p)
    return out


def _check_server(v: Values, spec: dict[str, Any], ttls: dict[str, float], p: Any) -> None:
    ca_ttl = ttls.get("spec.ca.ttl")
    for path, name in (("spec.svid.x509TTL", "X.509-SVID"), ("spec.svid.jwtTTL", "JWT-SVID")):
        svid_ttl = ttls.get(path)
        if ca_ttl is None or svid_ttl is None:
            continue
        limit = min(ca_ttl / SVID_TTL_DIVISOR, SVID_TTL_CAP)
        if svid_ttl > limit:
            p(Problem(path, f"{name} TTL {format_duration(svid_ttl)} is above what the CA TTL "
                      f"{format_duration(ca_ttl)} allows: SPIRE can only guarantee SVIDs up to "
                      f"min(ca.ttl/6, 168h) = {format_duration(limit)}; lower it to {format_duration(limit)} "
                      f"or less, or raise spec.ca.ttl to {format_duration(min(svid_ttl, SVID_TTL_CAP) * 6)}"))

    if v.role == ROOT:
        for key in ("upstream", "offlineTolerance", "server", "kubeletVerification"):
            if key in spec:
                p(Problem(f"spec.{key}", f"spec.{key} is not used by a root-server; remove it (it belongs to "
                          f"{'a downstream-server' if key in ('upstream', 'offlineTolerance') else 'an agent'})"))
        seen = {v.cluster_name: "spec.clusterName"}
        classes = {v.class_name: "spec.controllerManager.className"}
        prefixes = {v.entry_id_prefix: "spec.controllerManager.entryIDPrefix"}
        for i, wc in enumerate(v.workload_clusters):
            base = f"spec.workloadClusters[{i}]"
            if wc.name in seen:
                p(Problem(f"{base}.name", f"cluster {wc.name!r} is listed twice (also at {seen[wc.name]}); "
                          "each cluster gets exactly one node attestor entry and one controller manager"))
            seen.setdefault(wc.name, f"{base}.name")
            if wc.name in PLACEHOLDER_CLUSTERS:
                p(Problem(f"{base}.name", f"cluster name {wc.name!r} is a placeholder; use the workload "
                          "cluster's real name (the clusterName its agent package sets)"))
            # Two controller managers sharing a class or prefix delete each other's entries.
            if wc.class_name in classes:
                p(Problem(f"{base}.className", f"className {wc.class_name!r} is already used by "
                          f"{classes[wc.class_name]}; every controller manager needs its own className, or "
                          "they reconcile (and delete) each other's ClusterSPIFFEIDs"))
            classes.setdefault(wc.class_name, f"{base}.className")
            if wc.entry_id_prefix in prefixes:
                p(Problem(f"{base}.entryIDPrefix", f"entryIDPrefix {wc.entry_id_prefix!r} is already used by "
                          f"{prefixes[wc.entry_id_prefix]}; spire-controller-manager deletes every entry "
                          "with its prefix that it did not create, so each needs its own prefix"))
            prefixes.setdefault(wc.entry_id_prefix, f"{base}.entryIDPrefix")
        if v.workload_clusters and v.service_type == "ClusterIP":
            p(Problem("spec.service.type", "agents and downstream servers in the workload clusters listed in "
                      "spec.workloadClusters cannot reach a ClusterIP service; set spec.service.type to "
                      "LoadBalancer or NodePort (or remove spec.workloadClusters)"))
    else:
        for key in ("workloadClusters", "server", "kubeletVerification"):
            if key in spec:
                p(Problem(f"spec.{key}", f"spec.{key} is not used by a downstream-server; remove it"))
        if "upstream" not in spec:
            p(Problem("spec.upstream", "a downstream-server needs spec.upstream.address: the address of the "
                      "root SPIRE server it gets its intermediate CA from"))
        if v.ca.upstream_authority is not None:
            p(Problem("spec.ca.upstreamAuthority", "a downstream-server always uses the root SPIRE server as its "
                      "upstream authority; remove spec.ca.upstreamAuthority"))
        if v.upstream_class_name == v.class_name:
            p(Problem("spec.upstream.className", f"className {v.class_name!r} is used both for the edge's "
                      "workloads and for the downstream server's registration at the root; give them "
                      "different names"))
        _check_offline(v, ttls, p)

    ua = v.ca.upstream_authority
    if ua is not None:
        key = {"disk": "disk", "cert-manager": "certManager", "vault": "vault"}[ua.type]
        if key not in ua.options:
            p(Problem(f"spec.ca.upstreamAuthority.{key}", f"upstreamAuthority type {ua.type!r} needs its settings "
                      f"in spec.ca.upstreamAuthority.{key}"))
        for other in ("disk", "certManager", "vault"):
            if other != key and other in ua.options:
                p(Problem(f"spec.ca.upstreamAuthority.{other}", f"spec.ca.upstreamAuthority.{other} does not "
                          f"apply to type {ua.type!r}; remove it"))

    be = v.bundle_endpoint
    if be is not None:
        if be.profile == "https_web" and bool(be.acme) == bool(be.serving_cert_secret):
            p(Problem("spec.federation.bundleEndpoint", "the https_web profile needs exactly one of acme or "
                      "servingCertSecret (a Secret with tls.crt/tls.key from a public CA)"))
        if be.profile == "https_spiffe" and (be.acme or be.serving_cert_secret):
            p(Problem("spec.federation.bundleEndpoint", "the https_spiffe profile serves with the server's own "
                      "SVID; remove acme/servingCertSecret or use profile https_web"))
        if be.acme and be.acme.get("tosAccepted") is not True:
            p(Problem("spec.federation.bundleEndpoint.acme.tosAccepted", "set tosAccepted: true after reading "
                      "the ACME provider's terms of service; without it the certificate is never issued"))
    if v.peers and be is None:
        p(Problem("spec.federation.bundleEndpoint", "federation peers need this server's bundle endpoint too "
                  "(they fetch our bundle from it); set spec.federation.bundleEndpoint.profile"))
    seen_td: set[str] = set()
    for i, peer in enumerate(v.peers):
        base = f"spec.federation.peers[{i}]"
        try:
            validate_trust_domain(peer.trust_domain)
        except SpiffeIDError as exc:
            p(Problem(f"{base}.trustDomain", str(exc)))
            continue
        if peer.trust_domain == v.trust_domain:
            p(Problem(f"{base}.trustDomain", "a server does not federate with its own trust domain; remove this peer"))
        if _is_placeholder_td(peer.trust_domain):
            p(Problem(f"{base}.trustDomain", f"{peer.trust_domain!r} is a placeholder; set the peer's real trust domain"))
        if peer.trust_domain in seen_td:
            p(Problem(f"{base}.trustDomain", f"trust domain {peer.trust_domain!r} is listed twice"))
        seen_td.add(peer.trust_domain)
        if peer.profile == "https_spiffe":
            if not peer.endpoint_spiffe_id:
                p(Problem(f"{base}.endpointSPIFFEID", "profile https_spiffe needs the SPIFFE ID of the peer's "
                          "bundle endpoint server, e.g. spiffe://<peer trust domain>/spire/server"))
            else:
                try:
                    sid = parse(peer.endpoint_spiffe_id)
                    if sid.trust_domain != peer.trust_domain:
                        p(Problem(f"{base}.endpointSPIFFEID", f"{peer.endpoint_spiffe_id} is not in the peer's "
                                  f"trust domain {peer.trust_domain!r}"))
                except SpiffeIDError as exc:
                    p(Problem(f"{base}.endpointSPIFFEID", str(exc)))
        elif peer.endpoint_spiffe_id:
            p(Problem(f"{base}.endpointSPIFFEID", "endpointSPIFFEID applies only to profile https_spiffe; remove it"))


def offline_window(ca_ttl: float, root_ca_ttl: float) -> float:
    """Seconds an edge server keeps issuing SVIDs after losing its root, guaranteed.

    Its intermediate CA lives min(ca_ttl, what is left of the root's CA when signed); the
    root's active CA always has at least root_ca_ttl/6 left (SPIRE activates a new CA at
    5/6 of the old one's life). The edge prepares its next CA at half its current CA's life,
    so a cut just before that leaves half a lifetime."""
    return min(ca_ttl, root_ca_ttl / SVID_TTL_DIVISOR) / 2


def _check_offline(v: Values, ttls: dict[str, float], p: Any) -> None:
    ca_ttl = ttls.get("spec.ca.ttl")
    root = ttls.get("spec.upstream.rootCATTL")
    tolerance = ttls.get("spec.offlineTolerance")
    if ca_ttl is None or root is None or tolerance is None:
        if not v.offline_tolerance:
            p(Problem("spec.offlineTolerance", "a downstream-server must say how long the edge must keep issuing "
                      "SVIDs while cut off from the root (e.g. '24h'); the function checks the CA TTLs allow it"))
        return
    window = offline_window(ca_ttl, root)
    if window < tolerance:
        need_ca = tolerance * 2
        p(Problem("spec.offlineTolerance", f"this edge server can only guarantee {format_duration(window)} of "
                  f"offline operation (min(ca.ttl {format_duration(ca_ttl)}, root ca_ttl "
                  f"{format_duration(root)}/6) / 2), less than the {format_duration(tolerance)} asked; raise "
                  f"spec.ca.ttl to at least {format_duration(need_ca)} and the root's ca_ttl "
                  f"(spec.upstream.rootCATTL, set in the root-server package) to at least "
                  f"{format_duration(need_ca * SVID_TTL_DIVISOR)}, or lower spec.offlineTolerance"))


def _check_agent(v: Values, spec: dict[str, Any], p: Any) -> None:
    for key in ("ca", "svid", "controllerManager", "service", "workloadClusters", "upstream",
                "offlineTolerance", "federation"):
        if key in spec:
            p(Problem(f"spec.{key}", f"spec.{key} configures a SPIRE server, not an agent; remove it from the "
                      "agent's values (set it in the server package)"))
    if "server" not in spec:
        p(Problem("spec.server", "an agent needs spec.server.address: the SPIRE server it attests to (the "
                  "in-cluster service 'spire-server.spire-server' on the management cluster or an edge "
                  "cluster, the root server's external address in a central workload cluster)"))


def check_pairing(agent: Values, server: Values) -> list[Problem]:
    """An agent and the server it attests to, rendered together: they must agree."""
    out: list[Problem] = []
    if agent.trust_domain != server.trust_domain:
        out.append(Problem("spec.trustDomain", f"the agent's trust domain {agent.trust_domain!r} differs from "
                           f"the server's {server.trust_domain!r} (SpireDeployment {server.name}); set the same "
                           "trust domain in both"))
    known = [server.cluster_name] + [wc.name for wc in server.workload_clusters if wc.mode == "central"]
    if agent.cluster_name not in known:
        out.append(Problem("spec.clusterName", f"the agent's cluster name {agent.cluster_name!r} is not one the "
                           f"server (SpireDeployment {server.name}) attests: it knows {', '.join(known)}; "
                           "make the agent's spec.clusterName match, or add the cluster to the server's "
                           "spec.workloadClusters, or k8s_psat attestation will be refused"))
    return out

"""The SpireDeployment values resource: typed domain objects.

``read_values`` turns the plain dict into dataclasses with defaults filled in, after the JSON
Schema (schemas/SpireDeployment.json) has caught type and shape errors; ``checks.py`` then
rejects what would deploy a broken or unsafe SPIRE. Nothing here knows about kpt.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ..api.conventions import default_class_name

KIND = "SpireDeployment"

ROOT, DOWNSTREAM, AGENT = "root-server", "downstream-server", "agent"


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
class ApiServer:
    """Where a cluster's kube-apiserver really listens: the endpoints behind the
    ``kubernetes`` Service, since NetworkPolicies see connections after the Service's DNAT."""
    cidrs: list[str]
    port: int = 6443


@dataclass
class WorkloadCluster:
    name: str
    mode: str  # central | nested
    class_name: str
    entry_id_prefix: str
    kubeconfig_secret: str
    # The addresses its agents / downstream server connect from, as this server sees them.
    source_cidrs: list[str] = field(default_factory=list)
    api_server: ApiServer | None = None


@dataclass
class NetworkPolicySettings:
    """spec.networkPolicy: NetworkPolicies for the package's pods, on unless switched off."""
    enabled: bool = True
    explicitly_off: bool = False
    node_cidrs: list[str] = field(default_factory=list)
    api_server: ApiServer | None = None
    agents_on_host_network: bool = False
    dns_namespace: str = "kube-system"
    dns_pod_labels: dict[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})


@dataclass
class Peer:
    trust_domain: str
    bundle_endpoint_url: str
    profile: str
    endpoint_spiffe_id: str = ""
    cidrs: list[str] = field(default_factory=list)
    trust_bundle: str = ""  # name of the TrustBundle holding the peer's bundle (GitOps federation)
    bundle: str = ""  # its checked text, set by configure() before rendering


@dataclass
class BundleEndpoint:
    profile: str
    port: int = 8443
    refresh_hint: str = ""
    serving_cert_secret: str = ""
    acme: dict[str, Any] | None = None
    public: bool = False


@dataclass
class OidcDiscoveryProvider:
    """spec.oidcDiscoveryProvider: SPIRE's OIDC discovery provider beside a root server, serving
    the discovery document and JWKS of the issuer in spec.svid.jwtIssuer."""
    domains: list[str] = field(default_factory=list)  # as given; empty: the issuer's host
    tls_secret: str = "spire-oidc-discovery-provider-tls"
    service_type: str = "ClusterIP"
    public: bool = False
    cidrs: list[str] = field(default_factory=list)


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
    jwt_issuer: str = ""  # spec.svid.jwtIssuer: the iss claim of this server's JWT-SVIDs
    oidc: OidcDiscoveryProvider | None = None
    class_name: str = ""
    entry_id_prefix: str = ""
    service_type: str = "ClusterIP"
    workload_clusters: list[WorkloadCluster] = field(default_factory=list)
    upstream_address: str = ""
    upstream_port: int = 8081
    upstream_root_ca_ttl: str = "24h"
    upstream_class_name: str = ""
    # A downstream server's upstream CSI driver and its registration at the root (ClusterSPIFFEID
    # name): B's own during a trust-domain migration (spire_config.migration).
    upstream_csi_driver: str = "upstream.csi.spiffe.io"
    downstream_registration: str = "spire-downstream-server"
    offline_tolerance: str = ""
    server_address: str = ""
    server_port: int = 8081
    server_cidrs: list[str] = field(default_factory=list)
    upstream_cidrs: list[str] = field(default_factory=list)
    network_policy: NetworkPolicySettings = field(default_factory=NetworkPolicySettings)
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
    v.jwt_issuer = svid.get("jwtIssuer", "")
    odp = spec.get("oidcDiscoveryProvider")
    if odp is not None:
        v.oidc = OidcDiscoveryProvider(
            domains=list(odp.get("domains") or []),
            tls_secret=(odp.get("tls") or {}).get("secretName", OidcDiscoveryProvider.tls_secret),
            service_type=(odp.get("service") or {}).get("type", "ClusterIP"),
            public=bool(odp.get("public", False)), cidrs=list(odp.get("cidrs") or []))
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
            wc.get("kubeconfigSecret", f"spire-kubeconfig-{n.replace('.', '-')}"),
            list(wc.get("sourceCIDRs") or []), _api_server(wc.get("apiServer"))))
    up = spec.get("upstream") or {}
    v.upstream_address = up.get("address", "")
    v.upstream_port = up.get("port", 8081)
    v.upstream_root_ca_ttl = up.get("rootCATTL", "24h")
    v.upstream_cidrs = list(up.get("cidrs") or [])
    v.upstream_class_name = up.get("className", default_class_name(cluster) + "-upstream")
    v.offline_tolerance = spec.get("offlineTolerance", "")
    srv = spec.get("server") or {}
    v.server_address = srv.get("address", "")
    v.server_port = srv.get("port", 8081)
    v.server_cidrs = list(srv.get("cidrs") or [])
    v.kubelet_verification = spec.get("kubeletVerification", v.kubelet_verification)
    fed = spec.get("federation") or {}
    be = fed.get("bundleEndpoint")
    if be:
        v.bundle_endpoint = BundleEndpoint(be["profile"], be.get("port", 8443), be.get("refreshHint", ""),
                                           be.get("servingCertSecret", ""), be.get("acme"), bool(be.get("public")))
    for p in fed.get("peers") or []:
        v.peers.append(Peer(p["trustDomain"], p["bundleEndpointURL"], p["profile"], p.get("endpointSPIFFEID", ""),
                            list(p.get("cidrs") or []), p.get("trustBundle", "")))
    np = spec.get("networkPolicy") or {}
    dns = np.get("dns") or {}
    v.network_policy = NetworkPolicySettings(
        enabled=np.get("enabled", True) is not False, explicitly_off=np.get("enabled") is False,
        node_cidrs=list(np.get("nodeCIDRs") or []), api_server=_api_server(np.get("apiServer")),
        agents_on_host_network=bool(np.get("agentsOnHostNetwork", False)),
        dns_namespace=dns.get("namespace", "kube-system"),
        dns_pod_labels=dict(dns.get("podLabels") or {"k8s-app": "kube-dns"}))
    return v


def issuer_host(issuer: str) -> str:
    """The host the provider must answer for: the issuer URL's host, without port."""
    from urllib.parse import urlsplit
    return urlsplit(issuer).hostname or ""


def oidc_domains(v: Values) -> list[str]:
    """The provider's domains: as given, else the issuer's host."""
    if v.oidc is None:
        return []
    return v.oidc.domains or ([issuer_host(v.jwt_issuer)] if v.jwt_issuer else [])


def _api_server(obj: dict[str, Any] | None) -> ApiServer | None:
    return ApiServer(list(obj.get("cidrs") or []), obj.get("port", 6443)) if obj else None


def ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def url_host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit
    u = urlsplit(url)
    try:
        port = u.port or 443
    except ValueError:
        port = 443
    return u.hostname or "", port


def in_cluster_service(address: str) -> tuple[str, str] | None:
    """(service, namespace) when an address names a Service of this cluster (<svc>.<ns>.svc[...]):
    its pods can then be selected by labels, wherever the Service's virtual IP points."""
    parts = address.split(".")
    if len(parts) >= 3 and parts[2] == "svc" and all(parts[:2]):
        return parts[0], parts[1]
    return None


def host_cidrs(host: str, given: list[str]) -> list[str]:
    """The ranges a policy uses for a peer: the ones given, else the address itself when it is an IP."""
    if given:
        return given
    if ip_literal(host):
        ip = ipaddress.ip_address(host.strip("[]"))
        return [f"{ip}/{ip.max_prefixlen}"]
    return []



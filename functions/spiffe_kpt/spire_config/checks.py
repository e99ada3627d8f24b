"""Every check on the SpireDeployment values: what would deploy a broken or unsafe SPIRE.

``check_values`` rejects placeholders, invalid trust domains, TTLs the CA cannot honour, an edge
server that cannot survive the offline window it promises, inconsistent class names and
NetworkPolicies without the addresses they need; ``check_pairing`` an agent and its server that
disagree. Each problem is a ``Problem`` with the field path and a message that says how to fix
it; nothing here knows about kpt.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from ..identity.durations import DurationError, format_duration, parse_duration
from ..identity.spiffeid import SpiffeIDError, parse, validate_trust_domain
from . import paths
from .values import (
    DOWNSTREAM,
    ROOT,
    Problem,
    Values,
    host_cidrs,
    in_cluster_service,
    issuer_host,
    oidc_domains,
    url_host_port,
)

# How a check reports: one call per problem found, in the order the checks run.
Report = Callable[[Problem], None]

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
    _check_network_policy(v, p)
    return out


def _check_server(v: Values, spec: dict[str, Any], ttls: dict[str, float], p: Report) -> None:
    """A server: SVID TTLs its CA can honour, then the checks of its role, its upstream authority and federation."""
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
        _check_root(v, spec, p)
    else:
        _check_downstream(v, spec, ttls, p)
    _check_upstream_authority(v, p)
    _check_federation(v, p)
    _check_jwt_issuer(v, p)


def _check_root(v: Values, spec: dict[str, Any], p: Report) -> None:
    """A root server: no edge-only fields; every workload cluster with its own name, class and prefix."""
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


def _check_downstream(v: Values, spec: dict[str, Any], ttls: dict[str, float], p: Report) -> None:
    """A downstream (edge) server: an upstream, the root as its only authority, an offline window it can keep."""
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


def _check_upstream_authority(v: Values, p: Report) -> None:
    """The settings of the upstream authority type chosen, and no other's."""
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


def _check_federation(v: Values, p: Report) -> None:
    """The bundle endpoint's profile and every federation peer."""
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
    # A peer whose bundle is committed (trustBundle) gets ours the same way, through Git.
    if be is None and any(not peer.trust_bundle for peer in v.peers):
        p(Problem("spec.federation.bundleEndpoint", "federation peers need this server's bundle endpoint too "
                  "(they fetch our bundle from it); set spec.federation.bundleEndpoint.profile, or give every "
                  "peer a trustBundle and hand them this server's bundle the same way (GitOps federation)"))
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


ISSUER = "spec.svid.jwtIssuer"
ODP = "spec.oidcDiscoveryProvider"


def issuer_problem(issuer: str) -> str | None:
    """Why an issuer URL cannot be this trust domain's JWT issuer, or None."""
    from urllib.parse import urlsplit
    u = urlsplit(issuer)
    example = "e.g. https://oidc.telco.acme.net"
    if u.scheme != "https":
        return (f"the JWT issuer {issuer!r} must be an https:// URL ({example}): kube-apiserver and OpenBao "
                "fetch the issuer's discovery document and keys over TLS only")
    try:
        u.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"the JWT issuer {issuer!r} has an invalid port; write it as https://<host>[:<port>]"
    if not u.hostname:
        return f"the JWT issuer {issuer!r} has no host; write it as https://<host>[:<port>] ({example})"
    if u.path or u.query or u.fragment or u.username or u.password or issuer.endswith(("?", "#")):
        return (f"the JWT issuer {issuer!r} must be https://<host>[:<port>] with nothing after the host (no "
                "path, not even a trailing '/'): the provider serves /.well-known/openid-configuration at the "
                f"root of its host, and verifiers compare the iss claim to this string exactly; write "
                f"https://{u.netloc}")
    return None


def _check_jwt_issuer(v: Values, p: Report) -> None:
    """The JWT issuer (server.conf jwt_issuer) and the OIDC discovery provider serving it."""
    if v.jwt_issuer:
        why = issuer_problem(v.jwt_issuer)
        if why:
            p(Problem(ISSUER, why))
    odp = v.oidc
    if odp is None:
        return
    if v.role == DOWNSTREAM:
        p(Problem(ODP, "a downstream server runs no OIDC discovery provider: it publishes its JWT signing keys to "
                  "the root (UpstreamAuthority PublishJWTKey), whose provider serves every key of the trust "
                  "domain; remove spec.oidcDiscoveryProvider here and set spec.svid.jwtIssuer to the root's "
                  "issuer"))
        return
    if not v.jwt_issuer:
        p(Problem(ISSUER, "the OIDC discovery provider (spec.oidcDiscoveryProvider) serves the issuer of this "
                  "server's JWT-SVIDs: set spec.svid.jwtIssuer to the https URL it is reached at, e.g. "
                  "https://oidc.<trust domain>"))
        return
    host = issuer_host(v.jwt_issuer)
    if host and odp.domains and host not in oidc_domains(v):
        p(Problem(f"{ODP}.domains", f"the issuer's host {host!r} (spec.svid.jwtIssuer) is not among the "
                  f"provider's domains {odp.domains}: the provider refuses requests for any other host; add "
                  f"{host!r} (or remove domains: it defaults to the issuer's host)"))
    be = v.bundle_endpoint
    if be is not None and be.port in (paths.OIDC_PORT, paths.OIDC_HEALTH_PORT):
        p(Problem("spec.federation.bundleEndpoint.port", f"port {be.port} is the OIDC discovery provider's in "
                  "the same pod; choose another bundle endpoint port (default 8443)"))
    if v.network_policy.enabled and not odp.public and not odp.cidrs:
        p(Problem(f"{ODP}.cidrs", "the SPIRE NetworkPolicies (spec.networkPolicy, on by default) need the "
                  "addresses of the verifiers that fetch the issuer's keys (kube-apiservers, OpenBao, ...), as "
                  f"the server pod sees them: set {ODP}.cidrs, or {ODP}.public: true when the issuer is "
                  f"public, {OFF_HINT}"))


def check_issuer_pairing(downstream: Values, root: Values) -> list[Problem]:
    """A downstream server and its root rendered together: one issuer for the trust domain."""
    if downstream.trust_domain != root.trust_domain or downstream.jwt_issuer == root.jwt_issuer:
        return []
    want = repr(root.jwt_issuer) if root.jwt_issuer else "no jwtIssuer (as the root has none)"
    return [Problem(ISSUER, f"the downstream server's JWT issuer {downstream.jwt_issuer or 'unset'!r} differs from "
                    f"the root's ({root.name}): every server of trust domain {root.trust_domain!r} must mint "
                    f"JWT-SVIDs with the same iss, which verifiers check against the root's OIDC discovery "
                    f"provider; set {want}")]


def offline_window(ca_ttl: float, root_ca_ttl: float) -> float:
    """Seconds an edge server keeps issuing SVIDs after losing its root, guaranteed.

    Its intermediate CA lives min(ca_ttl, what is left of the root's CA when signed); the
    root's active CA always has at least root_ca_ttl/6 left (SPIRE activates a new CA at
    5/6 of the old one's life). The edge prepares its next CA at half its current CA's life,
    so a cut just before that leaves half a lifetime."""
    return min(ca_ttl, root_ca_ttl / SVID_TTL_DIVISOR) / 2


def _check_offline(v: Values, ttls: dict[str, float], p: Report) -> None:
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


def _check_agent(v: Values, spec: dict[str, Any], p: Report) -> None:
    for key in ("ca", "svid", "controllerManager", "service", "workloadClusters", "upstream",
                "offlineTolerance", "federation", "oidcDiscoveryProvider"):
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


OFF_HINT = ("or switch the SPIRE NetworkPolicies off with spec.networkPolicy.enabled: false (not recommended: "
            "then anything in the cluster can reach the SPIRE server)")


def _check_network_policy(v: Values, p: Report) -> None:
    np = v.network_policy
    cidr_fields: list[tuple[str, list[str]]] = [("spec.networkPolicy.nodeCIDRs", np.node_cidrs),
                                                ("spec.server.cidrs", v.server_cidrs),
                                                ("spec.upstream.cidrs", v.upstream_cidrs)]
    if np.api_server:
        cidr_fields.append(("spec.networkPolicy.apiServer.cidrs", np.api_server.cidrs))
    for i, wc in enumerate(v.workload_clusters):
        cidr_fields.append((f"spec.workloadClusters[{i}].sourceCIDRs", wc.source_cidrs))
        if wc.api_server:
            cidr_fields.append((f"spec.workloadClusters[{i}].apiServer.cidrs", wc.api_server.cidrs))
    for i, peer in enumerate(v.peers):
        cidr_fields.append((f"spec.federation.peers[{i}].cidrs", peer.cidrs))
    if v.oidc is not None:
        cidr_fields.append(("spec.oidcDiscoveryProvider.cidrs", v.oidc.cidrs))
    ua = v.ca.upstream_authority
    vault = ua.options.get("vault") if ua is not None and ua.type == "vault" else None
    if vault:
        cidr_fields.append(("spec.ca.upstreamAuthority.vault.cidrs", list(vault.get("cidrs") or [])))
    for path, cidrs in cidr_fields:
        for j, c in enumerate(cidrs):
            try:
                ipaddress.ip_network(c, strict=True)
            except ValueError as exc:
                p(Problem(f"{path}[{j}]", f"{c!r} is not an address range in CIDR notation ({exc}); write e.g. "
                          "'10.0.0.0/24' (host bits zero) or '192.0.2.10/32' for one address"))
    if not np.enabled:
        return
    need = "the SPIRE NetworkPolicies (spec.networkPolicy, on by default) need"
    if not np.node_cidrs:
        p(Problem("spec.networkPolicy.nodeCIDRs", f"{need} the address ranges of this cluster's nodes (the kubelet "
                  "probes the SPIRE pods from there; agents call the kubelet there): set spec.networkPolicy.nodeCIDRs "
                  f"to ranges holding every node's InternalIP (kubectl get nodes -o wide), {OFF_HINT}"))
    if v.is_server:
        if np.api_server is None or not np.api_server.cidrs:
            p(Problem("spec.networkPolicy.apiServer.cidrs", f"{need} the addresses the kube-apiserver really "
                      "listens on (policies see connections after the 'kubernetes' Service's DNAT): set "
                      "spec.networkPolicy.apiServer.cidrs (and .port, default 6443) from kubectl get endpointslices "
                      f"-n default -l kubernetes.io/service-name=kubernetes, {OFF_HINT}"))
        for i, wc in enumerate(v.workload_clusters):
            base = f"spec.workloadClusters[{i}]"
            if not wc.source_cidrs:
                who = "downstream server and its upstream agent" if wc.mode == "nested" else "agents"
                p(Problem(f"{base}.sourceCIDRs", f"{need} the address ranges the {who} of cluster {wc.name!r} "
                          f"connect from, as this server sees them (its nodes' or NAT gateway's egress addresses): set "
                          f"{base}.sourceCIDRs, {OFF_HINT}"))
            if wc.api_server is None or not wc.api_server.cidrs:
                p(Problem(f"{base}.apiServer.cidrs", f"{need} the addresses of the kube-apiserver of cluster {wc.name!r} "
                          f"(its controller manager and node attestor call it with the kubeconfig): set "
                          f"{base}.apiServer.cidrs (and .port, default 6443), {OFF_HINT}"))
        for i, peer in enumerate(v.peers):
            host, _ = url_host_port(peer.bundle_endpoint_url)
            # A GitOps peer (trustBundle) works with its endpoint unreachable: no ranges, no egress to it.
            if not host_cidrs(host, peer.cidrs) and not peer.trust_bundle:
                p(Problem(f"spec.federation.peers[{i}].cidrs", f"{need} the addresses of the bundle endpoint of "
                          f"{peer.trust_domain!r} ({host} is a DNS name, and a NetworkPolicy takes only address ranges; "
                          "the same ranges are allowed to fetch this server's bundle): set "
                          f"spec.federation.peers[{i}].cidrs (or commit the peer's bundle as a trustBundle and "
                          f"leave its endpoint closed), {OFF_HINT}"))
        if v.role == DOWNSTREAM and not host_cidrs(v.upstream_address, v.upstream_cidrs):
            p(Problem("spec.upstream.cidrs", f"{need} the address ranges of the root server "
                      f"({v.upstream_address} is a DNS name): set spec.upstream.cidrs to the addresses "
                      f"{v.upstream_address} resolves to, {OFF_HINT}"))
        if vault is not None:
            host, _ = url_host_port(str(vault.get("address", "")))
            if not host_cidrs(host, list(vault.get("cidrs") or [])):
                p(Problem("spec.ca.upstreamAuthority.vault.cidrs", f"{need} the addresses of Vault ({host} is a "
                          f"DNS name): set spec.ca.upstreamAuthority.vault.cidrs, {OFF_HINT}"))
        be = v.bundle_endpoint
        if be is not None and be.acme and not be.public:
            p(Problem("spec.federation.bundleEndpoint.public", "an ACME certificate is validated by the ACME "
                      "provider connecting to the bundle endpoint from addresses it does not publish: set "
                      "spec.federation.bundleEndpoint.public: true, or use servingCertSecret"))
    else:
        if np.agents_on_host_network:
            p(Problem("spec.networkPolicy.agentsOnHostNetwork", "agentsOnHostNetwork tells a server's policy where "
                      "its agents connect from; set it in the server package's values, not the agent's"))
        if np.api_server is not None:
            p(Problem("spec.networkPolicy.apiServer", "an agent never calls the kube-apiserver (it attests with a "
                      "projected token and asks the kubelet about pods); remove spec.networkPolicy.apiServer"))
        if not in_cluster_service(v.server_address) and not host_cidrs(v.server_address, v.server_cidrs):
            p(Problem("spec.server.cidrs", f"{need} the addresses of the SPIRE server ({v.server_address} is a DNS "
                      f"name outside this cluster): set spec.server.cidrs to the addresses it resolves to, {OFF_HINT}"))

"""NetworkPolicies for the SPIRE pods, derived from the same values as their configs.

One policy per workload of the package (selected by the workload's own selector), plus a
namespace-wide default deny in each namespace the package creates. Every rule names the
peer the SPIRE component really talks to (kubernetes.io "Network Policies" semantics):

- server: agent API from the local agents (pod selector, or the node ranges when they run
  on the host network) and from each workload cluster's source ranges; the bundle endpoint
  from the federation peers (or everyone when public); probe ports from the nodes. Egress:
  the apiserver(s), DNS, the upstream (root server or Vault) and the federation peers.
- agent / upstream agent: probe port from the nodes; egress to its server, the kubelet and DNS.
- CSI driver: probe port from the nodes; no egress (it only bind-mounts a socket).

Ports are numbers, not names: a named port in an egress rule would be resolved against the
destination pod, which for an address range is no pod at all. Connections to a Service are
matched after its DNAT, so the apiserver rule names the real endpoints and their port, and an
in-cluster server is selected by its pods' labels on the container port.
There is no rule for a validating webhook (the packages switch it off: ENABLE_WEBHOOKS=false):
nothing listens there. The OIDC discovery provider (a container of the root server's pod when
spec.oidcDiscoveryProvider is set) is opened to its verifiers' ranges (or everyone when public)
on its TLS port; it needs no egress (it reads the keys from the server's socket in the pod).
"""

from __future__ import annotations

from typing import Any

from ..api.paths import get_path
from . import paths
from .values import DOWNSTREAM, ApiServer, Values, host_cidrs, in_cluster_service, url_host_port

API = "networking.k8s.io/v1"
KUBELET_PORT = 10250
DNS_PORT = 53
HTTPS_PORT = 443
# The spire-agent package's DaemonSet selector: a server package selects the local agents by it.
AGENT_POD_LABELS = {"app.kubernetes.io/name": "spire-agent", "app.kubernetes.io/instance": "spire-agent"}
SERVER_POD_LABELS = {"app.kubernetes.io/name": "spire-server", "app.kubernetes.io/instance": "spire-server"}
AGENT_COMPONENTS = frozenset({"agent", "upstream-agent"})
CSI_COMPONENTS = frozenset({"csi-driver", "upstream-csi-driver"})
DEFAULT_DENY = "default-deny"

Rule = dict[str, Any]


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in sorted(set(ports))]


def _blocks(cidrs: list[str]) -> list[dict[str, Any]]:
    return [{"ipBlock": {"cidr": c}} for c in cidrs]


def _pods(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {"matchLabels": dict(labels)}}


def probe_ports(pod_spec: dict[str, Any]) -> list[int]:
    """The ports the kubelet probes, named ports resolved against the containers' ports."""
    out: set[int] = set()
    for c in pod_spec.get("containers") or []:
        named = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = c.get(probe) or {}
            for handler in ("httpGet", "tcpSocket", "grpc"):
                port = (pr.get(handler) or {}).get("port")
                port = named.get(port, port) if isinstance(port, str) else port
                if isinstance(port, int):
                    out.add(port)
    return sorted(out)


def _dns(v: Values) -> Rule:
    return {"to": [_pods(v.network_policy.dns_namespace, v.network_policy.dns_pod_labels)],
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}


def _api(api: ApiServer) -> Rule:
    return {"to": _blocks(api.cidrs), "ports": _tcp(api.port)}


def _probes(v: Values, pod_spec: dict[str, Any]) -> list[Rule]:
    ports = probe_ports(pod_spec)
    return [{"from": _blocks(v.network_policy.node_cidrs), "ports": _tcp(*ports)}] if ports else []


def server_rules(v: Values, pod_spec: dict[str, Any]) -> tuple[list[Rule], list[Rule]]:
    np = v.network_policy
    local_agents = _blocks(np.node_cidrs) if np.agents_on_host_network else [_pods(v.agent_namespace, AGENT_POD_LABELS)]
    ingress: list[Rule] = [{"from": local_agents, "ports": _tcp(paths.SERVER_PORT)}]
    for wc in v.workload_clusters:
        ingress.append({"from": _blocks(wc.source_cidrs), "ports": _tcp(paths.SERVER_PORT)})
    be = v.bundle_endpoint
    if be is not None:
        if be.public:
            ingress.append({"ports": _tcp(be.port)})
        else:
            peers = [c for p in v.peers for c in host_cidrs(url_host_port(p.bundle_endpoint_url)[0], p.cidrs)]
            if peers:
                ingress.append({"from": _blocks(peers), "ports": _tcp(be.port)})
    if v.oidc is not None and v.role != DOWNSTREAM:
        if v.oidc.public:
            ingress.append({"ports": _tcp(paths.OIDC_PORT)})
        elif v.oidc.cidrs:
            ingress.append({"from": _blocks(v.oidc.cidrs), "ports": _tcp(paths.OIDC_PORT)})
    ingress += _probes(v, pod_spec)

    egress: list[Rule] = []
    if np.api_server is not None:
        egress.append(_api(np.api_server))
    for wc in v.workload_clusters:
        if wc.api_server is not None:
            egress.append(_api(wc.api_server))
    egress.append(_dns(v))
    if v.role == DOWNSTREAM:
        egress.append({"to": _blocks(host_cidrs(v.upstream_address, v.upstream_cidrs)), "ports": _tcp(v.upstream_port)})
    ua = v.ca.upstream_authority
    if ua is not None and ua.type == "vault":
        vault = ua.options["vault"]
        host, port = url_host_port(str(vault["address"]))
        egress.append({"to": _blocks(host_cidrs(host, list(vault.get("cidrs") or []))), "ports": _tcp(port)})
    if be is not None and be.acme:
        # The ACME directory (Let's Encrypt or another CA) publishes no stable addresses.
        egress.append({"ports": _tcp(HTTPS_PORT)})
    for peer in v.peers:
        host, port = url_host_port(peer.bundle_endpoint_url)
        cidrs = host_cidrs(host, peer.cidrs)
        # Only a GitOps peer (trustBundle) may come without ranges: its endpoint stays closed to the
        # server. An egress rule with no 'to' would open every destination instead.
        if cidrs:
            egress.append({"to": _blocks(cidrs), "ports": _tcp(port)})
    return ingress, egress


def agent_rules(v: Values, pod_spec: dict[str, Any], upstream: bool) -> tuple[list[Rule], list[Rule]]:
    if upstream:
        server: Rule = {"to": _blocks(host_cidrs(v.upstream_address, v.upstream_cidrs)),
                        "ports": _tcp(v.upstream_port)}
    else:
        svc = in_cluster_service(v.server_address)
        if svc is not None:
            # After the Service's DNAT the connection goes to the server pod's container port.
            server = {"to": [_pods(svc[1], SERVER_POD_LABELS)], "ports": _tcp(paths.SERVER_PORT)}
        else:
            server = {"to": _blocks(host_cidrs(v.server_address, v.server_cidrs)), "ports": _tcp(v.server_port)}
    kubelet = {"to": _blocks(v.network_policy.node_cidrs), "ports": _tcp(KUBELET_PORT)}
    return _probes(v, pod_spec), [server, kubelet, _dns(v)]


def _policy(name: str, namespace: str, selector: dict[str, Any], ingress: list[Rule],
            egress: list[Rule], component: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": selector, "policyTypes": ["Ingress", "Egress"]}
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    return {"apiVersion": API, "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "spire"}},
            "spec": spec}


def network_policies(v: Values, workloads: list[dict[str, Any]], own_namespaces: list[str]) -> list[dict[str, Any]]:
    """The package's NetworkPolicies: a default deny per namespace it creates, one policy per workload."""
    if not v.network_policy.enabled:
        return []
    out = [_policy(DEFAULT_DENY, ns, {}, [], [], "network-policy") for ns in sorted(set(own_namespaces))]
    for w in workloads:
        meta = w.get("metadata") or {}
        tmpl = get_path(w, "spec", "template", default={})
        component = str(get_path(tmpl, "metadata", "labels", "app.kubernetes.io/component", default=""))
        selector = {"matchLabels": dict(get_path(w, "spec", "selector", "matchLabels", default={}))}
        pod_spec = tmpl.get("spec") or {}
        if component == "server":
            ingress, egress = server_rules(v, pod_spec)
        elif component in AGENT_COMPONENTS:
            ingress, egress = agent_rules(v, pod_spec, upstream=component == "upstream-agent")
        elif component in CSI_COMPONENTS:
            ingress, egress = _probes(v, pod_spec), []
        else:
            continue  # not a SPIRE workload this function knows: the package author's to secure
        out.append(_policy(str(meta.get("name")), str(meta.get("namespace")), selector, ingress, egress, component))
    return out

"""The SPIRE packages' NetworkPolicies, proved by evaluation and kept by ownership.

The rendered policies (real kpt) are evaluated with tests/authorization/evaluator.py (written
from the Kubernetes documentation, independent of spire-config) in three modelled clusters:
the management cluster (root server + a local agent), a central workload cluster (agent
attesting to the root's LoadBalancer) and a nested edge (downstream server + local agent).
Around the SPIRE pods: the nodes (kubelet), the apiservers, remote agents, the root's
LoadBalancer, a federation peer, kube-dns, an unrelated pod, a pod in the agents' namespace
that is not an agent, a pod elsewhere carrying the agent's labels, and a host on the internet.
Exactly the flows written out below by hand pass; every other one over the listed ports fails.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from ..authorization.evaluator import Cluster, Flow, Pod, networkpolicy_allows
from ..pkgtools import kpt_render
from .examples import AGENT_SPEC, files, render_example, resources, set_values

pytestmark = pytest.mark.kpt

SPIRE_NAMESPACES = {"spire-server", "spire-system"}
PORTS = [(p, "TCP") for p in (8081, 8080, 8083, 8084, 8085, 8443, 8444, 8008, 9982, 9809, 9810, 10250, 6443, 443, 9999)] + \
    [(53, "UDP"), (53, "TCP")]
AGENT = (("app.kubernetes.io/name", "spire-agent"), ("app.kubernetes.io/instance", "spire-agent"))
SERVER = (("app.kubernetes.io/name", "spire-server"), ("app.kubernetes.io/instance", "spire-server"))


def _outside(name: str, ip: str) -> Pod:
    return Pod(name, "", (), ip=ip, in_cluster=False)


def _common(node_ip: str) -> dict[str, Pod]:
    return {
        "node": _outside("node", node_ip),  # the kubelet, on one of the cluster's nodes
        "kube-dns": Pod("kube-dns", "kube-system", (("k8s-app", "kube-dns"),), ip="10.244.9.53"),
        "unrelated": Pod("unrelated", "default", (("app", "web"),), ip="10.244.9.30"),
        "intruder": Pod("intruder", "spire-system", (("app.kubernetes.io/name", "intruder"),), ip="10.244.9.31"),
        "fake-agent": Pod("fake-agent", "default", AGENT, ip="10.244.9.32"),
        "internet": _outside("internet", "198.51.100.7"),
    }


def _pods_of(objs: list[dict[str, Any]], ips: dict[str, str]) -> dict[str, Pod]:
    out = {}
    for o in objs:
        if o["kind"] in ("StatefulSet", "DaemonSet"):
            name = o["metadata"]["name"]
            labels = tuple(sorted(o["spec"]["template"]["metadata"]["labels"].items()))
            out[name] = Pod(name, o["metadata"]["namespace"], labels, ip=ips[name])
    return out


def _policies(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == "NetworkPolicy"]


def _dns(src: str) -> set[Flow]:
    return {Flow(src, "kube-dns", 53, "UDP"), Flow(src, "kube-dns", 53, "TCP")}


@pytest.fixture(scope="module")
def mgmt(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    d = tmp_path_factory.mktemp("mgmt")
    server, r = render_example("spire-server", d)
    assert r.exit_code == 0, r.results
    agent, r = render_example("spire-agent", d, {"clusterName": "mgmt", "server": {"address": "spire-server.spire-server.svc"},
                                                 "networkPolicy": {"nodeCIDRs": ["10.10.0.0/24"]}})
    assert r.exit_code == 0, r.results
    objs = resources(server) + resources(agent)
    pods = _pods_of(objs, {"spire-server": "10.244.0.10", "spire-agent": "10.244.0.20", "spiffe-csi-driver": "10.244.0.21"})
    pods.update(_common("10.10.0.5"))
    pods.update({
        "apiserver": _outside("apiserver", "10.10.1.10"),
        "regional-agent": _outside("regional-agent", "10.20.0.7"),
        "regional-apiserver": _outside("regional-apiserver", "10.20.1.10"),
        "edge-upstream-agent": _outside("edge-upstream-agent", "10.30.0.8"),
        "edge-apiserver": _outside("edge-apiserver", "10.30.1.10"),
        "partner": _outside("partner", "203.0.113.5"),
    })
    return Cluster(pods, _policies(objs))


MGMT_FLOWS = {
    Flow("spire-agent", "spire-server", 8081, "TCP"),
    Flow("regional-agent", "spire-server", 8081, "TCP"),
    Flow("edge-upstream-agent", "spire-server", 8081, "TCP"),
    Flow("partner", "spire-server", 8443, "TCP"),
    # the OIDC discovery provider (in the server's pod): the three clusters' apiservers verify
    # JWT-SVIDs with its keys; the kubelet probes its health port
    *{Flow(a, "spire-server", 8444, "TCP") for a in ("apiserver", "regional-apiserver", "edge-apiserver")},
    *{Flow("node", "spire-server", p, "TCP") for p in (8080, 8083, 8084, 8085, 8008)},
    Flow("node", "spire-agent", 9982, "TCP"),
    Flow("node", "spiffe-csi-driver", 9809, "TCP"),
    Flow("spire-server", "apiserver", 6443, "TCP"),
    Flow("spire-server", "regional-apiserver", 6443, "TCP"),
    Flow("spire-server", "edge-apiserver", 443, "TCP"),
    Flow("spire-server", "partner", 8443, "TCP"),
    *_dns("spire-server"),
    Flow("spire-agent", "node", 10250, "TCP"),
    *_dns("spire-agent"),
}


@pytest.fixture(scope="module")
def regional(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    agent, r = render_example("spire-agent", tmp_path_factory.mktemp("regional"))
    assert r.exit_code == 0, r.results
    objs = resources(agent)
    pods = _pods_of(objs, {"spire-agent": "10.244.1.20", "spiffe-csi-driver": "10.244.1.21"})
    pods.update(_common("10.20.0.5"))
    pods.update({"root-lb": _outside("root-lb", "192.0.2.10"), "apiserver": _outside("apiserver", "10.20.1.10")})
    return Cluster(pods, _policies(objs))


REGIONAL_FLOWS = {
    Flow("spire-agent", "root-lb", 8081, "TCP"),
    Flow("spire-agent", "node", 10250, "TCP"),
    *_dns("spire-agent"),
    Flow("node", "spire-agent", 9982, "TCP"),
    Flow("node", "spiffe-csi-driver", 9809, "TCP"),
}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    d = tmp_path_factory.mktemp("edge")
    ds, r = render_example("spire-downstream-server", d)
    assert r.exit_code == 0, r.results
    agent, r = render_example("spire-agent", d, {"clusterName": "edge-1", "server": {"address": "spire-server.spire-server.svc"},
                                                 "networkPolicy": {"nodeCIDRs": ["10.30.0.0/24"]}})
    assert r.exit_code == 0, r.results
    objs = resources(ds) + resources(agent)
    pods = _pods_of(objs, {"spire-server": "10.244.2.10", "spire-upstream-agent": "10.244.2.11",
                           "spire-upstream-csi-driver": "10.244.2.12", "spire-agent": "10.244.2.20",
                           "spiffe-csi-driver": "10.244.2.21"})
    pods.update(_common("10.30.0.5"))
    pods.update({"root-lb": _outside("root-lb", "192.0.2.10"), "apiserver": _outside("apiserver", "10.30.1.10")})
    return Cluster(pods, _policies(objs))


EDGE_FLOWS = {
    Flow("spire-agent", "spire-server", 8081, "TCP"),
    Flow("spire-server", "apiserver", 443, "TCP"),
    Flow("spire-server", "root-lb", 8081, "TCP"),  # the spire UpstreamAuthority calls the root
    *_dns("spire-server"),
    Flow("spire-upstream-agent", "root-lb", 8081, "TCP"),
    Flow("spire-upstream-agent", "node", 10250, "TCP"),
    *_dns("spire-upstream-agent"),
    Flow("spire-agent", "node", 10250, "TCP"),
    *_dns("spire-agent"),
    *{Flow("node", "spire-server", p, "TCP") for p in (8080, 8083)},
    Flow("node", "spire-upstream-agent", 9982, "TCP"),
    Flow("node", "spire-upstream-csi-driver", 9810, "TCP"),
    Flow("node", "spire-agent", 9982, "TCP"),
    Flow("node", "spiffe-csi-driver", 9809, "TCP"),
}


def _universe(c: Cluster) -> list[Flow]:
    """Every flow into or out of a SPIRE pod over the listed ports (the rest is not the packages' to decide)."""
    return [Flow(s, d, port, proto)
            for s, d in itertools.permutations(sorted(c.pods), 2)
            if c.pods[s].namespace in SPIRE_NAMESPACES or c.pods[d].namespace in SPIRE_NAMESPACES
            for port, proto in PORTS]


@pytest.mark.parametrize("name,expected", [("mgmt", MGMT_FLOWS), ("regional", REGIONAL_FLOWS), ("edge", EDGE_FLOWS)])
def test_exactly_the_spire_flows_pass(request: pytest.FixtureRequest, name: str, expected: set[Flow]) -> None:
    c: Cluster = request.getfixturevalue(name)
    universe = _universe(c)
    assert len(universe) > 500 and expected <= set(universe)
    got = {f for f in universe if networkpolicy_allows(c, f)}
    assert got - expected == set(), "allowed but not a SPIRE flow"
    assert expected - got == set(), "a SPIRE flow is denied"


def test_without_policies_everything_passes(mgmt: Cluster) -> None:
    """The evaluator is not trivially denying: the same universe with no policy is wide open."""
    bare = Cluster(mgmt.pods, [])
    assert all(networkpolicy_allows(bare, f) for f in _universe(bare))


def test_public_bundle_endpoint_is_open_to_everyone(tmp_path: Path) -> None:
    spec = {"federation": {"bundleEndpoint": {"profile": "https_spiffe", "port": 8443, "public": True}}}
    pkg, r = render_example("spire-server", tmp_path, spec)
    assert r.exit_code == 0, r.results
    objs = resources(pkg)
    pods = _pods_of(objs, {"spire-server": "10.244.0.10"})
    pods.update(_common("10.10.0.5"))
    c = Cluster(pods, _policies(objs))
    assert networkpolicy_allows(c, Flow("internet", "spire-server", 8443, "TCP"))
    assert not networkpolicy_allows(c, Flow("internet", "spire-server", 8081, "TCP"))


def _np_names(pkg: Path) -> set[tuple[str, str]]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in resources(pkg) if o["kind"] == "NetworkPolicy"}


def test_policies_follow_the_values(tmp_path: Path) -> None:
    """Generated objects are owned: removing a peer removes its rules, switching the policies
    off removes them all (with a warning), switching them on again brings them back."""
    pkg, r = render_example("spire-server", tmp_path)
    assert r.exit_code == 0
    assert "203.0.113.0/28" in (pkg / "network-policies.yaml").read_text()
    assert _np_names(pkg) == {("spire-server", "default-deny"), ("spire-server", "spire-server")}

    set_values(pkg, {"federation": {"bundleEndpoint": {"profile": "https_spiffe", "port": 8443}}})
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.results
    text = (pkg / "network-policies.yaml").read_text()
    assert "203.0.113" not in text and "8443" not in text  # no peer: the bundle endpoint is closed

    set_values(pkg, {"networkPolicy": {"enabled": False}})
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.results
    assert _np_names(pkg) == set() and not (pkg / "network-policies.yaml").exists()
    assert "externalTrafficPolicy" not in (pkg / "service.yaml").read_text()
    warn = [x for x in r.results if x.get("severity") == "warning"]
    assert len(warn) == 1 and warn[0]["field"]["path"] == "spec.networkPolicy.enabled", r.results
    assert "anything in the cluster can reach" in warn[0]["message"]
    assert warn[0]["resourceRef"]["name"] == "spire-server"

    set_values(pkg, {"networkPolicy": {"nodeCIDRs": ["10.10.0.0/24"], "apiServer": {"cidrs": ["10.10.1.10/32"]}}})
    r = kpt_render(pkg)
    assert r.exit_code == 0 and not [x for x in r.results if x.get("severity") == "warning"]
    assert _np_names(pkg) == {("spire-server", "default-deny"), ("spire-server", "spire-server")}
    before = files(pkg)
    assert kpt_render(pkg).exit_code == 0 and files(pkg) == before


def test_agent_policy_without_policies_needs_no_ranges(tmp_path: Path) -> None:
    """Switched off explicitly, the ranges the policies need are not asked for."""
    spec = {k: v for k, v in AGENT_SPEC.items() if k != "networkPolicy"}
    spec["server"] = {"address": "spire.mgmt.acme.net"}
    pkg, r = render_example("spire-agent", tmp_path, {**spec, "networkPolicy": {"enabled": False}})
    assert r.exit_code == 0, r.results
    assert _np_names(pkg) == set()


def test_agents_on_host_network_reach_the_server_from_the_nodes(tmp_path: Path) -> None:
    """A NetworkPolicy cannot select host-network pods: their traffic carries the node's address.
    agentsOnHostNetwork opens the agent API to the nodes instead of the agent pods."""
    pkg, r = render_example("spire-server", tmp_path, {"networkPolicy": {
        "nodeCIDRs": ["10.10.0.0/24"], "apiServer": {"cidrs": ["10.10.1.10/32"]}, "agentsOnHostNetwork": True}})
    assert r.exit_code == 0, r.results
    objs = resources(pkg)
    pods = _pods_of(objs, {"spire-server": "10.244.0.10"})
    pods.update(_common("10.10.0.5"))
    c = Cluster(pods, _policies(objs))
    assert networkpolicy_allows(c, Flow("node", "spire-server", 8081, "TCP"))
    assert not networkpolicy_allows(c, Flow("fake-agent", "spire-server", 8081, "TCP"))
    assert not networkpolicy_allows(c, Flow("internet", "spire-server", 8081, "TCP"))


def test_policies_of_another_function_survive(tmp_path: Path) -> None:
    """A NetworkPolicy spiffe-authorization generated in the same package is not spire-config's
    to delete, even though both carry the spiffe-kpt ownership annotation."""
    from spiffe_kpt.spire_config import configure

    from ..pkgtools import read_package, run_in_process
    pkg, r = render_example("spire-agent", tmp_path)
    assert r.exit_code == 0
    owner = "workloadidentity.nephio.org/v1alpha1.AuthorizationPolicy"
    foreign = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "app-ingress", "namespace": "spire-system",
                            "annotations": {"workloadidentity.nephio.org/owner": owner,
                                            "specializer.nephio.org/owner": owner,
                                            "config.kubernetes.io/path": "authz.yaml",
                                            "internal.config.kubernetes.io/path": "authz.yaml"}},
               "spec": {"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress"]}}
    items, results, code = run_in_process(read_package(pkg) + [foreign], [configure])
    assert code == 0, results
    names = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items if o.get("kind") == "NetworkPolicy"}
    assert names == {("spire-system", "app-ingress"), ("spire-system", "default-deny"), ("spire-system", "spire-agent"),
                     ("spire-system", "spiffe-csi-driver")}

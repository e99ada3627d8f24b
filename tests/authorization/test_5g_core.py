"""The 5G core example (blueprints/examples/5g-core: the UPF on edge01, the SMF and the AMF on
regional, one package each) proved by evaluation the way test_evaluation proves authz-5g-like.

The packages run under zero trust (defaultDeny on): every namespace of theirs denies both
directions but DNS, each NF's ingress rules open its server side, and its egress rules
(spec.egress) open its client side towards servers of other packages and clusters. A flow
passes only when the server's ingress and the client's egress both allow it.

Each cluster is evaluated with what is deployed there (edge01: the UPF package; regional: the
SMF and AMF packages, plus an NRF package rendered here, the server of their NRF calls) and the
pods of the other clusters and the RAN that talk to it. A flow between clusters is decided in
both: the client's egress where the client runs, the server's ingress where the server runs.
On every plane a rule covers (the pod network, the N2/N4 attachments) each backend allows
exactly the declared flows plus what the render's infos say it widens to (an ipBlock admits
any address of the peer's range), and end to end exactly the declared flows pass.
"""

from __future__ import annotations

import copy
import itertools
import json
import re

import jsonschema
import kubernetes_validate
import pytest

from spiffe_kpt.api.schema import load_schema, validate
from spiffe_kpt.krm import yamlio
from spiffe_kpt.local_render import image_refs_to_exec

from ..pkgtools import WI_API, read_package
from .evaluator import EVALUATORS, POD_NETWORK, Cluster, Flow, Pod, allowed, governed
from .helpers import FIVE_G_CORE, FIVE_G_CORE_PIPELINE, cluster_of, generated, render
from .test_schemas import K8S_VERSION, _closed, _crd_schemas

NFS = ("upf", "smf", "amf")
BACKENDS = ["istio", "networkpolicy", "multinetworkpolicy"]  # what the three IdentityContexts enable
TD = "spiffe://core.telco-operator.net"
UPF_ID = f"{TD}/cluster/edge01/ns/free5gc-upf/sa/upf-edge01"
SMF_ID = f"{TD}/cluster/regional/ns/free5gc-cp/sa/smf-regional"
AMF_ID = f"{TD}/cluster/regional/ns/free5gc-cp/sa/amf-regional"
NRF_ID = f"{TD}/cluster/regional/ns/free5gc-cp/sa/nrf"
GATEWAY_ID = "spiffe://mgmt.telco-operator.net/cluster/mgmt/ns/observability/sa/observability/app/metrics-gateway"
EDGE_N4 = "free5gc-upf/upf-edge01-n4"  # the UPF's N4 attachment (edge01)
REGIONAL_N4 = "free5gc-cp/smf-regional-n4"  # the SMF's N4 attachment (regional)
N2 = "free5gc-cp/amf-regional-n2"  # the AMF's N2 attachment (regional)
N3 = "free5gc-upf/upf-edge01-n3"  # the UPF's N3 (GTP-U to and from the gNBs) attachment (edge01)
N6 = "free5gc-upf/upf-edge01-n6"  # the UPF's N6 (data network) attachment (edge01)
PLANES = {POD_NETWORK, EDGE_N4, REGIONAL_N4, N2, N3, N6}  # every plane a pod of the packages is on
PORTS = [(8805, "UDP"), (8805, "TCP"), (80, "TCP"), (80, "UDP"), (38412, "SCTP"), (38412, "TCP"),
         (2152, "UDP"), (2152, "TCP"), (8000, "TCP"), (4317, "TCP"), (53, "UDP"), (53, "TCP"), (9999, "TCP"),
         (443, "UDP"), (9999, "SCTP")]

# Written by hand from the issue, each flow as its cluster sees it (a flow between clusters
# appears in both, on each end's own attachment): N4 both ways, N2 from the gNBs into the AMF,
# SBI between SMF and AMF on port 80 (the packages' sbi container port), the SMF's and the AMF's
# calls to the NRF (8000), the UPF's metrics push to the management cluster (OTLP 4317).
DECLARED = {
    "edge01": {Flow("smf-regional", "upf-edge01", 8805, "UDP", EDGE_N4),
               Flow("upf-edge01", "smf-regional", 8805, "UDP", EDGE_N4),
               Flow("upf-edge01", "metrics-gateway", 4317, "TCP"),
               # N3: GTP-U both ways between the gNBs' N3 range and the UPF, nothing else.
               Flow("gnb-n3", "upf-edge01", 2152, "UDP", N3),
               Flow("upf-edge01", "gnb-n3", 2152, "UDP", N3),
               # N6: the UPF may send anything TCP or UDP to the data network; nothing comes in
               # unasked, and no other pod of the namespace may use N6.
               *(Flow("upf-edge01", "internet", port, proto, N6) for port, proto in PORTS if proto in ("TCP", "UDP"))},
    "regional": {Flow("upf-edge01", "smf-regional", 8805, "UDP", REGIONAL_N4),
                 Flow("smf-regional", "upf-edge01", 8805, "UDP", REGIONAL_N4),
                 Flow("amf-regional", "smf-regional", 80, "TCP"),
                 Flow("smf-regional", "amf-regional", 80, "TCP"),
                 Flow("gnb", "amf-regional", 38412, "SCTP", N2),
                 Flow("smf-regional", "nrf", 8000, "TCP"),
                 Flow("amf-regional", "nrf", 8000, "TCP")},
}
# Where each end of a cross-cluster flow is decided: (client cluster, client plane, server
# cluster, server plane). None: that end is not ours (the RAN, the management cluster).
CROSS = {
    ("smf-regional", "upf-edge01", 8805, "UDP"): ("regional", REGIONAL_N4, "edge01", EDGE_N4),
    ("upf-edge01", "smf-regional", 8805, "UDP"): ("edge01", EDGE_N4, "regional", REGIONAL_N4),
    ("upf-edge01", "metrics-gateway", 4317, "TCP"): ("edge01", POD_NETWORK, None, None),
    ("gnb", "amf-regional", 38412, "SCTP"): (None, None, "regional", N2),
}


def _pod(name: str, ns: str, principal: str = "", ip: str = "", networks: tuple[str, ...] = (),
         in_cluster: bool = False) -> Pod:
    return Pod(name, ns, (("name", name),), principal=principal, ip=ip, networks=frozenset(networks),
               in_cluster=in_cluster)


def _nrf_package() -> list[dict]:
    """The NRF's own package, as the regional cluster would run it: its ingress admits the SMF's
    and the AMF's SBI calls (the server side of their 'sbi-nrf' egress rules)."""
    context = [o for o in read_package(FIVE_G_CORE / "smf") if o.get("kind") in ("IdentityContext", "WorkloadCluster")]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "nrf", "namespace": "free5gc-cp", "labels": {"name": "nrf"}},
                  "spec": {"selector": {"matchLabels": {"name": "nrf"}}, "template": {
                      "metadata": {"labels": {"name": "nrf"}},
                      "spec": {"containers": [{"name": "nrf", "image": "docker.io/towards5gs/free5gc-nrf:v3.2.0",
                                               "ports": [{"name": "sbi", "containerPort": 8000, "protocol": "TCP"}]}]}}}}
    identity = {"apiVersion": WI_API, "kind": "WorkloadIdentity",
                "metadata": {"name": "nrf", "annotations": {"config.kubernetes.io/local-config": "true"}},
                "spec": {"workloadRef": {"kind": "Deployment", "name": "nrf"}, "selector": {"labelKeys": ["name"]},
                         "ingress": [{"name": "sbi", "from": [{"spiffeID": SMF_ID}, {"spiffeID": AMF_ID}],
                                      "ports": [{"port": "sbi"}]}]}}
    items, results, code = render(context + [deployment, identity], FIVE_G_CORE_PIPELINE)
    assert code == 0, [r for r in results if r["severity"] == "error"]
    return items


def _edge(upf: list[dict]) -> Cluster:
    edge = cluster_of(upf)
    # From the regional cluster: the SMF with its N4 address (regional N4 range), the AMF from
    # its pod address, another pod of the regional N4 range; the management cluster's metrics
    # gateway (the address peerClusters gives) and another mgmt address; a stranger.
    edge.pods["smf-regional"] = _pod("smf-regional", "free5gc-cp", SMF_ID, "10.100.4.10", (EDGE_N4,))
    edge.pods["amf-regional"] = _pod("amf-regional", "free5gc-cp", AMF_ID, "10.244.1.7", (EDGE_N4,))
    edge.pods["regional-n4-other"] = _pod("regional-n4-other", "free5gc-cp",
                                          f"{TD}/cluster/regional/ns/free5gc-cp/sa/other", "10.100.4.99", (EDGE_N4,))
    edge.pods["metrics-gateway"] = _pod("metrics-gateway", "observability", GATEWAY_ID, "10.30.0.10")
    edge.pods["mgmt-other"] = _pod("mgmt-other", "observability", "", "10.30.0.11")
    edge.pods["stranger"] = _pod("stranger", "elsewhere", "", "10.99.0.1", (EDGE_N4, N3, N6))
    # The RAN on N3: a gNB of the cell sites' N3 range, and the internet behind N6.
    edge.pods["gnb-n3"] = _pod("gnb-n3", "ran", "", "10.200.3.5", (N3,))
    edge.pods["internet"] = _pod("internet", "internet", "", "203.0.113.7", (N6,))
    edge.pods["kube-dns"] = Pod("kube-dns", "kube-system", (("k8s-app", "kube-dns"),))
    return edge


def _regional(smf: list[dict], amf: list[dict], nrf: list[dict]) -> Cluster:
    regional = cluster_of(smf + amf + nrf)
    # From edge01 and the RAN: the UPF with its N4 address (edge01 N4 range), another edge01 N4
    # address, a gNB on the N2 range, a stranger on both networks.
    regional.pods["upf-edge01"] = _pod("upf-edge01", "free5gc-upf", UPF_ID, "10.101.4.10", (REGIONAL_N4,))
    regional.pods["edge01-n4-other"] = _pod("edge01-n4-other", "free5gc-upf", "", "10.101.4.99", (REGIONAL_N4,))
    regional.pods["gnb"] = _pod("gnb", "ran", "", "10.200.2.5", (N2,))
    regional.pods["stranger"] = _pod("stranger", "elsewhere", "", "10.99.0.1", (N2, REGIONAL_N4))
    # In the regional cluster: another NF of the core's namespace with a valid SPIFFE ID that no
    # rule names (the AUSF), attached to both networks but without an address of an allowed range.
    regional.pods["ausf-regional"] = _pod("ausf-regional", "free5gc-cp", f"{TD}/cluster/regional/ns/free5gc-cp/sa/ausf",
                                          "10.100.4.20", (N2, REGIONAL_N4), in_cluster=True)
    regional.pods["kube-dns"] = Pod("kube-dns", "kube-system", (("k8s-app", "kube-dns"),))
    return regional


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[list, list]]:
    out = {}
    for nf in NFS:
        items, results, code = render(FIVE_G_CORE / nf, FIVE_G_CORE_PIPELINE)
        assert code == 0, [r for r in results if r["severity"] == "error"]
        out[nf] = (items, results)
    return out


@pytest.fixture(scope="module")
def nrf() -> list[dict]:
    return _nrf_package()


@pytest.fixture(scope="module")
def clusters(rendered, nrf) -> dict[str, Cluster]:
    return {"edge01": _edge(rendered["upf"][0]),
            "regional": _regional(rendered["smf"][0], rendered["amf"][0], nrf)}


def _universe(c: Cluster) -> list[Flow]:
    """Every flow this cluster decides on: from or to a pod of it (another cluster's pods talking
    among themselves are not its business), on every plane some rule covers."""
    flows = []
    for s, d in itertools.permutations(sorted(c.pods), 2):
        src, dst = c.pods[s], c.pods[d]
        if not (src.in_cluster or dst.in_cluster) or "kube-dns" in (s, d) and not (src.in_cluster and dst.in_cluster):
            continue
        nets = [n for n in (POD_NETWORK, *sorted(src.networks & dst.networks)) if n in PLANES]
        for (port, proto), net in itertools.product(PORTS, nets):
            flows.append(Flow(s, d, port, proto, net))
    return flows


def _dns(c: Cluster) -> set[Flow]:
    """DNS egress, kept under default deny for every pod of the packages' namespaces."""
    return {Flow(p, "kube-dns", 53, proto) for p, pod in c.pods.items()
            if pod.in_cluster and p != "kube-dns" for proto in ("UDP", "TCP")}


def _widened(cluster: str, c: Cluster, backend: str) -> set[Flow]:
    """What the render's infos say a backend lets through beyond the declared flows."""
    if backend == "multinetworkpolicy":
        # 'by the address ranges ...': any address of the peer's range, whatever its identity,
        # into the server (ingress) and out of the client (egress).
        return {"edge01": {Flow("regional-n4-other", "upf-edge01", 8805, "UDP", EDGE_N4),
                           Flow("upf-edge01", "regional-n4-other", 8805, "UDP", EDGE_N4),
                           # N6 egress is allowAll: any destination on N6, the stranger too.
                           *(Flow("upf-edge01", "stranger", port, proto, N6) for port, proto in PORTS
                             if proto in ("TCP", "UDP"))},
                "regional": {Flow("edge01-n4-other", "smf-regional", 8805, "UDP", REGIONAL_N4),
                             Flow("smf-regional", "edge01-n4-other", 8805, "UDP", REGIONAL_N4)}}[cluster]
    if backend == "istio":
        # Istio authorizes at the server: a server of another cluster, or outside the packages'
        # namespaces (kube-dns), is not these packages' to decide.
        return {f for f in _universe(c)
                if not c.pods[f.dst].in_cluster or c.pods[f.dst].namespace not in ("free5gc-upf", "free5gc-cp")}
    # networkpolicy: the SBI peers are selected by namespace (info), but under default deny the
    # other pods of free5gc-cp are isolated both ways, so nothing is widened.
    return set()


def _exec_pipeline(nf: str) -> list[str]:
    kptfile = yamlio.load(image_refs_to_exec((FIVE_G_CORE / nf / "Kptfile").read_text())[0])
    return [f["exec"] for key in ("mutators", "validators") for f in kptfile["pipeline"][key]]


@pytest.mark.parametrize("nf", NFS)
def test_each_kptfile_runs_the_chain_with_authorization_after_registration(nf: str) -> None:
    # The UPF's package also grants the management cluster's scaler API access (spiffe-access,
    # after authorization).
    expected = list(FIVE_G_CORE_PIPELINE)
    if nf == "upf":
        expected.insert(expected.index("spiffe-authorization") + 1, "spiffe-access")
    assert _exec_pipeline(nf) == expected


def test_the_render_warns_only_where_an_address_is_the_whole_check_and_says_what_each_backend_leaves_out(
        rendered) -> None:
    said: set[tuple[str, str, str, str]] = set()
    for nf, (_, results) in rendered.items():
        assert [r for r in results if r["severity"] == "error"] == [], nf
        for r in results:
            backend = r["message"].split(":")[0]
            if backend in BACKENDS and "rule " in r["message"]:
                said.add((r["severity"][0], backend, r["message"].split("rule ")[1].split()[0], r["field"]["path"]))
            else:
                assert r["severity"] == "info", r
    assert said == {
        # N2, N3 and N4 are Multus attachments: the sidecar never sees them.
        ("i", "istio", "upf-edge01/n4", "spec.ingress[0].network"),
        ("i", "istio", "upf-edge01/n3", "spec.ingress[1].network"),
        ("i", "istio", "smf-regional/n4", "spec.ingress[0].network"),
        ("i", "istio", "amf-regional/n2", "spec.ingress[0].network"),
        # Istio authorizes at the server: every egress rule is left to the network backend that
        # enforces it (named: multinetworkpolicy for N3/N4/N6, networkpolicy for the pod network).
        ("i", "istio", "upf-edge01/n4", "spec.egress[0]"),
        ("i", "istio", "upf-edge01/n3", "spec.egress[1]"),
        ("i", "istio", "upf-edge01/n6", "spec.egress[2]"),
        ("i", "istio", "upf-edge01/metrics", "spec.egress[3]"),
        ("i", "istio", "smf-regional/n4", "spec.egress[0]"),
        ("i", "istio", "smf-regional/sbi-amf", "spec.egress[1]"),
        ("i", "istio", "smf-regional/sbi-nrf", "spec.egress[2]"),
        ("i", "istio", "amf-regional/sbi-smf", "spec.egress[0]"),
        ("i", "istio", "amf-regional/sbi-nrf", "spec.egress[1]"),
        # Peers of another cluster (and the RAN) by address only: a warning where the address
        # decides alone who gets in (no mesh on N2/N3/N4), an info at the client.
        ("w", "multinetworkpolicy", "upf-edge01/n4", "spec.ingress[0].from[0]"),
        ("w", "multinetworkpolicy", "upf-edge01/n3", "spec.ingress[1].from[0]"),
        ("w", "multinetworkpolicy", "smf-regional/n4", "spec.ingress[0].from[0]"),
        ("w", "multinetworkpolicy", "amf-regional/n2", "spec.ingress[0].from[0]"),
        ("i", "multinetworkpolicy", "upf-edge01/n4", "spec.egress[0].to[0]"),
        ("i", "multinetworkpolicy", "upf-edge01/n3", "spec.egress[1].to[0]"),
        ("i", "multinetworkpolicy", "smf-regional/n4", "spec.egress[0].to[0]"),
        ("i", "networkpolicy", "upf-edge01/metrics", "spec.egress[3].to[0]"),
        # The SMF, the AMF and the NRF are each other's out-of-package peers, named by exact ID
        # and podLabels: selected exactly, so nothing to say about them.
    }
    for _, results in rendered.values():
        for r in results:
            if "istio: egress rule" in r["message"]:
                # Only the backends the context enables are named.
                assert "linkerd" not in r["message"] and "(networkpolicy, multinetworkpolicy)" not in r["message"]


@pytest.mark.parametrize("cluster", ["edge01", "regional"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_allows_exactly_the_declared_flows_it_governs(clusters, cluster: str, backend: str) -> None:
    c = clusters[cluster]
    universe = [f for f in _universe(c) if governed(backend, f)]
    expected = {f for f in DECLARED[cluster] | _dns(c) | _widened(cluster, c, backend) if f in set(universe)}
    got = {f for f in universe if EVALUATORS[backend](c, f)}
    assert got - expected == set(), f"{backend} allows undeclared flows"
    assert expected - got == set(), f"{backend} denies declared flows"


@pytest.mark.parametrize("cluster", ["edge01", "regional"])
def test_end_to_end_only_the_declared_flows_and_the_address_only_n4_peers(clusters, cluster: str) -> None:
    c = clusters[cluster]
    universe = _universe(c)
    got = {f for f in universe if allowed(c, f, BACKENDS)}
    # On the pod network Istio checks the principal at the server; on N4 nothing checks the ID
    # behind an address of the peer cluster's range.
    assert got == DECLARED[cluster] | _dns(c) | _widened(cluster, c, "multinetworkpolicy")
    assert len(universe) > {"edge01": 500, "regional": 1300}[cluster]


def _across(views: dict[str, Cluster], src: str, dst: str, port: int, proto: str) -> bool:
    """A flow between clusters: the client's egress where it runs and the server's ingress where
    it runs must both allow it (each end on its own attachment)."""
    client, client_net, server, server_net = CROSS[(src, dst, port, proto)]
    ok = True
    if client is not None:
        ok = ok and allowed(views[client], Flow(src, dst, port, proto, client_net), BACKENDS)
    if server is not None:
        ok = ok and allowed(views[server], Flow(src, dst, port, proto, server_net), BACKENDS)
    return ok


@pytest.mark.parametrize("flow", sorted(CROSS))
def test_each_flow_between_clusters_passes_both_ends(clusters, flow) -> None:
    assert _across(clusters, *flow)


def _without_egress(items: list[dict], identity: str, rule: str) -> list[dict]:
    """The package as rendered, re-rendered with one egress rule of one identity removed."""
    items = copy.deepcopy(items)
    wi = next(o for o in items if o.get("kind") == "WorkloadIdentity" and o["metadata"]["name"] == identity)
    wi["spec"]["egress"] = [r for r in wi["spec"]["egress"] if r["name"] != rule]
    out, results, code = render(items, FIVE_G_CORE_PIPELINE)
    assert code == 0, [r for r in results if r["severity"] == "error"]
    return out


@pytest.mark.parametrize("case", ["smf-n4-to-upf", "upf-n4-to-smf", "amf-sbi-to-smf", "smf-sbi-to-nrf"])
def test_a_flow_the_server_allows_is_denied_when_the_client_declares_no_egress(rendered, nrf, clusters,
                                                                                case: str) -> None:
    """The server's ingress alone is not enough under default deny: without the client's egress
    rule the flow is denied at the client, on every backend that governs it there."""
    upf, smf, amf = (rendered[nf][0] for nf in NFS)
    if case == "smf-n4-to-upf":
        flow, views = ("smf-regional", "upf-edge01", 8805, "UDP"), {
            "edge01": _edge(upf), "regional": _regional(_without_egress(smf, "smf-regional", "n4"), amf, nrf)}
    elif case == "upf-n4-to-smf":
        flow, views = ("upf-edge01", "smf-regional", 8805, "UDP"), {
            "edge01": _edge(_without_egress(upf, "upf-edge01", "n4")), "regional": _regional(smf, amf, nrf)}
    elif case == "amf-sbi-to-smf":
        flow, views = ("amf-regional", "smf-regional", 80, "TCP"), {
            "edge01": _edge(upf), "regional": _regional(smf, _without_egress(amf, "amf-regional", "sbi-smf"), nrf)}
    else:
        flow, views = ("smf-regional", "nrf", 8000, "TCP"), {
            "edge01": _edge(upf), "regional": _regional(_without_egress(smf, "smf-regional", "sbi-nrf"), amf, nrf)}
    if flow in CROSS:
        _, client_net, server, server_net = CROSS[flow]
        # The server's end still admits it (in its cluster, with the packages as declared)...
        assert allowed(clusters[server], Flow(*flow, server_net), BACKENDS)
        assert _across(clusters, *flow)
        # ...but the client's end no longer lets it out.
        assert not _across(views, *flow)
    else:
        c, full = views["regional"], clusters["regional"]
        f = Flow(*flow)
        assert allowed(full, f, BACKENDS)
        # Istio (at the server) still allows it; NetworkPolicy denies it at the client's egress.
        assert EVALUATORS["istio"](c, f)
        assert not EVALUATORS["networkpolicy"](c, f)
        assert not allowed(c, f, BACKENDS)


def test_n4_smf_to_upf_is_allowed_and_the_amf_is_denied(clusters) -> None:
    edge = clusters["edge01"]
    assert allowed(edge, Flow("smf-regional", "upf-edge01", 8805, "UDP", EDGE_N4), BACKENDS)
    assert not allowed(edge, Flow("smf-regional", "upf-edge01", 8805, "TCP", EDGE_N4), BACKENDS)
    assert not allowed(edge, Flow("smf-regional", "upf-edge01", 2152, "UDP", EDGE_N4), BACKENDS)
    for port, proto in PORTS:
        assert not allowed(edge, Flow("amf-regional", "upf-edge01", port, proto, EDGE_N4), BACKENDS)
        assert not allowed(edge, Flow("stranger", "upf-edge01", port, proto, EDGE_N4), BACKENDS)
    regional = clusters["regional"]
    assert allowed(regional, Flow("upf-edge01", "smf-regional", 8805, "UDP", REGIONAL_N4), BACKENDS)
    # Not N4 into the AMF, not N2 from the UPF, not SBI from the AUSF (right namespace, wrong ID).
    assert not allowed(regional, Flow("ausf-regional", "smf-regional", 8805, "UDP", REGIONAL_N4), BACKENDS)
    assert not allowed(regional, Flow("ausf-regional", "amf-regional", 80, "TCP"), BACKENDS)
    assert not allowed(regional, Flow("stranger", "amf-regional", 38412, "SCTP", N2), BACKENDS)
    assert not allowed(regional, Flow("gnb", "amf-regional", 38412, "TCP", N2), BACKENDS)


def test_default_deny_is_on_and_isolates_every_pod_of_the_namespaces_both_ways(rendered, clusters) -> None:
    objs = [o for nf in NFS for o in generated(rendered[nf][0])]
    names = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs}
    assert {("NetworkPolicy", "free5gc-upf", "default-deny-upf-edge01"),
            ("NetworkPolicy", "free5gc-cp", "default-deny-smf-regional"),
            ("NetworkPolicy", "free5gc-cp", "default-deny-amf-regional"),
            ("AuthorizationPolicy", "free5gc-upf", "allow-nothing-upf-edge01"),
            ("MultiNetworkPolicy", "free5gc-upf", "default-deny-upf-edge01-n4-upf-edge01"),
            ("MultiNetworkPolicy", "free5gc-cp", "default-deny-smf-regional-n4-smf-regional"),
            ("MultiNetworkPolicy", "free5gc-cp", "default-deny-amf-regional-n2-amf-regional")} <= names
    edge, regional = clusters["edge01"], clusters["regional"]
    # The UPF's pod network is closed (no rule opens it), and unidentified pods reach nothing.
    assert not allowed(edge, Flow("intruder-free5gc-upf", "upf-edge01", 9999, "TCP"), BACKENDS)
    assert not allowed(edge, Flow("upf-edge01", "intruder-free5gc-upf", 9999, "TCP"), BACKENDS)
    assert not allowed(edge, Flow("upf-edge01", "mgmt-other", 4317, "TCP"), BACKENDS)
    assert not allowed(regional, Flow("intruder-free5gc-cp", "nrf", 8000, "TCP"), BACKENDS)
    assert not allowed(regional, Flow("smf-regional", "intruder-free5gc-cp", 80, "TCP"), BACKENDS)
    assert allowed(regional, Flow("intruder-free5gc-cp", "kube-dns", 53, "UDP"), BACKENDS)


def _clean(o: dict) -> dict:
    o = json.loads(json.dumps(o))  # plain str/dict copies
    o["metadata"]["annotations"] = {k: v for k, v in o["metadata"]["annotations"].items()
                                    if not k.startswith(("config.kubernetes.io/path", "config.kubernetes.io/index",
                                                         "internal.config"))}
    return o


def test_generated_resources_are_valid_for_their_peers(rendered) -> None:
    objs = [_clean(o) for nf in NFS for o in generated(rendered[nf][0])
            if o["kind"] in ("AuthorizationPolicy", "PeerAuthentication", "NetworkPolicy", "MultiNetworkPolicy")]
    assert {o["kind"] for o in objs} == {"AuthorizationPolicy", "PeerAuthentication", "NetworkPolicy",
                                         "MultiNetworkPolicy"}
    schemas = _crd_schemas()
    for o in objs:
        if o["apiVersion"].startswith("security.istio.io/"):
            schema = schemas[(o["apiVersion"], o["kind"])]
            _closed(schema)
            jsonschema.validate(o["spec"], schema["properties"]["spec"])
        elif o["kind"] == "NetworkPolicy":
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        else:
            assert validate("MultiNetworkPolicy", o) == []
            jsonschema.Draft202012Validator(load_schema("MultiNetworkPolicy")).validate(o)


# ---- peers of this trust domain outside the package: selectable by namespace when the ID names
# a namespace of this cluster, in the cluster-scoped formats as in Istio's.

def _amf_with_sbi_peer(spiffe_id: str) -> tuple[list, list]:
    items = read_package(FIVE_G_CORE / "amf")
    wi = next(o for o in items if o.get("kind") == "WorkloadIdentity")
    wi["spec"]["ingress"][1]["from"] = [{"spiffeID": spiffe_id}]
    if not spiffe_id.startswith(f"{TD}/"):
        # Another trust domain, federated: unfederated, Istio could never verify it (an error of its own).
        foreign = spiffe_id.split("/")[2]
        wi["spec"].setdefault("svid", {})["federatesWith"] = [foreign]
        ctx = next(o for o in items if o.get("kind") == "IdentityContext")
        ctx["spec"]["federation"] = [{"trustDomain": foreign, "bundleEndpointURL": f"https://bundle.{foreign}",
                                      "bundleEndpointProfile": {"type": "https_web"}}]
    out, results, code = render(copy.deepcopy(items), FIVE_G_CORE_PIPELINE)
    assert code == 0, results
    np = next(o for o in generated(out) if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "amf-regional-ingress")
    return np["spec"]["ingress"], [r for r in results if "networkpolicy: rule amf-regional/sbi" in r["message"]]


@pytest.mark.parametrize("spiffe_id", [SMF_ID, f"{TD}/region/eu-west/cluster/regional/ns/free5gc-cp/sa/smf-regional",
                                       f"{TD}/ns/free5gc-cp/sa/smf-regional"])
def test_an_id_naming_a_namespace_of_this_cluster_is_selected_by_that_namespace(spiffe_id: str) -> None:
    ingress, said = _amf_with_sbi_peer(spiffe_id)
    assert ingress == [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "free5gc-cp"}}}],
                        "ports": [{"protocol": "TCP", "port": 80}]}]
    assert len(said) == 1 and said[0]["severity"] == "info"
    # The info says which flows the namespace selector admits beyond the rule, and the exact form.
    assert "selects by its namespace only: beyond the rule, every pod of namespace 'free5gc-cp' may reach " \
           "amf-regional on TCP 80. Add podLabels" in said[0]["message"]


@pytest.mark.parametrize("spiffe_id", [
    f"{TD}/cluster/edge01/ns/free5gc-cp/sa/smf-regional",  # names another cluster, and no 'cluster' is given
    f"{TD}/region/eu-west/cluster/edge01/ns/free5gc-cp/sa/smf-regional",
    "spiffe://partner.example.net/cluster/regional/ns/free5gc-cp/sa/smf-regional",  # another trust domain
    f"{TD}/cluster/regional/nf/smf",  # no namespace in the path
])
def test_an_id_naming_no_namespace_of_this_cluster_stays_denied_with_a_warning(spiffe_id: str) -> None:
    ingress, said = _amf_with_sbi_peer(spiffe_id)
    assert ingress == []  # the AMF stays isolated: never an empty (allow-all) peer list
    assert len(said) == 1 and said[0]["severity"] == "warning" and "cannot select" in said[0]["message"]


def test_packages_sharing_a_namespace_generate_no_common_object(rendered, nrf) -> None:
    """The SMF and AMF packages both live in free5gc-cp on the regional cluster and are applied
    by one ConfigSync: two packages emitting the same (kind, namespace, name) would be a
    conflict there. Every generated object is per identity (PeerAuthentication included), and the
    namespace baselines of default deny are named after the package's identity."""
    def generated(items: list[dict]) -> set[tuple]:
        return {(o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
                for o in items
                if "workloadidentity.nephio.org/owner" in (o["metadata"].get("annotations") or {})
                and (o["metadata"].get("annotations") or {}).get("config.kubernetes.io/local-config") != "true"}
    smf, amf, nrf_objs = generated(rendered["smf"][0]), generated(rendered["amf"][0]), generated(nrf)
    for objs in (smf, amf, nrf_objs):
        assert any(k[1] == "PeerAuthentication" and k[2] == "free5gc-cp" for k in objs)
        assert any(k[1] == "NetworkPolicy" and k[3].startswith("default-deny-") for k in objs)
    assert smf & amf == set() and smf & nrf_objs == set() and amf & nrf_objs == set()


def test_the_diagram_draws_egress_edges_from_client_to_peer(rendered) -> None:
    diagram = next(o for o in rendered["upf"][0] if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"] == "authorization-diagram")["data"]["diagram.mmd"]
    # Node lines in any shape: n0["..."], n1(["..."]) (outside the package), n3(("any peer")).
    nodes = {m.group(1): m.group(2) for m in re.finditer(r'^  (n\d+)[\[(]+("[^"]*")', diagram, re.M)}
    upf = next(k for k, v in nodes.items() if v.startswith('"upf-edge01'))
    gateway = next(k for k, v in nodes.items() if "metrics-gateway" in v)
    assert f'  {upf} -->|"egress metrics (OTLP metrics push): TCP 4317"| {gateway}' in diagram.splitlines()


def _istiod(c: Cluster) -> None:
    c.pods["istiod"] = Pod("istiod", "istio-system", (("app", "istiod"),))


@pytest.mark.parametrize("nf", NFS)
def test_sidecars_reach_istiod_under_default_deny(rendered, nf: str) -> None:
    """Default deny on with the istio backend: every pod of the package's namespaces keeps TCP
    15012 to istiod (xDS and certificates), or no policy Istio is given would ever be enforced;
    nothing else towards the control plane is open."""
    c = cluster_of(rendered[nf][0])
    _istiod(c)
    ours = [p for p, pod in c.pods.items() if pod.in_cluster and pod.namespace.startswith("free5gc")]
    assert ours
    for p in ours:
        assert EVALUATORS["networkpolicy"](c, Flow(p, "istiod", 15012, "TCP")), p
        assert not EVALUATORS["networkpolicy"](c, Flow(p, "istiod", 15010, "TCP")), p
        assert not EVALUATORS["networkpolicy"](c, Flow(p, "istiod", 15012, "UDP")), p


@pytest.mark.parametrize("change, kept", [({"backends": ["networkpolicy", "multinetworkpolicy"]}, False),
                                          ({"istiod": {"allow": False}}, False),
                                          ({"istiod": {"namespace": "mesh", "podLabels": {"istio": "pilot"},
                                                       "port": 15443}}, True)])
def test_istiod_egress_follows_the_policy_settings(change: dict, kept: bool) -> None:
    items = read_package(FIVE_G_CORE / "smf")
    ctx = next(i for i in items if i["kind"] == "IdentityContext")
    ctx["spec"]["policy"].update(change)
    out, results, code = render(items, FIVE_G_CORE_PIPELINE)
    assert code == 0, [r for r in results if r["severity"] == "error"]
    deny = next(o for o in out if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].startswith("default-deny"))
    c = cluster_of(out)
    ns = change.get("istiod", {}).get("namespace", "istio-system")
    labels = tuple((change.get("istiod", {}).get("podLabels") or {"app": "istiod"}).items())
    c.pods["istiod"] = Pod("istiod", ns, labels)
    port = change.get("istiod", {}).get("port", 15012)
    assert EVALUATORS["networkpolicy"](c, Flow("smf-regional", "istiod", port, "TCP")) is kept, deny["spec"]


# ---- zero trust on every network a pod is on

def _without_rules(items: list[dict], identity: str, names: set[str]) -> list[dict]:
    items = copy.deepcopy(items)
    wi = next(o for o in items if o.get("kind") == "WorkloadIdentity" and o["metadata"]["name"] == identity)
    for direction in ("ingress", "egress"):
        wi["spec"][direction] = [r for r in wi["spec"].get(direction) or [] if r["name"] not in names]
    out, results, code = render(items, FIVE_G_CORE_PIPELINE)
    assert code == 0, [r for r in results if r["severity"] == "error"]
    return out


def test_an_attachment_no_rule_names_is_closed_both_ways(rendered) -> None:
    """The UPF's N3 and N6 with no rule naming them (as the example was before it declared its
    GTP-U and data-network flows): each still gets a default-deny baseline, so nothing enters or
    leaves the UPF there, from the RAN, the internet or any other pod on those networks."""
    upf = _without_rules(rendered["upf"][0], "upf-edge01", {"n3", "n6"})
    baselines = {(o["metadata"]["name"], o["metadata"]["annotations"]["k8s.v1.cni.cncf.io/policy-for"])
                 for o in generated(upf) if o["kind"] == "MultiNetworkPolicy" and o["spec"]["podSelector"] == {}}
    assert baselines == {("default-deny-upf-edge01-n3-upf-edge01", N3), ("default-deny-upf-edge01-n4-upf-edge01", EDGE_N4),
                         ("default-deny-upf-edge01-n6-upf-edge01", N6)}
    edge = _edge(upf)
    for net, peers in ((N3, ("gnb-n3", "stranger", "intruder-free5gc-upf")), (N6, ("internet", "stranger"))):
        for peer in peers:
            for port, proto in PORTS:
                assert not allowed(edge, Flow(peer, "upf-edge01", port, proto, net), BACKENDS), (peer, port, proto, net)
                assert not allowed(edge, Flow("upf-edge01", peer, port, proto, net), BACKENDS), (peer, port, proto, net)


def test_n3_and_n6_are_open_exactly_for_the_declared_flows(clusters) -> None:
    edge = clusters["edge01"]
    n3_n6 = {f for f in _universe(edge) if f.network in (N3, N6) and allowed(edge, f, BACKENDS)}
    assert n3_n6 == {f for f in DECLARED["edge01"] | _widened("edge01", edge, "multinetworkpolicy")
                     if f.network in (N3, N6)}
    # GTP-U only, from the RAN's N3 range only; N6 only outwards, and only from the UPF.
    assert not allowed(edge, Flow("gnb-n3", "upf-edge01", 2152, "TCP", N3), BACKENDS)
    assert not allowed(edge, Flow("gnb-n3", "upf-edge01", 8805, "UDP", N3), BACKENDS)
    assert not allowed(edge, Flow("stranger", "upf-edge01", 2152, "UDP", N3), BACKENDS)
    assert not allowed(edge, Flow("internet", "upf-edge01", 443, "UDP", N6), BACKENDS)
    assert not allowed(edge, Flow("intruder-free5gc-upf", "internet", 443, "UDP", N6), BACKENDS)
    assert not allowed(edge, Flow("upf-edge01", "internet", 9999, "SCTP", N6), BACKENDS)
    assert allowed(edge, Flow("upf-edge01", "internet", 443, "UDP", N6), BACKENDS)


def test_attachments_without_multinetworkpolicy_are_reported_open() -> None:
    items = read_package(FIVE_G_CORE / "upf")
    ctx = next(i for i in items if i["kind"] == "IdentityContext")
    ctx["spec"]["policy"]["backends"] = ["istio", "networkpolicy"]
    _, results, code = render(items, FIVE_G_CORE_PIPELINE)
    assert code == 0
    said = [r for r in results if "Multus networks" in r["message"]]
    assert len(said) == 1 and said[0]["severity"] == "warning"
    assert f"{N3}, {EDGE_N4}, {N6}" in said[0]["message"] and "Add multinetworkpolicy" in said[0]["message"]

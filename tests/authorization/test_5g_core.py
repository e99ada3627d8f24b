"""The 5G core example (blueprints/examples/5g-core: the UPF on edge01, the SMF and the AMF on
regional, one package each) proved by evaluation the way test_evaluation proves authz-5g-like.

Each cluster is evaluated with what is deployed there (edge01: the UPF package; regional: the
SMF and AMF packages together) plus pods of the other cluster and of the RAN reaching it. The
packages run with defaultDeny off (their peers are all in other packages, whose egress a
package cannot open), so what is proved is ingress at the protected network functions: on
every plane a rule covers (the pod network for SBI, the N2/N4 attachments), each backend
allows exactly the declared flows plus what the render's infos say that backend widens to
(NetworkPolicy selects a same-cluster peer of another package by namespace only;
MultiNetworkPolicy admits a peer cluster by address only), and end to end only the declared
flows pass, except on N2/N4 where only an ipBlock stands (no mesh sees Multus traffic).
"""

from __future__ import annotations

import copy
import itertools
import json

import jsonschema
import kubernetes_validate
import pytest

from spiffe_kpt.api.schema import load_schema, validate
from spiffe_kpt.krm import yamlio
from spiffe_kpt.local_render import image_refs_to_exec

from ..pkgtools import read_package
from .evaluator import EVALUATORS, POD_NETWORK, Cluster, Flow, Pod, allowed, governed
from .helpers import FIVE_G_CORE, FIVE_G_CORE_PIPELINE, cluster_of, generated, render
from .test_schemas import K8S_VERSION, _closed, _crd_schemas

NFS = ("upf", "smf", "amf")
BACKENDS = ["istio", "networkpolicy", "multinetworkpolicy"]  # what the three IdentityContexts enable
TD = "spiffe://core.telco-operator.net"
UPF_ID = f"{TD}/cluster/edge01/ns/free5gc-upf/sa/upf-edge01"
SMF_ID = f"{TD}/cluster/regional/ns/free5gc-cp/sa/smf-regional"
AMF_ID = f"{TD}/cluster/regional/ns/free5gc-cp/sa/amf-regional"
EDGE_N4 = "free5gc-upf/upf-edge01-n4"  # the UPF's N4 attachment (edge01)
REGIONAL_N4 = "free5gc-cp/smf-regional-n4"  # the SMF's N4 attachment (regional)
N2 = "free5gc-cp/amf-regional-n2"  # the AMF's N2 attachment (regional)
PORTS = [(8805, "UDP"), (8805, "TCP"), (80, "TCP"), (80, "UDP"), (38412, "SCTP"), (38412, "TCP"),
         (2152, "UDP"), (9999, "TCP")]
# The planes each protected NF's rules cover: ingress there is isolated by some backend.
PROTECTED = {"upf-edge01": {EDGE_N4}, "smf-regional": {POD_NETWORK, REGIONAL_N4},
             "amf-regional": {POD_NETWORK, N2}}

# Written by hand from the issue: N4 both ways (each end on its own attachment), N2 from the
# gNBs into the AMF, SBI between SMF and AMF on port 80 (the packages' sbi container port).
DECLARED = {
    "edge01": {Flow("smf-regional", "upf-edge01", 8805, "UDP", EDGE_N4)},
    "regional": {Flow("upf-edge01", "smf-regional", 8805, "UDP", REGIONAL_N4),
                 Flow("amf-regional", "smf-regional", 80, "TCP"),
                 Flow("smf-regional", "amf-regional", 80, "TCP"),
                 Flow("gnb", "amf-regional", 38412, "SCTP", N2)},
}


def _pod(name: str, ns: str, principal: str = "", ip: str = "", networks: tuple[str, ...] = (),
         in_cluster: bool = False) -> Pod:
    return Pod(name, ns, (("name", name),), principal=principal, ip=ip, networks=frozenset(networks),
               in_cluster=in_cluster)


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[list, list]]:
    out = {}
    for nf in NFS:
        items, results, code = render(FIVE_G_CORE / nf, FIVE_G_CORE_PIPELINE)
        assert code == 0, [r for r in results if r["severity"] == "error"]
        out[nf] = (items, results)
    return out


@pytest.fixture(scope="module")
def clusters(rendered) -> dict[str, Cluster]:
    edge = cluster_of(rendered["upf"][0])
    # From the regional cluster: the SMF with its N4 address (regional N4 range), the AMF from
    # its pod address, another pod of the regional N4 range, and a stranger on no known range.
    edge.pods["smf-regional"] = _pod("smf-regional", "free5gc-cp", SMF_ID, "10.100.4.10", (EDGE_N4,))
    edge.pods["amf-regional"] = _pod("amf-regional", "free5gc-cp", AMF_ID, "10.244.1.7", (EDGE_N4,))
    edge.pods["regional-n4-other"] = _pod("regional-n4-other", "free5gc-cp",
                                          f"{TD}/cluster/regional/ns/free5gc-cp/sa/other", "10.100.4.99", (EDGE_N4,))
    edge.pods["stranger"] = _pod("stranger", "elsewhere", "", "10.99.0.1", (EDGE_N4,))

    regional = cluster_of(rendered["smf"][0] + rendered["amf"][0])
    # From edge01 and the RAN: the UPF with its N4 address (edge01 N4 range), another edge01 N4
    # address, a gNB on the N2 range, a stranger on both networks.
    regional.pods["upf-edge01"] = _pod("upf-edge01", "free5gc-upf", UPF_ID, "10.101.4.10", (REGIONAL_N4,))
    regional.pods["edge01-n4-other"] = _pod("edge01-n4-other", "free5gc-upf", "", "10.101.4.99", (REGIONAL_N4,))
    regional.pods["gnb"] = _pod("gnb", "ran", "", "10.200.2.5", (N2,))
    regional.pods["stranger"] = _pod("stranger", "elsewhere", "", "10.99.0.1", (N2, REGIONAL_N4))
    # In the regional cluster: another NF of the core's namespace with a valid SPIFFE ID that no
    # rule names (the NRF), attached to both networks but without an address of an allowed range.
    regional.pods["nrf-regional"] = _pod("nrf-regional", "free5gc-cp", f"{TD}/cluster/regional/ns/free5gc-cp/sa/nrf",
                                         "10.100.4.20", (N2, REGIONAL_N4), in_cluster=True)
    return {"edge01": edge, "regional": regional}


def _universe(c: Cluster) -> list[Flow]:
    """Every flow into a protected NF of this cluster, on every plane its rules cover."""
    flows = []
    for s, d in itertools.permutations(sorted(c.pods), 2):
        src, dst = c.pods[s], c.pods[d]
        if d not in PROTECTED or not dst.in_cluster:
            continue
        nets = [n for n in (POD_NETWORK, *sorted(src.networks & dst.networks)) if n in PROTECTED[d]]
        for (port, proto), net in itertools.product(PORTS, nets):
            flows.append(Flow(s, d, port, proto, net))
    return flows


def _widened(cluster: str, c: Cluster, backend: str) -> set[Flow]:
    """What the render's infos say a backend lets through beyond the declared flows."""
    if cluster == "regional" and backend == "networkpolicy":
        # 'selects it by its namespace free5gc-cp only': any pod there reaches the SBI port.
        return {Flow(p, t, 80, "TCP") for p, pod in c.pods.items() for t in ("smf-regional", "amf-regional")
                if p != t and pod.in_cluster and pod.namespace == "free5gc-cp"}
    if backend == "multinetworkpolicy":
        # 'by the CIDRs of cluster ...': any address of the peer's range, whatever its identity.
        return {"edge01": {Flow("regional-n4-other", "upf-edge01", 8805, "UDP", EDGE_N4)},
                "regional": {Flow("edge01-n4-other", "smf-regional", 8805, "UDP", REGIONAL_N4)}}[cluster]
    return set()


def _exec_pipeline(nf: str) -> list[str]:
    kptfile = yamlio.load(image_refs_to_exec((FIVE_G_CORE / nf / "Kptfile").read_text())[0])
    return [f["exec"] for key in ("mutators", "validators") for f in kptfile["pipeline"][key]]


@pytest.mark.parametrize("nf", NFS)
def test_each_kptfile_runs_the_chain_with_authorization_after_registration(nf: str) -> None:
    assert _exec_pipeline(nf) == FIVE_G_CORE_PIPELINE


def test_the_render_warns_about_nothing_and_says_what_each_backend_leaves_out(rendered) -> None:
    said: set[tuple[str, str, str]] = set()
    for nf, (_, results) in rendered.items():
        assert [r for r in results if r["severity"] in ("error", "warning")] == [], nf
        for r in results:
            backend = r["message"].split(":")[0]
            if backend in BACKENDS and "rule " in r["message"]:
                said.add((backend, r["message"].split("rule ")[1].split()[0], r["field"]["path"]))
    assert said == {
        # N2 and N4 are Multus attachments: the sidecar never sees them.
        ("istio", "upf-edge01/n4", "spec.ingress[0].network"),
        ("istio", "smf-regional/n4", "spec.ingress[0].network"),
        ("istio", "amf-regional/n2", "spec.ingress[0].network"),
        # Peers of another cluster (and the RAN) by address only.
        ("multinetworkpolicy", "upf-edge01/n4", "spec.ingress[0].from[0]"),
        ("multinetworkpolicy", "smf-regional/n4", "spec.ingress[0].from[0]"),
        ("multinetworkpolicy", "amf-regional/n2", "spec.ingress[0].from[0]"),
        # The SMF and AMF are each other's out-of-package peers: by namespace only.
        ("networkpolicy", "smf-regional/sbi", "spec.ingress[1].from[0]"),
        ("networkpolicy", "amf-regional/sbi", "spec.ingress[1].from[0]"),
    }


@pytest.mark.parametrize("cluster", ["edge01", "regional"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_allows_exactly_the_declared_flows_it_governs(clusters, cluster: str, backend: str) -> None:
    c = clusters[cluster]
    universe = [f for f in _universe(c) if governed(backend, f)]
    expected = {f for f in DECLARED[cluster] | _widened(cluster, c, backend) if f in set(universe)}
    got = {f for f in universe if EVALUATORS[backend](c, f)}
    assert got - expected == set(), f"{backend} allows undeclared flows"
    assert expected - got == set(), f"{backend} denies declared flows"


@pytest.mark.parametrize("cluster", ["edge01", "regional"])
def test_end_to_end_only_the_declared_flows_and_the_address_only_n4_peer(clusters, cluster: str) -> None:
    c = clusters[cluster]
    universe = _universe(c)
    got = {f for f in universe if allowed(c, f, BACKENDS)}
    # On the pod network Istio checks the principal, so NetworkPolicy's namespace-wide SBI
    # peer is narrowed to the SMF and the AMF; on N4 nothing checks the ID behind the address.
    assert got == DECLARED[cluster] | _widened(cluster, c, "multinetworkpolicy")
    assert len(universe) > {"edge01": 25, "regional": 150}[cluster]


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
    # Not N4 into the AMF, not N2 from the UPF, not SBI from the NRF (right namespace, wrong ID).
    assert not allowed(regional, Flow("nrf-regional", "smf-regional", 8805, "UDP", REGIONAL_N4), BACKENDS)
    assert not allowed(regional, Flow("nrf-regional", "amf-regional", 80, "TCP"), BACKENDS)
    assert not allowed(regional, Flow("stranger", "amf-regional", 38412, "SCTP", N2), BACKENDS)
    assert not allowed(regional, Flow("gnb", "amf-regional", 38412, "TCP", N2), BACKENDS)


def test_default_deny_is_off_so_nothing_but_the_protected_planes_is_isolated(rendered, clusters) -> None:
    objs = [o for nf in NFS for o in generated(rendered[nf][0])]
    names = {o["metadata"]["name"] for o in objs}
    assert not names & {"allow-nothing", "default-deny"} and not any(n.startswith("default-deny-") for n in names)
    assert not any("Egress" in (o.get("spec") or {}).get("policyTypes", []) for o in objs)
    # The UPF's pod network and the unidentified pods are not ours to close with defaultDeny off.
    edge = clusters["edge01"]
    assert allowed(edge, Flow("intruder-free5gc-upf", "upf-edge01", 9999, "TCP"), ["networkpolicy"])


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
    assert len(said) == 1 and said[0]["severity"] == "info" and "by its namespace 'free5gc-cp' only" in said[0]["message"]


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


def test_packages_sharing_a_namespace_generate_no_common_object(rendered) -> None:
    """The SMF and AMF packages both live in free5gc-cp on the regional cluster and are applied
    by one ConfigSync: two packages emitting the same (kind, namespace, name) would be a
    conflict there. Every generated object is per identity (PeerAuthentication included)."""
    def generated(nf: str) -> set[tuple]:
        return {(o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
                for o in rendered[nf][0]
                if "workloadidentity.nephio.org/owner" in (o["metadata"].get("annotations") or {})
                and (o["metadata"].get("annotations") or {}).get("config.kubernetes.io/local-config") != "true"}
    smf, amf = generated("smf"), generated("amf")
    assert any(k[1] == "PeerAuthentication" and k[2] == "free5gc-cp" for k in smf)
    assert any(k[1] == "PeerAuthentication" and k[2] == "free5gc-cp" for k in amf)
    assert smf & amf == set()

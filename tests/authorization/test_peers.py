"""Peers outside the package, as every backend sees them.

Each case renders the 5G core's AMF package (regional cluster, istio + networkpolicy +
multinetworkpolicy, default deny) with one rule changed, and asks the evaluator what each
backend lets through: backends must agree on who gets in, or a result must say where and why
they do not.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from spiffe_kpt.authorization.attachments import parse
from spiffe_kpt.authorization.model import Network

from ..pkgtools import read_package
from .evaluator import EVALUATORS, Cluster, Flow, Pod
from .helpers import FIVE_G_CORE, FIVE_G_CORE_PIPELINE, cluster_of, generated, render

TD = "spiffe://core.telco-operator.net"
HERE = f"{TD}/cluster/regional"  # the AMF package's cluster
NS = f"{HERE}/ns/free5gc-cp"


def _amf(change: Any, federate: str = "") -> tuple[list[dict], list[dict], int]:
    items = read_package(FIVE_G_CORE / "amf")
    wi = next(o for o in items if o.get("kind") == "WorkloadIdentity")
    change(wi["spec"])
    if federate:  # a mesh-enforced rule may admit only a trust domain the identity federates with
        ctx = next(o for o in items if o.get("kind") == "IdentityContext")
        ctx["spec"]["federation"] = [{"trustDomain": federate, "bundleEndpointURL": f"https://bundle.{federate}",
                                      "bundleEndpointProfile": {"type": "https_web"}}]
        wi["spec"].setdefault("svid", {})["federatesWith"] = [federate]
    return render(copy.deepcopy(items), FIVE_G_CORE_PIPELINE)


def _sbi_from(*peers: dict) -> tuple[list[dict], list[dict]]:
    def change(spec: dict) -> None:
        spec["ingress"][1]["from"] = list(peers)
    foreign = {p.get("trustDomain") or p.get("spiffeIDPrefix", p.get("spiffeID", "")).split("/")[2] for p in peers}
    foreign.discard("core.telco-operator.net")
    out, results, code = _amf(change, federate=min(foreign) if foreign else "")
    assert code == 0, [r for r in results if r["severity"] == "error"]
    return out, results


def _policy(out: list[dict], kind: str, name: str) -> dict:
    return next(o for o in generated(out) if o["kind"] == kind and o["metadata"]["name"] == name)


def _said(results: list[dict], what: str) -> list[dict]:
    return [r for r in results if what in r["message"]]


def _regional(out: list[dict]) -> Cluster:
    c = cluster_of(out)
    # The SMF (another package, same namespace), another NF of the namespace with an ID under
    # the same prefix, and a pod of another namespace.
    c.pods["smf"] = Pod("smf", "free5gc-cp", (("name", "smf-regional"),), principal=f"{NS}/sa/smf-regional")
    c.pods["ausf"] = Pod("ausf", "free5gc-cp", (("name", "ausf"),), principal=f"{NS}/sa/ausf")
    c.pods["other-ns"] = Pod("other-ns", "oam", (("name", "smf-regional"),), principal=f"{HERE}/ns/oam/sa/smf-regional")
    # Their own packages open their side (under this package's namespace baseline they would
    # be isolated too): what is evaluated is the AMF's side only.
    c.objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                      "metadata": {"name": "others-open", "namespace": "free5gc-cp"},
                      "spec": {"podSelector": {"matchExpressions": [
                          {"key": "name", "operator": "In", "values": ["smf-regional", "ausf"]}]},
                          "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]}})
    return c


def _admitted(c: Cluster, backend: str, port: int = 80) -> set[str]:
    return {p for p in ("smf", "ausf", "other-ns") if EVALUATORS[backend](c, Flow(p, "amf-regional", port, "TCP"))}


# ---- point 8: a prefix naming a namespace of this cluster

@pytest.mark.parametrize("prefix", [f"{NS}/", f"{NS}/sa/", f"{TD}/region/eu-west/cluster/regional/ns/free5gc-cp/",
                                    f"{TD}/ns/free5gc-cp/"])
def test_a_prefix_naming_a_namespace_of_this_cluster_is_selected_by_that_namespace(prefix: str) -> None:
    out, results = _sbi_from({"spiffeIDPrefix": prefix})
    np = _policy(out, "NetworkPolicy", "amf-regional-ingress")
    assert np["spec"]["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "free5gc-cp"}}}], "ports": [{"protocol": "TCP", "port": 80}]}]
    assert [r["severity"] for r in _said(results, "networkpolicy: rule amf-regional/sbi")] == ["info"]
    assert not _said(results, "cannot select")
    if prefix.startswith(NS):
        # Istio and NetworkPolicy agree on the IDs under the prefix (the SMF, the AUSF); the pod
        # of another namespace is denied by both.
        c = _regional(out)
        assert _admitted(c, "istio") == _admitted(c, "networkpolicy") == {"smf", "ausf"}


@pytest.mark.parametrize("peer, advice", [
    ({"spiffeIDPrefix": f"{HERE}/"}, "the prefix names no namespace of this cluster"),
    ({"spiffeIDPrefix": f"{TD}/cluster/edge01/ns/free5gc-upf/"}, "its ID names cluster 'edge01', not this one"),
    ({"spiffeID": f"{TD}/nf/smf"}, "the ID names no namespace of this cluster"),
    ({"spiffeIDPrefix": "spiffe://partner.example.net/ns/free5gc-cp/"}, "its trust domain 'partner.example.net' is not"),
    ({"trustDomain": "core.telco-operator.net"}, "a whole trust domain names no namespace"),
])
def test_a_peer_no_selector_can_pick_stays_denied_with_the_reason_and_the_fix(peer: dict, advice: str) -> None:
    out, results = _sbi_from(peer)
    assert _policy(out, "NetworkPolicy", "amf-regional-ingress")["spec"]["ingress"] == []
    said = _said(results, "networkpolicy: rule amf-regional/sbi")
    assert len(said) == 1 and said[0]["severity"] == "warning"
    assert advice in said[0]["message"] and "stays denied by networkpolicy" in said[0]["message"]
    if "cluster 'edge01'" in advice:
        assert "Add 'cluster: edge01'" in said[0]["message"]
    if "no namespace" in advice:
        assert "'.../ns/<namespace>/...', with podLabels" in said[0]["message"]


# ---- point 9: exact peers outside the package (podLabels)

def test_pod_labels_make_networkpolicy_as_exact_as_istio() -> None:
    out, results = _sbi_from({"spiffeID": f"{NS}/sa/smf-regional", "podLabels": {"name": "smf-regional"}})
    np = _policy(out, "NetworkPolicy", "amf-regional-ingress")
    assert np["spec"]["ingress"][0]["from"] == [{
        "podSelector": {"matchLabels": {"name": "smf-regional"}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "free5gc-cp"}}}]
    assert not _said(results, "networkpolicy: rule amf-regional/sbi")
    c = _regional(out)
    assert _admitted(c, "istio") == _admitted(c, "networkpolicy") == {"smf"}


def test_without_pod_labels_the_info_names_the_flows_admitted_beyond_the_rule() -> None:
    out, results = _sbi_from({"spiffeID": f"{NS}/sa/smf-regional"})
    said = _said(results, "networkpolicy: rule amf-regional/sbi")
    assert len(said) == 1 and said[0]["severity"] == "info"
    assert "beyond the rule, every pod of namespace 'free5gc-cp' may reach amf-regional on TCP 80" in said[0]["message"]
    assert "Add podLabels" in said[0]["message"]
    c = _regional(out)
    # What the info announces is exactly the difference between the backends.
    assert _admitted(c, "istio") == {"smf"} and _admitted(c, "networkpolicy") == {"smf", "ausf"}


def test_pod_labels_on_egress_select_the_server_pods() -> None:
    def change(spec: dict) -> None:
        spec["egress"][0]["to"] = [{"spiffeIDPrefix": f"{NS}/sa/", "podLabels": {"name": "smf-regional"}}]
    out, results, code = _amf(change)
    assert code == 0
    c = _regional(out)
    np = EVALUATORS["networkpolicy"]
    assert np(c, Flow("amf-regional", "smf", 80, "TCP")) and not np(c, Flow("amf-regional", "ausf", 80, "TCP"))


@pytest.mark.parametrize("peer, field, words", [
    ({"identity": "amf-regional", "podLabels": {"a": "b"}}, "spec.ingress[1].from[0].podLabels",
     "podLabels is for peers outside the package; identity 'amf-regional' is selected by its own selector labels"),
    ({"spiffeID": f"{TD}/cluster/edge01/ns/free5gc-upf/sa/upf-edge01", "cluster": "edge01", "podLabels": {"a": "b"}},
     "spec.ingress[1].from[0].podLabels", "names no namespace of this cluster"),
    ({"spiffeIDPrefix": f"{HERE}/", "podLabels": {"a": "b"}}, "spec.ingress[1].from[0].podLabels",
     "names no namespace of this cluster"),
])
def test_pod_labels_where_they_cannot_select_anything_are_an_error(peer: dict, field: str, words: str) -> None:
    def change(spec: dict) -> None:
        spec["ingress"][1]["from"] = [peer]
    out, results, code = _amf(change)
    errors = [r for r in results if r["severity"] == "error"]
    assert code == 1 and len(errors) == 1, errors
    assert words in errors[0]["message"] and errors[0]["field"]["path"] == field
    assert errors[0]["resourceRef"]["name"] == "amf-regional"
    assert not [o for o in generated(out) if o["kind"] in ("NetworkPolicy", "AuthorizationPolicy", "MultiNetworkPolicy")]


# ---- point 11: one rule per set of peers, each peer once

def test_rules_with_the_same_peers_are_one_rule_and_a_namespace_appears_once() -> None:
    def change(spec: dict) -> None:
        smf = {"spiffeID": f"{NS}/sa/smf-regional", "podLabels": {"name": "smf-regional"}}
        spec["ingress"][1]["from"] = [smf]
        spec["ingress"].append({"name": "metrics", "from": [copy.deepcopy(smf)], "ports": [{"port": 9090}]})
        # Two IDs of one namespace, without podLabels: one namespaceSelector, not two.
        spec["egress"] = [{"name": "a", "to": [{"spiffeID": f"{NS}/sa/nrf"}, {"spiffeID": f"{NS}/sa/udm"}],
                           "ports": [{"port": 8000}]},
                          {"name": "b", "to": [{"spiffeID": f"{NS}/sa/ausf"}], "ports": [{"port": 8001}]}]
    out, results, code = _amf(change)
    assert code == 0, [r for r in results if r["severity"] == "error"]
    ns_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "free5gc-cp"}}}
    ingress = _policy(out, "NetworkPolicy", "amf-regional-ingress")["spec"]["ingress"]
    assert ingress == [{"from": [{"podSelector": {"matchLabels": {"name": "smf-regional"}}, **ns_peer}],
                        "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 9090}]}]
    egress = _policy(out, "NetworkPolicy", "amf-regional-egress")["spec"]["egress"]
    assert egress == [{"to": [ns_peer], "ports": [{"protocol": "TCP", "port": 8000}, {"protocol": "TCP", "port": 8001}]}]
    istio = _policy(out, "AuthorizationPolicy", "amf-regional")["spec"]["rules"]
    assert istio == [{"from": [{"source": {"principals": [f"{NS}/sa/smf-regional".removeprefix("spiffe://")]}}],
                      "to": [{"operation": {"ports": ["80", "9090"]}}]}]


# ---- port ranges

def test_a_port_range_istio_can_list_is_listed_and_both_backends_agree() -> None:
    def change(spec: dict) -> None:
        spec["ingress"][1]["ports"] = [{"port": 30000, "endPort": 30010}]
    out, results, code = _amf(change)
    assert code == 0 and not [r for r in results if r["severity"] == "warning" and "30000" in r["message"]]
    assert _policy(out, "NetworkPolicy", "amf-regional-ingress")["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 30000, "endPort": 30010}]
    assert _policy(out, "AuthorizationPolicy", "amf-regional")["spec"]["rules"][0]["to"] == [
        {"operation": {"ports": [str(n) for n in range(30000, 30011)]}}]
    c = _regional(out)
    for backend in ("istio", "networkpolicy"):
        assert EVALUATORS[backend](c, Flow("smf", "amf-regional", 30005, "TCP")), backend
        assert not EVALUATORS[backend](c, Flow("smf", "amf-regional", 30011, "TCP")), backend


def test_a_port_range_too_long_for_istio_is_denied_by_istio_and_the_warning_says_so() -> None:
    def change(spec: dict) -> None:
        spec["ingress"][1]["ports"] = [{"port": 30000, "endPort": 32767}]
    out, results, code = _amf(change)
    assert code == 0
    said = _said(results, "istio: rule amf-regional/sbi allows TCP 30000-32767, more than 64 ports")
    assert len(said) == 1 and said[0]["severity"] == "warning" and "Istio denies them" in said[0]["message"]
    c = _regional(out)
    assert EVALUATORS["networkpolicy"](c, Flow("smf", "amf-regional", 31000, "TCP"))
    assert not EVALUATORS["istio"](c, Flow("smf", "amf-regional", 31000, "TCP"))


@pytest.mark.parametrize("port", [{"port": 30010, "endPort": 30000}, {"port": "sbi", "endPort": 30000}])
def test_a_port_range_out_of_order_or_named_is_an_error(port: dict) -> None:
    def change(spec: dict) -> None:
        spec["ingress"][1]["ports"] = [port]
    out, results, code = _amf(change)
    errors = [r for r in results if r["severity"] == "error"]
    assert code == 1 and len(errors) == 1 and errors[0]["field"]["path"] == "spec.ingress[1].ports[0].port"
    assert "the range is port..endPort" in errors[0]["message"]


# ---- the meshes' egress infos name only enabled backends

def test_the_istio_egress_info_names_only_the_backend_the_context_enables() -> None:
    items = read_package(FIVE_G_CORE / "amf")
    next(o for o in items if o["kind"] == "IdentityContext")["spec"]["policy"]["backends"] = ["istio", "multinetworkpolicy"]
    _, results, code = render(items, FIVE_G_CORE_PIPELINE)
    assert code == 0
    said = _said(results, "istio: egress rule amf-regional/sbi-smf")
    assert len(said) == 1
    assert "could be enforced by networkpolicy only, and is not (it is not enabled)" in said[0]["message"]
    assert "multinetworkpolicy" not in said[0]["message"]


# ---- the networks annotation, both of Multus's forms

@pytest.mark.parametrize("value, nets", [
    ("n3, other/n6@eth6", [Network("core", "n3"), Network("other", "n6")]),
    ('[{"name": "n4", "interface": "n4"}, {"name": "n2", "namespace": "cp"}]', [Network("core", "n4"), Network("cp", "n2")]),
    ("[not json", []),
    ("", []),
])
def test_requested_networks_reads_both_forms(value: str, nets: list[Network]) -> None:
    assert parse(value, "core").refs == {n.ref for n in nets}


def test_two_attachments_of_one_name_in_two_namespaces_get_two_baselines() -> None:
    """Every attachment gets a baseline: 'n4' of two namespaces must not become one object name."""
    items = read_package(FIVE_G_CORE / "upf")
    deploy = next(o for o in items if o.get("kind") == "Deployment")
    ann = deploy["spec"]["template"]["metadata"]["annotations"]
    ann["k8s.v1.cni.cncf.io/networks"] = "upf-edge01-n4, upf-edge01-n3, upf-edge01-n6, transport/upf-edge01-n4"
    out, results, code = render(items, FIVE_G_CORE_PIPELINE)
    assert code == 0, [r for r in results if r["severity"] == "error"]
    mnps = [o for o in generated(out) if o["kind"] == "MultiNetworkPolicy"]
    names = [o["metadata"]["name"] for o in mnps]
    assert len(names) == len(set(names)), names
    baselines = {o["metadata"]["annotations"]["k8s.v1.cni.cncf.io/policy-for"]: o["metadata"]["name"]
                 for o in mnps if o["spec"]["podSelector"] == {}}
    assert baselines["transport/upf-edge01-n4"] == "default-deny-transport-upf-edge01-n4-upf-edge01"
    assert baselines["free5gc-upf/upf-edge01-n4"] == "default-deny-free5gc-upf-upf-edge01-n4-upf-edge01"
    assert baselines["free5gc-upf/upf-edge01-n3"] == "default-deny-upf-edge01-n3-upf-edge01"


def test_an_attachment_of_a_workload_without_identity_in_the_namespace_gets_a_baseline() -> None:
    """Default deny governs the identities' namespaces, so an attachment of any workload there is
    closed (a sidecar-less helper on N6 too); a workload of another namespace is not ours."""
    items = read_package(FIVE_G_CORE / "upf")
    helper = copy.deepcopy(next(o for o in items if o.get("kind") == "Deployment"))
    helper["metadata"]["name"] = helper["spec"]["template"]["metadata"]["labels"]["name"] = "helper"
    helper["spec"]["selector"]["matchLabels"]["name"] = "helper"
    helper["spec"]["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = "debug-net"
    other = copy.deepcopy(helper)
    other["metadata"].update(name="elsewhere", namespace="tools")
    other["spec"]["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = "tools-net"
    for o in (helper, other):
        o["metadata"].setdefault("annotations", {})["workloadidentity.nephio.org/policy-exempt"] = "true"
    out, results, code = render(items + [helper, other], FIVE_G_CORE_PIPELINE)
    assert code == 0, [r for r in results if r["severity"] == "error"]
    nets = {o["metadata"]["annotations"]["k8s.v1.cni.cncf.io/policy-for"] for o in generated(out)
            if o["kind"] == "MultiNetworkPolicy" and o["spec"]["podSelector"] == {}}
    assert "free5gc-upf/debug-net" in nets and not any(n.startswith("tools/") for n in nets)

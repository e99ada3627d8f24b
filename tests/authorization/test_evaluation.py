"""Proof by evaluation: in the 5G-like example exactly the declared pairs are allowed and every
other pair is denied, by each backend's documented semantics (tests/authorization/evaluator.py)."""

from __future__ import annotations

import itertools

import pytest

from .evaluator import EVALUATORS, POD_NETWORK, Cluster, Flow, Pod, allowed, governed
from .helpers import AUTHZ_5G, cluster_of, render

OURS = {"core-cp", "core-up"}
BACKENDS = ["istio", "networkpolicy", "multinetworkpolicy", "linkerd"]
PORTS = [(8805, "UDP"), (8805, "TCP"), (8000, "TCP"), (8000, "UDP"), (38412, "SCTP"), (38412, "TCP"),
         (53, "UDP"), (53, "TCP"), (9999, "TCP")]

# What the example's rules declare, written by hand from the issue (N4 both ways on the N4
# network, N2 from the RAN into the AMF, SBI between SMF and AMF), plus DNS kept open.
DECLARED = {
    Flow("smf", "upf", 8805, "UDP", "core-up/n4"),
    Flow("upf", "smf", 8805, "UDP", "core-up/n4"),
    Flow("amf", "smf", 8000, "TCP"),
    Flow("smf", "amf", 8000, "TCP"),
    Flow("gnb", "amf", 38412, "SCTP", "core-cp/n2"),
}


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    items, results, code = render(AUTHZ_5G)
    assert code == 0, results
    c = cluster_of(items)
    # Peers the rules do and do not name: a gNB of the RAN cluster, a stranger on the N2
    # network, a pod with a valid SPIFFE ID of this trust domain that no rule names, kube-dns.
    c.pods["gnb"] = Pod("gnb", "ran", (("app", "gnb"),), principal="spiffe://ran.telco-operator.net/gnb/1",
                        ip="10.60.1.5", networks=frozenset({"core-cp/n2"}), in_cluster=False)
    c.pods["stranger"] = Pod("stranger", "elsewhere", (("app", "x"),), ip="10.99.0.1",
                             networks=frozenset({"core-cp/n2", "core-up/n4"}), in_cluster=False)
    c.pods["impostor"] = Pod("impostor", "core-cp", (("app.kubernetes.io/name", "other"),),
                             principal="spiffe://core.telco-operator.net/ns/core-cp/sa/other",
                             networks=frozenset({"core-cp/n2", "core-up/n4"}))
    c.pods["kube-dns"] = Pod("kube-dns", "kube-system", (("k8s-app", "kube-dns"),))
    c.linkerd_deny_namespaces = frozenset({"core-cp", "core-up"})
    return c


def _universe(c: Cluster) -> list[Flow]:
    flows = []
    for s, d in itertools.permutations(sorted(c.pods), 2):
        src, dst = c.pods[s], c.pods[d]
        # The package governs its own namespaces (both directions) and its pods' egress;
        # another namespace's or cluster's ingress is not ours to decide.
        if dst.namespace not in OURS and not (src.namespace in OURS and src.in_cluster):
            continue
        nets = [POD_NETWORK, *sorted(src.networks & dst.networks)]
        for (port, proto), net in itertools.product(PORTS, nets):
            flows.append(Flow(s, d, port, proto, net))
    return flows


def _expected(c: Cluster) -> set[Flow]:
    dns = {Flow(p, "kube-dns", 53, proto) for p, pod in c.pods.items()
           if pod.in_cluster and pod.namespace in OURS for proto in ("UDP", "TCP")}
    return DECLARED | dns


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_allows_exactly_the_declared_flows_it_governs(cluster: Cluster, backend: str) -> None:
    # Meshes authorize at the server: they govern flows into the package's namespaces only.
    mesh = backend in ("istio", "linkerd")
    universe = [f for f in _universe(cluster) if governed(backend, f)
                and (not mesh or cluster.pods[f.dst].namespace in OURS)]
    expected = {f for f in _expected(cluster) if f in set(universe)}
    got = {f for f in universe if EVALUATORS[backend](cluster, f)}
    assert len(universe) > 50
    assert got - expected == set(), f"{backend} allows undeclared flows"
    assert expected - got == set(), f"{backend} denies declared flows"


def test_end_to_end_every_other_pair_is_denied(cluster: Cluster) -> None:
    universe = _universe(cluster)
    got = {f for f in universe if allowed(cluster, f, BACKENDS)}
    assert got == _expected(cluster)
    # Sanity: the universe is large, so "exactly" means something.
    assert len(universe) > 500


def test_only_the_smf_and_upf_talk_on_n4(cluster: Cluster) -> None:
    """REQ_INTER_WORKLOAD_COMM, stated the seed's way."""
    n4 = {(f.src, f.dst) for f in _universe(cluster) if f.network == "core-up/n4" and allowed(cluster, f, BACKENDS)}
    assert n4 == {("smf", "upf"), ("upf", "smf")}

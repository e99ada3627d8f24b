"""Every backend enforces the same intent.

For every example with rules and for generated packages: at each end of every flow (the
server's ingress, the client's egress), each enabled backend allows exactly what the rules
declare, except where a result of the render announced the difference (a peer selected by
namespace or address, a peer a backend cannot select, ports a mesh cannot carry or denies,
plaintext clients a mesh refuses). So two backends disagree only where the results say so.
The rules' meaning and the announcements are read independently of the generator
(intent.py), the decisions by the evaluator written from each backend's documentation.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..pkgtools import WI_API, read_package
from .evaluator import governed, side_allows
from .helpers import AUTHZ_5G, FIVE_G_CORE, FIVE_G_CORE_PIPELINE, PIPELINE, render
from .intent import build_world, expected_egress, expected_ingress, universe

NETWORK_BACKENDS = ("networkpolicy", "multinetworkpolicy")


def mismatches(items: list[dict[str, Any]], results: list[dict[str, Any]], decided: Counter | None = None) -> list[str]:
    w = build_world(items, results)
    assert w.default_deny and w.backends
    keys = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in w.cluster.objects]
    assert len(keys) == len(set(keys)), "two generated objects share kind, namespace and name"
    out = []
    pods = w.cluster.pods
    decided = Counter() if decided is None else decided
    for flow in universe(w):
        src, dst = pods[flow.src], pods[flow.dst]
        for b in w.backends:
            if not governed(b, flow):
                continue
            ends = []
            if dst.in_cluster and dst.namespace in w.namespaces:
                ends.append(("ingress", expected_ingress))
            if b in NETWORK_BACKENDS and src.in_cluster and src.namespace in w.namespaces:
                ends.append(("egress", expected_egress))
            for side, expected in ends:
                got, want = side_allows(w.cluster, flow, b, side), expected(w, flow, b)
                decided[(b, side, got)] += 1
                if got != want:
                    out.append(f"{b} {side}: {flow} allowed={got}, declared/announced={want}")
    return out


EXAMPLES = {"authz-5g-like": (AUTHZ_5G, PIPELINE), **{f"5g-core/{nf}": (FIVE_G_CORE / nf, FIVE_G_CORE_PIPELINE)
                                                       for nf in ("upf", "smf", "amf")}}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_every_backend_allows_the_declared_flows_of_the_example_except_what_it_announces(example: str) -> None:
    pkg, steps = EXAMPLES[example]
    items, results, code = render(pkg, steps)
    assert code == 0
    decided: Counter = Counter()
    assert mismatches(items, results, decided) == []
    # The property is about something: each enabled backend decided, and some flows pass.
    for b in build_world(items, results).backends:
        assert decided[(b, "ingress", False)], (b, decided)
    assert sum(n for (_, _, got), n in decided.items() if got) > 10, decided


def test_the_property_catches_an_unannounced_difference() -> None:
    """Drop one announcement (the namespace-only selection of the SMF's SBI peer, when the peer
    has no podLabels) and the property must fail: it checks, it does not just agree."""
    items = read_package(FIVE_G_CORE / "smf")
    wi = next(o for o in items if o.get("kind") == "WorkloadIdentity")
    del wi["spec"]["ingress"][1]["from"][0]["podLabels"]
    out, results, code = render(items, FIVE_G_CORE_PIPELINE)
    assert code == 0 and mismatches(out, results) == []
    muted = [r for r in results if "selects by its namespace only" not in r["message"]]
    assert len(muted) < len(results)
    found = mismatches(out, muted)
    assert found and all(m.startswith("networkpolicy ") for m in found), found


# ---- generated packages

TD = "td.example"
OTHER_TD = "other.example"
NAMESPACES = ("ns-a", "ns-b")
# Two networks share a name in two namespaces: their policies must not share object names.
ATTACHMENTS = ["ns-a/net-a", "ns-b/net-b", "ns-b/net-a"]
CONTAINER_PORTS = [("http", 8000, "TCP"), ("pfcp", 8805, "UDP"), ("ngap", 38412, "SCTP"), ("grpc", 9090, "TCP")]
RANGES = [(30000, 30003, "TCP"), (31000, 31200, "TCP"), (2000, 2100, "UDP")]


def _workload(i: int, ns: str, networks: list[str]) -> list[dict[str, Any]]:
    name = f"w{i}"
    tpl_meta: dict[str, Any] = {"labels": {"app": name}}
    if networks:
        tpl_meta["annotations"] = {"k8s.v1.cni.cncf.io/networks": ", ".join(networks)}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
              "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": tpl_meta, "spec": {
                  "serviceAccountName": name,
                  "containers": [{"name": name, "image": "registry.example/x:1", "ports": [
                      {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in CONTAINER_PORTS]}]}}}}
    wi = {"apiVersion": WI_API, "kind": "WorkloadIdentity",
          "metadata": {"name": name, "annotations": {"config.kubernetes.io/local-config": "true"}},
          # federating with the other trust domain: a mesh-enforced rule may admit only such a peer
          "spec": {"workloadRef": {"kind": "Deployment", "name": name}, "svid": {"federatesWith": [OTHER_TD]}}}
    return [deploy, wi]


def _context(backends: list[str]) -> dict[str, Any]:
    return {"apiVersion": WI_API, "kind": "IdentityContext",
            "metadata": {"name": "ctx", "annotations": {"config.kubernetes.io/local-config": "true"}},
            "spec": {"trustDomain": TD, "clusterName": "c1",
                     "federation": [{"trustDomain": OTHER_TD, "bundleEndpointURL": "https://bundle.other.example:8443",
                                     "bundleEndpointProfile": {"type": "https_spiffe",
                                                               "endpointSPIFFEID": f"spiffe://{OTHER_TD}/spire/server"}}],
                     "policy": {"backends": backends, "defaultDeny": True,
                                "peerClusters": [{"name": "c2", "cidrs": ["10.2.0.0/24"]},
                                                 {"name": "c3", "cidrs": ["10.3.0.0/24", "10.30.0.0/24"]}]}}}


def _peer(draw, names: list[str], me: str) -> dict[str, Any]:
    others = [n for n in names if n != me]
    choices = [
        {"spiffeID": f"spiffe://{TD}/ns/ns-a/sa/ext"},                     # this cluster, by namespace
        {"spiffeID": f"spiffe://{TD}/ns/ns-b/sa/ext2", "podLabels": {"app": "ext2"}},  # ... and exactly
        {"spiffeIDPrefix": f"spiffe://{TD}/ns/ns-b/"},                      # a namespace's IDs
        {"spiffeIDPrefix": f"spiffe://{TD}/cluster/c1/ns/ns-a/", "podLabels": {"tier": "x"}},
        {"spiffeID": f"spiffe://{TD}/ns/x/sa/y", "cluster": "c2"},           # another cluster, by address
        {"spiffeIDPrefix": f"spiffe://{OTHER_TD}/nf/", "cluster": "c3"},
        {"trustDomain": OTHER_TD, "cluster": "c2"},
        {"spiffeID": f"spiffe://{OTHER_TD}/nf/z"},                           # nowhere selectable: denied
        {"spiffeID": f"spiffe://{TD}/ns/x/sa/y", "cluster": "c9"},           # a cluster without CIDRs
    ]
    if others:
        other = draw(st.sampled_from(others))
        choices += [{"identity": other}, {"spiffeID": f"spiffe://{TD}/ns/{{ns:{other}}}/sa/{other}"}]
    return copy.deepcopy(draw(st.sampled_from(choices)))


@st.composite
def packages(draw) -> list[dict[str, Any]]:
    n = draw(st.integers(2, 3))
    backends = draw(st.lists(st.sampled_from(["istio", "networkpolicy", "multinetworkpolicy", "linkerd"]),
                             min_size=1, max_size=4, unique=True))
    items: list[dict[str, Any]] = [_context(sorted(backends))]
    ns_of, nets_of = {}, {}
    for i in range(n):
        ns = draw(st.sampled_from(NAMESPACES))
        nets = draw(st.lists(st.sampled_from(ATTACHMENTS), max_size=2, unique=True))
        ns_of[f"w{i}"], nets_of[f"w{i}"] = ns, nets
        items += _workload(i, ns, nets)
    names = sorted(ns_of)
    for wi in [o for o in items if o["kind"] == "WorkloadIdentity"]:
        me = wi["metadata"]["name"]
        for direction, key in (("ingress", "from"), ("egress", "to")):
            used: set[tuple] = set()
            rules = []
            for k in range(draw(st.integers(0, 2))):
                network = draw(st.sampled_from([""] + nets_of[me]))
                allow_all = draw(st.booleans()) and draw(st.booleans())
                peers = [] if allow_all else [_peer(draw, names, me) for _ in range(draw(st.integers(1, 3)))]
                for p in peers:  # an identity's ID in the form the specializer gives it (Istio's)
                    if "spiffeID" in p and "{ns:" in p["spiffeID"]:
                        other = p["spiffeID"].rsplit("/", 1)[1]
                        p["spiffeID"] = p["spiffeID"].replace(f"{{ns:{other}}}", ns_of[other])
                ports = []
                for _ in range(draw(st.integers(1, 2))):
                    if draw(st.booleans()):
                        _, number, proto = draw(st.sampled_from(CONTAINER_PORTS))
                        port = {"port": number, "protocol": proto}
                        span = (number, number, proto)
                    else:
                        first, last, proto = draw(st.sampled_from(RANGES))
                        port = {"port": first, "endPort": last, "protocol": proto}
                        span = (first, last, proto)
                    if (span, network) not in used:
                        used.add((span, network))
                        ports.append(port)
                if not ports:
                    continue
                rule: dict[str, Any] = {"name": f"{direction[:2]}{k}", "ports": ports}
                if allow_all:
                    rule["allowAll"] = True
                else:
                    rule[key] = peers
                if network:
                    rule["network"] = network
                rules.append(rule)
            if rules:
                wi["spec"][direction] = rules
    return items


@given(packages())
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_every_backend_allows_the_declared_flows_of_generated_packages_except_what_it_announces(items) -> None:
    out, results, code = render(items)
    assert code == 0, [r for r in results if r["severity"] == "error"]
    assert mismatches(out, results) == []

"""A trust-domain migration, run for real: A (core.telco-operator.net) -> B (telco.operator) in one
cluster, on this tier's kube-apiserver.

Two SPIRE servers and their spire-controller-managers run from the rendered SPIRE packages: A's
(SpireDeployment spec.migration.to: B) and B's beside it (spec.migration.from: A, so its own
className and entryIDPrefix), federated both ways from the bundles committed to each package
(TrustBundle; their bundle endpoints are ports nobody listens on). The 5G core's AMF package is
rendered through the phases with the functions; what it renders is applied as ConfigSync would
(server-side apply, and deletion of what a render no longer produces).

Proved: in ``dual`` each controller creates the AMF pod's entry on its own server, the two IDs
equal but for the trust domain, each federating with the other domain; an X.509-SVID of A
verifies against the bundle B stored for A and one of B against the bundle A stored for B (and
neither against the other side's own bundle); in ``complete`` A's entry is gone, B's no longer
federates with A, and once B's SpireDeployment is complete its federation with A is gone too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from spiffe_kpt.cli.trustbundle import main as trustbundle_main
from spiffe_kpt.krm import yamlio

from ..migration.helpers import A, B, render, set_phase, through
from ..pkgtools import kpt_render, of_kind, strip_annotations
from ..spire.examples import set_values
from .conftest import install_upstream_crds
from .rendered import cluster_objects, configmap_data, render_spire, start_rendered_server, to_yaml
from .stack import LOOPBACK, Stack, spiffe_id_str, wait_until

pytestmark = pytest.mark.real

CLUSTER = "regional"
NS = "free5gc-cp"
PATH = f"/cluster/{CLUSTER}/ns/{NS}/sa/amf-regional"


@pytest.fixture(scope="module")
def mkube(kube_binaries, spire_binaries):
    """An apiserver of its own (with the upstream CRDs): no other module's objects reach these controllers."""
    with Stack() as st:
        yield install_upstream_crds(st.kube())


def _peer(td: str, port: int) -> dict:
    return {"trustDomain": td, "bundleEndpointURL": f"https://{LOOPBACK}:{port}", "profile": "https_spiffe",
            "endpointSPIFFEID": f"spiffe://{td}/spire/server", "trustBundle": td.replace(".", "-")}


def _commit_bundle(server, pkg: Path, tmp_path: Path) -> None:
    f = tmp_path / f"{server.trust_domain}.json"
    f.write_text(server.cli("bundle", "show", "-format", "spiffe").stdout)
    out = pkg / "bundles" / f"{server.trust_domain}.yaml"
    assert trustbundle_main(["--trust-domain", server.trust_domain, "--name", server.trust_domain.replace(".", "-"),
                             str(f), "-o", str(out)]) == 0


def _render(pkg: Path) -> None:
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr[-3000:]


def _cftd(pkg: Path, peer: str) -> dict:
    return json.loads(json.dumps(yamlio.load((pkg / "federation" / f"{peer}.yaml").read_text())))


def _entries(server) -> dict[str, dict]:
    return {spiffe_id_str(e["spiffe_id"]): e for e in server.entries()}


def _federates(entry: dict) -> list[str]:
    return sorted(str(t).removeprefix("spiffe://") for t in entry.get("federates_with") or [])


def _verify(ca: Path, leaf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(leaf)], capture_output=True, text=True)


def _apply_registrations(kube, items: list[dict], before: set[str]) -> set[str]:
    """What ConfigSync does with a render: apply its ClusterSPIFFEIDs, prune the ones it dropped."""
    regs = json.loads(json.dumps(strip_annotations(of_kind(items, "ClusterSPIFFEID"))))  # plain types
    for r in regs:
        r["metadata"].pop("annotations", None)
    kube.apply_manifests(to_yaml(regs), field_manager="configsync")
    names = {r["metadata"]["name"] for r in regs}
    for gone in before - names:
        kube.kubectl("delete", "clusterspiffeid", gone)
    return names


def test_a_to_b_in_one_cluster(mkube, real_stack, closed_ports, tmp_path):
    ports = dict(zip((A, B), closed_ports))
    base = {"clusterName": CLUSTER}
    # A runs first, as it did before the migration; B's package is rendered with A's bundle committed.
    pkg_a = render_spire("spire-server", tmp_path / "a", changes={**base, "trustDomain": A},
                         drop=("workloadClusters", "federation"))
    conf_a = configmap_data(pkg_a, "spire-server", "spire-server")["server.conf"]
    mkube.ensure_namespace("spire-system")
    mkube.ensure_namespace("spire-system-telco-operator")
    srv_a = start_rendered_server(real_stack, mkube, conf_a, name="server-a")[0]

    pkg_b = render_spire("spire-server", tmp_path / "b", changes={**base, "trustDomain": B},
                         drop=("workloadClusters", "federation"))
    _commit_bundle(srv_a, pkg_b, tmp_path)
    set_values(pkg_b, {"migration": {"from": A}, "federation": {"peers": [_peer(A, ports[A])]}})
    _render(pkg_b)
    conf_b = configmap_data(pkg_b, "spire-server", "spire-server-telco-operator")["server.conf"]
    srv_b = start_rendered_server(real_stack, mkube, conf_b, name="server-b")[0]

    _commit_bundle(srv_b, pkg_a, tmp_path)
    set_values(pkg_a, {"migration": {"to": B}, "federation": {"peers": [_peer(B, ports[B])]}})
    _render(pkg_a)
    # A's server is untouched by its migration: nothing to restart.
    assert configmap_data(pkg_a, "spire-server", "spire-server")["server.conf"] == conf_a

    cm_a = yamlio.load(configmap_data(pkg_a, "spire-controller-manager", "spire-server")[f"{CLUSTER}.yaml"])
    cm_b = yamlio.load(configmap_data(pkg_b, "spire-controller-manager",
                                      "spire-server-telco-operator")[f"{CLUSTER}.yaml"])
    assert (cm_a["className"], cm_a["entryIDPrefix"]) == ("spire-regional", "regional")
    assert (cm_b["className"], cm_b["entryIDPrefix"]) == ("spire-regional-telco-operator", "regional-telco-operator")
    for srv, pkg, key in ((srv_a, pkg_a, "a"), (srv_b, pkg_b, "b")):
        ns = "spire-server" if key == "a" else "spire-server-telco-operator"
        text = configmap_data(pkg, "spire-controller-manager", ns)[f"{CLUSTER}.yaml"]
        real_stack.controller_manager(mkube, srv, text, name=f"scm-{key}", default_cluster_domain=False)
    cftds = {A: _cftd(pkg_a, B), B: _cftd(pkg_b, A)}
    mkube.apply_manifests(to_yaml(list(cftds.values())), field_manager="configsync")
    try:
        _migrate(mkube, srv_a, srv_b, pkg_b, ports, tmp_path)
    finally:
        for c in cftds.values():
            mkube.kubectl("delete", "--ignore-not-found", "clusterfederatedtrustdomain", c["metadata"]["name"],
                          check=False)
        for name in ("free5gc-cp.amf-regional", "free5gc-cp.amf-regional.telco-operator"):
            mkube.kubectl("delete", "--ignore-not-found", "clusterspiffeid", name, check=False)


def _migrate(kube, srv_a, srv_b, pkg_b, ports, tmp_path):
    for srv, peer in ((srv_a, B), (srv_b, A)):
        wait_until(lambda srv=srv, peer=peer: srv.cli("bundle", "list", "-id", f"spiffe://{peer}", "-format",
                                                      "spiffe", check=False).returncode == 0,
                   60, f"{peer}'s bundle on {srv.name}", proc=srv.proc)

    # The AMF's pod in the cluster, and its package rendered in dual, applied.
    node = kube.create_node("regional-worker-1")
    kube.ensure_namespace(NS)
    kube.create_running_pod(NS, "amf-regional-0", node=node.metadata.name, service_account="amf-regional",
                            labels={"name": "amf-regional"}, pod_ip="10.244.7.10")
    dual, _ = through("amf", "prepare", "dual")
    applied = _apply_registrations(kube, dual, set())
    assert applied == {"free5gc-cp.amf-regional", "free5gc-cp.amf-regional.telco-operator"}

    id_a, id_b = f"spiffe://{A}{PATH}", f"spiffe://{B}{PATH}"
    ea = wait_until(lambda: _entries(srv_a).get(id_a), 90, "A's entry for the AMF pod", proc=srv_a.proc)
    eb = wait_until(lambda: _entries(srv_b).get(id_b), 90, "B's entry for the AMF pod", proc=srv_b.proc)
    assert list(_entries(srv_a)) == [id_a] and list(_entries(srv_b)) == [id_b]
    assert id_a.removeprefix(f"spiffe://{A}") == id_b.removeprefix(f"spiffe://{B}")
    assert ea["id"].startswith("regional.") and eb["id"].startswith("regional-telco-operator.")
    assert _federates(ea) == [B] and _federates(eb) == [A]
    assert sorted(f"{s['type']}:{s['value']}" for s in ea["selectors"]) == \
        sorted(f"{s['type']}:{s['value']}" for s in eb["selectors"])  # the same pod

    # Either SVID verifies against the bundle the other side stored for its domain, not against
    # the other side's own.
    for src, dst, sid in ((srv_a, srv_b, id_a), (srv_b, srv_a, id_b)):
        d = tmp_path / f"svid-{src.name}"
        d.mkdir()
        src.cli("x509", "mint", "-spiffeID", sid, "-write", d)
        fed = tmp_path / f"{src.trust_domain}-on-{dst.name}.pem"
        fed.write_text(dst.cli("bundle", "list", "-id", f"spiffe://{src.trust_domain}", "-format", "pem").stdout)
        ok = _verify(fed, d / "svid.pem")
        assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
        own = tmp_path / f"{dst.name}-own.pem"
        own.write_text(dst.bundle_pem())
        assert _verify(own, d / "svid.pem").returncode != 0

    # cutover changes no registration; complete (the rules written in B) leaves B's only.
    cut, _ = through("amf", "prepare", "dual", "cutover")
    assert _apply_registrations(kube, cut, applied) == applied
    renamed = yamlio.load(yamlio.dump(cut).replace(f"spiffe://{A}/", f"spiffe://{B}/"))
    done, results, code = render(set_phase(renamed, "complete"))
    assert code == 0, [r["message"] for r in results if r["severity"] == "error"]
    assert _apply_registrations(kube, done, applied) == {"free5gc-cp.amf-regional.telco-operator"}
    wait_until(lambda: _entries(srv_a) == {}, 90, "A's entry to be deleted", proc=srv_a.proc)
    wait_until(lambda: _federates(_entries(srv_b).get(id_b) or {"federates_with": [A]}) == [], 90,
               "B's entry to stop federating with A", proc=srv_b.proc)
    assert list(_entries(srv_b)) == [id_b]

    # B's SPIRE package completes too: the federation with A is rendered away and pruned.
    set_values(pkg_b, {"migration": {"from": A, "phase": "complete"}, "federation": {"peers": []}})
    _render(pkg_b)
    assert not (pkg_b / "federation" / f"{A}.yaml").exists()
    kube.kubectl("delete", "clusterfederatedtrustdomain", A)

    def unfederated():
        rel = json.loads(srv_b.cli("federation", "list", "-output", "json").stdout)
        return not rel.get("federation_relationships")
    wait_until(unfederated, 90, "B's federation relationship with A to end", proc=srv_b.proc)


EDGE = "edge-1"


def test_nested_edge_a_and_b_downstream_servers_each_registered_at_its_own_root(mkube, real_stack, closed_ports,
                                                                                 tmp_path):
    """The nested topology twinned: A's and B's roots (each with a controller manager for the
    nested edge, from their rendered packages) watch one edge cluster (this apiserver) where A's and
    B's downstream packages applied their registrations side by side. Each root registers exactly
    its own downstream server: its trust domain's ID, downstream, selecting its own server pod.
    Before the twin, B's registration had A's name (it replaced A's) and B's root watched the edge
    with A's class (both roots would have registered the same pod)."""
    ports = dict(zip((A, B), closed_ports))
    base = {"clusterName": "mgmt"}
    pkgs, servers = {}, {}
    for td in (A, B):
        pkgs[td] = render_spire("spire-server", tmp_path / f"root-{td}", changes={**base, "trustDomain": td},
                                drop=("federation",))
        ns = "spire-server" if td == A else "spire-server-telco-operator"
        conf = configmap_data(pkgs[td], "spire-server", "spire-server")["server.conf"]
        servers[td] = start_rendered_server(real_stack, mkube, conf, name=f"root-{td}")[0]
    for td, other, side in ((A, B, {"to": B}), (B, A, {"from": A})):
        _commit_bundle(servers[other], pkgs[td], tmp_path)
        set_values(pkgs[td], {"migration": side, "federation": {"peers": [_peer(other, ports[other])]}})
        _render(pkgs[td])
    ds = {}
    for td, other, side in ((A, B, {"to": B}), (B, A, {"from": A})):
        ds[td] = render_spire("spire-downstream-server", tmp_path / f"ds-{td}", changes={"trustDomain": td})
        _commit_bundle(servers[other], ds[td], tmp_path)
        set_values(ds[td], {"migration": side, "federation": {"peers": [_peer(other, ports[other])]}})
        _render(ds[td])

    node = mkube.create_node(f"{EDGE}-worker-1")
    regs, pods = {}, {}
    for td in (A, B):
        sts = next(o for o in cluster_objects(ds[td]) if o["kind"] == "StatefulSet")
        tmpl = sts["spec"]["template"]
        pods[td] = mkube.create_running_pod(sts["metadata"]["namespace"], f"{sts['metadata']['name']}-0",
                                            node=node.metadata.name,
                                            service_account=tmpl["spec"]["serviceAccountName"],
                                            labels=dict(tmpl["metadata"]["labels"]))
        regs[td] = next(o for o in cluster_objects(ds[td]) if o["kind"] == "ClusterSPIFFEID")
    assert pods[A].metadata.namespace == "spire-server"
    assert pods[B].metadata.namespace == "spire-server-telco-operator"
    assert regs[A]["metadata"]["name"] != regs[B]["metadata"]["name"]
    try:
        mkube.apply_manifests(to_yaml(list(regs.values())), field_manager="configsync")
        for td in (A, B):
            ns = "spire-server" if td == A else "spire-server-telco-operator"
            text = configmap_data(pkgs[td], "spire-controller-manager", ns)[f"{EDGE}.yaml"]
            assert yamlio.load(text)["className"] == regs[td]["spec"]["className"]
            real_stack.controller_manager(mkube, servers[td], text, name=f"scm-{EDGE}-{td}",
                                          default_cluster_domain=False)
        for td in (A, B):
            want = f"spiffe://{td}/downstream/{EDGE}"
            entry = wait_until(lambda td=td, want=want: _entries(servers[td]).get(want), 90,
                               f"{td}'s root to register its downstream server", proc=servers[td].proc)
            assert entry["downstream"] is True
            assert f"k8s:pod-uid:{pods[td].metadata.uid}" in {f"{s['type']}:{s['value']}" for s in entry["selectors"]}
        # and nothing else: neither root registered the other's downstream server
        for td in (A, B):
            assert list(_entries(servers[td])) == [f"spiffe://{td}/downstream/{EDGE}"], _entries(servers[td])
    finally:
        for r in regs.values():
            mkube.kubectl("delete", "--ignore-not-found", "clusterspiffeid", r["metadata"]["name"], check=False)
        for p in pods.values():
            mkube.core().delete_namespaced_pod(p.metadata.name, p.metadata.namespace, grace_period_seconds=0)
        mkube.core().delete_node(node.metadata.name)

"""The prepare phase's SPIRE side: B's spire-server and spire-agent packages rendered beside A's in one
cluster (SpireDeployment spec.migration), federated both ways from committed bundles. Everything a
cluster or a node holds once must differ between the two; the names must be the ones the workload
side (IdentityContext spec.migration) defaults to."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from spiffe_kpt.krm import yamlio
from spiffe_kpt.spire_config import configure

from ..bundles import bundle_text, trust_bundle
from ..pkgtools import errors, read_package, run
from ..spire.examples import SPIRE
from .helpers import A, B

CLUSTER = "regional"
SERVER: dict[str, Any] = {
    "clusterName": CLUSTER,
    "ca": {"ttl": "168h", "keyType": "ec-p256"},
    "networkPolicy": {"nodeCIDRs": ["10.20.0.0/24"], "apiServer": {"cidrs": ["10.20.1.10/32"]}},
}
AGENT: dict[str, Any] = {
    "clusterName": CLUSTER,
    "server": {"address": "spire-server.spire-server.svc", "port": 8081},
    "networkPolicy": {"nodeCIDRs": ["10.20.0.0/24"]},
}


def _peer(td: str, server_ns: str) -> dict[str, Any]:
    return {"trustDomain": td, "bundleEndpointURL": f"https://spire-server-bundle-endpoint.{server_ns}.svc:8443",
            "profile": "https_spiffe", "endpointSPIFFEID": f"spiffe://{td}/spire/server",
            "trustBundle": td.replace(".", "-")}


def server(td: str, migration: dict[str, str], peer_td: str, peer_ns: str) -> list[dict[str, Any]]:
    items = read_package(SPIRE / "spire-server")
    values = next(i for i in items if i.get("kind") == "SpireDeployment")
    values["spec"].update(copy.deepcopy(SERVER), trustDomain=td, migration=migration,
                          federation={"bundleEndpoint": {"profile": "https_spiffe", "port": 8443},
                                      "peers": [_peer(peer_td, peer_ns)]})
    return items + [trust_bundle(peer_td.replace(".", "-"), peer_td, bundle_text(peer_td))]


def agent(td: str, migration: dict[str, str] | None) -> list[dict[str, Any]]:
    items = read_package(SPIRE / "spire-agent")
    values = next(i for i in items if i.get("kind") == "SpireDeployment")
    values["spec"].update(copy.deepcopy(AGENT), trustDomain=td)
    if migration:
        values["spec"]["migration"] = migration
    if migration and "from" in migration:
        values["spec"]["server"]["address"] = "spire-server.spire-server-telco-operator.svc"
    return items


def rendered(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    doc, code = run(items, configure)
    assert code == 0, [r["message"] for r in errors(doc)]
    return [i for i in doc["items"] if i.get("kind") not in ("Kptfile", "SpireDeployment", "TrustBundle")]


def _cluster_keys(items: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(i["kind"], (i["metadata"].get("namespace") or ""), i["metadata"]["name"]) for i in items}


def _host_paths(items: list[dict[str, Any]]) -> set[str]:
    return {v["hostPath"]["path"] for i in items if i["kind"] == "DaemonSet"
            for v in i["spec"]["template"]["spec"].get("volumes") or [] if "hostPath" in v}


def _cm_config(items: list[dict[str, Any]]) -> dict[str, Any]:
    cm = next(i for i in items if i["kind"] == "ConfigMap" and i["metadata"]["name"] == "spire-controller-manager")
    return yamlio.load(cm["data"][f"{CLUSTER}.yaml"])


def test_b_runs_beside_a_without_sharing_anything_the_cluster_or_node_holds_once() -> None:
    a = rendered(server(A, {"to": B}, B, "spire-server-telco-operator")) + rendered(agent(A, {"to": B}))
    b = rendered(server(B, {"from": A}, A, "spire-server")) + rendered(agent(B, {"from": A}))
    assert not _cluster_keys(a) & _cluster_keys(b)
    # The kubelet's own directories are shared by design; the agents' sockets and CSI plugins are not.
    shared = _host_paths(a) & _host_paths(b)
    assert shared == {"/var/lib/kubelet/pods", "/var/lib/kubelet/plugins_registry"}
    assert "/run/spire/agent-sockets-telco-operator" in _host_paths(b)
    assert "/var/lib/kubelet/plugins/telco-operator.csi.spiffe.io" in _host_paths(b)
    drivers = {i["metadata"]["name"] for i in b if i["kind"] == "CSIDriver"}
    assert drivers == {"telco-operator.csi.spiffe.io"}  # what a workload mounts from cutover on
    csi = next(i for i in b if i["kind"] == "DaemonSet" and i["metadata"]["name"] == "spiffe-csi-driver")
    args = [a for c in csi["spec"]["template"]["spec"]["containers"] for a in c.get("args") or []]
    assert "telco-operator.csi.spiffe.io" in args
    assert "/var/lib/kubelet/plugins/telco-operator.csi.spiffe.io/csi.sock" in args
    assert "csi.spiffe.io" not in args


def test_b_agent_listens_where_its_containers_mount_the_socket_directory() -> None:
    """Only the node's directory is B's own: inside the agent (read-only root filesystem) the
    socket directory is mounted where agent.conf's socket_path puts the socket, else the agent
    cannot create it (found on the node tier, tests/real/test_real_node_migration.py)."""
    b = rendered(agent(B, {"from": A}))
    ds = next(i for i in b if i["kind"] == "DaemonSet" and i["metadata"]["name"] == "spire-agent")
    conf = next(i for i in b if i["kind"] == "ConfigMap" and i["metadata"]["name"] == "spire-agent")
    sock = re.search(r'socket_path = "([^"]+)"', conf["data"]["agent.conf"]).group(1)
    spec = ds["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"] for c in spec["initContainers"] + spec["containers"]
              for m in c.get("volumeMounts") or [] if m["name"] == "spire-agent-socket-dir"}
    assert host["spire-agent-socket-dir"] == "/run/spire/agent-sockets-telco-operator"
    assert mounts == {sock.rsplit("/", 1)[0]}


def test_b_controller_manager_has_the_class_and_prefix_the_workloads_use() -> None:
    b = rendered(server(B, {"from": A}, A, "spire-server"))
    cfg = _cm_config(b)
    assert cfg["className"] == "spire-regional-telco-operator"  # = IdentityContext migration default
    assert cfg["trustDomain"] == B
    assert cfg["entryIDPrefix"] == "regional-telco-operator"
    a = rendered(server(A, {"to": B}, B, "spire-server-telco-operator"))
    assert _cm_config(a)["className"] == "spire-regional" and _cm_config(a)["entryIDPrefix"] == "regional"
    ns = {i["metadata"]["namespace"] for i in b if i["metadata"].get("namespace")}
    assert ns <= {"spire-server-telco-operator", "spire-system-telco-operator"}


def test_a_and_b_federate_both_ways_from_committed_bundles() -> None:
    a = rendered(server(A, {"to": B}, B, "spire-server-telco-operator"))
    b = rendered(server(B, {"from": A}, A, "spire-server"))
    fa = next(i for i in a if i["kind"] == "ClusterFederatedTrustDomain")
    fb = next(i for i in b if i["kind"] == "ClusterFederatedTrustDomain")
    assert (fa["spec"]["trustDomain"], fa["spec"]["className"]) == (B, "spire-regional")
    assert (fb["spec"]["trustDomain"], fb["spec"]["className"]) == (A, "spire-regional-telco-operator")
    assert json.loads(fa["spec"]["trustDomainBundle"])["keys"] and json.loads(fb["spec"]["trustDomainBundle"])["keys"]
    assert fa["metadata"]["name"] != fb["metadata"]["name"]


def test_rendering_b_twice_changes_nothing() -> None:
    items = server(B, {"from": A}, A, "spire-server") + agent(B, {"from": A})[1:]
    doc, code = run(items, configure)
    assert code == 0
    again, code = run(doc["items"], configure)
    assert code == 0 and yamlio.dump(again["items"]) == yamlio.dump(doc["items"])


def test_a_server_migrating_without_federating_with_the_other_side_is_refused() -> None:
    items = server(B, {"from": A}, A, "spire-server")
    values = next(i for i in items if i.get("kind") == "SpireDeployment")
    values["spec"]["federation"]["peers"] = []
    doc, code = run(items, configure)
    assert code == 1
    [err] = [r for r in errors(doc) if r.get("field", {}).get("path") == "spec.federation.peers"]
    assert err["resourceRef"]["kind"] == "SpireDeployment" and "federate with it" in err["message"]


def test_a_migration_to_the_own_domain_is_refused() -> None:
    items = server(A, {"to": A}, B, "spire-server-telco-operator")
    doc, code = run(items, configure)
    assert code == 1
    assert any(r.get("field", {}).get("path") == "spec.migration.to" and "own trust domain" in r["message"]
               for r in errors(doc))


def test_b_complete_drops_the_federation_with_a() -> None:
    items = server(B, {"from": A, "phase": "complete"}, A, "spire-server")
    doc, code = run(items, configure)
    assert code == 1
    [err] = errors(doc)
    assert err["field"]["path"] == "spec.federation.peers[0]" and "migration from" in err["message"]
    values = next(i for i in items if i.get("kind") == "SpireDeployment")
    values["spec"]["federation"]["peers"] = []
    done = rendered(items)
    assert not [i for i in done if i["kind"] == "ClusterFederatedTrustDomain"]
    assert _cm_config(done)["className"] == "spire-regional-telco-operator"  # names unchanged


# The nested topology: a management root serving a central cluster and a nested edge, whose
# downstream server chains to it. B's root runs beside A's in the management cluster, B's
# downstream server beside A's in the edge cluster; each pair must share nothing either cluster
# or the edge's nodes hold once, and B's names must meet: the classes of B's root's controller
# managers are the ones the clusters' twin registrations use, and B's downstream server is
# registered at B's root under the class B's root gives the edge.
EDGE = "edge-1"
ROOT_CLUSTERS = [{"name": CLUSTER, "mode": "central", "sourceCIDRs": ["10.20.0.0/24"],
                  "apiServer": {"cidrs": ["10.20.1.10/32"]}},
                 {"name": EDGE, "mode": "nested", "sourceCIDRs": ["10.30.0.0/24"],
                  "apiServer": {"cidrs": ["10.30.1.10/32"]}}]


def root(td: str, migration: dict[str, str], peer_td: str, peer_ns: str) -> list[dict[str, Any]]:
    items = server(td, migration, peer_td, peer_ns)
    values = next(i for i in items if i.get("kind") == "SpireDeployment")
    values["spec"].update(clusterName="mgmt", workloadClusters=copy.deepcopy(ROOT_CLUSTERS),
                          service={"type": "LoadBalancer"})
    return items


def downstream(td: str, migration: dict[str, str], peer_td: str, peer_ns: str) -> list[dict[str, Any]]:
    items = read_package(SPIRE / "spire-downstream-server")
    values = next(i for i in items if i.get("kind") == "SpireDeployment")
    values["spec"].update(
        trustDomain=td, clusterName=EDGE, migration=migration, offlineTolerance="12h",
        ca={"ttl": "24h", "keyType": "ec-p256"},
        upstream={"address": "spire.mgmt.example.net", "port": 8081, "rootCATTL": "168h", "cidrs": ["192.0.2.10/32"]},
        networkPolicy={"nodeCIDRs": ["10.30.0.0/24"], "apiServer": {"cidrs": ["10.30.1.10/32"]}},
        federation={"bundleEndpoint": {"profile": "https_spiffe", "port": 8443}, "peers": [_peer(peer_td, peer_ns)]})
    return items + [trust_bundle(peer_td.replace(".", "-"), peer_td, bundle_text(peer_td))]


def _all_host_paths(items: list[dict[str, Any]]) -> set[str]:
    return {v["hostPath"]["path"] for i in items if i["kind"] in ("DaemonSet", "StatefulSet")
            for v in i["spec"]["template"]["spec"].get("volumes") or [] if "hostPath" in v}


def _csi_volumes(items: list[dict[str, Any]]) -> set[str]:
    return {v["csi"]["driver"] for i in items if i["kind"] in ("DaemonSet", "StatefulSet")
            for v in i["spec"]["template"]["spec"].get("volumes") or [] if "csi" in v}


def _cm_configs(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    cm = next(i for i in items if i["kind"] == "ConfigMap" and i["metadata"]["name"] == "spire-controller-manager")
    return {k.removesuffix(".yaml"): yamlio.load(v) for k, v in cm["data"].items()}


def test_nested_b_runs_beside_a_at_the_root_and_at_the_edge() -> None:
    from spiffe_kpt.api.migration import target_class_name
    root_a = rendered(root(A, {"to": B}, B, "spire-server-telco-operator"))
    root_b = rendered(root(B, {"from": A}, A, "spire-server"))
    ds_a = rendered(downstream(A, {"to": B}, B, "spire-server-telco-operator"))
    ds_b = rendered(downstream(B, {"from": A}, A, "spire-server"))
    # the management cluster: every object, and every controller manager's class, B's own
    assert not _cluster_keys(root_a) & _cluster_keys(root_b)
    classes_a = {c["className"] for c in _cm_configs(root_a).values()}
    classes_b = {c["className"] for c in _cm_configs(root_b).values()}
    assert classes_a == {"spire-mgmt", f"spire-{CLUSTER}", f"spire-{EDGE}-upstream"}
    assert not classes_a & classes_b
    # B's root watches the central cluster under the class its workloads' twin registrations
    # use (IdentityContext migration defaults: target_class_name of A's className)
    assert _cm_configs(root_b)[CLUSTER]["className"] == target_class_name(f"spire-{CLUSTER}", B)
    # the edge cluster and its nodes: objects, node directories and CSI drivers B's own
    assert not _cluster_keys(ds_a) & _cluster_keys(ds_b), _cluster_keys(ds_a) & _cluster_keys(ds_b)
    assert _all_host_paths(ds_a) & _all_host_paths(ds_b) == {"/var/lib/kubelet/pods",
                                                              "/var/lib/kubelet/plugins_registry"}
    drivers_b = {i["metadata"]["name"] for i in ds_b if i["kind"] == "CSIDriver"}
    assert drivers_b == {"upstream.telco-operator.csi.spiffe.io"}
    assert _csi_volumes(ds_b) == drivers_b  # the downstream server mounts B's upstream driver
    assert _csi_volumes(ds_a) == {"upstream.csi.spiffe.io"}
    csi = next(i for i in ds_b if i["kind"] == "DaemonSet" and i["metadata"]["name"] == "spire-upstream-csi-driver")
    args = [a for c in csi["spec"]["template"]["spec"]["containers"] for a in c.get("args") or []]
    assert "upstream.telco-operator.csi.spiffe.io" in args and "upstream.csi.spiffe.io" not in args
    assert "/var/lib/kubelet/plugins/upstream.telco-operator.csi.spiffe.io/csi.sock" in args
    assert "/run/spire/upstream-agent-sockets-telco-operator" in _all_host_paths(ds_b)
    # B's downstream server is registered at B's root: its ClusterSPIFFEID (in the edge cluster,
    # beside A's) names the class B's root gives the edge, and selects B's server pods
    [reg_a] = [i for i in ds_a if i["kind"] == "ClusterSPIFFEID"]
    [reg_b] = [i for i in ds_b if i["kind"] == "ClusterSPIFFEID"]
    assert reg_a["metadata"]["name"] == "spire-downstream-server"
    assert reg_b["metadata"]["name"] == "spire-downstream-server-telco-operator"
    assert reg_a["spec"]["className"] == _cm_configs(root_a)[EDGE]["className"]
    assert reg_b["spec"]["className"] == _cm_configs(root_b)[EDGE]["className"] == \
        target_class_name(f"spire-{EDGE}-upstream", B)
    assert reg_b["spec"]["namespaceSelector"]["matchLabels"] == \
        {"kubernetes.io/metadata.name": "spire-server-telco-operator"}
    # and B's edge reconciles its own workloads' twins, as a central cluster's would
    assert _cm_configs(ds_b)[EDGE]["className"] == target_class_name(f"spire-{EDGE}", B)


def test_rendering_nested_b_twice_changes_nothing() -> None:
    for items in (root(B, {"from": A}, A, "spire-server"), downstream(B, {"from": A}, A, "spire-server")):
        doc, code = run(items, configure)
        assert code == 0, [r["message"] for r in errors(doc)]
        again, code = run(doc["items"], configure)
        assert code == 0 and yamlio.dump(again["items"]) == yamlio.dump(doc["items"])

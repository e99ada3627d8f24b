"""A trust-domain migration on the real node (issue 19: "run the dual and cutover phases there
too"): A's SPIRE (core.telco-operator.net) and B's (telco.operator, rendered by spire-config with
``migration.from: A``) as pods on the kubelet, the server StatefulSet with its controller manager
and the agent and SPIFFE CSI driver DaemonSets of each, federated both ways from the bundles
committed to each package (GitOps federation: their bundle endpoints are a port nobody listens
on); then the rendered example ``trust-domain-migration/amf-dual`` (the 5G core's AMF):

- ``dual``: the AMF's pod mounts A's CSI driver (``csi.spiffe.io``, as rendered) and gets A's
  X.509-SVID for ``status.spiffeID``; B's controller manager has registered the twin entry (the
  same ID but for the trust domain) for the same pod; the Workload API hands the pod B's bundle
  beside A's (the federation both ways, as rendered);
- ``cutover`` (the same package, its IdentityContext's phase edited and re-rendered with kpt,
  re-applied): the Deployment's volume names B's driver, so the pod is replaced; the new one
  mounts ``telco-operator.csi.spiffe.io`` and gets B's X.509-SVID for the new
  ``status.spiffeID``, chained to B's root, with A's bundle federated.

B's packages need nothing renamed here (the migration rendered their names, namespaces,
className, entry ID prefix, CSI driver, plugin and socket directories apart from A's): what one
registry-less host-network node forces is the single-node rewrites of ``noderendered.for_node``
plus B's host ports (``noderendered.migration_b_aside``), every one asserted exactly.  The module
removes what it applied in stages (``nodeteardown``) so the next node module finds a fresh node.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from spiffe_kpt.cli.trustbundle import main as trustbundle_main

from ..pkgtools import kpt_render
from ..spire import examples as spire_examples
from . import noderendered as nr
from . import nodeteardown
from .conftest import install_upstream_crds
from .node import Node, import_images
from .rendered import (
    apply_order,
    by_kind,
    cluster_objects,
    local_objects,
    render_example,
    render_spire,
    to_yaml,
    uri_sans,
)
from .stack import LOOPBACK, StackError, spiffe_id_str, wait_until
from .test_real_node_nested import _image_and_env_paths, _volume
from .test_real_node_spire import (
    IMAGES,
    SERVER_SOCKET,
    _chain_ok,
    _describe,
    _pods,
    _ready,
    _workload_reports,
    wait_ready_pods,
)

A, B = "core.telco-operator.net", "telco.operator"
CLUSTER = "regional"
NS = {A: ("spire-server", "spire-system"), B: ("spire-server-telco-operator", "spire-system-telco-operator")}
DRIVER = {A: "csi.spiffe.io", B: "telco-operator.csi.spiffe.io"}
EXAMPLE = "trust-domain-migration/amf-dual"
WL_NS, WL_SELECTOR = "free5gc-cp", "name=amf-regional"
# what the cluster of the example has and this node has not: Istio's and Multus' CRDs (the
# package's AuthorizationPolicies, PeerAuthentication and MultiNetworkPolicies are not applied)
NOT_APPLIED = {"AuthorizationPolicy", "PeerAuthentication", "MultiNetworkPolicy"}
TEARDOWN_TIMEOUT = 120


def _peer(td: str, port: int) -> dict:
    return {"trustDomain": td, "bundleEndpointURL": f"https://{LOOPBACK}:{port}", "profile": "https_spiffe",
            "endpointSPIFFEID": f"spiffe://{td}/spire/server", "trustBundle": td.replace(".", "-")}


def _driver(dep: dict) -> str:
    vols = dep["spec"]["template"]["spec"]["volumes"]
    return next(v["csi"]["driver"] for v in vols if "csi" in v)


class Migration:
    def __init__(self, node: Node, tmp: Path):
        self.node, self.tmp = node, tmp
        self.volumes: list[dict] = []
        self.applied: dict[str, list[dict]] = {}
        self.diff: dict[str, dict] = {}
        self.workload_objs: list[dict] = []
        k = node.kube
        install_upstream_crds(k)
        self.images = import_images(node, list(IMAGES))
        self.repo_images = {repo: self.images[b] for repo, b in nr.UPSTREAM_IMAGES.items()}
        self.port = urllib.parse.urlparse(k.server).port
        # the peers' bundle endpoints: bound, never listening (federation comes from the
        # committed bundles alone)
        self.closed = []
        for _ in (A, B):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            self.closed.append(s)
        self.endpoint = {td: s.getsockname()[1] for td, s in zip((A, B), self.closed)}
        self.base = {"clusterName": CLUSTER}
        # A as it ran before the migration: one server of its trust domain, its agent
        self.pkg = {"server-a": render_spire("spire-server", tmp / "a", changes={**self.base, "trustDomain": A},
                                             drop=("workloadClusters", "federation", "oidcDiscoveryProvider")),
                    "agent-a": render_spire("spire-agent", tmp / "a",
                                            changes={**self.base, "trustDomain": A, "migration": {"to": B}})}
        self.rendered_before = cluster_objects(self.pkg["server-a"])

    def _for_node(self, name: str, objs: list[dict], extra=None) -> None:
        self.applied[name], self.diff[name] = nr.for_node(
            objs, images=self.repo_images, host_prefix=self.node.host, apiserver_port=self.port, extra=extra)

    def _apply(self, name: str) -> None:
        self.node.kube.apply_manifests(to_yaml(apply_order(self.applied[name])),
                                       field_manager=f"kpt-{name}")

    def _server(self, td: str) -> dict:
        ns = NS[td][0]
        vol = _volume(self.node, f"spire-data-{td.replace('.', '-')}", ns, "spire-data-spire-server-0")
        self.volumes.append(vol)
        self.node.kube.apply_manifests(yaml.safe_dump(vol))
        self._apply("server-a" if td == A else "server-b")
        return wait_ready_pods(self.node, ns, "app.kubernetes.io/name=spire-server", timeout=240)[0]

    def _commit_bundle(self, of: str, pkg: Path) -> None:
        """The other side's bundle as its operator commits it (spiffe-kpt-trustbundle)."""
        f = self.tmp / f"{of}.json"
        f.write_text(self.cli(of, "bundle", "show", "-format", "spiffe").stdout)
        (pkg / "bundles").mkdir(exist_ok=True)
        assert trustbundle_main(["--trust-domain", of, "--name", of.replace(".", "-"), str(f),
                                 "-o", str(pkg / "bundles" / f"{of.replace('.', '-')}.yaml")]) == 0

    def deploy(self) -> None:
        k = self.node.kube
        self._for_node("server-a", self.rendered_before)
        self._for_node("agent-a", cluster_objects(self.pkg["agent-a"]))
        # A's server (the operator provides the agents' namespace its BundlePublisher writes to,
        # and a volume for the claim)
        k.ensure_namespace(NS[A][1])
        self._server(A)
        # B's packages: a second kpt pkg get of each, spec.migration.from: A, A's bundle committed
        b_server = spire_examples.copy_package("spire-server", self.tmp / "b")
        spire_examples.set_values(b_server, {
            **spire_examples.SPECS["spire-server"], **self.base, "trustDomain": B, "migration": {"from": A},
            "federation": {"peers": [_peer(A, self.endpoint[A])]}}, ("workloadClusters", "oidcDiscoveryProvider"))
        self._commit_bundle(A, b_server)
        r = kpt_render(b_server)
        assert r.exit_code == 0, r.stderr[-3000:]
        self.pkg["server-b"] = b_server
        self.pkg["agent-b"] = render_spire("spire-agent", self.tmp / "b",
                                           changes={**self.base, "trustDomain": B, "migration": {"from": A}})
        self._for_node("server-b", cluster_objects(b_server), extra=nr.migration_b_aside)
        self._for_node("agent-b", cluster_objects(self.pkg["agent-b"]), extra=nr.migration_b_aside)
        k.ensure_namespace(NS[B][1])
        self._server(B)
        # A's package moves to prepare: migration.to B, B's bundle committed, re-rendered
        spire_examples.set_values(self.pkg["server-a"], {"migration": {"to": B},
                                                         "federation": {"peers": [_peer(B, self.endpoint[B])]}})
        self._commit_bundle(B, self.pkg["server-a"])
        r = kpt_render(self.pkg["server-a"])
        assert r.exit_code == 0, r.stderr[-3000:]
        self.rendered_after = cluster_objects(self.pkg["server-a"])
        self._for_node("server-a", self.rendered_after)
        self._apply("server-a")
        for name in ("agent-a", "agent-b"):
            self._apply(name)
        for td in (A, B):
            wait_ready_pods(self.node, NS[td][1], "app.kubernetes.io/name=spire-agent")
            wait_ready_pods(self.node, NS[td][1], "app.kubernetes.io/name=spiffe-csi-driver")
        for td, peer in ((A, B), (B, A)):
            wait_until(lambda td=td, peer=peer: self.cli(td, "bundle", "list", "-id", f"spiffe://{peer}",
                                                         check=False).returncode == 0,
                       120, f"{peer}'s bundle on {td}'s server", interval=2)

    def cli(self, td: str, *args: str, check: bool = True):
        ns = NS[td][0]
        pod = _pods(self.node, ns, "app.kubernetes.io/name=spire-server")[0]
        return self.node.kube.kubectl(
            "exec", "-n", ns, pod["metadata"]["name"], "-c", "spire-server", "--",
            "/opt/spire/bin/spire-server", *args, "-socketPath", SERVER_SOCKET, check=check)

    def bundle(self, td: str) -> set[x509.Certificate]:
        return set(x509.load_pem_x509_certificates(self.cli(td, "bundle", "show").stdout.encode()))

    def entries(self, td: str) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for e in json.loads(self.cli(td, "entry", "show", "-output", "json").stdout).get("entries") or []:
            out.setdefault(spiffe_id_str(e["spiffe_id"]), []).append(e)
        return out

    # the example workload package
    def apply_workload(self) -> tuple[dict, dict]:
        """The AMF package as rendered, wired for the node (:func:`wire_amf`); returns its
        WorkloadIdentity and the leaf diff of the wiring."""
        objs = [o for o in cluster_objects(self.example) if o["kind"] not in NOT_APPLIED]
        skipped = {o["kind"] for o in cluster_objects(self.example)} - {o["kind"] for o in objs}
        assert skipped == NOT_APPLIED, skipped
        applied = copy.deepcopy(objs)
        for o in applied:
            if o["kind"] == "Deployment":
                wire_amf(o, self.images["svid-workload"])
        k = self.node.kube
        k.apply_manifests(to_yaml([o for o in applied if o["kind"] == "Namespace"]), field_manager="kpt-amf")
        # the free5gc operator's ConfigMap the AMF mounts (not part of the identity package)
        k.apply_manifests(yaml.safe_dump(AMF_CONFIG), field_manager="free5gc-operator")
        self.workload_objs = applied + [AMF_CONFIG]
        k.apply_manifests(to_yaml(apply_order(applied)), field_manager="kpt-amf")
        (wid,) = by_kind(local_objects(self.example), "WorkloadIdentity")
        return wid, nr.diff_objects(objs, applied)

    def remove(self) -> None:
        """Delete what the module applied, stage by stage (nodeteardown): the AMF (its pod holds
        a volume of A's or B's CSI driver) before the agents' DaemonSets, the agents before the
        servers, namespaces last; then the node as test_real_node_spire.py expects it."""
        node = self.node
        stages = [("the AMF package", self.workload_objs),
                  ("B's spire-agent package", self.applied.get("agent-b", [])),
                  ("A's spire-agent package", self.applied.get("agent-a", [])),
                  ("B's spire-server package", self.applied.get("server-b", [])),
                  ("A's spire-server package", self.applied.get("server-a", []))]
        namespaces = [WL_NS, NS[A][1], NS[B][1]] + [o["metadata"]["name"] for _, objs in stages for o in objs
                                                    if o["kind"] == "Namespace"]
        namespaces = list(dict.fromkeys(namespaces))
        timings, problems = nodeteardown.staged_teardown(node, stages, namespaces, self.volumes, TEARDOWN_TIMEOUT)
        for s in self.closed:
            s.close()
        print("migration teardown: " + ", ".join(timings))
        shutil.rmtree(node.host / "run" / "spire", ignore_errors=True)
        shutil.rmtree(node.host / "srv", ignore_errors=True)
        left = [ns for ns in namespaces if node.kube.kubectl("get", "namespace", ns, check=False).returncode == 0]
        assert not left, f"namespaces left: {left}"
        assert not problems, "the migration module's teardown timed out:\n" + "\n\n".join(problems)


AMF_CONFIG = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "amf-regional-configmap", "namespace": WL_NS}, "data": {}}


def wire_amf(o: dict, image: str) -> None:
    """What the AMF's rendered pod template needs on this node: the workload image built here
    for free5gc's (its ``command`` dropped: the image's entrypoint prints the SVIDs), the host
    network (no pod network; so no container ports: on the host they would be host ports).
    The CSI volume, its mount and SPIFFE_ENDPOINT_SOCKET stay as rendered."""
    spec = o["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    for c in spec["containers"]:
        c["image"] = image
        c.pop("command", None)
        c.pop("ports", None)


@pytest.fixture(scope="module")
def migration(node_cluster, tmp_path_factory):
    m = Migration(node_cluster, tmp_path_factory.mktemp("node-migration"))
    t0 = time.monotonic()
    try:
        m.deploy()
        print(f"A and B deployed in {time.monotonic() - t0:.0f} s")
        yield m
    finally:
        m.remove()


def _sts(ns: str, rest: str) -> str:
    return f"StatefulSet/{ns}/spire-server:spec.template.spec.{rest}"


def _server_expected(ns: str, moved: bool) -> dict[str, Any]:
    cm, ctl = f"ConfigMap/{ns}/spire-server:data.server.conf:", f"ConfigMap/{ns}/spire-controller-manager:data."
    out = {
        f"Namespace//{ns}:metadata.labels.pod-security.kubernetes.io/enforce": ("restricted", "privileged"),
        _sts(ns, "hostNetwork"): ("<absent>", True),
        f"{cm}server.bind_address": ("0.0.0.0", LOOPBACK),
        f"{cm}health_checks.bind_address": ("0.0.0.0", LOOPBACK),
        f"{ctl}{CLUSTER}.yaml:health.healthProbeBindAddress": (":8083", f"{LOOPBACK}:{18083 if moved else 8083}"),
    }
    if moved:
        out |= {
            f"{cm}server.bind_port": (8081, 18081),
            f"{cm}health_checks.bind_port": ("8080", "18080"),
            _sts(ns, "containers[spire-server].ports[grpc].containerPort"): (8081, 18081),
            _sts(ns, "containers[spire-server].ports[healthz].containerPort"): (8080, 18080),
            _sts(ns, "containers[spire-controller-manager].ports[cm-healthz-0].containerPort"): (8083, 18083),
            _sts(ns, "containers[spire-controller-manager].livenessProbe.httpGet.port"): (8083, 18083),
            _sts(ns, "containers[spire-controller-manager].readinessProbe.httpGet.port"): (8083, 18083),
        }
    return out


def _agent_expected(ns: str, h: str, socket_dir: str, driver: str, moved: bool) -> dict[str, Any]:
    conf = f"ConfigMap/{ns}/spire-agent:data.agent.conf:"
    agent, csi = f"DaemonSet/{ns}/spire-agent:spec.template.spec.", f"DaemonSet/{ns}/spiffe-csi-driver:spec.template.spec."
    plugins, pods, reg = f"/var/lib/kubelet/plugins/{driver}", "/var/lib/kubelet/pods", "/var/lib/kubelet/plugins_registry"
    out = {
        f"{conf}agent.server_address": ("spire.mgmt.acme.net", LOOPBACK),
        f"{conf}health_checks.bind_address": ("0.0.0.0", LOOPBACK),
        f"{agent}hostNetwork": ("<absent>", True),
        f"{agent}volumes[spire-agent-socket-dir].hostPath.path": (socket_dir, h + socket_dir),
        f"{csi}hostNetwork": ("<absent>", True),
        f"{csi}containers[node-driver-registrar].args[3]": (f"{plugins}/csi.sock", f"{h}{plugins}/csi.sock"),
        f"{csi}containers[spiffe-csi-driver].volumeMounts[mountpoint-dir].mountPath": (pods, h + pods),
        f"{csi}volumes[kubelet-plugin-registration-dir].hostPath.path": (reg, h + reg),
        f"{csi}volumes[mountpoint-dir].hostPath.path": (pods, h + pods),
        f"{csi}volumes[spiffe-csi-socket-dir].hostPath.path": (plugins, h + plugins),
        f"{csi}volumes[spire-agent-socket-dir].hostPath.path": (socket_dir, h + socket_dir),
    }
    if moved:
        out |= {
            f"{conf}agent.server_port": (8081, 18081),
            f"{conf}health_checks.bind_port": ("9982", "19982"),
            f"{agent}containers[spire-agent].ports[healthz].containerPort": (9982, 19982),
            f"{csi}containers[node-driver-registrar].args[5]": ("9809", "19809"),
            f"{csi}containers[node-driver-registrar].ports[healthz].containerPort": (9809, 19809),
        }
    return out


def test_a_and_b_run_side_by_side_with_exactly_the_listed_rewrites(migration: Migration):
    m = migration
    h = str(m.node.host)
    assert _image_and_env_paths(m.diff["server-a"], m.images) == _server_expected(NS[A][0], moved=False)
    assert _image_and_env_paths(m.diff["server-b"], m.images) == _server_expected(NS[B][0], moved=True)
    assert _image_and_env_paths(m.diff["agent-a"], m.images) == \
        _agent_expected(NS[A][1], h, "/run/spire/agent-sockets", DRIVER[A], moved=False)
    assert _image_and_env_paths(m.diff["agent-b"], m.images) == \
        _agent_expected(NS[B][1], h, "/run/spire/agent-sockets-telco-operator", DRIVER[B], moved=True)
    # nothing of B is created by A's packages too: no object key is applied twice
    keys = [nr.object_key(o) for objs in m.applied.values() for o in objs]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    # A's move to prepare added its ClusterFederatedTrustDomain for B and the server's egress to
    # B's bundle endpoint (a refresh, should it listen), and changed nothing else: A's server,
    # its config and its controller manager run on untouched
    before = {nr.object_key(o): o for o in m.rendered_before}
    after = {nr.object_key(o): o for o in m.rendered_after}
    assert set(after) - set(before) == {f"ClusterFederatedTrustDomain//{B}"}
    assert set(before) <= set(after)
    np = f"NetworkPolicy/{NS[A][0]}/spire-server:spec.egress[2]"
    assert nr.diff_objects(list(before.values()), [after[key] for key in before]) == {
        f"{np}.ports[0].port": ("<absent>", m.endpoint[B]), f"{np}.ports[0].protocol": ("<absent>", "TCP"),
        f"{np}.to[0].ipBlock.cidr": ("<absent>", f"{LOOPBACK}/32")}
    # the kubelet has both drivers registered, and each server federates with the other from
    # the bundle committed to its package
    assert sorted(nodeteardown.csi_drivers(m.node)) == sorted(DRIVER.values())
    for td, peer in ((A, B), (B, A)):
        rel = json.loads(m.cli(td, "federation", "list", "-output", "json").stdout)["federation_relationships"]
        assert [r["trust_domain"] for r in rel] == [peer]
        fed = set(x509.load_pem_x509_certificates(
            m.cli(td, "bundle", "list", "-id", f"spiffe://{peer}", "-format", "pem").stdout.encode()))
        assert fed == m.bundle(peer)


def _report(m: Migration, not_uids: set[str] = frozenset(), timeout: float = 240):
    """The AMF's Ready pod (not one of ``not_uids``) and its latest X.509 report."""
    def ready_pod():
        pods = [p for p in _pods(m.node, WL_NS, WL_SELECTOR) if p["metadata"]["uid"] not in not_uids
                and not p["metadata"].get("deletionTimestamp") and _ready(p)]
        return pods[0] if pods else None
    try:
        p = wait_until(ready_pod, timeout, "a Ready AMF pod", interval=2, proc=m.node.kubelet)
    except Exception as e:
        raise AssertionError(f"{e}\n{_describe(m.node, WL_NS)}") from None

    def got():
        reps = [r for r in _workload_reports(m.node, WL_NS, p["metadata"]["name"]) if r.get("spiffeIDs")]
        return reps[-1] if reps else None
    try:
        rep = wait_until(got, timeout, "an X.509-SVID in the AMF's logs", interval=2)
    except StackError as e:
        td = A if _driver(pod_as_template(p)) == DRIVER[A] else B
        agent = _pods(m.node, NS[td][1], "app.kubernetes.io/name=spire-agent")[0]["metadata"]["name"]
        log = m.node.kube.kubectl("logs", "-n", NS[td][1], agent, "-c", "spire-agent", check=False).stdout
        raise AssertionError(f"{e}\nlast reports: {_workload_reports(m.node, WL_NS, p['metadata']['name'])[-3:]}\n"
                             f"{td}'s agent log: {log[-3000:]}") from None
    return p, rep, x509.load_pem_x509_certificates(rep["chain"].encode())


def _pod_entries(m: Migration, td: str, uid: str) -> list[dict]:
    sel = f"k8s:pod-uid:{uid}"
    return [e for es in m.entries(td).values() for e in es
            if sel in {f"{s['type']}:{s['value']}" for s in e["selectors"]}]


def _wait_entry(m: Migration, td: str, uid: str) -> dict:
    return wait_until(lambda: (_pod_entries(m, td, uid) or [None])[0], 120,
                      f"{td}'s entry for the AMF pod {uid}", interval=2)


def _phase(m: Migration, phase: str) -> None:
    ctx = m.example / "cluster-context.yaml"
    text = ctx.read_text()
    docs = list(yaml.safe_load_all(text))
    next(d for d in docs if d and d["kind"] == "IdentityContext")["spec"]["migration"]["phase"] = phase
    ctx.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    r = kpt_render(m.example)
    assert r.exit_code == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def dual(migration: Migration):
    m = migration
    m.example, r = render_example(EXAMPLE, m.tmp / "amf")
    assert r.exit_code == 0, r.stderr
    wid, diff = m.apply_workload()
    return wid, diff


def _assert_svid_of(m: Migration, rep: dict, chain: list, sid: str, own: str, other: str) -> None:
    """The pod's report: exactly ``sid``, an X.509-SVID chaining to ``own``'s bundle and not to
    ``other``'s, ``own``'s bundle as its trust bundle and ``other``'s as its only federated one."""
    assert rep["spiffeIDs"] == [sid]
    assert uri_sans(chain[0]) == [sid]
    assert _chain_ok(chain, list(m.bundle(own))) and not _chain_ok(chain, list(m.bundle(other)))
    assert set(x509.load_pem_x509_certificates(rep["bundle"].encode())) == m.bundle(own)
    assert sorted(rep.get("federated") or {}) == [other]
    assert set(x509.load_pem_x509_certificates(rep["federated"][other].encode())) == m.bundle(other)


def _twin(sid: str) -> str:
    assert sid.startswith(f"spiffe://{A}/")
    return sid.replace(f"spiffe://{A}/", f"spiffe://{B}/", 1)


def test_dual_the_pod_gets_a_svid_of_a_and_is_registered_in_b(migration: Migration, dual):
    m = migration
    wid, diff = dual
    (dep,) = by_kind(cluster_objects(m.example), "Deployment")
    key = "Deployment/free5gc-cp/amf-regional:spec.template.spec."
    c = f"{key}containers[amf]."
    ports = {f"{c}ports[{p}].{f}": (v, "<absent>") for p, fs in
             (("sbi", {"name": "sbi", "containerPort": 80, "protocol": "TCP"}),
              ("ngap", {"name": "ngap", "containerPort": 38412, "protocol": "SCTP"})) for f, v in fs.items()}
    assert diff == {f"{key}hostNetwork": ("<absent>", True),
                    f"{c}image": ("docker.io/towards5gs/free5gc-amf:v3.2.0", m.images["svid-workload"]),
                    f"{c}command[0]": ("/free5gc/config/wrapper.sh", "<absent>"), **ports}
    # rendered: A's driver; running: the same
    assert _driver(dep) == DRIVER[A]
    st = wid["status"]
    sid_a = st["spiffeID"]
    sid_b = _twin(sid_a)
    assert st["migration"]["alternateSPIFFEID"] == sid_b
    pod, rep, chain = _report(m)
    assert _driver(pod_as_template(pod)) == DRIVER[A]
    # federation both ways, as rendered: the pod's bundle set holds B's bundle
    _assert_svid_of(m, rep, chain, sid_a, A, B)
    # each controller manager registered the pod in its own domain: the same ID but for the
    # trust domain, the same pod, each federating with the other
    uid = pod["metadata"]["uid"]
    ea, eb = _wait_entry(m, A, uid), _wait_entry(m, B, uid)
    assert spiffe_id_str(ea["spiffe_id"]) == sid_a and spiffe_id_str(eb["spiffe_id"]) == sid_b
    assert ea["id"].startswith(f"{CLUSTER}.") and eb["id"].startswith(f"{CLUSTER}-telco-operator.")
    assert sorted(str(t).removeprefix("spiffe://") for t in ea.get("federates_with") or []) == [B]
    assert sorted(str(t).removeprefix("spiffe://") for t in eb.get("federates_with") or []) == [A]
    assert eb["parent_id"]["trust_domain"] == B
    m.dual_uid = uid


def pod_as_template(pod: dict) -> dict:
    return {"spec": {"template": {"spec": pod["spec"]}}}


def test_cutover_the_new_pod_mounts_b_and_gets_a_svid_of_b(migration: Migration, dual):
    m = migration
    wid, _ = dual
    old = {p["metadata"]["uid"] for p in _pods(m.node, WL_NS, WL_SELECTOR)}
    assert old, "no AMF pod from dual"
    sid_b = _twin(wid["status"]["spiffeID"])
    _phase(m, "cutover")
    (dep,) = by_kind(cluster_objects(m.example), "Deployment")
    assert _driver(dep) == DRIVER[B]
    (wid_b,) = by_kind(local_objects(m.example), "WorkloadIdentity")
    assert wid_b["status"]["spiffeID"] == sid_b
    regs_before = {o["metadata"]["name"] for o in m.workload_objs if o["kind"] == "ClusterSPIFFEID"}
    _, diff = m.apply_workload()
    assert {o["metadata"]["name"] for o in m.workload_objs if o["kind"] == "ClusterSPIFFEID"} == regs_before
    assert f"Deployment/{WL_NS}/amf-regional:spec.template.spec.hostNetwork" in diff
    t0 = time.monotonic()
    pod, rep, chain = _report(m, not_uids=old)
    print(f"cutover: the new pod had B's SVID {time.monotonic() - t0:.0f} s after the re-apply")
    assert _driver(pod_as_template(pod)) == DRIVER[B]
    wait_until(lambda: not [p for p in _pods(m.node, WL_NS, WL_SELECTOR) if p["metadata"]["uid"] in old], 120,
               "the dual pod to be gone", interval=2)
    _assert_svid_of(m, rep, chain, sid_b, B, A)
    # the new pod is registered in both domains still (cutover changes no registration)
    uid = pod["metadata"]["uid"]
    assert spiffe_id_str(_wait_entry(m, B, uid)["spiffe_id"]) == sid_b
    assert spiffe_id_str(_wait_entry(m, A, uid)["spiffe_id"]) == wid["status"]["spiffeID"]

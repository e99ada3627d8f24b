"""The rendered SPIRE packages as pods on a real kubelet, and a rendered example's
workloads getting their SVIDs through the SPIFFE CSI driver (the last mile).

Packages are rendered as tests/spire renders them, for the example's trust domain
and cluster, and applied as rendered except for the rewrites of
``noderendered.py``; the tests assert that diff exactly."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import shutil
import stat
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..pkgtools import kpt_render
from . import jwtverify
from . import noderendered as nr
from .conftest import install_upstream_crds
from .node import NODE_NAME, Node, import_images
from .rendered import apply_order, by_kind, cluster_objects, local_objects, render_example, render_spire, to_yaml
from .stack import LOOPBACK, spiffe_id_str, wait_until

EXAMPLE = "oran-focom-ims"
SERVER_NS, AGENT_NS = "spire-server", "spire-system"
SERVER_SOCKET = "/tmp/spire-server/private/api.sock"
IMAGES = ("spire-server", "spire-agent", "spire-controller-manager", "spiffe-csi-driver",
          "csi-registrar", "svid-workload", "chown")


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


def _pods(node: Node, ns: str, selector: str = "") -> list[dict]:
    args = ["get", "pods", "-n", ns, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(node.kube.kubectl(*args).stdout)["items"]


def _describe(node: Node, ns: str) -> str:
    out = [node.kube.kubectl("describe", "pods", "-n", ns, check=False).stdout[-3000:]]
    for pod in _pods(node, ns):
        if _ready(pod):
            continue
        for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            for prev in ("--previous", "--timestamps"):
                logs = node.kube.kubectl("logs", "-n", ns, pod["metadata"]["name"], "-c", c["name"], prev,
                                         check=False)
                out.append(f"--- logs {prev} {pod['metadata']['name']}/{c['name']}:\n"
                           f"{(logs.stdout + logs.stderr)[-1500:]}")
    return "\n".join(out)


def wait_ready_pods(node: Node, ns: str, selector: str, n: int = 1, timeout: float = 180) -> list[dict]:
    def check():
        pods = [p for p in _pods(node, ns, selector) if _ready(p)]
        return pods if len(pods) >= n else None
    try:
        return wait_until(check, timeout, f"{n} Ready pod(s) {selector} in {ns}", interval=2,
                          proc=node.kubelet)
    except Exception as e:
        raise AssertionError(f"{e}\n{_describe(node, ns)}") from None


class SpireOnNode:
    def __init__(self, node: Node, tmp: Path):
        self.node = node
        k = node.kube
        install_upstream_crds(k)
        self.images = import_images(node, list(IMAGES))
        self.repo_images = {repo: self.images[b] for repo, b in nr.UPSTREAM_IMAGES.items()}
        self.example_pkg, r = render_example(EXAMPLE, tmp / "example")
        assert r.exit_code == 0, r.stderr
        local = local_objects(self.example_pkg)
        ctx = by_kind(local, "IdentityContext")[0]["spec"]
        self.wids = by_kind(local, "WorkloadIdentity")
        self.trust_domain = ctx["trustDomain"]
        self.cluster = self.wids[0]["status"]["clusterName"]
        # the SPIRE packages for this one cluster: the root server of the example's trust
        # domain (no workload clusters or federation: one cluster) and its agent
        values = {"trustDomain": self.trust_domain, "clusterName": self.cluster}
        # (no OIDC discovery provider: its image is not built for the node tier; tests/real/oidc.py
        # runs it from the rendered config)
        self.server_pkg = render_spire("spire-server", tmp / "spire", changes=values,
                                       drop=("workloadClusters", "federation", "oidcDiscoveryProvider"))
        self.agent_pkg = render_spire("spire-agent", tmp / "spire", changes=values)
        port = urllib.parse.urlparse(k.server).port
        self.server_objs = cluster_objects(self.server_pkg)
        self.agent_objs = cluster_objects(self.agent_pkg)
        self.server_applied, self.server_diff = nr.for_node(
            self.server_objs, images=self.repo_images, host_prefix=node.host, apiserver_port=port)
        self.agent_applied, self.agent_diff = nr.for_node(
            self.agent_objs, images=self.repo_images, host_prefix=node.host, apiserver_port=port)

        # what the operator provides: spire-server's package puts its BundlePublisher's
        # Role into spire-system without creating it (FOREIGN_NAMESPACES in
        # test_real_rendered.py), and the StatefulSet's claim needs a volume (no
        # provisioner here: a hostPath PersistentVolume bound to the claim)
        k.ensure_namespace(AGENT_NS)
        data = node.host / "srv" / "spire-data"
        data.mkdir(parents=True)
        os.chown(data, 10001, 10001)
        k.apply_manifests(yaml.safe_dump({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "spire-data-node-1"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "hostPath": {"path": str(data), "type": "Directory"},
                     "claimRef": {"namespace": SERVER_NS, "name": "spire-data-spire-server-0"}}}))
        k.apply_manifests(to_yaml(apply_order(self.server_applied)), field_manager="kpt-spire-server")
        self.server_pod = wait_ready_pods(node, SERVER_NS, "app.kubernetes.io/name=spire-server")[0]

    def deploy_agent(self) -> None:
        k = self.node.kube
        # a fresh node: nothing prepares the agent's hostPath socket directory; the kubelet
        # creates it (DirectoryOrCreate, root 0755) and the rendered socket-dir-owner init
        # container hands it to the agent's user
        self.sockets = self.node.host / "run" / "spire" / "agent-sockets"
        self.sockets_existed = self.sockets.exists()
        k.apply_manifests(to_yaml(apply_order(self.agent_applied)), field_manager="kpt-spire-agent")
        self.agent_pod = wait_ready_pods(self.node, AGENT_NS, "app.kubernetes.io/name=spire-agent")[0]
        self.csi_pod = wait_ready_pods(self.node, AGENT_NS, "app.kubernetes.io/name=spiffe-csi-driver")[0]

    def server_cli(self, *args: str, check: bool = True):
        return self.node.kube.kubectl(
            "exec", "-n", SERVER_NS, self.server_pod["metadata"]["name"], "-c", "spire-server", "--",
            "/opt/spire/bin/spire-server", *args, "-socketPath", SERVER_SOCKET, check=check)


@pytest.fixture(scope="module")
def spire_node(node_cluster, tmp_path_factory) -> SpireOnNode:
    return SpireOnNode(node_cluster, tmp_path_factory.mktemp("node-spire"))


@pytest.fixture(scope="module")
def agent_node(spire_node) -> SpireOnNode:
    spire_node.deploy_agent()
    return spire_node


def _sts_path(container: str, rest: str) -> str:
    return f"StatefulSet/{SERVER_NS}/spire-server:spec.template.spec.containers[{container}].{rest}"


def test_rendered_spire_server_runs_as_a_pod(spire_node: SpireOnNode):
    s = spire_node
    port = str(urllib.parse.urlparse(s.node.kube.server).port)
    sts = f"StatefulSet/{SERVER_NS}/spire-server:spec.template.spec"
    cm = f"ConfigMap/{SERVER_NS}"
    expected = {
        f"Namespace//{SERVER_NS}:metadata.labels.pod-security.kubernetes.io/enforce": ("restricted", "privileged"),
        f"{sts}.hostNetwork": ("<absent>", True),
        _sts_path("spire-server", "image"): ("ghcr.io/spiffe/spire-server:1.13.3", s.images["spire-server"]),
        _sts_path("spire-controller-manager", "image"):
            ("ghcr.io/spiffe/spire-controller-manager:0.7.0", s.images["spire-controller-manager"]),
        f"{cm}/spire-server:data.server.conf:server.bind_address": ("0.0.0.0", LOOPBACK),
        f"{cm}/spire-server:data.server.conf:health_checks.bind_address": ("0.0.0.0", LOOPBACK),
        f"{cm}/spire-controller-manager:data.{s.cluster}.yaml:health.healthProbeBindAddress":
            (":8083", f"{LOOPBACK}:8083"),
    }
    for c in ("spire-server", "spire-controller-manager"):
        expected[_sts_path(c, "env[KUBERNETES_SERVICE_HOST].name")] = ("<absent>", "KUBERNETES_SERVICE_HOST")
        expected[_sts_path(c, "env[KUBERNETES_SERVICE_HOST].value")] = ("<absent>", LOOPBACK)
        expected[_sts_path(c, "env[KUBERNETES_SERVICE_PORT].name")] = ("<absent>", "KUBERNETES_SERVICE_PORT")
        expected[_sts_path(c, "env[KUBERNETES_SERVICE_PORT].value")] = ("<absent>", port)
    assert s.server_diff == expected

    # the pod runs with the rendered security contexts (nothing relaxed), every container Ready
    pod = s.server_pod
    sts_obj = next(o for o in s.server_objs if o["kind"] == "StatefulSet")
    tmpl = sts_obj["spec"]["template"]["spec"]
    assert pod["spec"]["securityContext"] == tmpl["securityContext"]
    running = {c["name"]: c for c in pod["spec"]["containers"]}
    for c in tmpl["containers"]:
        assert running[c["name"]]["securityContext"] == c["securityContext"], c["name"]
    assert {c["name"]: c["ready"] for c in pod["status"]["containerStatuses"]} == \
        {c["name"]: True for c in tmpl["containers"]}
    assert pod["spec"]["nodeName"] == NODE_NAME
    # the datastore lives on the claimed volume
    assert (s.node.host / "srv" / "spire-data" / "datastore.sqlite3").exists()
    # the CLI inside the pod reaches the server over the rendered socket path
    assert "Server is healthy" in s.server_cli("healthcheck").stdout


def test_rendered_agent_and_csi_driver_run_as_daemonset_pods(agent_node: SpireOnNode):
    s = agent_node
    h = str(s.node.host)
    ds = f"DaemonSet/{AGENT_NS}"
    agent, csi = f"{ds}/spire-agent:spec.template.spec", f"{ds}/spiffe-csi-driver:spec.template.spec"
    expected = {
        f"{agent}.hostNetwork": ("<absent>", True),
        f"{agent}.containers[spire-agent].image": ("ghcr.io/spiffe/spire-agent:1.13.3", s.images["spire-agent"]),
        f"{agent}.initContainers[socket-dir-owner].image": ("docker.io/library/busybox:1.37.0", s.images["chown"]),
        f"{agent}.volumes[spire-agent-socket-dir].hostPath.path":
            ("/run/spire/agent-sockets", h + "/run/spire/agent-sockets"),
        f"{csi}.hostNetwork": ("<absent>", True),
        f"{csi}.containers[spiffe-csi-driver].image":
            ("ghcr.io/spiffe/spiffe-csi-driver:0.2.7", s.images["spiffe-csi-driver"]),
        f"{csi}.containers[node-driver-registrar].image":
            ("registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0", s.images["csi-registrar"]),
        f"{csi}.containers[node-driver-registrar].args[3]":
            ("/var/lib/kubelet/plugins/csi.spiffe.io/csi.sock", h + "/var/lib/kubelet/plugins/csi.spiffe.io/csi.sock"),
        f"{csi}.containers[spiffe-csi-driver].volumeMounts[mountpoint-dir].mountPath":
            ("/var/lib/kubelet/pods", h + "/var/lib/kubelet/pods"),
        f"{csi}.volumes[spire-agent-socket-dir].hostPath.path":
            ("/run/spire/agent-sockets", h + "/run/spire/agent-sockets"),
        f"{csi}.volumes[spiffe-csi-socket-dir].hostPath.path":
            ("/var/lib/kubelet/plugins/csi.spiffe.io", h + "/var/lib/kubelet/plugins/csi.spiffe.io"),
        f"{csi}.volumes[mountpoint-dir].hostPath.path": ("/var/lib/kubelet/pods", h + "/var/lib/kubelet/pods"),
        f"{csi}.volumes[kubelet-plugin-registration-dir].hostPath.path":
            ("/var/lib/kubelet/plugins_registry", h + "/var/lib/kubelet/plugins_registry"),
        f"ConfigMap/{AGENT_NS}/spire-agent:data.agent.conf:agent.server_address": ("spire.mgmt.acme.net", LOOPBACK),
        f"ConfigMap/{AGENT_NS}/spire-agent:data.agent.conf:health_checks.bind_address": ("0.0.0.0", LOOPBACK),
    }
    assert s.agent_diff == expected
    # the k8s_configmap BundlePublisher of the server (in-cluster credentials) filled the
    # spire-bundle ConfigMap of the agent package (it updates, never creates, the map)
    def published():
        cmap = s.node.kube.core().read_namespaced_config_map("spire-bundle", AGENT_NS)
        return (cmap.data or {}).get("bundle.crt")
    bundle = wait_until(published, 60, "spire-system/spire-bundle from the BundlePublisher")
    roots = x509.load_pem_x509_certificates(bundle.encode())
    assert roots and all(r.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "ACME Telco"
                         for r in roots)
    for pod, name in ((s.agent_pod, "spire-agent"), (s.csi_pod, "spiffe-csi-driver")):
        tmpl = next(o for o in s.agent_objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == name)
        tmpl = tmpl["spec"]["template"]["spec"]
        assert pod["spec"]["securityContext"] == tmpl["securityContext"], name
        running = {c["name"]: c for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]}
        for c in tmpl.get("initContainers", []) + tmpl["containers"]:
            assert running[c["name"]].get("securityContext") == c.get("securityContext"), c["name"]
        assert all(c["ready"] for c in pod["status"]["containerStatuses"]), pod["status"]
    # the kubelet registered the CSI driver (through the registrar's plugin socket)
    csinode = json.loads(s.node.kube.kubectl("get", "csinode", NODE_NAME, "-o", "json").stdout)
    assert [d["name"] for d in csinode["spec"]["drivers"]] == ["csi.spiffe.io"]


def test_rendered_agent_creates_its_socket_on_a_fresh_node(agent_node: SpireOnNode):
    """The kubelet creates the agent's hostPath socket directory as root (0755) and the
    agent runs as uid 10001: the rendered socket-dir-owner init container (root, CHOWN
    only) hands the directory to the agent's user first, so the agent binds its Workload
    API socket at its first start, without any preparation of the node."""
    s = agent_node
    assert not s.sockets_existed
    ds = next(o for o in s.agent_objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "spire-agent")
    pod_sc = ds["spec"]["template"]["spec"]["securityContext"]
    uid, gid = pod_sc["runAsUser"], pod_sc["runAsGroup"]
    assert (uid, gid) == (10001, 10001)
    init = ds["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["socket-dir-owner"]
    assert init[0]["args"] == [f"{uid}:{gid}", "/run/spire/agent-sockets"]
    assert init[0]["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    st = s.sockets.stat()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o777)) == (uid, gid, "0o755")
    sock = (s.sockets / "spire-agent.sock").stat()
    assert stat.S_ISSOCK(sock.st_mode) and (sock.st_uid, sock.st_gid) == (uid, gid)
    pod = s.agent_pod
    (status,) = pod["status"]["initContainerStatuses"]
    term = status["state"]["terminated"]
    assert (status["name"], term["exitCode"], term["reason"]) == ("socket-dir-owner", 0, "Completed"), status
    assert status["restartCount"] == 0
    logs = s.node.kube.kubectl("logs", "-n", AGENT_NS, pod["metadata"]["name"], "-c", "socket-dir-owner").stdout
    assert logs.strip() == f"chown: /run/spire/agent-sockets -> {uid}:{gid}", logs
    # no crash loop: the agent bound its socket at its first start
    assert [c["restartCount"] for c in pod["status"]["containerStatuses"]] == [0], pod["status"]


def test_rendered_agent_attests_with_k8s_psat_from_the_kubelet(agent_node: SpireOnNode):
    s = agent_node
    node_uid = s.node.kube.core().read_node(NODE_NAME).metadata.uid
    out = json.loads(s.server_cli("agent", "list", "-output", "json").stdout)
    agents = out.get("agents") or []
    assert len(agents) == 1, agents
    a = agents[0]
    assert a["attestation_type"] == "k8s_psat"
    assert a["id"] == {"trust_domain": s.trust_domain,
                       "path": f"/spire/agent/k8s_psat/{s.cluster}/{node_uid}"}
    selectors = {f"{x['type']}:{x['value']}" for x in a["selectors"]}
    # the projected token the kubelet issued is bound to the agent's pod on this node
    assert f"k8s_psat:agent_pod_name:{s.agent_pod['metadata']['name']}" in selectors
    assert f"k8s_psat:agent_pod_uid:{s.agent_pod['metadata']['uid']}" in selectors
    assert f"k8s_psat:agent_node_name:{NODE_NAME}" in selectors
    assert "k8s_psat:agent_sa:spire-agent" in selectors
    assert f"k8s_psat:cluster:{s.cluster}" in selectors


# ---------------------------------------------------------------------------
# the example's workloads get their SVIDs through the CSI driver
# ---------------------------------------------------------------------------

def _workload_reports(node: Node, ns: str, pod: str) -> list[dict]:
    logs = node.kube.kubectl("logs", "-n", ns, pod, check=False).stdout
    out = []
    for line in logs.splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def _seconds(go_duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", go_duration))


def _chain_ok(chain: list[x509.Certificate], roots: list[x509.Certificate]) -> bool:
    """Each certificate is signed by the next one, the last by one of the roots."""
    for child, parent in zip(chain, chain[1:] + [None]):
        issuers = [parent] if parent is not None else roots
        if not any(_signed_by(child, i) for i in issuers):
            return False
    return True


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not issued by"
        return False


def jwt_audiences(wids: list[dict]) -> dict[tuple[str, str], str]:
    """(kind, name) of a workload -> the JWT audience its pod asks a JWT-SVID for: the one
    its rendered WorkloadIdentity declares in ``status.jwtAudiences`` (spiffe-access writes
    it for every client of an AccessGrant: oran-focom-ims's FOCOM, ``kubernetes:smo-mgmt``,
    the audience of the IMS cluster's API). The workload image asks for one audience."""
    out = {}
    for w in wids:
        auds = (w.get("status") or {}).get("jwtAudiences") or []
        if auds:
            assert len(auds) == 1, (w["metadata"]["name"], auds)
            ref = w["status"]["workloadRef"]
            out[(ref["kind"], ref["name"])] = auds[0]
    return out


@pytest.fixture(scope="module")
def workloads(agent_node: SpireOnNode):
    s = agent_node
    k = s.node.kube
    objs = cluster_objects(s.example_pkg)
    image = s.images["svid-workload"]
    applied = [copy.deepcopy(o) for o in objs]
    expected_paths: set[str] = set()
    audiences = jwt_audiences(s.wids)
    for o in applied:
        if o["kind"] in ("Deployment", "StatefulSet"):
            aud = audiences.get((o["kind"], o["metadata"]["name"]), "")
            expected_paths |= nr.workload_rewrite_paths(o, jwt_audience=aud)
            nr.wire_workload(o, image, jwt_audience=aud)
    diff = nr.diff_objects(objs, applied)
    k.apply_manifests(to_yaml(apply_order(applied)), field_manager=f"kpt-{EXAMPLE}")
    # a decoy: same namespace and service account as the first workload, its selector
    # labels with other values, wired to the Workload API the same way
    w0 = s.wids[0]["status"]
    tmpl = next(o for o in applied if o["metadata"]["name"] == w0["workloadRef"]["name"]
                and o["kind"] == w0["workloadRef"]["kind"])["spec"]["template"]
    labels = dict(tmpl["metadata"]["labels"])
    labels.update({key: f"{v}-decoy" for key, v in w0["selectorLabels"].items()})
    decoy = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "decoy", "namespace": w0["namespace"], "labels": labels},
             "spec": copy.deepcopy(tmpl["spec"])}
    k.apply_manifests(yaml.safe_dump(decoy))
    pods = {}
    for w in s.wids:
        st = w["status"]
        sel = ",".join(f"{key}={v}" for key, v in st["selectorLabels"].items())
        pods[st["spiffeID"]] = wait_ready_pods(s.node, st["namespace"], sel)[0]
    wait_ready_pods(s.node, w0["namespace"], ",".join(f"{key}={v}" for key, v in labels.items()))
    return {"pods": pods, "diff": diff, "expected_paths": expected_paths, "objs": objs,
            "applied": applied, "decoy_ns": w0["namespace"], "audiences": audiences}


def _svid_report(s: SpireOnNode, pod: dict, timeout: float = 120) -> dict:
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]

    def got():
        reps = [r for r in _workload_reports(s.node, ns, name) if r.get("spiffeIDs")]
        return reps[-1] if reps else None
    try:
        return wait_until(got, timeout, f"an X.509-SVID in the logs of {ns}/{name}", interval=2)
    except Exception as e:
        agent_log = s.node.kube.kubectl("logs", "-n", AGENT_NS, s.agent_pod["metadata"]["name"], check=False).stdout
        raise AssertionError(f"{e}\nlast reports: {_workload_reports(s.node, ns, name)[-3:]}\n"
                             f"agent log: {agent_log[-3000:]}") from None


def test_example_workloads_get_their_spiffe_ids_through_the_csi_driver(agent_node: SpireOnNode, workloads):
    s = agent_node
    assert set(workloads["diff"]) == workloads["expected_paths"]
    for path, (_, new) in workloads["diff"].items():
        if path.endswith(".image"):
            assert new == s.images["svid-workload"]
    bundle = s.node.kube.core().read_namespaced_config_map("spire-bundle", AGENT_NS).data["bundle.crt"]
    roots = x509.load_pem_x509_certificates(bundle.encode())
    for w in s.wids:
        st = w["status"]
        rep = _svid_report(s, workloads["pods"][st["spiffeID"]])
        assert rep["spiffeIDs"] == [st["spiffeID"]]
        chain = x509.load_pem_x509_certificates(rep["chain"].encode())
        leaf = chain[0]
        uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.UniformResourceIdentifier)
        assert uris == [st["spiffeID"]]
        assert _chain_ok(chain, roots), "the SVID does not chain to the root's published bundle"
        ttl = _seconds((w["spec"].get("svid") or {}).get("x509TTL", "1h"))
        lifetime = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds()
        # SPIRE backdates notBefore by a few seconds
        assert ttl <= lifetime <= ttl + 60, (st["spiffeID"], lifetime, ttl)
        dns = (w["spec"].get("svid") or {}).get("dnsNames") or []
        if dns:
            assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
                .get_values_for_type(x509.DNSName) == dns


def test_example_workload_gets_a_jwt_svid_for_its_audience(agent_node: SpireOnNode, workloads):
    """The workload that declares ``jwtTTL`` (oran-focom-ims: focom, 5m) fetches, through
    the CSI-mounted socket, a JWT-SVID for the audience its WorkloadIdentity declares (:func:`jwt_audiences`):
    ``sub`` is its WorkloadIdentity's ``status.spiffeID``, ``aud`` exactly that audience,
    ``exp - iat`` the declared jwtTTL, and the signature verifies with a JWT authority of
    the server's trust bundle (``spire-server bundle show -format spiffe`` in the server
    pod: the rendered BundlePublisher writes only the PEM X.509 roots, so the JWT keys are
    read from the server itself; its X.509 part is checked equal to the published PEM)."""
    s = agent_node
    jwt_wids = [w for w in s.wids if (w["spec"].get("svid") or {}).get("jwtTTL")]
    assert [w["metadata"]["name"] for w in jwt_wids] == ["focom"]  # the example as it is
    # and the audience is the one the package declares for it, not one the test picks
    assert workloads["audiences"] == {("Deployment", "focom"): "kubernetes:smo-mgmt"}, workloads["audiences"]
    bundle = json.loads(s.server_cli("bundle", "show", "-format", "spiffe").stdout)
    published = s.node.kube.core().read_namespaced_config_map("spire-bundle", AGENT_NS).data["bundle.crt"]
    x509_keys = {base64.b64decode(k["x5c"][0]) for k in bundle["keys"] if k.get("use") == "x509-svid"}
    assert x509_keys == {c.public_bytes(serialization.Encoding.DER)
                         for c in x509.load_pem_x509_certificates(published.encode())}
    assert jwtverify.jwt_keys(bundle), bundle
    for w in jwt_wids:
        st = w["status"]
        ref = st["workloadRef"]
        aud = workloads["audiences"][(ref["kind"], ref["name"])]
        pod = workloads["pods"][st["spiffeID"]]
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]

        def got(ns=ns, name=name):
            reps = [r for r in _workload_reports(s.node, ns, name) if r.get("jwt") or r.get("jwtError")]
            return reps[-1] if reps else None
        rep = wait_until(got, 120, f"a JWT-SVID answer in the logs of {ns}/{name}", interval=2)
        assert rep.get("jwt"), rep
        header, claims = jwtverify.verify(rep["jwt"], bundle)
        assert claims["sub"] == st["spiffeID"]
        assert claims["aud"] in ([aud], aud), claims["aud"]
        assert claims["exp"] - claims["iat"] == _seconds(w["spec"]["svid"]["jwtTTL"]), claims
        assert claims["exp"] > time.time(), claims
        # the check can fail: the same token with another subject does not verify
        h64, _, sig = rep["jwt"].split(".")
        forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": f"spiffe://{s.trust_domain}/x"})
                                          .encode()).rstrip(b"=").decode()
        with pytest.raises(jwtverify.JWTInvalid):
            jwtverify.verify(f"{h64}.{forged}.{sig}", bundle)
    # a workload without an audience asks for no JWT-SVID (the image's JWT_AUDIENCE unset)
    for w in s.wids:
        if w not in jwt_wids:
            pod = workloads["pods"][w["status"]["spiffeID"]]
            reps = _workload_reports(s.node, pod["metadata"]["namespace"], pod["metadata"]["name"])
            assert reps and not any(r.get("jwt") or r.get("jwtError") for r in reps)


def test_decoy_pod_gets_no_svid(agent_node: SpireOnNode, workloads):
    s = agent_node
    ns = workloads["decoy_ns"]
    # the decoy has asked several times by the time the real workloads have their SVIDs
    for w in s.wids:
        _svid_report(s, workloads["pods"][w["status"]["spiffeID"]])
    reps = wait_until(lambda: (r := _workload_reports(s.node, ns, "decoy")) and len(r) >= 3 and r,
                      60, "three Workload API answers to the decoy", interval=2)
    assert all(not r.get("spiffeIDs") for r in reps), reps
    assert all("no identity issued" in r.get("error", "") for r in reps), reps[-1]


def test_rendered_pod_templates_pass_their_namespace_pod_security(spire_node: SpireOnNode):
    """The node runs the SPIRE pods on the host network, so their namespace's PodSecurity
    level is relaxed there (listed rewrite); this checks what it relaxed: each rendered
    pod template, unchanged, is admitted as a Pod into a namespace carrying the rendered
    namespace's pod-security labels (server-side dry run: PodSecurity admission runs)."""
    k = spire_node.node.kube
    checked = 0
    for objs in (spire_node.server_objs, spire_node.agent_objs):
        namespaces = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Namespace"}
        for o in objs:
            if o["kind"] not in ("StatefulSet", "DaemonSet") or o["metadata"]["namespace"] not in namespaces:
                continue
            ns = o["metadata"]["namespace"]
            psa = {key: v for key, v in namespaces[ns]["metadata"]["labels"].items()
                   if key.startswith("pod-security.kubernetes.io/")}
            probe_ns = f"psa-{ns}"
            k.ensure_namespace(probe_ns, labels=psa)
            pod = _template_as_pod(o, probe_ns)
            k.ensure_service_account(probe_ns, pod["spec"]["serviceAccountName"])
            p = k.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False)
            # admitted at the enforced level (a `warn` level may still print warnings)
            assert p.returncode == 0, (ns, psa, p.stderr)
            checked += 1
        # and the rewritten one is refused at the rendered level: the relaxation is needed
    assert checked == 3  # spire-server StatefulSet, spire-agent and spiffe-csi-driver DaemonSets
    sts = next(o for o in spire_node.server_applied if o["kind"] == "StatefulSet")
    pod = _template_as_pod(sts, f"psa-{SERVER_NS}")
    p = k.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False)
    assert p.returncode != 0 and "hostNetwork" in p.stderr, p.stderr


def _template_as_pod(o: dict, namespace: str) -> dict:
    """The Pod a StatefulSet/DaemonSet controller would create from ``o``'s template."""
    spec = copy.deepcopy(o["spec"]["template"]["spec"])
    for t in o["spec"].get("volumeClaimTemplates", []):
        name = t["metadata"]["name"]
        spec.setdefault("volumes", []).append(
            {"name": name, "persistentVolumeClaim": {"claimName": f"{name}-{o['metadata']['name']}-0"}})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": o["metadata"]["name"], "namespace": namespace,
                         "labels": o["spec"]["template"]["metadata"].get("labels", {})},
            "spec": spec}


def _entries(s: SpireOnNode) -> list[dict]:
    return json.loads(s.server_cli("entry", "show", "-output", "json").stdout).get("entries") or []


def test_removing_a_workload_identity_removes_its_entry_and_svid(agent_node: SpireOnNode, workloads, tmp_path):
    """The user deletes a WorkloadIdentity from the package, renders and applies again
    (pruning what the render no longer contains, as kpt live apply does with its
    inventory): its ClusterSPIFFEID goes, the controller manager deletes the entry, and
    the pod stops getting the SVID. An AccessGrant naming it as a client must go too (the
    render refuses a grant to an unknown identity), and with it the grant's RBAC."""
    s = agent_node
    gone = s.wids[0]
    gone_id = gone["status"]["spiffeID"]
    kept = [w["status"]["spiffeID"] for w in s.wids[1:]]
    assert gone_id in {spiffe_id_str(e["spiffe_id"]) for e in _entries(s)}

    pkg = shutil.copytree(s.example_pkg, tmp_path / "pkg")
    gone_name = gone["metadata"]["name"]

    def names_gone(d) -> bool:
        if not isinstance(d, dict):
            return False
        if d.get("kind") == "WorkloadIdentity":
            return d["metadata"]["name"] == gone_name
        # its grants: every client of the example's grant is this identity
        return d.get("kind") == "AccessGrant" and all(
            c.get("identity") == gone_name for c in (d.get("spec") or {}).get("clients") or [])
    removed: list[tuple[str, str]] = []
    for f in pkg.rglob("*.yaml"):
        docs = list(yaml.safe_load_all(f.read_text()))
        keep = [d for d in docs if not names_gone(d)]
        if len(keep) != len(docs):
            removed += [(d["kind"], d["metadata"]["name"]) for d in docs if names_gone(d)]
            f.write_text(yaml.safe_dump_all(keep, sort_keys=False))
    assert sorted(removed) == [("AccessGrant", "focom-provisioning"), ("WorkloadIdentity", gone_name)], removed
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr
    new = {nr.object_key(o) for o in cluster_objects(pkg)}
    pruned = [o for o in workloads["applied"] if nr.object_key(o) not in new]
    # exactly the ClusterSPIFFEID of the removed identity and its grant's RBAC leave the cluster
    assert sorted((o["kind"], o["metadata"]["name"]) for o in pruned) == sorted([
        ("ClusterSPIFFEID", f"{gone['status']['namespace']}.{gone_name}"),
        ("ClusterRole", "spiffe-access-focom-provisioning"),
        ("ClusterRoleBinding", "spiffe-access-focom-provisioning"),
    ]), pruned
    for o in pruned:
        group = o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else ""
        s.node.kube.kubectl("delete", f"{o['kind'].lower()}.{group}", o["metadata"]["name"])

    wait_until(lambda: gone_id not in {spiffe_id_str(e["spiffe_id"]) for e in _entries(s)}, 60,
               f"the entry of {gone_id} to be deleted")
    assert sorted(spiffe_id_str(e["spiffe_id"]) for e in _entries(s)) == sorted(kept)
    pod = workloads["pods"][gone_id]
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    seen = len(_workload_reports(s.node, ns, name))

    def refused():
        later = _workload_reports(s.node, ns, name)[seen:]
        return later and not later[-1].get("spiffeIDs") and "no identity issued" in later[-1].get("error", "")
    wait_until(refused, 60, f"{ns}/{name} to be refused an SVID", interval=2)

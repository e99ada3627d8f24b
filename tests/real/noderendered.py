"""Rendered SPIRE packages as pods on the node tier's kubelet (tests/real/node.py).

The packages are applied as rendered except for what a registry-less single
node without a pod network or cluster DNS forces.  Every rewrite is made
here, leaf by leaf, and returned as a diff ``path -> (rendered, applied)``;
the tests compare that diff with the exact expected set (``*_EXPECTED``
builders below), so nothing else can change unnoticed.

What is rewritten, and why:

* container images -> the images built here (:data:`UPSTREAM_IMAGES`): no
  registry is reachable;
* ``hostNetwork: true`` on the SPIRE pods: there is no pod network (no CNI
  plugin), only the host's loopback;
* so the ``pod-security.kubernetes.io/enforce`` label of a namespace that
  enforces ``restricted`` (spire-server) -> ``privileged``: PodSecurity
  refuses host namespaces below ``privileged``.  The rendered pod templates
  are checked against the rendered label separately (a server-side dry run of
  each template as a Pod in a namespace with that label,
  ``test_rendered_pod_templates_pass_their_namespace_pod_security``), and the
  containers run with their rendered security contexts unchanged;
* listeners bound to 0.0.0.0 in the rendered configs -> 127.0.0.1 (test
  servers listen on loopback only; with the host network 0.0.0.0 would be
  every interface of the machine): server.conf ``bind_address``,
  ``health_checks.bind_address``, the federation bundle endpoint;
  agent.conf's health listener; the controller managers'
  ``healthProbeBindAddress`` (``:808x`` -> ``127.0.0.1:808x``);
* agent.conf ``server_address`` (a DNS name) -> 127.0.0.1: no DNS here;
* ``KUBERNETES_SERVICE_HOST/PORT`` env on the containers that use in-cluster
  credentials (the spire-server pod): the ``kubernetes`` Service's ClusterIP
  has no kube-proxy behind it, so in-cluster clients get the apiserver's
  loopback address instead;
* hostPaths of the node (``/run/spire/agent-sockets``, ``/var/lib/kubelet/...``,
  and the matching container paths that must equal them: the CSI driver's
  mount of the kubelet's pods directory and the registrar's
  ``-kubelet-registration-path``) -> the same paths under the test's
  temporary directory (the kubelet's ``--root-dir`` is there).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import hclconf
from .stack import LOOPBACK

# rendered image repository -> the name of the binary built here (binaries.py)
UPSTREAM_IMAGES = {
    "ghcr.io/spiffe/spire-server": "spire-server",
    "ghcr.io/spiffe/spire-agent": "spire-agent",
    "ghcr.io/spiffe/spire-controller-manager": "spire-controller-manager",
    "ghcr.io/spiffe/spiffe-csi-driver": "spiffe-csi-driver",
    "registry.k8s.io/sig-storage/csi-node-driver-registrar": "csi-registrar",
    # the agents' socket-dir-owner init container runs busybox's /bin/chown: the
    # image built here has a /bin/chown of its own (tests/real/gosrc/chown)
    "docker.io/library/busybox": "chown",
}

PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
KUBELET_DIR = "/var/lib/kubelet"
AGENT_SOCKET_DIR = "/run/spire/agent-sockets"
# the downstream package's upstream agent keeps its socket apart from the edge agent's
UPSTREAM_AGENT_SOCKET_DIR = "/run/spire/upstream-agent-sockets"
# a trust-domain migration's B agent: /run/spire/agent-sockets-<B> (spire_config/migration.py)
MIGRATION_AGENT_SOCKET_DIR_PREFIX = AGENT_SOCKET_DIR + "-"


def _repo(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


# ---------------------------------------------------------------------------
# leaf diff of Kubernetes objects (list items keyed by name where they have one)
# ---------------------------------------------------------------------------

def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        if not obj:
            out[prefix] = {}
    elif isinstance(obj, list):
        if not obj:
            out[prefix] = []
        for i, v in enumerate(obj):
            key = v.get("name") if isinstance(v, dict) and isinstance(v.get("name"), str) else i
            out.update(leaves(v, f"{prefix}[{key}]"))
    else:
        out[prefix] = obj
    return out


def object_key(o: dict) -> str:
    md = o.get("metadata", {})
    return f"{o['kind']}/{md.get('namespace', '')}/{md['name']}"


def diff_objects(before: list[dict], after: list[dict]) -> dict[str, tuple[Any, Any]]:
    """``<kind>/<ns>/<name>:<leaf path>`` -> (rendered, applied), for every leaf that differs.
    Config files inside ConfigMaps are compared by their own leaves (HCL or YAML)."""
    a = {object_key(o): o for o in before}
    b = {object_key(o): o for o in after}
    if set(a) != set(b):
        # objects renamed by the rewrite (the nested topology's root_aside): ``after`` is
        # ``before`` rewritten in place, so the objects pair by position, keyed by the
        # rendered name; the new name and namespace are leaves of the diff
        if [o["kind"] for o in before] != [o["kind"] for o in after]:
            raise AssertionError(f"objects added/removed by the rewrite: {set(a) ^ set(b)}")
        b = {object_key(x): y for x, y in zip(before, after)}
    out: dict[str, tuple[Any, Any]] = {}
    for k in sorted(a):
        la, lb = leaves(a[k]), leaves(b[k])
        for p in sorted(set(la) | set(lb)):
            va, vb = la.get(p, hclconf.ABSENT), lb.get(p, hclconf.ABSENT)
            if va == vb:
                continue
            if a[k]["kind"] == "ConfigMap" and p.startswith("data.") and isinstance(va, str) and isinstance(vb, str):
                for sub, (x, y) in _config_diff(p, va, vb).items():
                    out[f"{k}:{p}:{sub}"] = (x, y)
            else:
                out[f"{k}:{p}"] = (va, vb)
    return out


def _config_diff(key: str, before: str, after: str) -> dict[str, tuple[Any, Any]]:
    if key.endswith(".conf"):
        return hclconf.diff(before, after)
    la, lb = leaves(yaml.safe_load(before)), leaves(yaml.safe_load(after))
    return {p: (la.get(p, hclconf.ABSENT), lb.get(p, hclconf.ABSENT)) for p in sorted(set(la) | set(lb))
            if la.get(p, hclconf.ABSENT) != lb.get(p, hclconf.ABSENT)}


# ---------------------------------------------------------------------------
# the rewrites
# ---------------------------------------------------------------------------

def _pod_specs(o: dict) -> list[dict]:
    if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [o["spec"]["template"]["spec"]]
    if o["kind"] == "Pod":
        return [o["spec"]]
    return []


def _containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec.get("containers", [])


def rewrite_images(o: dict, images: dict[str, str]) -> None:
    """Every container image whose repository is in ``images`` -> the local image."""
    for spec in _pod_specs(o):
        for c in _containers(spec):
            repo = _repo(c["image"])
            if repo in images:
                c["image"] = images[repo]


def rewrite_host_paths(o: dict, prefix: Path) -> None:
    """Node hostPaths (and container paths that must equal them) -> under ``prefix``."""
    def moved(path: str) -> str:
        for host in (KUBELET_DIR, AGENT_SOCKET_DIR, UPSTREAM_AGENT_SOCKET_DIR):
            if path == host or path.startswith(host + "/"):
                return str(prefix) + path
        if path.startswith(MIGRATION_AGENT_SOCKET_DIR_PREFIX):
            return str(prefix) + path
        return path
    for spec in _pod_specs(o):
        for v in spec.get("volumes", []):
            if "hostPath" in v:
                v["hostPath"]["path"] = moved(v["hostPath"]["path"])
        for c in _containers(spec):
            for m in c.get("volumeMounts", []):
                # the CSI driver mounts into the pods' volume directories the kubelet
                # names by their host path: inside its container the path must be the same
                if m.get("mountPropagation") == "Bidirectional":
                    m["mountPath"] = moved(m["mountPath"])
            args = c.get("args", [])
            for i, a in enumerate(args[:-1]):
                if a in ("-kubelet-registration-path", "--kubelet-registration-path"):
                    args[i + 1] = moved(args[i + 1])


def rewrite_in_cluster_api(o: dict, host: str, port: int) -> None:
    for spec in _pod_specs(o):
        for c in _containers(spec):
            env = c.setdefault("env", [])
            env += [{"name": "KUBERNETES_SERVICE_HOST", "value": host},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": str(port)}]


def loopback_listeners_server(conf: str) -> dict[str, Any]:
    ch = {"server.bind_address": LOOPBACK, "health_checks.bind_address": LOOPBACK}
    try:
        hclconf.get(conf, "server.federation.bundle_endpoint")
        ch["server.federation.bundle_endpoint.address"] = LOOPBACK
    except KeyError:
        pass
    return ch


def rewrite_config_map(o: dict, key: str, changes: dict[str, Any]) -> None:
    text = o["data"][key]
    if key.endswith(".conf"):
        new, d = hclconf.rewrite(text, changes)
        extra, noop = hclconf.unexplained(d, changes)
        if extra or noop:
            raise AssertionError(f"{key}: rewrite touched unlisted keys {extra} / changed nothing {noop}")
        o["data"][key] = new
    else:
        cfg = yaml.safe_load(text)
        for path, value in changes.items():
            cur = cfg
            *parents, last = path.split(".")
            for p in parents:
                cur = cur[p]
            cur[last] = value
        o["data"][key] = yaml.safe_dump(cfg, sort_keys=False)


def for_node(objs: list[dict], *, images: dict[str, str], host_prefix: Path,
             apiserver_port: int, extra: Callable[[dict], None] | None = None,
             ) -> tuple[list[dict], dict[str, tuple[Any, Any]]]:
    """The rendered objects as this node runs them, and the diff (rendered -> applied).
    ``extra`` rewrites each object further (the nested topology's, below)."""
    out = copy.deepcopy(objs)
    for o in out:
        labels = (o.get("metadata") or {}).get("labels") or {}
        if o["kind"] == "Namespace" and labels.get(PSA_ENFORCE, "privileged") != "privileged":
            labels[PSA_ENFORCE] = "privileged"
        rewrite_images(o, images)
        if _pod_specs(o) and o["kind"] in ("StatefulSet", "DaemonSet"):
            o["spec"]["template"]["spec"]["hostNetwork"] = True
            rewrite_host_paths(o, host_prefix)
        if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "spire-server":
            rewrite_in_cluster_api(o, LOOPBACK, apiserver_port)
        if o["kind"] == "ConfigMap":
            data = o.get("data") or {}
            if "server.conf" in data:
                rewrite_config_map(o, "server.conf", loopback_listeners_server(data["server.conf"]))
            if "agent.conf" in data:
                rewrite_config_map(o, "agent.conf", {"agent.server_address": LOOPBACK,
                                                     "health_checks.bind_address": LOOPBACK})
            for key, text in data.items():
                if key.endswith(".yaml") and "ControllerManagerConfig" in text:
                    addr = yaml.safe_load(text).get("health", {}).get("healthProbeBindAddress", "")
                    if addr.startswith(":"):
                        rewrite_config_map(o, key, {"health.healthProbeBindAddress": LOOPBACK + addr})
        if extra is not None:
            extra(o)
    return out, diff_objects(objs, out)


# ---------------------------------------------------------------------------
# the example workloads
# ---------------------------------------------------------------------------

WORKLOAD_API_DIR = "/spiffe-workload-api"
WORKLOAD_API_VOLUME = "spiffe-workload-api"


def wire_workload(o: dict, image: str, *, jwt_audience: str = "") -> None:
    """What the rendered example workloads do not carry and the workload image needs.

    The examples' Deployments/StatefulSets name images of their own (replaced by the
    workload image built here) and carry no Workload API wiring: the SPIFFE CSI volume,
    its mount and ``SPIFFE_ENDPOINT_SOCKET`` are added here, as an application that uses
    SPIFFE adds them to its own pod template.  ``hostNetwork``: no pod network; so the
    container ports go (on the host network they would be host ports, clashing with each
    other and with the SPIRE pods'; the workload image serves nothing)."""
    for spec in _pod_specs(o):
        spec["hostNetwork"] = True
        spec.setdefault("volumes", []).append({
            "name": WORKLOAD_API_VOLUME, "csi": {"driver": "csi.spiffe.io", "readOnly": True}})
        for c in spec["containers"]:
            c["image"] = image
            c.pop("ports", None)
            c.setdefault("volumeMounts", []).append(
                {"name": WORKLOAD_API_VOLUME, "mountPath": WORKLOAD_API_DIR, "readOnly": True})
            env = c.setdefault("env", [])
            env.append({"name": "SPIFFE_ENDPOINT_SOCKET",
                        "value": f"unix://{WORKLOAD_API_DIR}/spire-agent.sock"})
            if jwt_audience:
                env.append({"name": "JWT_AUDIENCE", "value": jwt_audience})


def workload_rewrite_paths(o: dict, *, jwt_audience: str = "") -> set[str]:
    """The leaf paths :func:`wire_workload` changes in ``o`` (call it before wiring ``o``)."""
    key = object_key(o)
    spec = "spec.template.spec" if o["kind"] != "Pod" else "spec"
    paths = {f"{key}:{spec}.hostNetwork",
             f"{key}:{spec}.volumes[{WORKLOAD_API_VOLUME}].name",
             f"{key}:{spec}.volumes[{WORKLOAD_API_VOLUME}].csi.driver",
             f"{key}:{spec}.volumes[{WORKLOAD_API_VOLUME}].csi.readOnly"}
    for c in _pod_specs(o)[0]["containers"]:
        p = f"{key}:{spec}.containers[{c['name']}]"
        paths |= {f"{p}.ports[{port.get('name', i)}].{field}" for i, port in enumerate(c.get("ports", []))
                  for field in port}
        paths |= {f"{p}.image", f"{p}.volumeMounts[{WORKLOAD_API_VOLUME}].name",
                  f"{p}.volumeMounts[{WORKLOAD_API_VOLUME}].mountPath",
                  f"{p}.volumeMounts[{WORKLOAD_API_VOLUME}].readOnly",
                  f"{p}.env[SPIFFE_ENDPOINT_SOCKET].name", f"{p}.env[SPIFFE_ENDPOINT_SOCKET].value"}
        if jwt_audience:
            paths |= {f"{p}.env[JWT_AUDIENCE].name", f"{p}.env[JWT_AUDIENCE].value"}
    return paths


# ---------------------------------------------------------------------------
# the nested topology on one node: the root beside the downstream server
# ---------------------------------------------------------------------------
# The root and a downstream server are rendered for different clusters and share every
# name (Namespace spire-server, StatefulSet spire-server, ClusterRole spire-server, ...) and
# every port (8081, 8080, 8083) of the host network.  On this one cluster and node the
# root is moved aside; the downstream package and the edge's agent keep their rendered
# names, and only what points at the root follows it.

ROOT_NS = "spire-root"
ROOT_PORTS = {"server": (8081, 18081), "health": (8080, 18080), "controller": (8083, 18083)}
UPSTREAM_AGENT_HEALTH = (9982, 19982)  # the edge agent's health port is 9982 too
ROOT_NAMES = {  # cluster-scoped and spire-system names the downstream package renders too
    ("ClusterRole", "spire-server"): "spire-root-server",
    ("ClusterRole", "spire-controller-manager"): "spire-root-controller-manager",
    ("Role", "spire-server-bundle-publisher"): "spire-root-bundle-publisher",
}


def _renamed(kind: str, name: str) -> str:
    return ROOT_NAMES.get((kind, name), name)


def root_aside(o: dict, rendered_ns: str = "spire-server") -> None:
    """One object of the rendered root package, moved out of the downstream's way:
    namespace ``spire-server`` -> :data:`ROOT_NS` (the Namespace, every namespaced object,
    RBAC subjects), the names in :data:`ROOT_NAMES` (and the bindings' names and roleRefs),
    the Role of the root's own BundlePublisher from spire-system (where the downstream's
    publisher has the same Role) to :data:`ROOT_NS` with the ConfigMap it writes there, and
    the ports of :data:`ROOT_PORTS`."""
    md = o["metadata"]
    kind = o["kind"]
    if kind == "Namespace" and md["name"] == rendered_ns:
        md["name"] = ROOT_NS
        # the apiserver sets this label to the name; the rendered one says spire-server
        md["labels"]["kubernetes.io/metadata.name"] = ROOT_NS
    if md.get("namespace") == rendered_ns:
        md["namespace"] = ROOT_NS
    if kind in ("Role", "RoleBinding") and md.get("name") == "spire-server-bundle-publisher":
        md["namespace"] = ROOT_NS
    role_kind = {"ClusterRoleBinding": "ClusterRole", "RoleBinding": "Role"}.get(kind)
    md["name"] = _renamed(role_kind or kind, md["name"])
    if role_kind:
        o["roleRef"]["name"] = _renamed(o["roleRef"]["kind"], o["roleRef"]["name"])
        for sub in o.get("subjects", []):
            if sub.get("namespace") == rendered_ns:
                sub["namespace"] = ROOT_NS
    for spec in _pod_specs(o):
        for c in _containers(spec):
            for port in c.get("ports", []):
                for old, new in ROOT_PORTS.values():
                    if port["containerPort"] == old:
                        port["containerPort"] = new
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                get = (c.get(probe) or {}).get("httpGet") or {}
                if get.get("port") == ROOT_PORTS["controller"][0]:
                    get["port"] = ROOT_PORTS["controller"][1]


def root_aside_configs(o: dict, agents_ns: str = "spire-system") -> None:
    """The root's server.conf and controller configs follow :func:`root_aside`."""
    data = o.get("data") or {}
    if "server.conf" in data:
        text = data["server.conf"]
        changes: dict[str, Any] = {"server.bind_port": ROOT_PORTS["server"][1],
                                   "health_checks.bind_port": str(ROOT_PORTS["health"][1])}
        clusters = hclconf.leaves(hclconf.parse(text))
        for path, value in clusters.items():
            if path.startswith('plugins.BundlePublisher["k8s_configmap"]') and path.endswith(".namespace") \
                    and value == agents_ns and "spire-upstream-bundle" not in str(
                        clusters.get(path.rsplit(".", 1)[0] + ".configmap_name")):
                changes[path] = ROOT_NS
        rewrite_config_map(o, "server.conf", changes)
    _move_controller_health(o, ROOT_PORTS["controller"])


def upstream_to_root(o: dict) -> None:
    """The downstream package's pointers at the root -> the root's moved port on loopback
    (the upstream agent's server and the UpstreamAuthority), and the upstream agent's health
    port off the edge agent's."""
    data = o.get("data") or {}
    if "server.conf" in data:
        ua = 'plugins.UpstreamAuthority["spire"].plugin_data'
        rewrite_config_map(o, "server.conf", {f"{ua}.server_address": LOOPBACK,
                                              f"{ua}.server_port": str(ROOT_PORTS["server"][1])})
    if "agent.conf" in data:
        rewrite_config_map(o, "agent.conf", {"agent.server_port": ROOT_PORTS["server"][1],
                                             "health_checks.bind_port": str(UPSTREAM_AGENT_HEALTH[1])})
    if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "spire-upstream-agent":
        for c in _containers(o["spec"]["template"]["spec"]):
            for port in c.get("ports", []):
                if port["containerPort"] == UPSTREAM_AGENT_HEALTH[0]:
                    port["containerPort"] = UPSTREAM_AGENT_HEALTH[1]


# ---------------------------------------------------------------------------
# a trust-domain migration on one node: B's SPIRE beside A's
# ---------------------------------------------------------------------------
# B's packages (SpireDeployment spec.migration.from: A) already have names, namespaces, a
# className, an entry ID prefix, a CSI driver and an agent socket directory of their own: in
# a cluster nothing of B collides with A.  On the host network of a single node the ports
# do (in a cluster each pod has its own network namespace), so B's move aside.

MIGRATION_B_PORTS = {"server": (8081, 18081), "health": (8080, 18080), "controller": (8083, 18083),
                     "agent-health": (9982, 19982), "registrar-health": (9809, 19809)}


def _move_controller_health(o: dict, ports: tuple[int, int]) -> None:
    """Every controller-manager config of the ConfigMap ``o`` whose health probe listens on
    ``ports[0]``: onto ``ports[1]`` on loopback."""
    old, new = ports
    for key, text in list((o.get("data") or {}).items()):
        if key.endswith(".yaml") and "ControllerManagerConfig" in text:
            addr = yaml.safe_load(text).get("health", {}).get("healthProbeBindAddress", "")
            if addr.endswith(f":{old}"):
                rewrite_config_map(o, key, {"health.healthProbeBindAddress": f"{LOOPBACK}:{new}"})


def _move_container_ports(o: dict, moves: dict[int, int]) -> None:
    for spec in _pod_specs(o):
        for c in _containers(spec):
            for port in c.get("ports", []):
                port["containerPort"] = moves.get(port["containerPort"], port["containerPort"])
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                get = (c.get(probe) or {}).get("httpGet") or {}
                if isinstance(get.get("port"), int):
                    get["port"] = moves.get(get["port"], get["port"])
            args = c.get("args", [])
            for i, a in enumerate(args[:-1]):
                if a in ("-health-port", "--health-port") and int(args[i + 1]) in moves:
                    args[i + 1] = str(moves[int(args[i + 1])])


def migration_b_aside(o: dict) -> None:
    """One object of B's spire-server or spire-agent package, off A's host ports: the
    server's gRPC and health ports, its controller manager's health probe, the agent's
    server port (B's server) and health port, the CSI driver registrar's health port."""
    p = MIGRATION_B_PORTS
    data = o.get("data") or {}
    if "server.conf" in data:
        rewrite_config_map(o, "server.conf", {"server.bind_port": p["server"][1],
                                              "health_checks.bind_port": str(p["health"][1])})
    if "agent.conf" in data:
        rewrite_config_map(o, "agent.conf", {"agent.server_port": p["server"][1],
                                             "health_checks.bind_port": str(p["agent-health"][1])})
    _move_controller_health(o, p["controller"])
    if o["kind"] == "StatefulSet":
        _move_container_ports(o, dict(p[k] for k in ("server", "health", "controller")))
    if o["kind"] == "DaemonSet":
        _move_container_ports(o, dict(p[k] for k in ("agent-health", "registrar-health")))

"""Rendered packages for the real tier: render them with the real kpt, pick out what a
cluster would receive, and rewrite (minimally, and listed) what ties a rendered SPIRE
configuration to a pod so it runs on this machine.

Nothing here decides whether a test passes; it only prepares inputs and reports what
it changed, so the tests can assert the exact set of rewritten keys.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from spiffe_kpt.spire_config import hcl

from ..pkgtools import EXAMPLES, copy_package, kpt_render
from ..spire import examples as spire_examples
from . import hclconf
from .stack import LOOPBACK, Kube, SpireAgent, SpireServer, Stack, free_port

LOCAL_CONFIG = "config.kubernetes.io/local-config"

# Packages under blueprints/examples/ that are meant to fail rendering, with the reason.
# Every other package there must render with exit code 0.
EXPECTED_RENDER_FAILURES = {
    "errors/invalid-trust-domain": "shows the error a bad trust domain produces (kpt exits 1, nothing is written)",
}


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------

def example_packages() -> list[str]:
    """Every kpt package under blueprints/examples/ (relative paths), sorted."""
    return sorted(str(k.parent.relative_to(EXAMPLES)) for k in EXAMPLES.rglob("Kptfile")
                  if not any(p.startswith(".") for p in k.relative_to(EXAMPLES).parts))


def render_example(rel: str, dest: Path):
    """Copy blueprints/examples/<rel> to ``dest`` and `kpt fn render` it (exec runtime)."""
    pkg = copy_package(EXAMPLES / rel, dest / rel.replace("/", "_"))
    return pkg, kpt_render(pkg)


def render_spire(name: str, dest: Path, changes: dict[str, Any] | None = None,
                 drop: tuple[str, ...] = ()) -> Path:
    """Render blueprints/spire/<name> with tests/spire/examples.py's values (plus ``changes``,
    minus ``drop``), as tests/spire does; fails on a render error."""
    dest.mkdir(parents=True, exist_ok=True)
    pkg = spire_examples.copy_package(name, dest)
    spire_examples.set_values(pkg, {**spire_examples.SPECS[name], **(changes or {})}, drop)
    r = kpt_render(pkg)
    if r.exit_code != 0:
        raise AssertionError(f"rendering {name} failed ({r.exit_code}):\n{r.stderr}\n{r.results}")
    return pkg


def documents(pkg: Path) -> list[tuple[str, dict[str, Any]]]:
    """(file, object) for every YAML document of the package, Kptfile included."""
    out = []
    for p in sorted(pkg.rglob("*")):
        rel = p.relative_to(pkg)
        if p.is_dir() or any(part.startswith(".") for part in rel.parts):
            continue
        if p.name != "Kptfile" and p.suffix not in (".yaml", ".yml"):
            continue
        for doc in yaml.safe_load_all(p.read_text()):
            if isinstance(doc, dict) and doc.get("kind"):
                out.append((str(rel), doc))
    return out


def is_local_config(obj: dict[str, Any]) -> bool:
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    return str(ann.get(LOCAL_CONFIG, "")).lower() == "true"


def cluster_objects(pkg: Path) -> list[dict[str, Any]]:
    """What `kpt live apply` / ConfigSync send to the cluster: every resource except the
    Kptfile and local-config resources."""
    return [o for _, o in documents(pkg) if o["kind"] != "Kptfile" and not is_local_config(o)]


def local_objects(pkg: Path) -> list[dict[str, Any]]:
    return [o for _, o in documents(pkg) if o["kind"] != "Kptfile" and is_local_config(o)]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def configmap_data(pkg: Path, name: str, namespace: str | None = None) -> dict[str, str]:
    for _, o in documents(pkg):
        md = o.get("metadata") or {}
        if o["kind"] == "ConfigMap" and md.get("name") == name and \
                (namespace is None or md.get("namespace") == namespace):
            return dict(o.get("data") or {})
    raise KeyError(f"no ConfigMap {name} in {pkg}")


# Apply order, as kpt live apply / cli-utils sort: namespaces and CRDs before what needs them.
_FIRST = {"Namespace": 0, "CustomResourceDefinition": 1}


def apply_order(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objs, key=lambda o: _FIRST.get(o["kind"], 2))


def object_ref(o: dict[str, Any]) -> str:
    """kubectl's name for the object: `kind.group/name` (namespace appended for clarity)."""
    group = o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else ""
    kind = o["kind"].lower() + (f".{group}" if group else "")
    ns = (o.get("metadata") or {}).get("namespace")
    return f"{kind}/{o['metadata']['name']}" + (f" -n {ns}" if ns else "")


def to_yaml(objs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False)


# ---------------------------------------------------------------------------
# rewriting rendered SPIRE configs for this machine
# ---------------------------------------------------------------------------

def _clusters(conf: str, plugin: str) -> list[str]:
    try:
        m = hclconf.get(conf, f"{plugin}.plugin_data.clusters")
    except KeyError:
        return []
    return list(m.entries)


PSAT = 'plugins.NodeAttestor["k8s_psat"]'
BUNDLE_PUBLISHER = 'plugins.BundlePublisher["k8s_configmap"]'


def server_local_rewrites(conf: str, *, port: int, health_port: int, kubeconfig: Path | str,
                          bundle_endpoint_port: int | None = None,
                          upstream: tuple[int, str] | None = None) -> dict[str, Any]:
    """The keys of a rendered server.conf that tie it to its pod, with values for this machine.

    * listeners: bind addresses -> 127.0.0.1, ports -> free ones (pod: 0.0.0.0, fixed ports);
    * data_dir, socket_path, the sqlite file and the CA key file -> the test's directory
      (``{dir}`` is the SpireServer's directory; pod: /run/spire/data on the PVC, an emptyDir
      socket);
    * every k8s_psat cluster's ``kube_config_file`` and every k8s_configmap BundlePublisher
      cluster's ``kubeconfig_path`` -> the test apiserver's kubeconfig. In the pod the
      server's own cluster has none (in-cluster service-account credentials, which only
      exist in a pod: k8s_configmap builds its client at start-up and fails without them)
      and remote clusters have a kubeconfig from a Secret.
    * ``upstream=(port, agent_socket)``: the spire UpstreamAuthority's server address/port
      (pod: the root's public name) and workload API socket (pod: the upstream agent's
      socket on a shared volume).
    """
    ch: dict[str, Any] = {
        "server.bind_address": LOOPBACK,
        "server.bind_port": port,
        "server.socket_path": "{dir}/api.sock",
        "server.data_dir": "{dir}/data",
        'plugins.DataStore["sql"].plugin_data.connection_string': "{dir}/data/datastore.sqlite3",
        'plugins.KeyManager["disk"].plugin_data.keys_path': "{dir}/data/keys.json",
        "health_checks.bind_address": LOOPBACK,
        "health_checks.bind_port": str(health_port),
    }
    if bundle_endpoint_port is not None:
        ch["server.federation.bundle_endpoint.address"] = LOOPBACK
        ch["server.federation.bundle_endpoint.port"] = bundle_endpoint_port
    for c in _clusters(conf, PSAT):
        ch[f'{PSAT}.plugin_data.clusters["{c}"].kube_config_file'] = str(kubeconfig)
    for c in _clusters(conf, BUNDLE_PUBLISHER):
        ch[f'{BUNDLE_PUBLISHER}.plugin_data.clusters["{c}"].kubeconfig_path'] = str(kubeconfig)
    if upstream is not None:
        up_port, agent_socket = upstream
        ua = 'plugins.UpstreamAuthority["spire"].plugin_data'
        ch[f"{ua}.server_address"] = LOOPBACK
        ch[f"{ua}.server_port"] = str(up_port)
        ch[f"{ua}.workload_api_socket"] = str(agent_socket)
    return ch


def agent_local_rewrites(conf: str, *, server_port: int, health_port: int) -> dict[str, Any]:
    """The keys of a rendered agent.conf that tie it to its DaemonSet pod, for this machine.

    * server_address/server_port -> the test server on 127.0.0.1 (pod: the server's Service
      or public name);
    * data_dir, socket_path (pod: hostPath / shared socket directory), trust_bundle_path
      (pod: the spire-bundle ConfigMap volume; here the server's bundle written by
      SpireAgent) and the k8s_psat token_path (pod: the projected service-account token
      volume; here the same kind of token, minted by the test apiserver's TokenRequest API
      bound to the agent's Pod) -> the agent's directory;
    * health listener -> 127.0.0.1 and a free port;
    * WorkloadAttestor "k8s" -> "unix": the k8s attestor asks the node's kubelet which pod a
      process belongs to, and there is no kubelet here; the unix attestor identifies this
      machine's processes by uid instead. Node attestation (k8s_psat) stays as rendered.
    """
    del conf  # the keys are fixed by spire-config; hclconf.rewrite reports any that are missing
    return {
        "agent.data_dir": "{dir}/data",
        "agent.server_address": LOOPBACK,
        "agent.server_port": server_port,
        "agent.socket_path": "{dir}/agent.sock",
        "agent.trust_bundle_path": "{dir}/bundle.pem",
        f"{PSAT}.plugin_data.token_path": "{dir}/token",
        'plugins.WorkloadAttestor["k8s"]': hclconf.REMOVE,
        'plugins.WorkloadAttestor["unix"]': hcl.Block("WorkloadAttestor", ("unix",),
                                                      [hcl.Block("plugin_data")]),
        "health_checks.bind_address": LOOPBACK,
        "health_checks.bind_port": str(health_port),
    }


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


# ---------------------------------------------------------------------------
# YAML configs (ControllerManagerConfig)
# ---------------------------------------------------------------------------

def yaml_leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        if not obj and prefix:
            out[prefix] = "{}"
        for k, v in obj.items():
            out.update(yaml_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        out[prefix] = tuple(yaml.safe_dump(x, sort_keys=True) if isinstance(x, (dict, list)) else x
                            for x in obj)
    else:
        out[prefix] = obj
    return out


def yaml_diff(before: str, after: str) -> dict[str, tuple[Any, Any]]:
    a, b = yaml_leaves(yaml.safe_load(before)), yaml_leaves(yaml.safe_load(after))
    return {p: (a.get(p, hclconf.ABSENT), b.get(p, hclconf.ABSENT))
            for p in sorted(set(a) | set(b)) if a.get(p, hclconf.ABSENT) != b.get(p, hclconf.ABSENT)}


# ---------------------------------------------------------------------------
# spire-controller-manager templates (what the rendered ClusterSPIFFEIDs ask for)
# ---------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def render_constant_template(template: str, **values: str) -> str:
    """Render a spiffeIDTemplate that uses only per-controller values (e.g. TrustDomain,
    ClusterName); anything else (per-pod fields) is an error here."""
    def sub(m: re.Match) -> str:
        if m.group(1) not in values:
            raise ValueError(f"template uses .{m.group(1)}, not one of {sorted(values)}: {template}")
        return values[m.group(1)]
    out = _ACTION.sub(sub, template)
    if "{{" in out:
        raise ValueError(f"template has actions this helper does not evaluate: {template}")
    return out


# ---------------------------------------------------------------------------
# starting rendered configs
# ---------------------------------------------------------------------------

@dataclass
class Rewritten:
    rendered: str                       # the text the package rendered
    text: str                           # what the process runs with
    changes: dict[str, Any]             # what the test asked to change
    diff: dict[str, tuple[Any, Any]]    # every leaf that differs (from parsing both)


def rewrite_checked(rendered: str, changes: dict[str, Any]) -> Rewritten:
    text, d = hclconf.rewrite(rendered, changes)
    extra, noop = hclconf.unexplained(d, changes)
    if extra or noop:
        raise AssertionError(f"rewrite touched unlisted keys {extra} / listed keys changed nothing {noop}")
    return Rewritten(rendered, text, changes, d)


def start_rendered_server(stack: Stack, kube: Kube, rendered: str, *, name: str,
                          upstream: tuple[int, str] | None = None,
                          bundle_endpoint_port: int | None = None) -> tuple[SpireServer, Rewritten]:
    """spire-server running ``rendered`` (a server.conf from a package) with only
    :func:`server_local_rewrites` applied; no command-line overrides."""
    port, health = free_ports(2)
    be_port = None
    with contextlib.suppress(KeyError):
        hclconf.get(rendered, "server.federation.bundle_endpoint")
        be_port = bundle_endpoint_port or free_port()
    rw = rewrite_checked(rendered, server_local_rewrites(
        rendered, port=port, health_port=health, kubeconfig=kube.kubeconfig,
        bundle_endpoint_port=be_port, upstream=upstream))
    srv = stack.spire_server(rw.text, port=port, flags=False, name=name)
    srv.bundle_endpoint_port = be_port
    return srv, rw


@dataclass
class PsatAgent:
    agent: SpireAgent
    rewritten: Rewritten
    cluster: str
    pod: Any
    node: Any
    token_claims: dict[str, Any]


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def start_psat_agent(stack: Stack, kube: Kube, server: SpireServer, pkg: Path, *, daemonset: str,
                     configmap: str, name: str, bundle_pem: str) -> PsatAgent:
    """A rendered agent (the ``configmap``'s agent.conf) attesting with k8s_psat, set up as
    the ``daemonset``'s pod would be: a Node, a Pod of the DaemonSet's template (labels,
    service account) bound to it, and the projected service-account token the kubelet
    would mount (same audience and lifetime as the template's projected volume), minted
    by the apiserver's TokenRequest API and bound to that Pod. ``bundle_pem`` is the trust
    bundle the pod would mount (the spire-bundle ConfigMap)."""
    objs = cluster_objects(pkg)
    ds = next(o for o in by_kind(objs, "DaemonSet") if o["metadata"]["name"] == daemonset)
    ns = ds["metadata"]["namespace"]
    tmpl = ds["spec"]["template"]
    sa = tmpl["spec"]["serviceAccountName"]
    token_src = next(src["serviceAccountToken"] for v in tmpl["spec"].get("volumes", [])
                     for src in (v.get("projected") or {}).get("sources", []) if "serviceAccountToken" in src)
    conf = configmap_data(pkg, configmap, ns)["agent.conf"]
    cluster = hclconf.get(conf, f"{PSAT}.plugin_data.cluster")
    suffix = uuid.uuid4().hex[:6]
    node = kube.create_node(f"{name}-node-{suffix}")
    pod = kube.create_running_pod(ns, f"{daemonset}-{suffix}", node=node.metadata.name, service_account=sa,
                                  labels=dict(tmpl["metadata"]["labels"]))
    token = kube.kubectl("create", "token", sa, "-n", ns, f"--audience={token_src['audience']}",
                         f"--duration={token_src.get('expirationSeconds', 3600)}s",
                         "--bound-object-kind=Pod", f"--bound-object-name={pod.metadata.name}",
                         f"--bound-object-uid={pod.metadata.uid}").stdout.strip()
    rw = rewrite_checked(conf, agent_local_rewrites(conf, server_port=server.port, health_port=free_port()))
    agent = stack.spire_agent(server, conf_text=rw.text, join_token=False, flags=False, name=name,
                              files={"token": token, "bundle.pem": bundle_pem},
                              agent_id_path=f"/spire/agent/k8s_psat/{cluster}/{node.metadata.uid}")
    return PsatAgent(agent, rw, cluster, pod, node, _jwt_claims(token))


def uri_sans(cert: x509.Certificate) -> list[str]:
    """The URI SANs of a certificate (a SPIFFE ID for an SVID or a SPIRE CA)."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def mint_chain(server: SpireServer, spiffe_id: str, out: Path,
               roots: list[x509.Certificate]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Mint an X.509-SVID for ``spiffe_id`` with the real server (``spire-server x509 mint``, written
    to ``out``) and walk its chain: the leaf carries the ID, at least one intermediate follows, each
    certificate is signed by the next, every intermediate is a CA, and the last is signed by one of
    ``roots``. Returns the leaf and the intermediates, leaf side first."""
    out.mkdir(parents=True, exist_ok=True)
    server.cli("x509", "mint", "-spiffeID", spiffe_id, "-write", out)
    chain = x509.load_pem_x509_certificates((out / "svid.pem").read_bytes())
    leaf, cas = chain[0], chain[1:]
    assert uri_sans(leaf) == [spiffe_id]
    assert cas, "no intermediate in the minted chain"
    cert = leaf
    for ca in cas:
        cert.verify_directly_issued_by(ca)
        assert ca.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca is True
        cert = ca
    issuers = [r for r in roots if r.subject == cert.issuer]
    assert issuers, "the chain does not end at one of the roots"
    cert.verify_directly_issued_by(issuers[0])
    return leaf, cas

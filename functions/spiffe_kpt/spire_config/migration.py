"""A trust-domain migration's SPIRE side (SpireDeployment ``spec.migration``): B's deployment beside A's.

SPIRE cannot serve two trust domains from one deployment: a server, an agent and a
spire-controller-manager each have exactly one ``trust_domain``, and a server refuses to start
when its trust domain changes (spiffe/spire#989). So the migration's ``prepare`` phase runs a
second copy of the SPIRE packages for B in the same cluster, and everything that would collide
on a cluster or a node gets a name of its own:

- ``spec.migration.from: A`` on B's SpireDeployment (a second ``kpt pkg get`` of spire-server
  and spire-agent): className ``<A's default>-<B>`` and entryIDPrefix ``<cluster>-<B>`` (so the
  two controller managers neither reconcile nor delete each other's objects and entries),
  namespaces ``spire-server-<B>`` / ``spire-system-<B>``, the cluster-scoped RBAC names suffixed,
  the CSI driver ``<B>.csi.spiffe.io`` (kubelet plugin directory and registration path to
  match) and the agent's socket directory ``/run/spire/agent-sockets-<B>`` on the node
  (``<B>`` is B with '.' as '-'). What the IdentityContext's migration defaults to
  (``api.migration``) is exactly this.
- The nested topology: B's root gives each workload cluster's controller manager A's class with
  ``-<B>`` (what that cluster's twin registrations use), and B's downstream server renames its
  upstream agent's CSI driver (``upstream.<B>.csi.spiffe.io``), node socket directory and its
  registration at the root (``spire-downstream-server-<B>``, under B's root's class for the edge).
- ``spec.migration.to: B`` on A's: nothing of A changes.
- Either side must federate with the other (``spec.federation.peers``, best bootstrapped with a
  committed ``trustBundle``, so neither needs the other's bundle endpoint first).
"""

from __future__ import annotations

import re
from typing import Any

from ..api.conventions import default_class_name
from ..api.migration import CSI_DRIVER_A, slug, target_class_name, target_csi_driver
from ..api.paths import get_path
from .values import DOWNSTREAM, Problem, Values

SOCKET_DIR_A = "/run/spire/agent-sockets"
# The downstream server's upstream agent (spire-downstream-server): its CSI driver, node socket
# directory and registration at the root, each A's name in A's package.
UPSTREAM_CSI_DRIVER_A = Values.upstream_csi_driver
UPSTREAM_SOCKET_DIR_A = "/run/spire/upstream-agent-sockets"
DOWNSTREAM_REGISTRATION_A = Values.downstream_registration
RBAC_KINDS = frozenset({"ClusterRole", "ClusterRoleBinding"})


def other_domain(spec: dict[str, Any]) -> tuple[str, str] | None:
    """('from', A) on B's deployment, ('to', B) on A's, or None."""
    mig = spec.get("migration") or {}
    for key in ("from", "to"):
        if mig.get(key):
            return key, str(mig[key])
    return None


def apply_defaults(v: Values, spec: dict[str, Any]) -> None:
    """B's deployment: the names that keep it apart from A's, where the values do not set them."""
    side = other_domain(spec)
    if side is None or side[0] != "from":
        return
    s = slug(v.trust_domain)
    cm = spec.get("controllerManager") or {}
    if "className" not in cm:
        v.class_name = target_class_name(default_class_name(v.cluster_name), v.trust_domain)
    if "entryIDPrefix" not in cm:
        v.entry_id_prefix = f"{v.entry_id_prefix}-{s}"[:63]
    if "serverNamespace" not in spec:
        v.server_namespace = f"{v.server_namespace}-{s}"
    if "agentNamespace" not in spec:
        v.agent_namespace = f"{v.agent_namespace}-{s}"
    # B's root: one controller manager per workload cluster, beside A's in the same cluster, with
    # the className the cluster's twin registrations use (IdentityContext migration defaults).
    raw_clusters = spec.get("workloadClusters") or []
    for wc, raw in zip(v.workload_clusters, raw_clusters):
        if "className" not in raw:
            wc.class_name = target_class_name(wc.class_name, v.trust_domain)
        if "entryIDPrefix" not in raw:
            wc.entry_id_prefix = f"{wc.entry_id_prefix}-{s}"[:63]
    # B's downstream server: registered at B's root by the root's controller manager for this
    # cluster, whose class B's root suffixed the same way.
    if v.role == DOWNSTREAM and "className" not in (spec.get("upstream") or {}):
        v.upstream_class_name = target_class_name(v.upstream_class_name, v.trust_domain)
    v.upstream_csi_driver = upstream_csi_driver(v, spec)
    v.downstream_registration = downstream_registration_name(v, spec)


def check(v: Values, spec: dict[str, Any]) -> list[Problem]:
    side = other_domain(spec)
    if side is None:
        return []
    key, other = side
    where = f"spec.migration.{key}"
    from ..identity.spiffeid import SpiffeIDError, validate_trust_domain
    try:
        validate_trust_domain(other)
    except SpiffeIDError as exc:
        return [Problem(where, f"spec.migration.{key} is not a valid SPIFFE trust domain: {exc}")]
    if other == v.trust_domain:
        return [Problem(where, f"spec.migration.{key} is {other!r}, this deployment's own trust domain; name the "
                        "other side of the migration (B on A's deployment, A on B's)")]
    mig = spec.get("migration") or {}
    if mig.get("from") and mig.get("to"):
        return [Problem("spec.migration", "set 'from' (on B's deployment) or 'to' (on A's), not both")]
    peers = [p.trust_domain for p in v.peers]
    if mig.get("phase") == "complete":
        if key == "to":
            return [Problem("spec.migration.phase", "phase complete belongs on B's deployment (spec.migration.from); "
                            "A's deployment is removed once every package is complete: delete this package instead")]
        if other in peers:
            return [Problem(f"spec.federation.peers[{peers.index(other)}]", (
                f"the migration from {other!r} is complete, so this deployment no longer federates with it: remove "
                "the peer (its ClusterFederatedTrustDomain is then deleted and the controller manager ends the "
                "relationship)"))]
        return []
    if v.is_server and other not in peers:
        return [Problem("spec.federation.peers", (
            f"this deployment migrates {'from' if key == 'from' else 'to'} {other!r} but does not federate with it: "
            f"during the migration A and B federate both ways so either SVID verifies everywhere. Add a peer "
            f"{{trustDomain: {other}, ...}} to spec.federation.peers, with trustBundle naming a TrustBundle of its "
            "bundle so federation starts without reaching its endpoint"))]
    return []


def _suffix(name: str, s: str) -> str:
    return name if name.endswith(f"-{s}") else f"{name}-{s}"


def upstream_csi_driver(v: Values, spec: dict[str, Any]) -> str:
    """The CSI driver through which a downstream server reaches its upstream agent: A's name, or
    B's own during a migration (B's deployment, spec.migration.from)."""
    side = other_domain(spec)
    if side is None or side[0] != "from":
        return UPSTREAM_CSI_DRIVER_A
    return f"upstream.{target_csi_driver(v.trust_domain)}"


def downstream_registration_name(v: Values, spec: dict[str, Any]) -> str:
    """The name of the ClusterSPIFFEID that registers a downstream server at its root (applied in
    the edge cluster, where A's and B's would be one object)."""
    side = other_domain(spec)
    if side is None or side[0] != "from":
        return DOWNSTREAM_REGISTRATION_A
    return _suffix(DOWNSTREAM_REGISTRATION_A, slug(v.trust_domain))


def rename(items: list[dict[str, Any]], v: Values, spec: dict[str, Any]) -> None:
    """B's deployment: rename what would collide with A's on the cluster or the nodes (idempotent):
    the agent's (and a downstream server's upstream agent's) CSI driver and node socket directory,
    cluster-scoped RBAC, and a downstream server's registration at the root."""
    side = other_domain(spec)
    if side is None or side[0] != "from":
        return
    s = slug(v.trust_domain)
    driver, upstream_driver = target_csi_driver(v.trust_domain), upstream_csi_driver(v, spec)
    registration = downstream_registration_name(v, spec)
    strings = [(re.compile(r"(?<![\w.-])" + re.escape(CSI_DRIVER_A) + r"(?![\w-])"), driver),
               (re.compile(r"(?<![\w.-])" + re.escape(UPSTREAM_CSI_DRIVER_A) + r"(?![\w-])"), upstream_driver)]
    sockets = [(re.compile(re.escape(d) + r"(?![\w-])"), f"{d}-{s}") for d in (SOCKET_DIR_A, UPSTREAM_SOCKET_DIR_A)]
    for obj in items:
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        if kind in RBAC_KINDS and meta.get("name"):
            meta["name"] = _suffix(str(meta["name"]), s)
        if kind == "ClusterRoleBinding" and isinstance(obj.get("roleRef"), dict) and obj["roleRef"].get("name"):
            obj["roleRef"]["name"] = _suffix(str(obj["roleRef"]["name"]), s)
        if kind == "CSIDriver" and meta.get("name") in (CSI_DRIVER_A, UPSTREAM_CSI_DRIVER_A):
            meta["name"] = driver if meta["name"] == CSI_DRIVER_A else upstream_driver
        if kind == "ClusterSPIFFEID" and meta.get("name") == DOWNSTREAM_REGISTRATION_A:
            meta["name"] = registration
        if kind == "DaemonSet":
            _replace_strings(obj.get("spec"), strings)
            # Only the node's directory moves: inside the containers the socket stays where
            # agent.conf's socket_path (and the CSI driver's mount) expect it.
            for vol in get_path(obj, "spec", "template", "spec", "volumes", default=[]):
                host = vol.get("hostPath") if isinstance(vol, dict) else None
                if isinstance(host, dict) and isinstance(host.get("path"), str):
                    for pattern, moved in sockets:
                        host["path"] = pattern.sub(moved, host["path"])


def _replace_strings(node: Any, subs: list[tuple[re.Pattern[str], str]]) -> None:
    """Apply ``subs`` to every string value below ``node`` (mappings and lists), in place."""
    entries = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    for key, val in entries:
        if isinstance(val, str):
            for pat, new in subs:
                val = pat.sub(new, val)
            node[key] = val
        else:
            _replace_strings(val, subs)

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
- ``spec.migration.to: B`` on A's: nothing of A changes.
- Either side must federate with the other (``spec.federation.peers``, best bootstrapped with a
  committed ``trustBundle``, so neither needs the other's bundle endpoint first).
"""

from __future__ import annotations

import re
from typing import Any

from ..api.conventions import default_class_name
from ..api.migration import CSI_DRIVER_A, slug, target_class_name, target_csi_driver
from .values import Problem, Values

SOCKET_DIR_A = "/run/spire/agent-sockets"
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


def rename(items: list[dict[str, Any]], v: Values, spec: dict[str, Any]) -> None:
    """B's deployment: rename what would collide with A's on the cluster or the nodes (idempotent)."""
    side = other_domain(spec)
    if side is None or side[0] != "from":
        return
    s = slug(v.trust_domain)
    driver = target_csi_driver(v.trust_domain)
    socket_dir = f"{SOCKET_DIR_A}-{s}"
    strings = [(re.compile(r"(?<![\w.-])" + re.escape(CSI_DRIVER_A) + r"(?![\w-])"), driver)]
    socket = re.compile(re.escape(SOCKET_DIR_A) + r"(?![\w-])")
    for obj in items:
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        if kind in RBAC_KINDS and meta.get("name"):
            meta["name"] = _suffix(str(meta["name"]), s)
        if kind == "ClusterRoleBinding" and isinstance(obj.get("roleRef"), dict) and obj["roleRef"].get("name"):
            obj["roleRef"]["name"] = _suffix(str(obj["roleRef"]["name"]), s)
        if kind == "CSIDriver" and meta.get("name") == CSI_DRIVER_A:
            meta["name"] = driver
        if kind == "DaemonSet":
            _replace_strings(obj.get("spec"), strings)
            # Only the node's directory moves: inside the containers the socket stays where
            # agent.conf's socket_path (and the CSI driver's mount) expect it.
            for vol in ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []:
                host = vol.get("hostPath") if isinstance(vol, dict) else None
                if isinstance(host, dict) and isinstance(host.get("path"), str):
                    host["path"] = socket.sub(socket_dir, host["path"])


def _replace_strings(node: Any, subs: list[tuple[re.Pattern[str], str]]) -> None:
    if isinstance(node, dict):
        for k, val in node.items():
            if isinstance(val, str):
                for pat, new in subs:
                    val = pat.sub(new, val)
                node[k] = val
            else:
                _replace_strings(val, subs)
    elif isinstance(node, list):
        for i, val in enumerate(node):
            if isinstance(val, str):
                for pat, new in subs:
                    val = pat.sub(new, val)
                node[i] = val
            else:
                _replace_strings(val, subs)

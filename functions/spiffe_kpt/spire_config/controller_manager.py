"""ControllerManagerConfig files for spire-controller-manager (v0.6.x), one per watched cluster.

The central topology needs one controller manager per workload cluster, each writing to the
same SPIRE server: a distinct ``className`` makes each reconcile only its own cluster's
ClusterSPIFFEIDs, and a distinct ``entryIDPrefix`` stops each from deleting the entries the
others created (without a prefix the controller deletes every entry it did not create).
"""

from __future__ import annotations

from typing import Any

from ..krm import yamlio
from . import paths
from .values import ControllerManager, Values


def controller_manager_config(v: Values, cm: ControllerManager, index: int) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "apiVersion": "spire.spiffe.io/v1alpha1",
        "kind": "ControllerManagerConfig",
        # Metrics off ("0"): several sidecars share the pod's ports and nothing scrapes them by default.
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": f":{paths.CONTROLLER_HEALTH_BASE_PORT + index}"},
        # Single server replica (sqlite): no leader election, so no Lease permissions either.
        "leaderElection": {"leaderElect": False},
        "clusterName": cm.cluster,
        "trustDomain": v.trust_domain,
        "className": cm.class_name,
        # Only resources that carry this className: a classless ClusterSPIFFEID is an error
        # the project's validator reports, not something one of N controllers should grab.
        "watchClassless": False,
        "entryIDPrefix": cm.entry_id_prefix,
        "spireServerSocketPath": paths.SERVER_SOCKET,
        "ignoreNamespaces": _ignored_namespaces(v, cm),
    }
    return cfg


def _ignored_namespaces(v: Values, cm: ControllerManager) -> list[str]:
    """SPIRE's own namespaces get no workload entries, except the server namespace of a remote
    cluster: there a nested (downstream) server runs, and the root's controller for that cluster
    must register it (the downstream-registration ClusterSPIFFEID selects it in that namespace)."""
    ignored = ["kube-system", "kube-public", v.agent_namespace]
    if not cm.remote:
        ignored.append(v.server_namespace)
    return ignored


def render_controller_manager_config(v: Values, cm: ControllerManager, index: int) -> str:
    return yamlio.dump(controller_manager_config(v, cm, index))


def config_key(cm: ControllerManager) -> str:
    return f"{cm.cluster}.yaml"

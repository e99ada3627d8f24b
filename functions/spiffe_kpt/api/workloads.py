"""Where each Kubernetes workload kind keeps its pod template, selector and service account."""

from __future__ import annotations

from typing import Any

from .paths import get_path

# kind -> (apiVersion, path from the object to the pod template, path to the label selector)
WORKLOAD_KINDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...] | None]] = {
    "Deployment": ("apps/v1", ("spec", "template"), ("spec", "selector")),
    "StatefulSet": ("apps/v1", ("spec", "template"), ("spec", "selector")),
    "DaemonSet": ("apps/v1", ("spec", "template"), ("spec", "selector")),
    "ReplicaSet": ("apps/v1", ("spec", "template"), ("spec", "selector")),
    "Job": ("batch/v1", ("spec", "template"), None),
    "CronJob": ("batch/v1", ("spec", "jobTemplate", "spec", "template"), None),
    "Pod": ("v1", (), None),
}


def is_workload(obj: dict[str, Any]) -> bool:
    kind = obj.get("kind")
    return kind in WORKLOAD_KINDS and obj.get("apiVersion") == WORKLOAD_KINDS[kind][0]


def pod_template_path(kind: str) -> tuple[str, ...]:
    return WORKLOAD_KINDS[kind][1]


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template (for a bare Pod: the Pod itself); {} when absent or malformed."""
    tpl = get_path(obj, *pod_template_path(obj["kind"])) if pod_template_path(obj["kind"]) else obj
    return tpl if isinstance(tpl, dict) else {}


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    labels = get_path(pod_template(obj), "metadata", "labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = pod_template(obj).get("spec")
    return spec if isinstance(spec, dict) else {}


def service_account(obj: dict[str, Any]) -> str:
    spec = pod_spec(obj)
    # serviceAccount is the deprecated alias Kubernetes still honours when serviceAccountName is unset.
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "")


def selector_match_labels(obj: dict[str, Any]) -> dict[str, str] | None:
    path = WORKLOAD_KINDS[obj["kind"]][2]
    if path is None:
        return None
    sel = get_path(obj, *path)
    ml = sel.get("matchLabels") if isinstance(sel, dict) else None
    return {str(k): str(v) for k, v in ml.items()} if isinstance(ml, dict) else None


def field_prefix(kind: str) -> str:
    """kpt field path of the pod template, for results: 'spec.template' etc."""
    return ".".join(pod_template_path(kind))


def namespace(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace") or "") if isinstance(meta, dict) else ""


def name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""

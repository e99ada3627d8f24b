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


# What the functions read from a pod template, and the type Kubernetes gives each field
# (core/v1 PodTemplateSpec). Checked once, where an identity's workload is found
# (api/resolve.py), so the code that reads these fields may trust their types.
_CONTAINER_LISTS = ("containers", "initContainers")
_CONTAINER_FIELDS = {"name": str, "ports": list, "volumeMounts": list, "env": list}
_PORT_FIELDS = {"containerPort": int, "protocol": str, "name": str}
_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer"}


def _wrong(value: Any, expected: type) -> bool:
    if value is None:
        return False  # absent, or written as null: Kubernetes reads that as unset
    if expected is int:
        return not isinstance(value, int) or isinstance(value, bool)
    return not isinstance(value, expected)


def pod_template_type_errors(obj: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(field path, expected type, value) for every field of the workload's pod template that the
    functions read and that does not have its Kubernetes type: a pod template, its metadata,
    labels and spec that are not mappings, containers, ports or volumes that are not lists of
    mappings, a containerPort that is not an integer..."""
    out: list[tuple[str, str, Any]] = []
    prefix = field_prefix(obj["kind"])
    at = (prefix + ".") if prefix else ""
    tpl = get_path(obj, *pod_template_path(obj["kind"])) if prefix else obj

    def check(path: str, value: Any, expected: type) -> bool:
        if _wrong(value, expected):
            out.append((path, _TYPE_NAMES[expected], value))
            return False
        return value is not None

    if not check(prefix or "(the object)", tpl, dict):
        return out
    meta = tpl.get("metadata")
    if check(f"{at}metadata", meta, dict):
        check(f"{at}metadata.labels", meta.get("labels"), dict)
        check(f"{at}metadata.annotations", meta.get("annotations"), dict)
    spec = tpl.get("spec")
    if not check(f"{at}spec", spec, dict):
        return out
    check(f"{at}spec.serviceAccountName", spec.get("serviceAccountName"), str)
    volumes = spec.get("volumes")
    if check(f"{at}spec.volumes", volumes, list):
        for i, v in enumerate(volumes):
            check(f"{at}spec.volumes[{i}]", v, dict)
    for key in _CONTAINER_LISTS:
        containers = spec.get(key)
        if not check(f"{at}spec.{key}", containers, list):
            continue
        for i, c in enumerate(containers):
            cpath = f"{at}spec.{key}[{i}]"
            if not check(cpath, c, dict):
                continue
            for field, expected in _CONTAINER_FIELDS.items():
                if check(f"{cpath}.{field}", c.get(field), expected) and expected is list:
                    for j, entry in enumerate(c[field]):
                        epath = f"{cpath}.{field}[{j}]"
                        if check(epath, entry, dict) and field == "ports":
                            for pfield, ptype in _PORT_FIELDS.items():
                                check(f"{epath}.{pfield}", entry.get(pfield), ptype)
    return out

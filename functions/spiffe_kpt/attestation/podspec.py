"""Edits of a pod template that make a workload attestable; pure functions over the YAML dicts.

Each edit is idempotent (applying it to its own output changes nothing) and never overwrites
a value a person wrote: a contradiction comes back as a message for the caller to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CSI_DRIVER = "csi.spiffe.io"
CSI_VOLUME = "spiffe-workload-api"
DEFAULT_MOUNT_PATH = "/spiffe-workload-api"
# The SPIRE agent's socket file name in the spire packages and in SPIRE's own examples.
DEFAULT_SOCKET_NAME = "spire-agent.sock"
ENDPOINT_ENV = "SPIFFE_ENDPOINT_SOCKET"


@dataclass(frozen=True)
class CSIRequest:
    containers: tuple[str, ...]
    mount_path: str = DEFAULT_MOUNT_PATH
    socket_name: str = DEFAULT_SOCKET_NAME
    # The driver to mount (B's from a trust-domain migration's cutover on) and every driver a volume
    # of ours may already name (the mutator switches between them).
    driver: str = CSI_DRIVER
    known_drivers: tuple[str, ...] = (CSI_DRIVER,)

    @property
    def endpoint(self) -> str:
        # go-spiffe and the other SPIFFE libraries read this variable: a unix:// URL.
        return f"unix://{self.mount_path}/{self.socket_name}"


def _dict_at(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _list_at(parent: dict[str, Any], key: str) -> list[Any]:
    value = parent.get(key)
    if not isinstance(value, list):
        value = parent[key] = []
    return value


def set_service_account(pod: dict[str, Any], name: str) -> None:
    spec = _dict_at(pod, "spec")
    spec["serviceAccountName"] = name
    # The deprecated alias must not contradict (the resolver already rejected a different value).
    if "serviceAccount" in spec and spec["serviceAccount"] != name:
        spec["serviceAccount"] = name


def add_labels(pod: dict[str, Any], labels: dict[str, str]) -> None:
    if labels:
        _dict_at(_dict_at(pod, "metadata"), "labels").update(labels)


def csi_volume(driver: str = CSI_DRIVER) -> dict[str, Any]:
    return {"name": CSI_VOLUME, "csi": {"driver": driver, "readOnly": True}}


def container_names(pod: dict[str, Any]) -> list[str]:
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    return [str(c.get("name")) for key in ("initContainers", "containers")
            for c in (spec.get(key) or []) if isinstance(c, dict)]


def mount_csi(pod: dict[str, Any], req: CSIRequest) -> list[tuple[int, str]]:
    """Add the CSI volume, its mount and SPIFFE_ENDPOINT_SOCKET; returns (container index in the
    request, problem) for what cannot be done without overwriting something, and then changes nothing."""
    spec = _dict_at(pod, "spec")
    problems: list[tuple[int, str]] = []
    volumes = spec.get("volumes") if isinstance(spec.get("volumes"), list) else []
    existing = next((v for v in volumes if isinstance(v, dict) and v.get("name") == CSI_VOLUME), None)
    if existing is not None and existing not in [csi_volume(d) for d in {req.driver, *req.known_drivers}]:
        problems.append((-1, f"the pod template already has a volume named {CSI_VOLUME!r} that is not the "
                             f"SPIFFE CSI volume ({existing}); rename that volume"))
    by_name: dict[str, dict[str, Any]] = {}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict) and c.get("name") is not None:
                by_name.setdefault(str(c["name"]), c)
    targets: list[dict[str, Any]] = []
    for i, name in enumerate(req.containers):
        c = by_name.get(name)
        if c is None:
            have = ", ".join(sorted(by_name)) or "none"
            problems.append((i, f"there is no container {name!r} in the pod template (its containers: {have})"))
            continue
        for m in c.get("volumeMounts") or []:
            if isinstance(m, dict) and m.get("mountPath") == req.mount_path and m.get("name") != CSI_VOLUME:
                problems.append((i, f"container {name!r} already mounts volume {m.get('name')!r} at "
                                    f"{req.mount_path}; choose another spec.workloadAPI.csi.mountPath"))
        # A value pointing into our own earlier mount is ours to update (the mountPath changed).
        ours = [m.get("mountPath") for m in c.get("volumeMounts") or []
                if isinstance(m, dict) and m.get("name") == CSI_VOLUME]
        for e in c.get("env") or []:
            if isinstance(e, dict) and e.get("name") == ENDPOINT_ENV and e.get("value") != req.endpoint \
                    and not any(str(e.get("value", "")).startswith(f"unix://{p}/") for p in ours):
                problems.append((i, f"container {name!r} already sets {ENDPOINT_ENV}={e.get('value')!r}, not "
                                    f"{req.endpoint!r}; remove it (the mutator sets it) or make them equal"))
        targets.append(c)
    if problems:
        return problems
    if existing is None:
        _list_at(spec, "volumes").append(csi_volume(req.driver))
    elif existing != csi_volume(req.driver):
        existing["csi"]["driver"] = req.driver  # a migration's cutover (or its step back) switches the agent
    mount = {"name": CSI_VOLUME, "mountPath": req.mount_path, "readOnly": True}
    for c in targets:
        mounts = _list_at(c, "volumeMounts")
        mine = [j for j, m in enumerate(mounts) if isinstance(m, dict) and m.get("name") == CSI_VOLUME]
        if mine:
            mounts[mine[0]] = mount
        else:
            mounts.append(mount)
        env = _list_at(c, "env")
        mine_env = [e for e in env if isinstance(e, dict) and e.get("name") == ENDPOINT_ENV]
        if mine_env:
            mine_env[0]["value"] = req.endpoint
        else:
            env.append({"name": ENDPOINT_ENV, "value": req.endpoint})
    return []

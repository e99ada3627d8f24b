"""Who owns an agent's Workload API socket directory on the node.

The agent DaemonSets keep their socket in a hostPath ``DirectoryOrCreate`` (the CSI
driver on the same node hands it to workload pods).  The kubelet creates that
directory as root, mode 0755, and the agent runs as a non-root user, so the agent
could not bind its socket on a fresh node.  The package's init container
``socket-dir-owner`` chowns that one directory before the agent starts; its
arguments (``<uid>:<gid> <directory>``) are written here from the agent container's
effective ``runAsUser``/``runAsGroup`` and the init container's own mount of the
socket volume, so the ids live in one place (the securityContext) and cannot drift.
"""

from __future__ import annotations

from typing import Any

from ..api.paths import get_path

INIT = "socket-dir-owner"
SOCKET_VOLUME = "spire-agent-socket-dir"


def _pod(ds: dict[str, Any]) -> dict[str, Any]:
    return get_path(ds, "spec", "template", "spec", default={})


def _init(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in pod.get("initContainers") or [] if c.get("name") == INIT), None)


def _mount(c: dict[str, Any]) -> str | None:
    return next((str(m.get("mountPath")) for m in c.get("volumeMounts") or []
                 if m.get("name") == SOCKET_VOLUME and m.get("mountPath")), None)


def _effective(c: dict[str, Any], pod: dict[str, Any], key: str) -> Any:
    """A container's securityContext field, else the pod's (Kubernetes' precedence)."""
    own = c.get("securityContext") or {}
    return own[key] if key in own else (pod.get("securityContext") or {}).get(key)


def owner(ds: dict[str, Any]) -> tuple[tuple[int, int], str] | tuple[None, str]:
    """((uid, gid), directory) for the init container, or (None, why not)."""
    pod = _pod(ds)
    init = _init(pod)
    assert init is not None
    directory = _mount(init)
    if directory is None:
        return None, (f"the {INIT} init container does not mount the {SOCKET_VOLUME} volume: add the "
                      "same volumeMount as the agent container's, so it can chown the socket directory")
    agents = [c for c in pod.get("containers") or [] if _mount(c) is not None]
    ids = {(c.get("name"), _effective(c, pod, "runAsUser"), _effective(c, pod, "runAsGroup")) for c in agents}
    if not ids:
        return None, f"no container mounts the {SOCKET_VOLUME} volume: nothing for {INIT} to prepare it for"
    for name, uid, gid in sorted(ids, key=str):
        if not isinstance(uid, int) or not isinstance(gid, int) or isinstance(uid, bool) or isinstance(gid, bool):
            return None, (f"container {name!r} mounts the agent socket directory without a runAsUser and "
                          f"runAsGroup (in its or the pod's securityContext), so {INIT} cannot know whom to "
                          "give the directory to: set both, e.g. 10001")
    if len({(uid, gid) for _, uid, gid in ids}) > 1:
        return None, (f"the containers mounting the agent socket directory run as different users "
                      f"{sorted(ids, key=str)}: {INIT} can give the directory to one only; make them equal")
    _, uid, gid = next(iter(ids))
    return (uid, gid), directory


def problems(items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, str]]:
    """(object, field path, message) for every DaemonSet whose init container cannot be configured."""
    out = []
    for ds in items:
        if ds.get("kind") != "DaemonSet" or _init(_pod(ds)) is None:
            continue
        ids, why = owner(ds)
        if ids is None:
            out.append((ds, f"spec.template.spec.initContainers[name={INIT}]", why))
    return out


def configure(ds: dict[str, Any]) -> None:
    """Write the init container's arguments (no-op for a DaemonSet without it)."""
    init = _init(_pod(ds))
    if init is None:
        return
    ids, directory = owner(ds)
    assert ids is not None, directory  # problems() ran first
    init["args"] = [f"{ids[0]}:{ids[1]}", directory]

"""Removing what a node-tier module applied, so that the next module on the same session
node finds it fresh (no pods, no namespaces, no CSI drivers of this module).

Deletion is ordered by what the kubelet needs to tear a pod down:

* a pod with a CSI volume is torn down only after the kubelet's ``NodeUnpublishVolume``
  call to the CSI driver succeeds; with the driver's pod gone (its socket gone, the
  driver unregistered) the kubelet retries for ever, the pod stays ``Terminating`` and
  its namespace never finishes deleting.  So the pods that use a driver (workloads, a
  downstream server on the upstream driver) go before the DaemonSet of that driver;
* deleting a Deployment/StatefulSet/DaemonSet with the default (background) propagation
  returns at once: ``kubectl delete --wait`` then waits for the controller object only,
  while its pods are still terminating.  Here the controllers are deleted in the
  foreground (the object stays until the garbage collector has removed its pods, which
  the kubelet removes only once their containers and volumes are torn down) and their
  pods are then waited for by label, so "deleted" means "the pods are gone";
* Namespaces go last, after every pod of every stage: a namespace deleted while it still
  holds a terminating pod waits for it (the namespace controller's finalizer
  ``kubernetes``), and one of them held objects of several packages here.

Every wait is bounded; on a timeout :func:`dump` says which objects remain and why
(deletion timestamps, finalizers, pod conditions, the namespace's deletion conditions,
recent events, the kubelet's volume errors) and :func:`force` removes what is stuck so
the session can go on; the module's teardown then fails with that diagnosis."""

from __future__ import annotations

import json
import subprocess
import time

from .node import Node
from .stack import StackError, wait_until

# pod-owning kinds in the order their pods must go (DaemonSets last: they carry the agents
# and CSI drivers that the other pods' volumes need while those are torn down)
POD_OWNERS = ("Deployment", "StatefulSet", "ReplicaSet", "Job", "Pod", "DaemonSet")


def _selector(o: dict) -> str:
    if o["kind"] == "Pod":
        return ""
    labels = o["spec"]["selector"].get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _pods(node: Node, ns: str, selector: str = "", name: str = "") -> list[dict]:
    args = ["get", "pods", "-n", ns, "-o", "json"] + (["-l", selector] if selector else [])
    p = node.kube.kubectl(*args, check=False)
    if p.returncode != 0:
        return []
    pods = json.loads(p.stdout)["items"]
    return [x for x in pods if not name or x["metadata"]["name"] == name]


def _kubectl_delete(node: Node, *args: str, timeout: float, input: str | None = None) -> None:
    try:
        node.kube.kubectl("delete", "--ignore-not-found", "--wait=true", f"--timeout={int(timeout)}s", *args,
                          input=input, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        raise StackError(f"kubectl delete {' '.join(args)} did not return within {timeout + 30:.0f} s") from None


def delete_pod_owners(node: Node, objs: list[dict], timeout: float = 120) -> None:
    """Foreground-delete the pod-owning objects of ``objs`` (in :data:`POD_OWNERS` order)
    and wait until their pods are gone from the API (the kubelet has torn them down)."""
    for kind in POD_OWNERS:
        for o in (x for x in objs if x["kind"] == kind):
            ns, name = o["metadata"]["namespace"], o["metadata"]["name"]
            _kubectl_delete(node, kind.lower(), name, "-n", ns, "--cascade=foreground", timeout=timeout)
            sel = _selector(o)
            wait_until(lambda ns=ns, sel=sel, name=name, kind=kind:
                       not _pods(node, ns, sel, name if kind == "Pod" else ""),
                       timeout, f"the pods of {kind} {ns}/{name} to be gone", interval=1)


def delete_objects(node: Node, objs: list[dict], timeout: float = 120) -> None:
    """Delete ``objs`` except Namespaces (deleted last, :func:`delete_namespaces`), pod
    owners first (:func:`delete_pod_owners`)."""
    delete_pod_owners(node, objs, timeout)
    rest = [o for o in objs if o["kind"] != "Namespace" and o["kind"] not in POD_OWNERS]
    if rest:
        from .rendered import to_yaml
        _kubectl_delete(node, "-f", "-", input=to_yaml(rest), timeout=timeout)


def delete_namespaces(node: Node, names: list[str], timeout: float = 120) -> None:
    if names:
        _kubectl_delete(node, "namespace", *names, timeout=timeout)


def dump(node: Node, namespaces: list[str], cluster_objs: list[dict] = ()) -> str:
    """What is left and why, for a teardown that timed out."""
    k = node.kube
    out = []
    cols = ("custom-columns=KIND:.kind,NS:.metadata.namespace,NAME:.metadata.name,"
            "DELETED:.metadata.deletionTimestamp,FINALIZERS:.metadata.finalizers,PHASE:.status.phase")
    for ns in namespaces:
        p = k.kubectl("get", "namespace", ns, "-o", "json", check=False)
        if p.returncode != 0:
            continue
        nso = json.loads(p.stdout)
        out.append(f"--- namespace {ns}: deletionTimestamp={nso['metadata'].get('deletionTimestamp')} "
                   f"finalizers={nso['spec'].get('finalizers')} phase={nso['status'].get('phase')}")
        for c in nso["status"].get("conditions", []):
            if c.get("status") == "True":
                out.append(f"    {c['type']}: {c.get('message', '')}")
        kinds = ("pods,persistentvolumeclaims,statefulsets,daemonsets,deployments,replicasets,"
                 "configmaps,secrets,serviceaccounts,services,roles,rolebindings,networkpolicies")
        out.append(k.kubectl("get", kinds, "-n", ns, "-o", cols, check=False).stdout)
        for pod in _pods(node, ns):
            st = pod.get("status", {})
            out.append(f"    pod {pod['metadata']['name']}: deletion={pod['metadata'].get('deletionTimestamp')} "
                       f"finalizers={pod['metadata'].get('finalizers')} phase={st.get('phase')} "
                       f"conditions={[(c['type'], c['status'], c.get('reason')) for c in st.get('conditions', [])]}")
    left = [f"{o['kind']}/{o['metadata']['name']}" for o in cluster_objs
            if not o["metadata"].get("namespace")
            and k.kubectl("get", o["kind"].lower(), o["metadata"]["name"], check=False).returncode == 0]
    out.append(f"--- cluster-scoped objects left: {left}")
    out.append(k.kubectl("get", "pv", "-o", cols, check=False).stdout)
    out.append("--- CSINode: " + k.kubectl("get", "csinode", "-o", "jsonpath={.items[*].spec.drivers[*].name}",
                                           check=False).stdout)
    events = k.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False).stdout.splitlines()
    out.append("--- last events:\n" + "\n".join(events[-30:]))
    if node.kubelet is not None:
        lines = node.kubelet.log_path.read_text(errors="replace").splitlines()
        errs: dict[str, str] = {}  # message -> last time, in order of last occurrence
        for x in lines:
            if x.startswith("E") and any(w in x for w in ("olume", "nmount", "csi", "CSI", "Terminat", "KillPod")):
                # the message, without the klog prefix and the retry bookkeeping
                msg = x.split("Error: ", 1)[-1] if "Error: " in x else x.split("] ", 1)[-1]
                errs.pop(msg, None)
                errs[msg] = x[1:21]
        out.append("--- kubelet volume/termination errors (distinct, last 12):\n"
                   + "\n".join(f"{t}: {m}" for m, t in list(errs.items())[-12:]))
    return "\n".join(out)


def force(node: Node, namespaces: list[str], volumes: list[str] = ()) -> None:
    """After a timed-out teardown: remove what is stuck so the next module can run (pods
    deleted without waiting for the kubelet, finalizers of PVCs, namespaces and the
    PersistentVolumes ``volumes`` dropped).  Volumes the kubelet could not unmount stay
    mounted until the node's own teardown, which unmounts everything under its directory."""
    k = node.kube
    for pv in volumes:
        k.kubectl("patch", "pv", pv, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
        k.kubectl("delete", "pv", pv, "--ignore-not-found", "--wait=false", check=False)
    for ns in namespaces:
        if k.kubectl("get", "namespace", ns, check=False).returncode != 0:
            continue
        k.kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force", "--wait=false", check=False)
        for pvc in k.kubectl("get", "pvc", "-n", ns, "-o", "name", check=False).stdout.split():
            k.kubectl("patch", pvc, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
        k.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    for ns in namespaces:
        with_fin = k.kubectl("get", "namespace", ns, "-o", "json", check=False)
        if with_fin.returncode == 0:
            nso = json.loads(with_fin.stdout)
            nso["spec"]["finalizers"] = []
            k.kubectl("replace", "--raw", f"/api/v1/namespaces/{ns}/finalize", "-f", "-",
                      input=json.dumps(nso), check=False)


def csi_drivers(node: Node) -> list[str]:
    """The CSI drivers the kubelet has registered (CSINode)."""
    out = node.kube.kubectl("get", "csinode", "-o", "jsonpath={.items[*].spec.drivers[*].name}").stdout
    return out.split()


def staged_teardown(node: Node, stages: list[tuple[str, list[dict]]], namespaces: list[str],
                    volumes: list[dict], timeout: float) -> tuple[list[str], list[str]]:
    """Delete a module's objects stage by stage (``stages``: what, objects; in the order their
    pods must go), then ``namespaces``, then the PersistentVolumes ``volumes``, then wait for the
    kubelet to unregister every CSI driver (the registrars remove their plugin sockets when they
    stop). Each step is bounded by ``timeout``; a step that times out is dumped and forced (the
    next steps still run). Returns (one timing per step, one diagnosis per timed-out step): the
    caller asserts there are none, after its own cleanup."""
    cluster = [o for _, objs in stages for o in objs]
    volume_names = [v["metadata"]["name"] for v in volumes]
    problems: list[str] = []
    timings: list[str] = []

    def step(what: str, fn) -> None:
        t0 = time.monotonic()
        try:
            fn()
        except StackError as e:
            problems.append(f"{what}: {e}\n{dump(node, namespaces, cluster)}")
            force(node, namespaces, volume_names)
        timings.append(f"{what} {time.monotonic() - t0:.0f} s")

    for what, objs in stages:
        step(f"deleting {what}", lambda objs=objs: delete_objects(node, objs, timeout))
    step("deleting the namespaces", lambda: delete_namespaces(node, namespaces, timeout))
    step("deleting the PersistentVolumes", lambda: delete_objects(node, volumes, timeout))
    step("the kubelet to unregister the CSI drivers", lambda: wait_until(
        lambda: not csi_drivers(node), 60, "CSINode without drivers", interval=1))
    return timings, problems

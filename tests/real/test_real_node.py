"""The node tier's cluster itself: a kubelet, containerd, the scheduler and the
controller manager run pods for real (tests/real/node.py)."""

from __future__ import annotations

import json

import yaml

from .node import NODE_NAME, PAUSE_IMAGE, Node, pod_cgroup_dirs, pod_pids
from .stack import wait_until

NS = "node-smoke"

RESTRICTED_POD = {
    "hostNetwork": True,
    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{
        "name": "main", "image": PAUSE_IMAGE, "imagePullPolicy": "Never",
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }],
}


def _workload(kind: str, name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": RESTRICTED_POD}}}


def _pods(node: Node, selector: str) -> list[dict]:
    out = node.kube.kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json").stdout
    return json.loads(out)["items"]


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


def test_node_runs_deployment_and_daemonset_pods(node_cluster: Node):
    node = node_cluster
    node.kube.kubectl("create", "namespace", NS)
    # kube-controller-manager's serviceaccount controller creates `default`, and its
    # token controller nothing more: pods get their token through a projected volume
    wait_until(lambda: node.kube.kubectl("get", "sa", "default", "-n", NS, check=False).returncode == 0,
               60, "ServiceAccount default in the new namespace", proc=node.kcm)
    node.kube.apply_manifests(yaml.safe_dump_all([_workload("Deployment", "smoke-deploy"),
                                                  _workload("DaemonSet", "smoke-ds")]))
    for app in ("smoke-deploy", "smoke-ds"):
        pods = wait_until(lambda app=app: [p for p in _pods(node, f"app={app}") if _ready(p)], 120,
                          f"a Ready pod of {app}", proc=node.kubelet, interval=1)
        assert len(pods) == 1
        pod = pods[0]
        # the scheduler (Deployment) and the DaemonSet controller bound it to the kubelet's node
        assert pod["spec"]["nodeName"] == NODE_NAME
        # host network: the node's address (the kubelet's --node-ip)
        assert pod["status"]["hostIP"] == "127.0.0.1"
        cs = pod["status"]["containerStatuses"][0]
        assert cs["containerID"].startswith("containerd://")
        assert cs["image"].endswith(PAUSE_IMAGE.split("/", 1)[1])
        # the apiserver reaches the kubelet (logs): the container runs as the pod's user
        logs = node.kube.kubectl("logs", "-n", NS, pod["metadata"]["name"]).stdout
        assert "pause: started as uid 10001" in logs
        # the kubelet mounted the projected service-account token into the pod
        uid = pod["metadata"]["uid"]
        tokens = list((node.root_dir / "pods" / uid / "volumes").glob("kubernetes.io~projected/*/token"))
        assert tokens and tokens[0].read_text().count(".") == 2
    # every container process runs in a pod cgroup of this kubelet
    assert pod_pids()
    # deleting the Deployment stops its pod: gone from the API and its cgroup removed
    deploy_uid = [p for p in _pods(node, "app=smoke-deploy")][0]["metadata"]["uid"]
    node.kube.kubectl("delete", "deployment", "smoke-deploy", "-n", NS, "--wait=true")
    wait_until(lambda: not _pods(node, "app=smoke-deploy"), 90, "the Deployment's pod to go",
               proc=node.kubelet, interval=1)
    wait_until(lambda: not any(f"pod{deploy_uid}" in str(d) for d in pod_cgroup_dirs()), 60,
               "the pod's cgroup to go", proc=node.kubelet, interval=1)

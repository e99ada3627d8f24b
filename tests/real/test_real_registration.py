"""spire-controller-manager, connected to a real kube-apiserver and a real
spire-server, turns a ClusterSPIFFEID into exactly the registration entries it
promises: one for the matching pod, none for the others, none from a
ClusterSPIFFEID of another class."""

from __future__ import annotations

import uuid

import pytest

from .stack import controller_manager_config, spiffe_id_str, wait_until

pytestmark = pytest.mark.real

TRUST_DOMAIN = "example.org"
CLUSTER = "edge-1"
CLASS = "spiffe-kpt"
TEMPLATE = "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"


def cluster_spiffe_id(name: str, class_name: str, namespace: str, app: str) -> str:
    return f"""\
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata:
  name: {name}
spec:
  className: {class_name}
  spiffeIDTemplate: "{TEMPLATE}"
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {namespace}
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {app}
"""


def test_controller_manager_registers_matching_pods_only(kube, real_stack):
    suffix = uuid.uuid4().hex[:6]
    ns = f"free5gc-{suffix}"
    node = kube.create_node(f"worker-{suffix}")
    kube.ensure_namespace(ns)
    upf = kube.create_running_pod(ns, "upf-0", node=node.metadata.name, service_account="upf",
                                  labels={"app.kubernetes.io/name": "upf"}, pod_ip="10.244.1.10")
    kube.create_running_pod(ns, "smf-0", node=node.metadata.name, service_account="smf",
                            labels={"app.kubernetes.io/name": "smf"}, pod_ip="10.244.1.11")

    server = real_stack.spire_server(trust_domain=TRUST_DOMAIN)
    # A ClusterSPIFFEID of another class, selecting the smf pod: must be ignored.
    kube.apply_manifests(cluster_spiffe_id(f"smf-{suffix}", "someone-else", ns, "smf"))
    kube.apply_manifests(cluster_spiffe_id(f"upf-{suffix}", CLASS, ns, "upf"))

    scm = real_stack.controller_manager(kube, server, controller_manager_config(
        trust_domain=TRUST_DOMAIN, cluster_name=CLUSTER, class_name=CLASS,
        entry_id_prefix=f"t{suffix}"))

    expected_id = f"spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/upf"

    def reconciled():
        obj = kube.custom().get_cluster_custom_object("spire.spiffe.io", "v1alpha1",
                                                      "clusterspiffeids", f"upf-{suffix}")
        stats = (obj.get("status") or {}).get("stats") or {}
        return stats.get("entriesMasked", 0) == 0 and stats.get("podsSelected") == 1 \
            and any(spiffe_id_str(e["spiffe_id"]) == expected_id for e in server.entries()) and obj
    obj = wait_until(reconciled, 60, "the ClusterSPIFFEID's entry in spire-server", proc=scm.proc)
    assert obj["status"]["stats"]["entriesToSet"] == 1, obj["status"]
    assert obj["status"]["stats"]["entryFailures"] == 0, obj["status"]

    entries = server.entries()
    # exactly one entry, for the upf pod; nothing for smf (unselected by the
    # matching class, selected only by the foreign class)
    assert [spiffe_id_str(e["spiffe_id"]) for e in entries] == [expected_id], entries
    e = entries[0]
    assert e["id"].startswith(f"t{suffix}."), e["id"]
    assert spiffe_id_str(e["parent_id"]) == \
        f"spiffe://{TRUST_DOMAIN}/spire/agent/k8s_psat/{CLUSTER}/{node.metadata.uid}"
    selectors = sorted(f"{s['type']}:{s['value']}" for s in e["selectors"])
    # the pod is pinned by its UID; the node by the parent ID
    assert selectors == [f"k8s:pod-uid:{upf.metadata.uid}"], selectors

    # The foreign-class ClusterSPIFFEID was never touched by this controller.
    other = kube.custom().get_cluster_custom_object("spire.spiffe.io", "v1alpha1",
                                                    "clusterspiffeids", f"smf-{suffix}")
    assert not (other.get("status") or {}).get("stats"), other.get("status")

    # Deleting the pod removes its entry (the controller owns what it created).
    kube.core().delete_namespaced_pod("upf-0", ns, grace_period_seconds=0)
    wait_until(lambda: server.entries() == [], 60, "the entry to be removed after the pod is deleted",
               proc=scm.proc)

    for name in (f"upf-{suffix}", f"smf-{suffix}"):
        kube.kubectl("delete", "clusterspiffeid", name)

"""A real kube-apiserver accepts the upstream CRDs and a ClusterSPIFFEID
through `kubectl apply --server-side` (schema validation on), and rejects one
that breaks the upstream schema."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.real

CLUSTER_SPIFFE_ID = """\
apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata:
  name: upf-identity
spec:
  className: spiffe-kpt
  spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"
  podSelector:
    matchLabels:
      app.kubernetes.io/name: upf
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: free5gc
  workloadSelectorTemplates:
    - "k8s:ns:{{ .PodMeta.Namespace }}"
    - "k8s:sa:{{ .PodSpec.ServiceAccountName }}"
  ttl: 1h
  dnsNameTemplates:
    - "{{ .PodMeta.Name }}.free5gc.svc.cluster.local"
"""


def test_upstream_crds_are_established(kube):
    names = kube.kubectl("get", "crd", "-o", "name").stdout.split()
    for crd in ("clusterspiffeids.spire.spiffe.io", "clusterfederatedtrustdomains.spire.spiffe.io",
                "clusterstaticentries.spire.spiffe.io", "controllermanagerconfigs.spire.spiffe.io",
                "authorizationpolicies.security.istio.io", "peerauthentications.security.istio.io"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{crd}" in names


def test_cluster_spiffe_id_applied_server_side(kube):
    out = kube.apply_manifests(CLUSTER_SPIFFE_ID)
    assert "clusterspiffeid.spire.spiffe.io/upf-identity serverside-applied" in out
    obj = kube.custom().get_cluster_custom_object("spire.spiffe.io", "v1alpha1", "clusterspiffeids",
                                                  "upf-identity")
    assert obj["spec"]["spiffeIDTemplate"].endswith("/sa/{{ .PodSpec.ServiceAccountName }}")
    assert obj["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "upf"}}
    # the managed fields show the server-side apply field manager
    assert any(m["manager"] == "spiffe-kpt-tests" and m["operation"] == "Apply"
               for m in obj["metadata"]["managedFields"])
    kube.kubectl("delete", "clusterspiffeid", "upf-identity")


@pytest.mark.parametrize("change, field", [
    # wrong type: a label selector must be an object
    (("  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: upf\n", "  podSelector: app=upf\n"),
     "podSelector"),
    # unknown field: strict field validation
    (("  ttl: 1h\n", "  ttl: 1h\n  notAField: true\n"), "notAField"),
])
def test_schema_violation_is_rejected(kube, change, field):
    """The apiserver really validates against the upstream schema (no --validate=false)."""
    bad = CLUSTER_SPIFFE_ID.replace("name: upf-identity", "name: bad-identity").replace(*change)
    assert bad != CLUSTER_SPIFFE_ID.replace("name: upf-identity", "name: bad-identity")
    p = kube.kubectl("apply", "--server-side", "-f", "-", input=bad, check=False)
    assert p.returncode != 0
    assert field in p.stderr, p.stderr
    p = kube.kubectl("get", "clusterspiffeid", "bad-identity", check=False)
    assert p.returncode != 0 and "NotFound" in p.stderr


def test_istio_policies_applied_server_side(kube):
    kube.ensure_namespace("free5gc")
    out = kube.apply_manifests("""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: upf-allow-smf
  namespace: free5gc
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: upf
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ["example.org/ns/free5gc/sa/smf"]
      to:
        - operation:
            ports: ["8805"]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: free5gc
spec:
  mtls:
    mode: STRICT
""")
    assert "authorizationpolicy.security.istio.io/upf-allow-smf serverside-applied" in out
    assert "peerauthentication.security.istio.io/default serverside-applied" in out

"""The trust-domain migration's four phases on the 5G core's AMF and SMF packages
(core.telco-operator.net -> telco.operator), rendered in process through kpt's wire format.

Expected values are written out by hand below (read against the phase definitions in
api/migration.py and the README), never taken from the code under test.
"""

from __future__ import annotations

from spiffe_kpt.krm import yamlio

from ..pkgtools import find, of_kind
from .helpers import A, B, csi_driver, principals, render, set_phase, spiffeids, through, without_paths

AMF_A = f"spiffe://{A}/cluster/regional/ns/free5gc-cp/sa/amf-regional"
AMF_B = f"spiffe://{B}/cluster/regional/ns/free5gc-cp/sa/amf-regional"
SMF_PRINCIPAL_A = f"{A}/cluster/regional/ns/free5gc-cp/sa/smf-regional"
SMF_PRINCIPAL_B = f"{B}/cluster/regional/ns/free5gc-cp/sa/smf-regional"
TEMPLATE = ("spiffe://{{ .TrustDomain }}/cluster/{{ .ClusterName }}/ns/{{ .PodMeta.Namespace }}/sa/"
            "{{ .PodSpec.ServiceAccountName }}")
# What the AMF's registration is without a migration (blueprints/examples/5g-core/amf/.expected).
AMF_SPEC = {
    "className": "spire-regional",
    "spiffeIDTemplate": TEMPLATE,
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "free5gc-cp"}},
    "podSelector": {"matchLabels": {"name": "amf-regional"}},
    "ttl": "1h",
    "dnsNameTemplates": ["amf-regional-namf.free5gc-cp.svc"],
}
NETWORK_KINDS = ("NetworkPolicy", "MultiNetworkPolicy")
CONDITION = "workloadidentity.nephio.org/v1alpha1.IdentityContext.identity-context.migration"


def test_prepare_changes_nothing_for_workloads() -> None:
    plain, _ = through("amf", None)
    prepared, _ = through("amf", "prepare")
    kinds = ("ClusterSPIFFEID", "ClusterFederatedTrustDomain", "AuthorizationPolicy", "PeerAuthentication",
             "NetworkPolicy", "MultiNetworkPolicy", "Deployment", "ServiceAccount")
    assert without_paths(prepared, kinds) == without_paths(plain, kinds)
    wi = find(prepared, "WorkloadIdentity", "amf-regional")
    assert wi["status"]["spiffeID"] == AMF_A
    assert wi["status"]["migration"] == {"phase": "prepare", "to": B}
    kf = next(o for o in prepared if o["kind"] == "Kptfile")
    cond = next(c for c in kf["status"]["conditions"] if c["type"] == CONDITION)
    assert cond["reason"] == "PhasePrepare"
    assert cond["message"] == f"trust domain migration {A} -> {B}: phase prepare"


def test_dual_registers_every_identity_in_both_domains_and_accepts_both_ids() -> None:
    plain, _ = through("amf", None)
    items, _ = through("amf", "prepare", "dual")
    assert spiffeids(items) == {
        "free5gc-cp.amf-regional": {**AMF_SPEC, "federatesWith": [B]},
        "free5gc-cp.amf-regional.telco-operator": {**AMF_SPEC, "className": "spire-regional-telco-operator",
                                                   "federatesWith": [A]},
    }
    twin = find(items, "ClusterSPIFFEID", "free5gc-cp.amf-regional.telco-operator")
    assert twin["metadata"]["labels"] == {"spire.spiffe.io/class-name": "spire-regional-telco-operator"}
    # Istio accepts the SMF by both IDs; the network policies do not change.
    assert principals(items, "amf-regional") == [SMF_PRINCIPAL_A, SMF_PRINCIPAL_B]
    assert without_paths(items, NETWORK_KINDS) == without_paths(plain, NETWORK_KINDS)
    # The pods still present A: A's CSI driver, status.spiffeID the A ID.
    assert csi_driver(items, "amf-regional") == "csi.spiffe.io"
    wi = find(items, "WorkloadIdentity", "amf-regional")
    assert wi["status"]["spiffeID"] == AMF_A
    assert wi["status"]["migration"] == {"phase": "dual", "to": B, "alternateSPIFFEID": AMF_B}


def test_cutover_presents_b_and_still_accepts_a() -> None:
    dual, _ = through("amf", "prepare", "dual")
    items, _ = through("amf", "prepare", "dual", "cutover")
    assert spiffeids(items) == spiffeids(dual)
    assert csi_driver(items, "amf-regional") == "telco-operator.csi.spiffe.io"
    wi = find(items, "WorkloadIdentity", "amf-regional")
    assert wi["status"]["spiffeID"] == AMF_B
    assert wi["status"]["migration"] == {"phase": "cutover", "to": B, "alternateSPIFFEID": AMF_A}
    assert principals(items, "amf-regional") == [SMF_PRINCIPAL_A, SMF_PRINCIPAL_B]
    kf = next(o for o in items if o["kind"] == "Kptfile")
    conds = {c["type"]: c for c in kf["status"]["conditions"]}
    assert conds["workloadidentity.nephio.org/v1alpha1.WorkloadIdentity.amf-regional"]["message"] == AMF_B


def _renamed(items: list[dict]) -> list[dict]:
    """The author's (or spiffe-kpt-migrate's) edit for complete: the rules name the peers in B."""
    text = yamlio.dump(items).replace(f"spiffe://{A}/", f"spiffe://{B}/")
    return yamlio.load(text)


def test_complete_leaves_only_b() -> None:
    items, _ = through("amf", "prepare", "dual", "cutover")
    items, results, code = render(set_phase(_renamed(items), "complete"))
    assert code == 0, [r["message"] for r in results if r["severity"] == "error"]
    assert spiffeids(items) == {"free5gc-cp.amf-regional.telco-operator": {
        **AMF_SPEC, "className": "spire-regional-telco-operator"}}
    assert principals(items, "amf-regional") == [SMF_PRINCIPAL_B]
    assert csi_driver(items, "amf-regional") == "telco-operator.csi.spiffe.io"
    wi = find(items, "WorkloadIdentity", "amf-regional")
    assert wi["status"]["spiffeID"] == AMF_B
    assert wi["status"]["migration"] == {"phase": "complete", "to": B}
    # A is named nowhere the cluster sees (only the IdentityContext, local config, records the origin).
    applied = [o for o in items if (o["metadata"].get("annotations") or {}).get(
        "config.kubernetes.io/local-config") != "true" and o["kind"] != "Kptfile"]
    assert A not in yamlio.dump(applied)
    kf = next(o for o in items if o["kind"] == "Kptfile")
    assert not [c for c in kf["status"]["conditions"] if c["type"].startswith("spire.spiffe.io/v1alpha1.")
                and c["type"].endswith("free5gc-cp.amf-regional")]


def test_federation_peers_get_a_twin_for_b_controller() -> None:
    """The UPF federates with mgmt.telco-operator.net: B's controller needs that federation too."""
    items, _ = through("upf", "prepare", "dual")
    ftds = {o["metadata"]["name"]: o["spec"] for o in of_kind(items, "ClusterFederatedTrustDomain")}
    assert set(ftds) == {"mgmt.telco-operator.net", "mgmt.telco-operator.net.telco-operator"}
    a, b = ftds["mgmt.telco-operator.net"], ftds["mgmt.telco-operator.net.telco-operator"]
    assert a["className"] == "spire-edge01" and b["className"] == "spire-edge01-telco-operator"
    assert {k: v for k, v in a.items() if k != "className"} == {k: v for k, v in b.items() if k != "className"}
    regs = spiffeids(items)
    assert regs["free5gc-upf.upf-edge01"]["federatesWith"] == ["mgmt.telco-operator.net", B]
    assert regs["free5gc-upf.upf-edge01.telco-operator"]["federatesWith"] == ["mgmt.telco-operator.net", A]


def test_rendering_a_phase_twice_changes_nothing() -> None:
    for phases in (("prepare",), ("prepare", "dual"), ("prepare", "dual", "cutover")):
        once, _ = through("smf", *phases)
        twice, _, code = render(once)
        assert code == 0
        assert yamlio.dump(twice) == yamlio.dump(once)


def test_stepping_back_one_phase_is_allowed_and_restores_a() -> None:
    items, _ = through("amf", "prepare", "dual", "cutover", "dual")
    assert csi_driver(items, "amf-regional") == "csi.spiffe.io"
    assert find(items, "WorkloadIdentity", "amf-regional")["status"]["spiffeID"] == AMF_A


def test_linkerd_and_in_package_peers_accept_both_ids_in_dual() -> None:
    """authz-5g-like runs every backend; its AMF admits the package's own SMF (an 'identity' peer)."""
    from ..pkgtools import EXAMPLES, read_package
    items = read_package(EXAMPLES / "authz-5g-like")
    for phase in ("prepare", "dual"):
        items, results, code = render(set_phase(items, phase))
        assert code == 0, [r["message"] for r in results if r["severity"] == "error"]
    authn = next(o for o in of_kind(items, "MeshTLSAuthentication") if o["metadata"]["name"] == "amf-sbi")
    smf = "ns/core-cp/sa/smf"  # the istio ID format
    assert authn["spec"]["identities"] == [f"spiffe://{A}/{smf}", f"spiffe://{B}/{smf}"]
    assert principals(items, "amf") == [f"{A}/{smf}", f"{B}/{smf}"]

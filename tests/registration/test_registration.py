"""spiffe-registration: ownership (replace, delete, never overwrite), waiting identities, every
bad input of the issue (federation peers, static entries) and the spire-controller-manager
pitfalls the validator reports. Each error asserts message, resourceRef, field and exit code 1."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path

import pytest

from spiffe_kpt.krm import yamlio
from spiffe_kpt.registration import register

from ..bundles import NOW, bundle_doc, bundle_text, ca_cert, trust_bundle
from ..pkgtools import (
    EXAMPLES,
    WI_API,
    assert_failed_untouched,
    copy_package,
    find,
    git_diff,
    git_snapshot,
    items_of,
    kpt_render,
    kpt_render_refused,
    of_kind,
    run,
    the_result,
)
from .helpers import SPIRE_API, render_chain

OWNER = "workloadidentity.nephio.org/owner"


def rendered(name: str = "oran-focom-ims") -> list[dict]:
    items, results, code = render_chain(items_of(name))
    assert code == 0, results
    return items


def context(items: list[dict]) -> dict:
    return next(i for i in items if i["kind"] == "IdentityContext")


# ---- generation -------------------------------------------------------------------------------

def test_one_clusterspiffeid_per_identity_with_the_svid_options() -> None:
    items = rendered()
    focom = find(items, "ClusterSPIFFEID", "oran-smo.focom")
    assert focom["spec"] == {
        "className": "spire-smo-mgmt",
        "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/cluster/{{ .ClusterName }}/ns/{{ .PodMeta.Namespace }}"
                            "/sa/{{ .PodSpec.ServiceAccountName }}",
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "oran-smo"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "focom"}},
        "ttl": "1h", "jwtTtl": "5m"}
    assert focom["metadata"]["labels"] == {"spire.spiffe.io/class-name": "spire-smo-mgmt"}
    ann = focom["metadata"]["annotations"]
    assert ann[OWNER] == ann["specializer.nephio.org/owner"] == f"{WI_API}.WorkloadIdentity.focom"
    assert ann["config.kubernetes.io/path"] == "registration/clusterspiffeid-oran-smo.focom.yaml"
    assert "fallback" not in focom["spec"], "generated registrations are never fallbacks"


def test_admin_downstream_hint_federates_with() -> None:
    items = items_of("oran-focom-ims")
    # federatesWith must name a federation peer of the context (tests/test_input_mistakes.py).
    find(items, "IdentityContext", "identity-context")["spec"]["federation"] = [
        {"trustDomain": "smo.partner.net", "bundleEndpointURL": "https://spire.smo.partner.net:8443",
         "bundleEndpointProfile": {"type": "https_web"}}]
    find(items, "WorkloadIdentity", "ims")["spec"]["svid"].update(
        admin=True, downstream=True, hint="o2ims", federatesWith=["smo.partner.net"], jwtTTL="10m")
    spec = find(rendered_from(items), "ClusterSPIFFEID", "oran-smo.ims")["spec"]
    assert (spec["admin"], spec["downstream"], spec["hint"], spec["federatesWith"], spec["jwtTtl"]) == \
        (True, True, "o2ims", ["smo.partner.net"], "10m")


def rendered_from(items: list[dict]) -> list[dict]:
    out, results, code = render_chain(items)
    assert code == 0, results
    return out


def test_kptfile_gets_a_condition_per_child_with_the_owner_as_reason() -> None:
    kf = find(rendered(), "Kptfile", "oran-focom-ims")
    cond = next(c for c in kf["status"]["conditions"] if c["type"] == f"{SPIRE_API}.ClusterSPIFFEID.oran-smo.ims")
    assert cond["status"] == "True" and cond["reason"] == f"{WI_API}.WorkloadIdentity.ims"


def test_two_workloads_sharing_a_service_account_get_selectors_that_tell_them_apart() -> None:
    items = rendered("observability")
    gw = find(items, "ClusterSPIFFEID", "observability.metrics-gateway")["spec"]
    prom = find(items, "ClusterSPIFFEID", "observability.prometheus")["spec"]
    assert gw["podSelector"] != prom["podSelector"]
    assert gw["spiffeIDTemplate"].endswith('/app/{{ index .PodMeta.Labels "app.kubernetes.io/name" }}')


# ---- ownership --------------------------------------------------------------------------------

def test_rerender_replaces_in_place_and_is_idempotent() -> None:
    items = rendered()
    again = rendered_from(copy.deepcopy(items))
    assert yamlio.dump(again) == yamlio.dump(items)
    find(items, "WorkloadIdentity", "focom")["spec"]["svid"]["x509TTL"] = "30m"
    before = [(i["kind"], i["metadata"]["name"]) for i in items]
    out = rendered_from(items)
    assert [(i["kind"], i["metadata"]["name"]) for i in out] == before, "replaced in place, order kept"
    assert find(out, "ClusterSPIFFEID", "oran-smo.focom")["spec"]["ttl"] == "30m"


def test_removed_identity_loses_its_registration_and_condition() -> None:
    items = [i for i in rendered() if not (i["kind"] == "WorkloadIdentity" and i["metadata"]["name"] == "ims")]
    doc, code = run(items, register)
    assert code == 0
    out = doc["items"]
    assert [i["metadata"]["name"] for i in of_kind(out, "ClusterSPIFFEID")] == ["oran-smo.focom"]
    conds = find(out, "Kptfile", "oran-focom-ims")["status"]["conditions"]
    assert not any(c["type"].endswith("ClusterSPIFFEID.oran-smo.ims") for c in conds)
    assert any("deleted ClusterSPIFFEID oran-smo.ims" in r["message"] for r in doc["results"])


def test_hand_written_clusterspiffeid_with_the_same_name_is_an_error_not_overwritten() -> None:
    items = items_of("oran-focom-ims")
    mine = {"apiVersion": SPIRE_API, "kind": "ClusterSPIFFEID",
            "metadata": {"name": "oran-smo.focom", "annotations": {"config.kubernetes.io/path": "mine.yaml",
                                                                     "internal.config.kubernetes.io/path": "mine.yaml"}},
            "spec": {"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/hand/written"}}
    items.append(mine)
    specialized, _, _ = render_chain(items, ["spiffe-specializer", "spiffe-attestation"])
    doc, code = run(specialized, register)
    assert_failed_untouched(doc, code, specialized)
    r = the_result(doc, "error", "ClusterSPIFFEID", "oran-smo.focom", "metadata.name",
                   "not generated by spiffe-kpt", "not overwritten", "WorkloadIdentity.focom")
    assert r["file"]["path"] == "mine.yaml"


def test_waiting_identities_get_nothing_and_an_info() -> None:
    items = items_of("blueprint-awaiting-injection")
    out, results, code = render_chain(items)
    assert code == 0
    assert not [i for i in out if i["apiVersion"] == SPIRE_API]
    assert any(r["severity"] == "info" and r["message"].startswith("no registration yet for focom, ims")
               for r in results)


def test_context_going_missing_deletes_generated_registrations() -> None:
    items = rendered()
    context(items)["spec"]["trustDomain"] = ""
    doc, code = run(items, register)
    assert code == 0
    assert not [i for i in doc["items"] if i["apiVersion"] == SPIRE_API]


# ---- federation peers -------------------------------------------------------------------------

def _with_peer(peer: dict) -> list[dict]:
    items = items_of("oran-focom-ims")
    context(items)["spec"]["federation"] = [peer]
    return items


GOOD_PEER = {"trustDomain": "core.telco-operator.net", "bundleEndpointURL": "https://bundle.core.telco-operator.net",
             "bundleEndpointProfile": {"type": "https_spiffe",
                                       "endpointSPIFFEID": "spiffe://core.telco-operator.net/spire/server"}}


@pytest.mark.parametrize("url", ["http://bundle.core.telco-operator.net", "https://user:pw@bundle.core.telco-operator.net",
                                 "bundle.core.telco-operator.net"])
def test_federation_peer_with_a_non_https_url(url: str) -> None:
    items = _with_peer({**GOOD_PEER, "bundleEndpointURL": url})
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[0].bundleEndpointURL",
               "is not an https:// URL without user info")


def test_federation_peer_https_spiffe_without_endpoint_id() -> None:
    items = _with_peer({**GOOD_PEER, "bundleEndpointProfile": {"type": "https_spiffe"}})
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "IdentityContext", "identity-context",
               "spec.federation[0].bundleEndpointProfile.endpointSPIFFEID",
               "https_spiffe", "no bundleEndpointProfile.endpointSPIFFEID",
               "spiffe://core.telco-operator.net/spire/server")


def test_federation_peer_https_web_with_endpoint_id() -> None:
    items = _with_peer({**GOOD_PEER, "bundleEndpointProfile": {**GOOD_PEER["bundleEndpointProfile"], "type": "https_web"}})
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "IdentityContext", "identity-context",
               "spec.federation[0].bundleEndpointProfile.endpointSPIFFEID", "https_web", "Remove it")


def test_federation_peer_that_is_the_own_trust_domain_or_repeated() -> None:
    items = items_of("oran-focom-ims")
    context(items)["spec"]["federation"] = [GOOD_PEER, GOOD_PEER,
                                            {**GOOD_PEER, "trustDomain": "smo.telco-operator.net"}]
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[1].trustDomain", "repeats")
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[2].trustDomain",
               "own trust domain")


def test_federation_peer_emits_a_cluster_federated_trust_domain() -> None:
    doc = bundle_doc(PEER_TD)
    out = rendered_from(_with_peer({**GOOD_PEER, "trustDomainBundle": json.dumps(doc)}))
    cftd = find(out, "ClusterFederatedTrustDomain", "core.telco-operator.net")
    assert cftd["spec"]["bundleEndpointProfile"]["endpointSPIFFEID"] == "spiffe://core.telco-operator.net/spire/server"
    assert json.loads(cftd["spec"]["trustDomainBundle"]) == doc
    assert cftd["metadata"]["annotations"][OWNER] == f"{WI_API}.IdentityContext.identity-context"


def test_an_inline_bundle_is_checked_like_a_committed_one() -> None:
    # an empty JWKS used to be passed through; spire-controller-manager would then federate with nothing
    items = _with_peer({**GOOD_PEER, "trustDomainBundle": '{"keys": []}'})
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[0].trustDomainBundle",
               "keys: a SPIFFE bundle needs a non-empty 'keys' list")


# ---- GitOps federation: the peer's bundle committed as a TrustBundle ---------------------------

PEER_TD = GOOD_PEER["trustDomain"]


def _with_trust_bundle(bundle: str | dict, td: str = PEER_TD, ref: str = "core-operator", **spec) -> list[dict]:
    items = _with_peer({**GOOD_PEER, "trustBundle": ref})
    items.append(trust_bundle("core-operator", td, bundle, **spec))
    return items


def test_a_committed_trust_bundle_becomes_the_trust_domain_bundle() -> None:
    doc = bundle_doc(PEER_TD)
    items = _with_trust_bundle(json.dumps(doc, indent=4))
    out, results, code = render_chain(items)
    assert code == 0, results
    cftd = find(out, "ClusterFederatedTrustDomain", "core.telco-operator.net")
    assert json.loads(cftd["spec"]["trustDomainBundle"]) == doc
    assert cftd["spec"]["bundleEndpointURL"] == GOOD_PEER["bundleEndpointURL"]
    # the TrustBundle stays local config: nothing of it but the bundle text reaches the cluster
    tb = find(out, "TrustBundle", "core-operator")
    assert tb["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    assert not [r for r in results if r.get("severity") in ("error", "warning")], results
    # the same bundle written as a YAML mapping renders the same text; rendering twice changes nothing
    out2, _, code2 = render_chain(_with_trust_bundle(doc))
    assert code2 == 0
    assert find(out2, "ClusterFederatedTrustDomain", "core.telco-operator.net") == cftd
    out3, _, code3 = render_chain(out)
    assert code3 == 0 and yamlio.dump(out3) == yamlio.dump(out)


def test_a_trust_bundle_for_another_trust_domain_is_refused() -> None:
    items = _with_trust_bundle(bundle_text("telco.example"), td="telco.example")
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[0].trustBundle",
               "TrustBundle core-operator", "'telco.example'", f"not of the peer {PEER_TD!r}")
    # spec.trustDomain says the peer, but the authorities belong elsewhere
    items = _with_trust_bundle(bundle_text("telco.example"))
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "TrustBundle", "core-operator", "spec.bundle", "keys[0].x5c[0]",
               "belongs to trust domain 'telco.example'")


def test_an_unparseable_or_expired_trust_bundle_is_refused() -> None:
    items = _with_trust_bundle('{"keys": [')
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "TrustBundle", "core-operator", "spec.bundle", "not JSON")
    expired = ca_cert(PEER_TD, not_before=NOW - timedelta(days=2), not_after=NOW - timedelta(minutes=5))[0]
    items = _with_trust_bundle(bundle_doc(PEER_TD, certs=[expired]))
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    # a bundle written as a mapping has a real field path down to the certificate
    the_result(doc, "error", "TrustBundle", "core-operator", "spec.bundle.keys[0].x5c[0]", "expired at")


def test_a_missing_or_ambiguous_trust_bundle_is_refused() -> None:
    items = _with_trust_bundle(bundle_text(PEER_TD), ref="core-operater")
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[0].trustBundle",
               "'core-operater', which is not in the package (the package has: core-operator)")
    items = _with_trust_bundle(bundle_text(PEER_TD))
    items.append(trust_bundle("core-operator", PEER_TD, bundle_text(PEER_TD)))
    doc, code = run(items, register)
    assert code == 1
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[0].trustBundle", "2 times")
    items = _with_trust_bundle(bundle_text(PEER_TD))
    context(items)["spec"]["federation"][0]["trustDomainBundle"] = bundle_text(PEER_TD)
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[0].trustDomainBundle",
               "both trustBundle and trustDomainBundle")
    items = _with_trust_bundle(bundle_text(PEER_TD), refreshInterval="30d")
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "TrustBundle", "core-operator", "spec.refreshInterval", "Go duration")


def test_an_authority_expiring_before_the_next_refresh_is_a_warning() -> None:
    soon = ca_cert(PEER_TD, not_after=NOW + timedelta(days=3))[0]
    items = _with_trust_bundle(bundle_text(PEER_TD, certs=[soon]))
    doc, code = run(items, register)
    assert code == 0
    the_result(doc, "warning", "TrustBundle", "core-operator", "spec.bundle", "keys[0].x5c[0]",
               "before the next expected refresh (the refresh interval of 720h)")
    assert find(doc["items"], "ClusterFederatedTrustDomain", "core.telco-operator.net")["spec"]["trustDomainBundle"]
    # a package refreshed more often than the authority lives says so, and the warning goes
    doc, code = run(_with_trust_bundle(bundle_text(PEER_TD, certs=[soon]), refreshInterval="48h"), register)
    assert code == 0 and not [r for r in doc.get("results", []) if r.get("severity") == "warning"]


# ---- static entries ---------------------------------------------------------------------------

def _with_static(spec: dict) -> list[dict]:
    items = items_of("oran-focom-ims")
    items.append({"apiVersion": WI_API, "kind": "StaticIdentity",
                  "metadata": {"name": "edge-camera", "annotations": {"config.kubernetes.io/local-config": "true"}},
                  "spec": spec})
    return items


GOOD_STATIC = {"spiffeID": "/edge/site-7/camera", "parentID": "/spire/agent/x509pop/abc",
               "selectors": ["unix:uid:1000"]}


def test_static_entry_without_selectors() -> None:
    for spec in ({k: v for k, v in GOOD_STATIC.items() if k != "selectors"}, {**GOOD_STATIC, "selectors": []}):
        items = _with_static(spec)
        doc, code = run(items, register)
        assert_failed_untouched(doc, code, items)
        the_result(doc, "error", "StaticIdentity", "edge-camera", "spec.selectors",
                   "without selectors any process on the parent's machine could claim the identity")


def test_static_entry_without_parent() -> None:
    items = _with_static({k: v for k, v in GOOD_STATIC.items() if k != "parentID"})
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "StaticIdentity", "edge-camera", "spec.parentID", "spec.parentID is missing",
               "/spire/agent/x509pop/")


def test_static_entry_outside_the_trust_domain_and_bad_selector() -> None:
    items = _with_static({**GOOD_STATIC, "spiffeID": "spiffe://other.net/camera"})
    doc, code = run(items, register)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "StaticIdentity", "edge-camera", "spec.spiffeID", "not in this cluster's trust domain")
    items = _with_static({**GOOD_STATIC, "selectors": ["uid1000"]})
    doc, code = run(items, register)
    the_result(doc, "error", "StaticIdentity", "edge-camera", "spec.selectors[0]", "a SPIRE selector 'type:value'")


def test_static_entry_gets_the_context_trust_domain() -> None:
    out = rendered_from(_with_static({**GOOD_STATIC, "x509TTL": "24h", "storeSVID": True}))
    cse = find(out, "ClusterStaticEntry", "edge-camera")["spec"]
    assert cse == {"className": "spire-smo-mgmt", "spiffeID": "spiffe://smo.telco-operator.net/edge/site-7/camera",
                   "parentID": "spiffe://smo.telco-operator.net/spire/agent/x509pop/abc",
                   "selectors": ["unix:uid:1000"], "x509SVIDTTL": "24h", "storeSVID": True}


# ---- spire-controller-manager pitfalls, reported by the validator ------------------------------

def test_class_name_defaults_to_the_spire_packages_name_for_the_cluster() -> None:
    """No className: spire-<clusterName>, the className blueprints/spire gives the cluster's
    controller manager, so the two halves agree without configuration; no warning."""
    items = items_of("oran-focom-ims")
    del context(items)["spec"]["className"]
    out = rendered_from(items)
    assert find(out, "ClusterSPIFFEID", "oran-smo.focom")["spec"]["className"] == "spire-smo-mgmt"
    doc, code = run(out, "spiffe-validator")
    assert code == 0
    assert not [r for r in doc.get("results", []) if (r.get("field") or {}).get("path") == "spec.className"]


def test_validator_warns_when_the_context_has_no_class_name_and_no_cluster() -> None:
    """Without a cluster name there is nothing to default from: registrations carry no className,
    which a controller with a className ignores silently; the validator says so."""
    items = [i for i in items_of("oran-focom-ims") if i["kind"] != "WorkloadCluster"]
    spec = context(items)["spec"]
    del spec["className"]
    spec.pop("clusterName", None)
    spec["idFormat"] = "istio"
    out = rendered_from(items)
    assert "className" not in find(out, "ClusterSPIFFEID", "oran-smo.focom")["spec"]
    doc, code = run(out, "spiffe-validator")
    assert code == 0
    the_result(doc, "warning", "IdentityContext", "identity-context", "spec.className", "ignores them silently",
               "watchClassless")


def test_validator_errors_on_a_class_name_mismatch() -> None:
    out = rendered()
    context(out)["spec"]["className"] = "other-class"
    doc, code = run(out, "spiffe-validator")
    assert code == 1
    the_result(doc, "error", "ClusterSPIFFEID", "oran-smo.focom", "spec.className", "'spire-smo-mgmt'", "'other-class'",
               "ignores resources of another class")


def test_validator_errors_on_an_id_outside_the_controllers_trust_domain() -> None:
    out = rendered()
    out.append({"apiVersion": SPIRE_API, "kind": "ClusterSPIFFEID", "metadata": {"name": "legacy"},
                "spec": {"className": "spire-smo-mgmt", "spiffeIDTemplate": "spiffe://example.org/ns/{{ .PodMeta.Namespace }}",
                         "podSelector": {"matchLabels": {"legacy": "true"}}}})
    doc, code = run(out, "spiffe-validator")
    assert code == 1
    the_result(doc, "error", "ClusterSPIFFEID", "legacy", "spec.spiffeIDTemplate", "'example.org'",
               "rejects every ID outside its own trust domain")


def test_validator_warns_on_a_hand_written_non_fallback_clusterspiffeid_selecting_our_pods() -> None:
    out = rendered()
    catch_all = {"apiVersion": SPIRE_API, "kind": "ClusterSPIFFEID", "metadata": {"name": "default"},
                 "spec": {"className": "spire-smo-mgmt",
                          "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/x"}}
    doc, code = run(out + [catch_all], "spiffe-validator")
    assert code == 0
    the_result(doc, "warning", "ClusterSPIFFEID", "default", "spec.podSelector", "two entries", "fallback: true")
    catch_all["spec"]["fallback"] = True
    doc, _ = run(out + [catch_all], "spiffe-validator")
    assert not [r for r in doc["results"] if r["severity"] == "warning"]


def test_validator_errors_on_stale_registrations() -> None:
    out = rendered()
    find(out, "WorkloadIdentity", "focom")["spec"]["svid"]["x509TTL"] = "2h"
    doc, code = run(out, "spiffe-validator")
    assert code == 1
    the_result(doc, "error", "ClusterSPIFFEID", "oran-smo.focom", "spec", "stale", "run spiffe-registration")


def test_validator_warns_about_namespaces_the_controller_ignores() -> None:
    items = items_of("oran-focom-ims")
    for i in items:
        if i.get("metadata", {}).get("namespace") == "oran-smo":
            i["metadata"]["namespace"] = "kube-system"
    doc, code = run(rendered_from(items), "spiffe-validator")
    assert code == 0
    the_result(doc, "warning", "WorkloadIdentity", "focom", "spec.namespace", "ignoreNamespaces")


# ---- the real kpt ----------------------------------------------------------------------------

@pytest.mark.kpt
def test_kpt_render_fails_on_a_hand_written_conflict_and_writes_nothing(tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "5g-core" / "upf", tmp_path / "upf")
    (pkg / "mine.yaml").write_text(
        "apiVersion: spire.spiffe.io/v1alpha1\nkind: ClusterSPIFFEID\nmetadata:\n  name: free5gc-upf.upf-edge01\n"
        "spec:\n  spiffeIDTemplate: spiffe://{{ .TrustDomain }}/upf\n")
    git_snapshot(pkg)
    r = kpt_render(pkg)
    assert r.exit_code == 1
    assert git_diff(pkg) == ""
    err = next(x for x in r.results if x.get("severity") == "error")
    assert err["resourceRef"]["name"] == "free5gc-upf.upf-edge01" and err["field"]["path"] == "metadata.name"
    assert "not overwritten" in err["message"] and err["file"]["path"] == "mine.yaml"


def _controller_config(**fields: str) -> dict:
    body = "apiVersion: spire.spiffe.io/v1alpha1\nkind: ControllerManagerConfig\n" + \
        "".join(f"{k}: {v}\n" for k, v in fields.items())
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "spire-controller-manager", "namespace": "spire"},
            "data": {"controller-manager-config.yaml": body}}


def test_validator_checks_a_controller_config_in_the_package_entry_id_prefix() -> None:
    out = rendered()
    good = dict(className="spire-smo-mgmt", trustDomain="smo.telco-operator.net", clusterName="smo-mgmt")
    doc, code = run(out + [_controller_config(**good, entryIDPrefix="smo-mgmt")], "spiffe-validator")
    assert code == 0 and not [r for r in doc["results"] if r["severity"] != "info"]
    doc, code = run(out + [_controller_config(**good)], "spiffe-validator")
    assert code == 0
    the_result(doc, "warning", "ConfigMap", "spire-controller-manager", "data.controller-manager-config.yaml",
               "no entryIDPrefix", "deletes every registration entry")
    doc, code = run(out + [_controller_config(**{**good, "className": "spire"}, entryIDPrefix="x")], "spiffe-validator")
    assert code == 1
    the_result(doc, "error", "ConfigMap", "spire-controller-manager", "data.controller-manager-config.yaml",
               "className 'spire'", "'spire-smo-mgmt'", "ignore every registration")


def test_a_trust_bundle_must_stay_local_config() -> None:
    items = _with_trust_bundle(bundle_text(PEER_TD))
    del items[-1]["metadata"]["annotations"]
    doc, code = run(items, "spiffe-validator")
    assert code == 1
    the_result(doc, "error", "TrustBundle", "core-operator", "metadata.annotations",
               "lacks the annotation config.kubernetes.io/local-config")


@pytest.mark.kpt
def test_kpt_renders_a_committed_bundle_through_the_whole_pipeline(tmp_path: Path) -> None:
    """The observability example's core peer federated from a TrustBundle file, with the real kpt
    and the example's whole pipeline (specializer to validator, which refuse unknown kinds)."""
    pkg = copy_package(EXAMPLES / "observability", tmp_path / "observability")
    doc = bundle_doc(PEER_TD)
    (pkg / "bundles").mkdir()
    (pkg / "bundles" / "core.yaml").write_text(yamlio.dump(trust_bundle("core-operator", PEER_TD, json.dumps(doc))))
    ctx = pkg / "cluster-context.yaml"
    text = ctx.read_text()
    anchor = "      endpointSPIFFEID: spiffe://core.telco-operator.net/spire/server\n"
    assert anchor in text
    ctx.write_text(text.replace(anchor, anchor + "    trustBundle: core-operator\n"))
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr
    cftd = yamlio.load((pkg / "registration" / "federation-core.telco-operator.net.yaml").read_text())
    assert json.loads(cftd["spec"]["trustDomainBundle"]) == doc
    other = yamlio.load((pkg / "registration" / "federation-noc.partner-carrier.net.yaml").read_text())
    assert "trustDomainBundle" not in other["spec"]
    # a bundle of another domain under the same name: the render fails and changes nothing
    (pkg / "bundles" / "core.yaml").write_text(yamlio.dump(trust_bundle("core-operator", PEER_TD,
                                                                        bundle_text("noc.partner-carrier.net"))))
    errors = kpt_render_refused(pkg)
    assert any(e["resourceRef"]["kind"] == "TrustBundle" and e["field"]["path"] == "spec.bundle"
               and "belongs to trust domain 'noc.partner-carrier.net'" in e["message"] for e in errors), errors

"""Every bad input of the identity core gets an error result naming resource and field, exit 1."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from spiffe_kpt.specializer import specialize
from spiffe_kpt.validator import validate_package

from .pkgtools import (
    EXAMPLES,
    copy_package,
    errors,
    find,
    kpt_render_refused,
    read_package,
    replace_in,
    run,
    the_result,
)


def base_items() -> list[dict[str, Any]]:
    return read_package(EXAMPLES / "oran-focom-ims")


def assert_single_error(doc: dict[str, Any], code: int, kind: str, name: str, field: str,
                        *fragments: str) -> dict[str, Any]:
    """Exit 1 and the error about that resource and field, naming the file it came from."""
    assert code == 1
    err = the_result(doc, "error", kind, name, field, *fragments)
    assert err.get("file", {}).get("path"), "the result names the file"
    return err


@pytest.mark.parametrize("fn", [specialize, validate_package], ids=["specializer", "validator"])
def test_unknown_field(fn) -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "focom")["spec"]["serviceAccount"] = "x"
    doc, code = run(items, fn)
    assert_single_error(doc, code, "WorkloadIdentity", "focom", "spec.serviceAccount",
                        "unknown field 'serviceAccount'", "serviceAccountName")


def test_mistyped_field() -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "focom")["spec"]["svid"]["x509TTL"] = 3600
    doc, code = run(items)
    assert_single_error(doc, code, "WorkloadIdentity", "focom", "spec.svid.x509TTL", "must be of type string")


def test_mistyped_workload_kind() -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "focom")["spec"]["workloadRef"]["kind"] = "Service"
    doc, code = run(items)
    assert_single_error(doc, code, "WorkloadIdentity", "focom", "spec.workloadRef.kind", "must be one of Deployment")


@pytest.mark.parametrize("td, fragment", [
    ("Smo.Telco.net", "lowercase: use 'smo.telco.net'"),
    ("spiffe://smo.telco.net", "without the 'spiffe://' scheme"),
    ("smo.telco.net:8081", "a port is not allowed"),
    ("a" * 256, "at most 255"),
])
def test_invalid_trust_domain(td: str, fragment: str) -> None:
    items = base_items()
    find(items, "IdentityContext", "identity-context")["spec"]["trustDomain"] = td
    doc, code = run(items)
    assert_single_error(doc, code, "IdentityContext", "identity-context", "spec.trustDomain", fragment)


def test_template_with_unknown_variable() -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "ims")["spec"]["spiffeID"] = {"format": "template",
                                                                    "template": "/ns/{namespce}/sa/{serviceAccount}"}
    doc, code = run(items)
    assert_single_error(doc, code, "WorkloadIdentity", "ims", "spec.spiffeID.template",
                        "unknown variable {namespce}", "{namespace}")


def test_template_that_yields_an_invalid_id() -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "ims")["spec"]["spiffeID"] = {"format": "template",
                                                                    "template": "/ims/{site}"}
    doc, code = run(items)  # the context sets no site: the ID would end in an empty segment
    assert_single_error(doc, code, "WorkloadIdentity", "ims", "spec.spiffeID.template",
                        "{site} is empty", "IdentityContext spec.site")
    find(items, "WorkloadIdentity", "ims")["spec"]["spiffeID"]["template"] = "/ims/../{namespace}"
    doc, code = run(items)
    assert_single_error(doc, code, "WorkloadIdentity", "ims", "spec.spiffeID.template", "dot segment")


def test_reference_to_a_missing_workload() -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "ims")["spec"]["workloadRef"]["name"] = "imss"
    doc, code = run(items, validate_package)
    assert_single_error(doc, code, "WorkloadIdentity", "ims", "spec.workloadRef.name",
                        "StatefulSet 'imss', which is not in the package", "StatefulSets are: ims")


def test_two_identities_with_the_same_spiffe_id() -> None:
    items = base_items()
    # IMS runs under FOCOM's service account: both resolve to .../sa/focom.
    ims = find(items, "WorkloadIdentity", "ims")
    ims["spec"]["serviceAccountName"] = "focom"
    doc, code = run(items, validate_package)
    sid = "spiffe://smo.telco-operator.net/cluster/smo-mgmt/ns/oran-smo/sa/focom"
    for name, other in (("focom", "ims"), ("ims", "focom")):
        err = assert_single_error(doc, code, "WorkloadIdentity", name, "spec.spiffeID",
                                  f"SPIFFE ID {sid} is also the ID of {other}", "an account of its own")
        assert err["field"].get("currentValue") == sid


def test_selector_label_key_missing_from_the_pod_template() -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "focom")["spec"]["selector"]["labelKeys"].append("app.kubernetes.io/instance")
    doc, code = run(items)
    assert_single_error(doc, code, "WorkloadIdentity", "focom", "spec.selector.labelKeys[1]",
                        "'app.kubernetes.io/instance' is not on the pod template",
                        "app.kubernetes.io/name, app.kubernetes.io/part-of")


def test_contradicting_service_account_names_both_values() -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "focom")["spec"]["serviceAccountName"] = "focom-client"
    doc, code = run(items)
    assert_single_error(doc, code, "WorkloadIdentity", "focom", "spec.serviceAccountName",
                        "'focom-client'", "runs as 'focom'")


def test_contradicting_namespace_names_both_values() -> None:
    items = base_items()
    find(items, "WorkloadIdentity", "focom")["spec"]["namespace"] = "smo"
    doc, code = run(items)
    assert_single_error(doc, code, "WorkloadIdentity", "focom", "spec.namespace", "'smo'", "'oran-smo'")


def test_cluster_name_conflict_between_context_and_workload_cluster() -> None:
    items = base_items()
    find(items, "IdentityContext", "identity-context")["spec"]["clusterName"] = "edge-9"
    doc, code = run(items)
    assert_single_error(doc, code, "IdentityContext", "identity-context", "spec.clusterName",
                        "'edge-9'", "'smo-mgmt'")


def test_duplicate_context() -> None:
    items = base_items()
    extra = copy.deepcopy(find(items, "IdentityContext", "identity-context"))
    extra["metadata"]["name"] = "second"
    items.append(extra)
    doc, code = run(items)
    assert_single_error(doc, code, "IdentityContext", "second", "metadata.name", "keep exactly one")


def test_missing_context_without_injection_point_is_an_error_for_the_validator() -> None:
    items = [i for i in base_items() if i["kind"] != "IdentityContext"]
    doc, code = run(items)  # the specializer only waits: conditions False, exit 0
    assert code == 0
    kptfile = find(doc["items"], "Kptfile", "oran-focom-ims")
    assert {c["status"] for c in kptfile["status"]["conditions"]} == {"False"}
    assert {c["reason"] for c in kptfile["status"]["conditions"]} == {"ContextMissing"}
    doc, code = run(doc["items"], validate_package)
    assert code == 1
    assert any("no IdentityContext" in e["message"] for e in errors(doc))


def test_context_pending_injection_is_a_warning_not_an_error() -> None:
    items = base_items()
    ctx = find(items, "IdentityContext", "identity-context")
    ctx["spec"] = {}
    ctx["metadata"]["annotations"]["kpt.dev/config-injection"] = "required"
    doc, code = run(items)
    assert code == 0
    doc, code = run(doc["items"], validate_package)
    assert code == 0
    assert any(r["severity"] == "warning" and "awaiting porch" in r["message"] for r in doc["results"])


def test_stale_status_is_caught_by_the_validator() -> None:
    doc, code = run(base_items())
    items = doc["items"]
    find(items, "IdentityContext", "identity-context")["spec"]["trustDomain"] = "other.telco.net"
    doc, code = run(items, validate_package)
    assert_single_error(doc, code, "WorkloadIdentity", "focom", "status", "status is stale",
                        "run spiffe-specializer before spiffe-validator")


def test_identity_without_local_config_annotation() -> None:
    items = base_items()
    del find(items, "WorkloadIdentity", "ims")["metadata"]["annotations"]["config.kubernetes.io/local-config"]
    doc, code = run(items, validate_package)
    assert_single_error(doc, code, "WorkloadIdentity", "ims", "metadata.annotations", "local-config")


@pytest.mark.kpt
def test_real_kpt_fails_with_exit_1_and_writes_nothing(tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "pkg")
    replace_in(pkg / "identity-context.yaml", "smo.telco-operator.net", "SMO.telco-operator.net")
    err = kpt_render_refused(pkg)
    assert err and err[0]["resourceRef"]["kind"] == "IdentityContext"
    assert err[0]["field"]["path"] == "spec.trustDomain"
    assert "lowercase" in err[0]["message"]


def test_error_hints_stay_short_in_a_large_package() -> None:
    """A typo in one of many references: the hint lists at most ten names, so neither the message
    nor the error path grows with the package."""
    items = base_items()
    sts = find(items, "StatefulSet", "ims")
    for i in range(30):
        extra = copy.deepcopy(sts)
        extra["metadata"]["name"] = f"ims-{i:02d}"
        extra["metadata"].setdefault("annotations", {}).pop("config.kubernetes.io/index", None)
        items.append(extra)
    find(items, "WorkloadIdentity", "ims")["spec"]["workloadRef"]["name"] = "imss"
    doc, code = run(items, validate_package)
    err = assert_single_error(doc, code, "WorkloadIdentity", "ims", "spec.workloadRef.name",
                              "StatefulSets are: ims, ims-00,", "and 21 more")
    assert "ims-09" not in err["message"] and "ims-29" not in err["message"]

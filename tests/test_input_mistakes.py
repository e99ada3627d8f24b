"""Author mistakes that must not pass silently or lead to the wrong fix: each gets one error naming
resource, field and the fix, exit 1, items intact."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from spiffe_kpt.hydrate import hydrate

from .pkgtools import (
    EXAMPLES,
    REPO,
    WI_API,
    assert_failed_untouched,
    copy_package,
    errors,
    find,
    items_of,
    kpt_render_refused,
    read_package,
    replace_in,
    run,
    the_result,
)
from .registration.helpers import render_chain

READERS = ["spiffe-specializer", "spiffe-attestation", "spiffe-registration", "spiffe-authorization",
           "spiffe-validator", hydrate]
READER_IDS = ["specializer", "attestation", "registration", "authorization", "validator", "hydrate"]


# --- a kind of the project's API group that does not exist ----------------------------

@pytest.mark.parametrize("fn", READERS, ids=READER_IDS)
def test_misspelled_kind_is_an_error_naming_the_closest_kind(fn) -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["kind"] = "WorkloadIdentitiy"
    doc, code = run(copy.deepcopy(items), fn)
    assert_failed_untouched(doc, code, items)
    err = the_result(doc, "error", "WorkloadIdentitiy", "ims", "kind", "'WorkloadIdentitiy'",
                     "did you mean WorkloadIdentity", "ignored")
    assert err["field"]["proposedValue"] == "WorkloadIdentity"
    assert err["file"]["path"] == "ims.yaml"
    assert len(errors(doc)) == 1, errors(doc)


@pytest.mark.parametrize("kind, closest", [("IdentityContex", "IdentityContext"),
                                           ("identitycontext", "IdentityContext"),
                                           ("StaticIdentities", "StaticIdentity"),
                                           ("SpireDeploy", "SpireDeployment")])
def test_each_known_kind_is_proposed(kind: str, closest: str) -> None:
    items = items_of("oran-focom-ims")
    items.append({"apiVersion": WI_API, "kind": kind, "metadata": {"name": "x"}, "spec": {}})
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    the_result(doc, "error", kind, "x", "kind", f"did you mean {closest}?")


def test_a_kind_like_none_lists_the_known_kinds() -> None:
    items = items_of("oran-focom-ims")
    items.append({"apiVersion": WI_API, "kind": "Frobnicator", "metadata": {"name": "x"}})
    doc, code = run(items, "spiffe-validator")
    assert code == 1
    the_result(doc, "error", "Frobnicator", "x", "kind",
               "IdentityContext, SpireDeployment, StaticIdentity, TrustBundle, WorkloadIdentity")


@pytest.mark.parametrize("api_version", ["workloadidentity.nephio.io/v1alpha1", "workloadidentity.nephio.org/v1",
                                         "workloadidentity.nephio.org", "v1alpha1", "v1"])
def test_a_known_kind_under_a_misspelled_api_version_is_an_error(api_version: str) -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["apiVersion"] = api_version
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    err = the_result(doc, "error", "WorkloadIdentity", "ims", "apiVersion", WI_API)
    assert err["field"]["proposedValue"] == WI_API


def test_static_identity_under_another_version_is_an_error() -> None:
    items = items_of("oran-focom-ims")
    items.append({"apiVersion": "workloadidentity.nephio.org/v1beta1", "kind": "StaticIdentity",
                  "metadata": {"name": "edge"}, "spec": {}})
    doc, code = run(items, "spiffe-registration")
    assert code == 1
    the_result(doc, "error", "StaticIdentity", "edge", "apiVersion", WI_API)


def test_an_unknown_kind_of_our_group_without_a_version_is_an_error() -> None:
    items = items_of("oran-focom-ims")
    items.append({"apiVersion": "workloadidentity.nephio.org", "kind": "WorkloadIdentitiy", "metadata": {"name": "x"}})
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    the_result(doc, "error", "WorkloadIdentitiy", "x", "kind", "did you mean WorkloadIdentity?")


def test_a_workload_identity_kind_of_an_unrelated_group_is_not_ours() -> None:
    items = items_of("oran-focom-ims")
    items.append({"apiVersion": "iam.cloud.example.com/v1", "kind": "WorkloadIdentity", "metadata": {"name": "x"}})
    doc, code = run(items, "spiffe-specializer")
    assert code == 0, errors(doc)


# --- federatesWith a trust domain that is not a federation peer -----------------------

@pytest.mark.parametrize("fn", ["spiffe-specializer", "spiffe-validator", hydrate],
                         ids=["specializer", "validator", "hydrate"])
def test_federates_with_a_trust_domain_that_is_not_a_peer(fn) -> None:
    items = items_of("observability")
    metrics = next(i for i in items if i["kind"] == "WorkloadIdentity" and i["spec"].get("svid", {}).get("federatesWith"))
    name = metrics["metadata"]["name"]
    tds = metrics["spec"]["svid"]["federatesWith"]
    tds.append("noc.partner-carier.net")
    doc, code = run(copy.deepcopy(items), fn)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", name, f"spec.svid.federatesWith[{len(tds) - 1}]",
               "'noc.partner-carier.net' is not a federation peer",
               "core.telco-operator.net, noc.partner-carrier.net", "did you mean noc.partner-carrier.net",
               "no SVID", "spec.federation")
    assert len(errors(doc)) == 1, errors(doc)


def test_federates_with_and_a_context_without_federation() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["svid"]["federatesWith"] = ["smo.partner.net"]
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    the_result(doc, "error", "WorkloadIdentity", "ims", "spec.svid.federatesWith[0]",
               "the IdentityContext identity-context has no federation peers",
               "add smo.partner.net to IdentityContext spec.federation")


def test_federates_with_the_own_trust_domain_is_an_error() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["svid"]["federatesWith"] = ["smo.telco-operator.net"]
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    the_result(doc, "error", "WorkloadIdentity", "ims", "spec.svid.federatesWith[0]", "own trust domain",
               "remove it")


def test_federates_with_waits_for_an_injected_context() -> None:
    """Before porch injects the context, its federation is not known: nothing to check yet."""
    items = items_of("oran-focom-ims")
    ctx = find(items, "IdentityContext", "identity-context")
    ctx["spec"] = {}
    ctx["metadata"]["annotations"]["kpt.dev/config-injection"] = "required"
    find(items, "WorkloadIdentity", "ims")["spec"]["svid"]["federatesWith"] = ["smo.partner.net"]
    doc, code = run(items, "spiffe-specializer")
    assert code == 0, errors(doc)


def test_static_identity_federates_with_a_trust_domain_that_is_not_a_peer() -> None:
    items = items_of("observability")
    static = next((i for i in items if i["kind"] == "StaticIdentity"), None)
    if static is None:
        pytest.fail("the observability example has no StaticIdentity any more; pick another example")
    static["spec"]["federatesWith"] = ["other.example.net"]
    doc, code = run(items, "spiffe-registration")
    assert code == 1
    the_result(doc, "error", "StaticIdentity", static["metadata"]["name"], "spec.federatesWith[0]",
               "'other.example.net' is not a federation peer", "core.telco-operator.net, noc.partner-carrier.net")


# --- messages that lead to the fix ---------------------------------------------------

def test_two_identities_for_one_workload_is_one_error() -> None:
    items = items_of("oran-focom-ims")
    extra = copy.deepcopy(find(items, "WorkloadIdentity", "focom"))
    extra["metadata"]["name"] = "focom-client"
    extra["metadata"]["annotations"]["config.kubernetes.io/path"] = "focom-client.yaml"
    items.append(extra)
    doc, code = run(items, "spiffe-validator")
    assert code == 1
    errs = errors(doc)
    assert len(errs) == 1, errs
    assert "one workload, one WorkloadIdentity" in errs[0]["message"]
    assert "focom" in errs[0]["message"] and "focom-client" in errs[0]["message"]
    assert "service account" not in errs[0]["message"]


def _two_workloads_on_default() -> list[dict[str, Any]]:
    items = items_of("oran-focom-ims")
    find(items, "Deployment", "focom")["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    find(items, "StatefulSet", "ims")["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    del find(items, "WorkloadIdentity", "ims")["spec"]["serviceAccountName"]
    return items


def test_two_workloads_on_the_default_account_are_told_to_change_the_pod_template() -> None:
    items = _two_workloads_on_default()
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    the_result(doc, "error", "WorkloadIdentity", "focom", None, "is also the ID of ims",
               "change spec.template.spec.serviceAccountName of Deployment oran-smo/focom", "names 'default'")
    # Following the advice renders: the pod template names an account of its own.
    find(items, "Deployment", "focom")["spec"]["template"]["spec"]["serviceAccountName"] = "focom"
    find(items, "StatefulSet", "ims")["spec"]["template"]["spec"]["serviceAccountName"] = "o2ims"
    out, results, code = render_chain(items)
    assert code == 0, results


def test_an_account_on_the_identity_that_the_pod_template_contradicts_says_where_to_change() -> None:
    """The old advice (set spec.serviceAccountName) led here; the message must lead out."""
    items = _two_workloads_on_default()
    find(items, "WorkloadIdentity", "focom")["spec"]["serviceAccountName"] = "focom-sa"
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    err = the_result(doc, "error", "WorkloadIdentity", "focom", "spec.serviceAccountName", "runs as 'default'",
                     "change that field to 'focom-sa' or remove it (spiffe-attestation then sets it)")
    assert len(errors(doc)) == 1, errors(doc)
    assert "make them equal or remove one" not in err["message"]
    del find(items, "Deployment", "focom")["spec"]["template"]["spec"]["serviceAccountName"]
    find(items, "StatefulSet", "ims")["spec"]["template"]["spec"]["serviceAccountName"] = "o2ims"
    out, results, code = render_chain(items)
    assert code == 0, results
    assert find(out, "Deployment", "focom")["spec"]["template"]["spec"]["serviceAccountName"] == "focom-sa"


def test_accounts_declared_on_the_identities_are_told_to_change_there() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["serviceAccountName"] = "focom"
    del find(items, "StatefulSet", "ims")["spec"]["template"]["spec"]  # nothing there to change
    find(items, "StatefulSet", "ims")["spec"]["template"]["spec"] = {"containers": [{"name": "ims", "image": "x"}]}
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    the_result(doc, "error", "WorkloadIdentity", "ims", None, "is also the ID of focom",
               "spec.serviceAccountName of WorkloadIdentity ims")


def test_missing_label_key_is_the_only_error() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "focom")["spec"]["selector"]["labelKeys"] = ["app.kubernetes.io/instance"]
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    errs = errors(doc)
    assert len(errs) == 1, errs
    assert errs[0]["field"]["path"] == "spec.selector.labelKeys[0]"
    assert "no selector or pod labels" not in errs[0]["message"]


def test_quoted_port_number_says_to_remove_the_quotes() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["ingress"] = [
        {"name": "o2ims", "from": [{"identity": "focom"}], "ports": [{"port": "8443"}]}]
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    the_result(doc, "error", "WorkloadIdentity", "ims", "spec.ingress[0].ports[0].port",
               "'8443' is quoted", "remove the quotes", "port: 8443")
    assert len(errors(doc)) == 1, errors(doc)
    # Without the quotes it is a port number and renders.
    find(items, "WorkloadIdentity", "ims")["spec"]["ingress"][0]["ports"][0]["port"] = 8443
    assert run(items, "spiffe-specializer")[1] == 0


def test_spire_config_reports_a_misspelled_spire_deployment() -> None:
    from spiffe_kpt.spire_config import configure

    items = read_package(REPO / "blueprints" / "spire" / "spire-server")
    values = next(i for i in items if i["kind"] == "SpireDeployment")
    values["kind"] = "SpireDeploymnet"
    doc, code = run(copy.deepcopy(items), configure)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "SpireDeploymnet", values["metadata"]["name"], "kind", "did you mean SpireDeployment?")


@pytest.mark.kpt
def test_real_kpt_stops_at_a_misspelled_kind_and_writes_nothing(tmp_path) -> None:
    pkg = copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "pkg")
    replace_in(pkg / "ims.yaml", "kind: WorkloadIdentity", "kind: WorkloadIdentitiy")
    err = kpt_render_refused(pkg)
    assert len(err) == 1 and err[0]["resourceRef"]["kind"] == "WorkloadIdentitiy", err
    assert err[0]["field"]["path"] == "kind" and "did you mean WorkloadIdentity?" in err[0]["message"]


def test_quoted_number_where_only_a_number_belongs_says_to_remove_the_quotes() -> None:
    items = items_of("oran-focom-ims")
    find(items, "IdentityContext", "identity-context")["spec"]["policy"] = {"dns": {"port": "53"}}
    doc, code = run(items, "spiffe-specializer")
    assert code == 1
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.policy.dns.port",
               "must be of type integer, got string '53'", "remove the quotes (port: 53)")

"""Migration mistakes: an error result naming the resource and field, exit 1, nothing written."""

from __future__ import annotations

from ..pkgtools import assert_failed_untouched, run, the_result
from .helpers import A, B, package, set_phase, through


def _refused(items: list[dict], fn: str = "spiffe-specializer") -> dict:
    doc, code = run(items, fn)
    assert_failed_untouched(doc, code, items)
    return doc


def test_a_phase_skipped_is_refused() -> None:
    items, _ = through("amf", "prepare")
    doc = _refused(set_phase(items, "cutover"))
    r = the_result(doc, "error", "IdentityContext", "identity-context", "spec.migration.phase",
                   "jumps from 'prepare'", "skipping dual", "set phase: dual")
    assert r["field"]["proposedValue"] == "dual"


def test_a_migration_that_never_prepared_is_refused() -> None:
    doc = _refused(set_phase(package("amf"), "dual"))
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.migration.phase",
               "never rendered in 'prepare'", "set phase: prepare")


def test_going_back_two_phases_is_refused() -> None:
    items, _ = through("amf", "prepare", "dual", "cutover")
    doc = _refused(set_phase(items, "prepare"), "spiffe-registration")
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.migration.phase",
               "goes back from 'cutover' to 'prepare'", "set phase: dual")


def test_removing_the_migration_in_mid_flight_is_refused() -> None:
    items, _ = through("amf", "prepare", "dual")
    doc = _refused(set_phase(items, None))
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.migration",
               "rendered in phase 'dual'", B)


def test_finishing_with_the_new_trust_domain_is_accepted() -> None:
    """After complete, spec.trustDomain: B without spec.migration is the package's final state."""
    from .test_phases import _renamed
    items, _ = through("amf", "prepare", "dual", "cutover")
    items, _ = through_items(set_phase(_renamed(items), "complete"))
    final = set_phase(items, None)
    next(i for i in final if i.get("kind") == "IdentityContext")["spec"]["trustDomain"] = B
    doc, code = run(final, "spiffe-specializer")
    assert code == 0, doc.get("results")


def through_items(items: list[dict]) -> tuple[list[dict], list[dict]]:
    from .helpers import render
    out, results, code = render(items)
    assert code == 0, [r["message"] for r in results if r["severity"] == "error"]
    return out, results


def test_a_target_that_is_not_a_trust_domain_is_refused() -> None:
    doc = _refused(set_phase(package("amf"), "prepare", to="Telco.Operator"))
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.migration.to",
               "not a valid SPIFFE trust domain", "uppercase", "telco.operator")
    doc = _refused(set_phase(package("amf"), "prepare", to="spiffe://telco.operator"))
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.migration.to", "bare name")


def test_a_target_equal_to_the_current_domain_is_refused() -> None:
    doc = _refused(set_phase(package("amf"), "prepare", to=A))
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.migration.to",
               "already in", "another trust domain")


def test_an_unknown_phase_is_a_schema_error() -> None:
    doc = _refused(set_phase(package("amf"), "switch"))
    the_result(doc, "error", "IdentityContext", "identity-context", None, "switch")


def test_complete_while_the_package_names_a_is_refused_by_every_function() -> None:
    items, _ = through("amf", "prepare", "dual", "cutover")
    for fn in ("spiffe-specializer", "spiffe-validator"):
        doc = _refused(set_phase(items, "complete"), fn)
        r = the_result(doc, "error", "WorkloadIdentity", "amf-regional", "spec.ingress[1].from[0].spiffeID",
                       "migration is complete", f"Write it in {B}")
        assert r["field"]["proposedValue"] == f"spiffe://{B}/cluster/regional/ns/free5gc-cp/sa/smf-regional"
        the_result(doc, "error", "WorkloadIdentity", "amf-regional", "spec.egress[1].to[0].spiffeID", "nrf")


def test_federating_with_the_target_in_the_workload_package_is_refused() -> None:
    items = set_phase(package("upf"), "prepare")
    ctx = next(i for i in items if i.get("kind") == "IdentityContext")
    ctx["spec"]["federation"].append({"trustDomain": B, "bundleEndpointURL": "https://spire.telco.operator:8443",
                                      "bundleEndpointProfile": {"type": "https_web"}})
    doc = _refused(items)
    the_result(doc, "error", "IdentityContext", "identity-context", "spec.federation[1].trustDomain",
               "SPIRE packages")


def test_without_a_kptfile_the_order_cannot_be_checked_and_says_so() -> None:
    items = [i for i in set_phase(package("amf"), "dual") if i.get("kind") != "Kptfile"]
    doc, code = run(items, "spiffe-specializer")
    assert code == 0, doc.get("results")
    the_result(doc, "warning", "IdentityContext", "identity-context", "spec.migration.phase", "no Kptfile",
               "cannot be checked")

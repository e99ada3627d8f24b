"""Every bad input of the issue: message, resourceRef, field path and exit code 1, through the
wire format; nothing generated. Also the validator's authorization checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ..pkgtools import read_package
from .helpers import AUTHZ_5G, generated, render

WI = "WorkloadIdentity"


def _package() -> list[dict[str, Any]]:
    return read_package(AUTHZ_5G)


def _wi(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in items if o.get("kind") == WI and o["metadata"]["name"] == name)


def _errors(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["severity"] == "error"]


def _one_error(items: list[dict[str, Any]], steps: list[str] | None = None) -> dict[str, Any]:
    out, results, code = render(items, steps or ["spiffe-specializer", "spiffe-authorization"])
    assert code == 1
    errs = _errors(results)
    assert len(errs) == 1, errs
    assert not generated(out), "nothing is written on error"
    return errs[0]


def _assert_ref(err: dict[str, Any], name: str, field: str) -> None:
    assert err["resourceRef"] == {"apiVersion": "workloadidentity.nephio.org/v1alpha1", "kind": WI, "name": name}
    assert err["field"]["path"] == field


@pytest.mark.parametrize("port,field,words", [
    (0, "spec.ingress[0].ports[0].port", "must be at least 1"),
    (65536, "spec.ingress[0].ports[0].port", "must be at most 65535"),
    ("Not_A_Name", "spec.ingress[0].ports[0].port", "is not a port number (1-65535) or a container port name"),
])
def test_port_out_of_range_or_malformed(port: Any, field: str, words: str) -> None:
    items = _package()
    _wi(items, "upf")["spec"]["ingress"][0]["ports"][0] = {"port": port, "protocol": "UDP"}
    err = _one_error(items)
    assert words in err["message"]
    _assert_ref(err, "upf", field)


def test_unknown_protocol() -> None:
    items = _package()
    _wi(items, "amf")["spec"]["ingress"][0]["ports"][0]["protocol"] = "ICMP"
    err = _one_error(items)
    assert "must be one of TCP, UDP, SCTP; got 'ICMP'" in err["message"]
    _assert_ref(err, "amf", "spec.ingress[0].ports[0].protocol")


def test_rule_naming_an_identity_that_does_not_exist() -> None:
    items = _package()
    _wi(items, "upf")["spec"]["ingress"][0]["from"][0]["identity"] = "smf-typo"
    err = _one_error(items)
    assert "allows identity 'smf-typo', which is not a WorkloadIdentity of this package" in err["message"]
    assert "identities: amf, smf, upf" in err["message"]
    _assert_ref(err, "upf", "spec.ingress[0].from[0].identity")


def test_empty_from_without_allow_all() -> None:
    items = _package()
    _wi(items, "smf")["spec"]["ingress"][1]["from"] = []
    err = _one_error(items)
    assert "has no 'from', which would let every peer in" in err["message"] and "allowAll: true" in err["message"]
    _assert_ref(err, "smf", "spec.ingress[1].from")


def test_empty_from_with_allow_all_is_accepted_and_opens_the_port() -> None:
    items = _package()
    rule = _wi(items, "smf")["spec"]["ingress"][1]
    del rule["from"]
    rule["allowAll"] = True
    out, results, code = render(items)
    assert code == 0, _errors(results)
    ap = next(o for o in generated(out) if o["kind"] == "AuthorizationPolicy" and o["metadata"]["name"] == "smf"
              and o["apiVersion"].startswith("security.istio.io"))
    assert ap["spec"]["rules"] == [{"to": [{"operation": {"ports": ["8000"]}}]}]


def test_conflicting_rules_for_the_same_port() -> None:
    items = _package()
    smf = _wi(items, "smf")
    smf["spec"]["ingress"].append({"name": "sbi-2", "from": [{"identity": "upf"}], "ports": [{"port": 8000}]})
    err = _one_error(items)
    assert "ingress rules 'sbi' and 'sbi-2' both declare TCP 8000" in err["message"]
    assert "merge" in err["message"]
    _assert_ref(err, "smf", "spec.ingress[2].ports[0]")


def test_named_port_that_no_container_has() -> None:
    items = _package()
    _wi(items, "upf")["spec"]["ingress"][0]["ports"][0] = {"port": "gtpu"}
    err = _one_error(items)
    assert "names port 'gtpu', but no container" in err["message"] and "named ports: pfcp" in err["message"]
    _assert_ref(err, "upf", "spec.ingress[0].ports[0].port")


def test_peer_with_two_kinds() -> None:
    items = _package()
    _wi(items, "upf")["spec"]["ingress"][0]["from"][0]["spiffeID"] = "spiffe://core.telco-operator.net/x"
    err = _one_error(items)
    assert "sets exactly one of identity, spiffeID, spiffeIDPrefix, trustDomain" in err["message"]
    _assert_ref(err, "upf", "spec.ingress[0].from[0]")


def test_validator_reports_the_same_rule_errors() -> None:
    items = _package()
    _wi(items, "upf")["spec"]["ingress"][0]["from"][0]["identity"] = "nope"
    out, results, code = render(items, ["spiffe-specializer", "spiffe-validator"])
    assert code == 1
    err = next(r for r in _errors(results) if "nope" in r["message"])
    _assert_ref(err, "upf", "spec.ingress[0].from[0].identity")


def test_validator_warns_about_unexposed_ports_and_unprotected_workloads() -> None:
    items = _package()
    _wi(items, "amf")["spec"]["ingress"][1]["ports"][0]["port"] = 8001
    items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "nrf", "namespace": "core-cp"},
                  "spec": {"selector": {"matchLabels": {"app": "nrf"}},
                           "template": {"metadata": {"labels": {"app": "nrf"}}, "spec": {"containers": [{"name": "nrf", "image": "x"}]}}}})
    exempt = copy.deepcopy(items[-1])
    exempt["metadata"]["name"] = "job-runner"
    exempt["metadata"]["annotations"] = {"workloadidentity.nephio.org/policy-exempt": "true"}
    items.append(exempt)
    out, results, code = render(items, ["spiffe-specializer", "spiffe-validator"])
    assert code == 0
    warnings = [r for r in results if r["severity"] == "warning"]
    port = next(r for r in warnings if "allows TCP 8001, but no container" in r["message"])
    _assert_ref(port, "amf", "spec.ingress[1].ports[0]")
    unprotected = [r for r in warnings if "has no WorkloadIdentity" in r["message"]]
    assert len(unprotected) == 1 and unprotected[0]["resourceRef"]["name"] == "nrf"


def test_hand_written_resource_of_the_same_name_is_an_error_and_never_overwritten() -> None:
    items = _package()
    mine = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "amf-ingress", "namespace": "core-cp"}, "spec": {"podSelector": {}}}
    items.append(copy.deepcopy(mine))
    out, results, code = render(items)
    assert code == 1
    err = _errors(results)[0]
    assert "NetworkPolicy amf-ingress is already in the package" in err["message"]
    assert err["resourceRef"]["name"] == "amf-ingress"


def test_rerender_deletes_what_a_removed_rule_generated() -> None:
    out, _, code = render(_package())
    assert code == 0
    _wi(out, "amf")["spec"]["ingress"].pop(1)  # drop amf/sbi
    again, results, code = render(out)
    assert code == 0
    names = {(o["kind"], o["metadata"]["name"]) for o in generated(again)}
    assert ("NetworkPolicy", "amf-ingress") not in names and ("NetworkPolicy", "smf-egress") not in names
    assert any("deleted NetworkPolicy amf-ingress" in r["message"] for r in results)


def test_waiting_for_context_emits_nothing_and_says_so() -> None:
    items = _package()
    ctx = next(o for o in items if o.get("kind") == "IdentityContext")
    ctx["spec"]["trustDomain"] = ""
    out, results, code = render(items)
    assert code == 0
    assert not generated(out)
    assert any(r["message"].startswith("no authorization policy yet for amf, smf, upf") for r in results)


def test_no_backend_warns_that_rules_are_not_enforced() -> None:
    items = _package()
    ctx = next(o for o in items if o.get("kind") == "IdentityContext")
    ctx["spec"]["policy"]["backends"] = ["istio"]
    out, results, code = render(items)
    assert code == 0
    warned = {(r["resourceRef"]["name"], r["field"]["path"]) for r in results
              if r["severity"] == "warning" and "enforced by no enabled backend" in r["message"]}
    assert warned == {("upf", "spec.ingress[0].ports"), ("smf", "spec.ingress[0].ports"),
                      ("amf", "spec.ingress[0].ports")}

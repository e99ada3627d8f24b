"""Every bad input of the issue: message, resourceRef, field path and exit code 1, through the
wire format; nothing generated. Also the validator's authorization checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ..pkgtools import WI_API, errors, find, read_package
from .helpers import AUTHZ_5G, generated, render

WI = "WorkloadIdentity"


def _package() -> list[dict[str, Any]]:
    return read_package(AUTHZ_5G)


def _wi(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return find(items, WI, name)


def _one_error(items: list[dict[str, Any]], steps: list[str] | None = None) -> dict[str, Any]:
    out, results, code = render(items, steps or ["spiffe-specializer", "spiffe-authorization"])
    assert code == 1
    errs = errors(results)
    assert len(errs) == 1, errs
    assert not generated(out), "nothing is written on error"
    return errs[0]


def _assert_ref(err: dict[str, Any], name: str, field: str) -> None:
    assert err["resourceRef"] == {"apiVersion": WI_API, "kind": WI, "name": name}
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
    assert code == 0, errors(results)
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
    err = next(r for r in errors(results) if "nope" in r["message"])
    _assert_ref(err, "upf", "spec.ingress[0].from[0].identity")


def test_validator_warns_about_unexposed_ports_and_unprotected_workloads() -> None:
    items = _package()
    _wi(items, "amf")["spec"]["ingress"][1]["ports"][0]["port"] = 8001
    items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "nrf", "namespace": "core-cp"},
                  "spec": {"selector": {"matchLabels": {"app": "nrf"}},
                           "template": {"metadata": {"labels": {"app": "nrf"}},
                                        "spec": {"containers": [{"name": "nrf", "image": "x"}]}}}})
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
    err = errors(results)[0]
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


# ---- spec.egress: the same checks as ingress, on the client's rules.

def _egress(items: list[dict[str, Any]], name: str, *rules: dict[str, Any]) -> list[dict[str, Any]]:
    _wi(items, name)["spec"]["egress"] = list(rules)
    return items


@pytest.mark.parametrize("port,field,words", [
    ({"port": 0, "protocol": "UDP"}, "spec.egress[0].ports[0].port", "must be at least 1"),
    ({"port": 65536}, "spec.egress[0].ports[0].port", "must be at most 65535"),
    ({"port": 8000, "protocol": "ICMP"}, "spec.egress[0].ports[0].protocol", "must be one of TCP, UDP, SCTP"),
])
def test_egress_port_or_protocol_out_of_range(port: dict[str, Any], field: str, words: str) -> None:
    items = _egress(_package(), "smf", {"name": "x", "to": [{"identity": "amf"}], "ports": [port]})
    err = _one_error(items)
    assert words in err["message"]
    _assert_ref(err, "smf", field)


def test_egress_to_an_identity_that_does_not_exist() -> None:
    items = _egress(_package(), "smf", {"name": "sbi", "to": [{"identity": "nrf"}], "ports": [{"port": 8000}]})
    err = _one_error(items)
    assert "egress rule 'sbi' may reach identity 'nrf', which is not a WorkloadIdentity of this package" in err["message"]
    assert "use spiffeID for a workload outside the package" in err["message"]
    _assert_ref(err, "smf", "spec.egress[0].to[0].identity")


def test_egress_with_empty_to_needs_allow_all() -> None:
    items = _egress(_package(), "smf", {"name": "out", "to": [], "ports": [{"port": 443}]})
    err = _one_error(items)
    assert "egress rule 'out' has no 'to', which would let this workload reach every peer" in err["message"]
    assert "allowAll: true" in err["message"]
    _assert_ref(err, "smf", "spec.egress[0].to")


def test_egress_allow_all_with_peers_is_an_error() -> None:
    items = _egress(_package(), "smf", {"name": "out", "allowAll": True, "to": [{"identity": "amf"}],
                                        "ports": [{"port": 443}]})
    err = _one_error(items)
    assert "sets allowAll: true and lists peers under 'to'" in err["message"]
    _assert_ref(err, "smf", "spec.egress[0].allowAll")


def test_egress_allow_all_opens_the_port_towards_every_peer() -> None:
    items = _egress(_package(), "smf", {"name": "https", "allowAll": True, "ports": [{"port": 443}]})
    out, results, code = render(items)
    assert code == 0, errors(results)
    np = next(o for o in generated(out) if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "smf-egress")
    assert {"ports": [{"protocol": "TCP", "port": 443}]} in np["spec"]["egress"]


def test_egress_rules_for_the_same_port_conflict() -> None:
    items = _egress(_package(), "smf", {"name": "a", "to": [{"spiffeID": "spiffe://core.telco-operator.net/ns/x/sa/y"}],
                                        "ports": [{"port": 443}]},
                    {"name": "b", "to": [{"spiffeID": "spiffe://core.telco-operator.net/ns/z/sa/y"}],
                     "ports": [{"port": 443}]})
    err = _one_error(items)
    assert "egress rules 'a' and 'b' both declare TCP 443" in err["message"] and "'to' lists" in err["message"]
    _assert_ref(err, "smf", "spec.egress[1].ports[0]")


def test_egress_rule_names_are_unique() -> None:
    rule = {"name": "a", "to": [{"identity": "amf"}], "ports": [{"port": 8000}]}
    items = _egress(_package(), "smf", rule, {**rule, "ports": [{"port": 8001}]})
    err = _one_error(items)
    assert "two egress rules are named 'a' (spec.egress[0] and spec.egress[1])" in err["message"]
    _assert_ref(err, "smf", "spec.egress[1].name")


def test_egress_named_port_resolves_only_against_identities_of_the_package() -> None:
    items = _egress(_package(), "smf", {"name": "n4", "to": [{"spiffeID": "spiffe://core.telco-operator.net/ns/x/sa/y"}],
                                        "ports": [{"port": "pfcp"}]})
    err = _one_error(items)
    assert "egress rule 'n4' names port 'pfcp', which can only be resolved" in err["message"]
    assert "use the server's port number" in err["message"]
    _assert_ref(err, "smf", "spec.egress[0].ports[0].port")


def test_egress_peer_with_two_kinds_and_identity_with_cluster() -> None:
    items = _egress(_package(), "smf", {"name": "a", "to": [{"identity": "amf", "trustDomain": "x.org"}],
                                        "ports": [{"port": 8000}]})
    err = _one_error(items)
    assert "each 'to' entry sets exactly one of identity, spiffeID, spiffeIDPrefix, trustDomain" in err["message"]
    _assert_ref(err, "smf", "spec.egress[0].to[0]")
    items = _egress(_package(), "smf", {"name": "a", "to": [{"identity": "amf", "cluster": "other"}],
                                        "ports": [{"port": 8000}]})
    err = _one_error(items)
    assert "'identity' names a WorkloadIdentity of this package" in err["message"]
    _assert_ref(err, "smf", "spec.egress[0].to[0].cluster")


def test_validator_reports_egress_rule_errors() -> None:
    items = _egress(_package(), "amf", {"name": "x", "to": [{"identity": "nope"}], "ports": [{"port": 80}]})
    out, results, code = render(items, ["spiffe-specializer", "spiffe-validator"])
    assert code == 1
    err = next(r for r in errors(results) if "nope" in r["message"])
    _assert_ref(err, "amf", "spec.egress[0].to[0].identity")


def test_egress_repeating_what_an_ingress_rule_opens_adds_nothing() -> None:
    """The SMF's egress to the UPF (N4) and to the AMF (SBI) is already derived from their ingress
    rules: declaring it again changes no generated object."""
    base, _, code = render(_package())
    assert code == 0
    items = _egress(_package(), "smf",
                    {"name": "n4", "to": [{"identity": "upf"}], "ports": [{"port": "pfcp"}], "network": "core-up/n4"},
                    {"name": "sbi", "to": [{"spiffeID": "spiffe://core.telco-operator.net/ns/core-cp/sa/amf"}],
                     "ports": [{"port": 8000}]})
    out, results, code = render(items)
    assert code == 0, errors(results)
    policies = {"NetworkPolicy", "MultiNetworkPolicy", "AuthorizationPolicy", "PeerAuthentication"}

    def objs(rendered: list[dict[str, Any]]) -> dict[tuple, Any]:
        return {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]
                for o in generated(rendered) if o["kind"] in policies}
    assert objs(out) == objs(base)


def test_egress_to_a_peer_cluster_without_cidrs_warns_and_stays_denied() -> None:
    items = _egress(_package(), "smf", {"name": "metrics", "to": [
        {"spiffeID": "spiffe://mgmt.telco-operator.net/ns/obs/sa/gw", "cluster": "mgmt"}], "ports": [{"port": 4317}]})
    out, results, code = render(items)
    assert code == 0, errors(results)
    warned = [r for r in results if r["severity"] == "warning" and "egress rule smf/metrics" in r["message"]]
    assert len(warned) == 1 and "stays denied by networkpolicy" in warned[0]["message"]
    assert warned[0]["field"]["path"] == "spec.egress[0].to[0]"
    np = next(o for o in generated(out) if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "smf-egress")
    assert all("to" in e and e["to"] for e in np["spec"]["egress"])  # never an allow-all entry
    assert not any(4317 in [p["port"] for p in e["ports"]] for e in np["spec"]["egress"])


def test_egress_without_default_deny_generates_nothing_and_says_so() -> None:
    items = _egress(_package(), "smf", {"name": "https", "to": [{"trustDomain": "partner.example.net"}],
                                        "ports": [{"port": 443}]})
    ctx = next(o for o in items if o.get("kind") == "IdentityContext")
    ctx["spec"]["policy"]["defaultDeny"] = False
    out, results, code = render(items)
    assert code == 0, errors(results)
    assert not any(o["metadata"]["name"].endswith("egress") for o in generated(out))
    said = [r for r in results if r["message"].startswith("egress rule smf/https: with IdentityContext")]
    assert len(said) == 1 and said[0]["severity"] == "info" and said[0]["field"]["path"] == "spec.egress[0]"


def test_rerender_deletes_what_a_removed_egress_rule_generated() -> None:
    items = _egress(_package(), "upf", {"name": "metrics", "to": [
        {"spiffeID": "spiffe://ran.telco-operator.net/obs/gw", "cluster": "ran-edge-01"}], "ports": [{"port": 4317}]})
    out, _, code = render(items)
    assert code == 0
    assert any(o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "upf-egress" for o in generated(out))
    _wi(out, "upf")["spec"].pop("egress")
    again, results, code = render(out)
    assert code == 0
    assert not any(o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "upf-egress" for o in generated(again))
    assert any("deleted NetworkPolicy upf-egress" in r["message"] for r in results)
    twice, results2, code = render(again)
    assert code == 0 and generated(twice) == generated(again)


def test_validator_warns_about_egress_to_a_port_the_server_does_not_serve() -> None:
    """Egress towards an identity of the package on a port its containers do not declare: the
    opened port is probably not the one the server listens on."""
    items = _egress(_package(), "smf", {"name": "sbi-typo", "to": [{"identity": "amf"}], "ports": [{"port": 8081}]})
    out, results, code = render(items, ["spiffe-specializer", "spiffe-validator"])
    assert code == 0, errors(results)
    warned = [r for r in results if r["severity"] == "warning" and "egress rule 'sbi-typo'" in r["message"]]
    assert len(warned) == 1, results
    assert "allows TCP 8081 to amf, but no container of" in warned[0]["message"]
    _assert_ref(warned[0], "smf", "spec.egress[0].ports[0]")
    # a port the server declares draws no warning
    ok = _egress(_package(), "smf", {"name": "sbi", "to": [{"identity": "amf"}], "ports": [{"port": 8000}]})
    out, results, code = render(ok, ["spiffe-specializer", "spiffe-validator"])
    assert code == 0 and not [r for r in results if "egress rule 'sbi'" in r["message"] and r["severity"] == "warning"]


def test_merging_egress_entries_is_linear_in_the_entries() -> None:
    """One client reaching thousands of servers (or one server named by thousands of rules):
    merging an egress entry must not rescan everything merged before (it did: quadratic)."""
    import time

    from spiffe_kpt.authorization.networkpolicy import entries_of, merge_entry

    def run(n: int) -> float:
        egress: dict = {}
        t = time.perf_counter()
        for i in range(n):
            entry = {"to": [{"podSelector": {"matchLabels": {"app": f"s{i}"}}}],
                     "ports": [{"protocol": "TCP", "port": 8000}]}
            merge_entry(entries_of(egress, "client"), entry)
            merge_entry(entries_of(egress, "client"), entry)  # a repeat adds nothing
        assert len(egress["client"]) == n
        return time.perf_counter() - t

    small = min(run(500) for _ in range(3))
    large = min(run(5000) for _ in range(3))
    assert large / small < 30, (small, large)  # linear: ~10x; the old scan: ~100x


def test_result_messages_do_not_grow_with_the_package() -> None:
    """A message listing every identity grew to 70 KB at 8,000 workloads (and took the slow
    YAML dumper with it): lists in messages stop at ten names."""
    import re

    from spiffe_kpt.krm.results import name_list
    assert name_list([f"n{i}" for i in range(3)]) == "n0, n1, n2"
    assert name_list([f"n{i}" for i in range(25)]) == ", ".join(f"n{i}" for i in range(10)) + " and 15 more"
    items = _package()
    template = _wi(items, "amf")
    ref = template["spec"]["workloadRef"]
    workload = next(o for o in items if o.get("kind") == ref["kind"] and o["metadata"]["name"] == ref["name"])
    for i in range(40):
        wl, wi = copy.deepcopy(workload), copy.deepcopy(template)
        wl["metadata"]["name"] = wi["metadata"]["name"] = wi["spec"]["workloadRef"]["name"] = f"amf-{i:02d}"
        wl["spec"]["template"]["spec"]["serviceAccountName"] = f"amf-{i:02d}"
        wi["spec"].pop("serviceAccountName", None)
        wi["spec"].pop("ingress", None)
        for o in (wl, wi):
            o["metadata"].get("annotations", {}).pop("config.kubernetes.io/index", None)
        items += [wl, wi]
    _wi(items, "smf")["spec"]["ingress"][0]["from"] = [{"identity": "nope"}]
    out, results, code = render(items)
    assert code == 1
    assert all(len(r["message"]) < 2000 for r in results), max(len(r["message"]) for r in results)
    err = next(r for r in results if "identity 'nope'" in r["message"])
    assert re.search(r"and \d+ more", err["message"]), err["message"]


def test_baseline_names_are_linear_in_the_namespaces() -> None:
    """A namespace per identity: naming each namespace's baseline must not scan every identity
    (it did: quadratic in packages with many namespaces)."""
    import gc
    import time

    from spiffe_kpt.authorization.model import DnsEgress, Endpoint, PolicyModel

    def run(n: int) -> float:
        model = PolicyModel(backends=("networkpolicy",), default_deny=True, dns=DnsEgress())
        for i in range(n):
            model.endpoints[f"id-{i}"] = Endpoint(f"id-{i}", f"ns-{i}", (("app", f"a{i}"),), f"spiffe://t/{i}", None)
        model.endpoints["aaa"] = Endpoint("aaa", "ns-0", (("app", "x"),), "spiffe://t/x", None)
        # Without the collector: a full collection of the test session's heap, which the new
        # strings may trigger, costs milliseconds and is not what is measured.
        gc.disable()
        try:
            t = time.process_time()
            names = [model.baseline_name("default-deny", f"ns-{i}") for i in range(n)]
            elapsed = time.process_time() - t
        finally:
            gc.enable()
        assert names[0] == "default-deny-aaa" and names[-1] == f"default-deny-id-{n - 1}"
        return elapsed

    # CPU time of this process, not wall time: on a loaded machine the longer run is preempted
    # more often, and wall time made the ratio 40-60x for linear code.
    small = min(run(500) for _ in range(5))
    large = min(run(5000) for _ in range(5))
    assert large / small < 30, (small, large)  # linear: ~10x; a scan per call: ~100x


# ---- authorization mistakes that must not render without a word.

CTX_REF = {"apiVersion": WI_API, "kind": "IdentityContext", "name": "identity-context"}
NETWORKS = "k8s.v1.cni.cncf.io/networks"


def _ctx(items: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in items if o.get("kind") == "IdentityContext")


def _workload(items: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in items if o.get("kind") == kind and o["metadata"]["name"] == name)


def _both_report(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The generator's single error (nothing written, exit 1), which the validator reports too."""
    err = _one_error(items)
    _, results, code = render(copy.deepcopy(items), ["spiffe-specializer", "spiffe-validator"])
    assert code == 1
    assert [r for r in errors(results) if r["message"] == err["message"]] == [err]
    return err


def test_rule_bound_to_a_network_nobody_has() -> None:
    """Point 3: a network that is neither a NetworkAttachmentDefinition of the package nor
    requested by the workload's pods rendered a MultiNetworkPolicy for it, and the real
    attachment stayed open."""
    items = _package()
    _wi(items, "upf")["spec"]["ingress"][0]["network"] = "n9"
    err = _both_report(items)
    assert "ingress rule 'n4' is bound to network core-up/n9, but no NetworkAttachmentDefinition" in err["message"]
    assert "do not request it in their k8s.v1.cni.cncf.io/networks annotation" in err["message"]
    assert ("Attachments that exist: core-cp/n2 (NetworkAttachmentDefinition), core-up/n4 (NetworkAttachmentDefinition, "
            "requested by Deployment core-up/upf). Did you mean 'n4'?") in err["message"], err["message"]
    _assert_ref(err, "upf", "spec.ingress[0].network")
    assert err["field"]["currentValue"] == "n9" and err["field"]["proposedValue"] == "n4"


def test_rule_network_in_the_wrong_namespace_proposes_the_attachment_of_that_name() -> None:
    """'n4' on the SMF (namespace core-cp) means core-cp/n4; the attachment is core-up/n4."""
    items = _package()
    _wi(items, "smf")["spec"]["ingress"][0]["network"] = "n4"
    err = _both_report(items)
    assert "bound to network core-cp/n4" in err["message"] and "Did you mean 'core-up/n4'?" in err["message"]
    _assert_ref(err, "smf", "spec.ingress[0].network")
    assert err["field"]["proposedValue"] == "core-up/n4"


def test_egress_rule_bound_to_a_network_nobody_has() -> None:
    items = _egress(_package(), "smf", {"name": "n4-out", "to": [{"identity": "upf"}],
                                        "ports": [{"port": 8805, "protocol": "UDP"}], "network": "core-up/n44"})
    err = _both_report(items)
    assert "egress rule 'n4-out' is bound to network core-up/n44" in err["message"]
    _assert_ref(err, "smf", "spec.egress[0].network")


@pytest.mark.parametrize("annotation", [
    "core-up/n4",
    " n4@n4 , other-ns/sriov@net2",  # comma form: name in the pod's namespace, @interface, spaces
    '[{"name": "n4", "interface": "n4"}]',  # JSON form, namespace defaulted to the pod's
    '[{"name": "n4", "namespace": "core-up"}, {"name": "x", "namespace": "y"}]',
])
def test_a_network_the_pods_request_is_enough_without_its_definition(annotation: str) -> None:
    """Nephio packages often get their NetworkAttachmentDefinitions from elsewhere: a network the
    workload's pods request (either annotation form) is accepted without one in the package."""
    items = [o for o in _package() if o.get("kind") != "NetworkAttachmentDefinition"]
    _workload(items, "Deployment", "upf")["spec"]["template"]["metadata"]["annotations"][NETWORKS] = annotation
    smf = _workload(items, "Deployment", "smf")
    smf["spec"]["template"]["metadata"]["annotations"][NETWORKS] = "core-up/n4"
    amf = _workload(items, "StatefulSet", "amf")
    amf["spec"]["template"]["metadata"]["annotations"][NETWORKS] = '[{"name": "n2", "namespace": "core-cp"}]'
    out, results, code = render(items)
    assert code == 0, errors(results)
    assert any(o["kind"] == "MultiNetworkPolicy" and o["metadata"]["namespace"] == "core-up" for o in generated(out))
    # ... and without the annotation (and the definition) the same rule is an error
    del _workload(items, "Deployment", "upf")["spec"]["template"]["metadata"]["annotations"][NETWORKS]
    err = _one_error(items)
    _assert_ref(err, "upf", "spec.ingress[0].network")


def test_a_replaced_default_network_counts_as_requested() -> None:
    items = [o for o in _package() if not (o.get("kind") == "NetworkAttachmentDefinition"
                                           and o["metadata"]["name"] == "n4")]
    ann = _workload(items, "Deployment", "upf")["spec"]["template"]["metadata"]["annotations"]
    del ann[NETWORKS]
    ann["v1.multus-cni.io/default-network"] = "n4"
    out, results, code = render(items)
    assert code == 0, errors(results)


def test_validator_warns_when_the_pods_are_not_on_the_rule_network_the_package_defines() -> None:
    """The attachment is defined here but the workload's pods do not request it: its
    MultiNetworkPolicy would select no pod. An advisory: something outside the package may
    attach them."""
    items = _package()
    del _workload(items, "Deployment", "upf")["spec"]["template"]["metadata"]["annotations"][NETWORKS]
    out, results, code = render(copy.deepcopy(items))
    assert code == 0, errors(results)
    assert not [r for r in results if "do not request it" in r["message"]]  # the generator does not repeat it
    out, results, code = render(items, ["spiffe-specializer", "spiffe-validator"])
    assert code == 0, errors(results)
    warned = [r for r in results if r["severity"] == "warning" and "do not request it" in r["message"]]
    assert len(warned) == 1, results
    assert "ingress rule 'n4' is bound to network core-up/n4, which the package defines" in warned[0]["message"]
    assert "add core-up/n4 to that annotation" in warned[0]["message"]
    _assert_ref(warned[0], "upf", "spec.ingress[0].network")


def test_an_unreadable_networks_annotation_is_named_in_the_error() -> None:
    items = [o for o in _package() if not (o.get("kind") == "NetworkAttachmentDefinition"
                                           and o["metadata"]["name"] == "n4")]
    _workload(items, "Deployment", "upf")["spec"]["template"]["metadata"]["annotations"][NETWORKS] = '[{"name": "n4"'
    out, results, code = render(items)
    assert code == 1
    err = next(r for r in errors(results) if r["resourceRef"]["name"] == "upf")
    assert "annotation is not valid JSON" in err["message"]


@pytest.mark.parametrize("cidr,words,proposed", [
    ("10.70.0.0/33", "has prefix length /33, but an IPv4 prefix is /0 to /32 (that is an IPv6 prefix length", None),
    ("10.60.0.1/16", "has host bits set (10.60.0.1 is inside the /16 network 10.60.0.0", "10.60.0.0/16"),
    ("fd00:10:60::1/48", "has host bits set", "fd00:10:60::/48"),
    ("::ffff:10.60.0.0/112", "is an IPv4-mapped IPv6 range", "10.60.0.0/16"),
    ("010.060.0.0/16", "has leading zeros", "10.60.0.0/16"),
    ("10.60.0/16", "is not an IP network: '10.60.0' is not an IPv4 or IPv6 address", None),
    ("fd00::/129", "has prefix length /129, but an IPv6 prefix is /0 to /128", None),
])
def test_invalid_peer_cluster_cidr(cidr: str, words: str, proposed: str | None) -> None:
    """Point 4: ranges the schema's pattern lets through were written into policies as they were."""
    items = _package()
    _ctx(items)["spec"]["policy"]["peerClusters"][0]["cidrs"] = ["10.61.0.0/16", cidr]
    err = _both_report(items)
    assert err["message"].startswith(
        f"IdentityContext identity-context: spec.policy.peerClusters[0].cidrs[1] (ran-edge-01) '{cidr}' {words}")
    assert err["resourceRef"] == CTX_REF
    assert err["field"]["path"] == "spec.policy.peerClusters[0].cidrs[1]"
    assert err["field"]["currentValue"] == cidr
    assert err["field"].get("proposedValue") == proposed
    if proposed:
        assert err["message"].endswith(f"; write {proposed}")


def test_peer_cluster_of_every_address_warns_and_a_repeated_cluster_is_an_error() -> None:
    items = _package()
    _ctx(items)["spec"]["policy"]["peerClusters"][0]["cidrs"] = ["0.0.0.0/0"]
    out, results, code = render(items)
    assert code == 0, errors(results)
    # (the rule relying on that range gets its own warning, on the WorkloadIdentity: network-level peer)
    warned = [r for r in results if r["severity"] == "warning" and "0.0.0.0/0" in r["message"]
              and r["resourceRef"]["kind"] == "IdentityContext"]
    assert len(warned) == 1 and "would be anyone, including the internet" in warned[0]["message"]
    assert warned[0]["field"]["path"] == "spec.policy.peerClusters[0].cidrs[0]"
    items = _package()
    clusters = _ctx(items)["spec"]["policy"]["peerClusters"]
    clusters.append({"name": "ran-edge-01", "cidrs": ["10.61.0.0/16"]})
    err = _both_report(items)
    assert "spec.policy.peerClusters[1] repeats cluster 'ran-edge-01' of spec.policy.peerClusters[0]" in err["message"]
    assert err["resourceRef"] == CTX_REF and err["field"]["path"] == "spec.policy.peerClusters[1].name"


FEDERATION = {"trustDomain": "partner.example.net", "bundleEndpointURL": "https://bundle.partner.example.net",
              "bundleEndpointProfile": {"type": "https_web"}}


@pytest.mark.parametrize("peer,field", [
    ({"spiffeID": "spiffe://partner.example.net/ns/x/sa/y"}, "spec.ingress[1].from[1].spiffeID"),
    ({"spiffeIDPrefix": "spiffe://partner.example.net/ns/x/"}, "spec.ingress[1].from[1].spiffeIDPrefix"),
    ({"trustDomain": "partner.example.net"}, "spec.ingress[1].from[1].trustDomain"),
])
def test_mesh_rule_admitting_an_unfederated_trust_domain(peer: dict[str, str], field: str) -> None:
    """Point 5: Istio and Linkerd verify a client's SVID against the bundles SPIRE hands the
    server; a trust domain that is not federated can never pass, so the rule is dead."""
    items = _package()
    _wi(items, "smf")["spec"]["ingress"][1]["from"].append(peer)
    err = _both_report(items)
    assert "ingress rule 'sbi' admits" in err["message"] and "which istio and linkerd enforces by mTLS" in err["message"]
    assert "partner.example.net is not federated: IdentityContext identity-context has no spec.federation entry" \
        in err["message"]
    assert "add partner.example.net to the IdentityContext's spec.federation and to this identity's " \
        "spec.svid.federatesWith" in err["message"]
    _assert_ref(err, "smf", field)
    # federated by the context but not by the identity's registration: SPIRE never hands it the bundle
    _ctx(items)["spec"]["federation"] = [FEDERATION]
    err = _both_report(items)
    assert "the IdentityContext federates with partner.example.net, but this identity's spec.svid.federatesWith " \
        "does not list it" in err["message"] and "add partner.example.net to spec.svid.federatesWith" in err["message"]
    _assert_ref(err, "smf", field)
    # federated both ways: accepted
    _wi(items, "smf")["spec"]["svid"] = {"federatesWith": ["partner.example.net"]}
    out, results, code = render(items)
    assert code == 0, errors(results)


def test_unfederated_trust_domain_is_fine_where_no_mesh_checks_it() -> None:
    """The same peer on a rule no mesh enforces (a Multus network, UDP/SCTP, or no mesh backend)
    is only a name for the peer cluster's addresses: no error. The example's N2 rule admits the
    unfederated RAN trust domain on SCTP over Multus."""
    items = _package()
    assert _wi(items, "amf")["spec"]["ingress"][0]["from"] == [{"trustDomain": "ran.telco-operator.net",
                                                                "cluster": "ran-edge-01"}]
    _wi(items, "smf")["spec"]["ingress"][1]["from"].append({"trustDomain": "partner.example.net"})
    _ctx(items)["spec"]["policy"]["backends"] = ["networkpolicy", "multinetworkpolicy"]
    out, results, code = render(items)
    assert code == 0, errors(results)


@pytest.mark.parametrize("cluster,words", [
    ("edge-01", "remove 'cluster' (the package is deployed to cluster 'edge-01' here, but to any other cluster"),
    ("ran-edge-01", "for a peer in cluster 'ran-edge-01' use its spiffeID (or spiffeIDPrefix) with 'cluster'"),
])
def test_identity_peer_with_cluster_is_an_error_even_for_this_cluster(cluster: str, words: str) -> None:
    """Point 6: the docs call identity+cluster an error; naming this very cluster was accepted, so
    the same package failed only once cloned to another cluster."""
    items = _package()
    assert _ctx(items)["spec"]["clusterName"] == "edge-01"
    _wi(items, "smf")["spec"]["ingress"][1]["from"][0]["cluster"] = cluster
    err = _both_report(items)
    assert "'identity' names a WorkloadIdentity of this package, which always runs in the package's own cluster, " \
        "so it takes no 'cluster'" in err["message"] and words in err["message"]
    _assert_ref(err, "smf", "spec.ingress[1].from[0].cluster")
    assert err["field"]["currentValue"] == cluster


def test_multus_annotation_forms() -> None:
    from spiffe_kpt.authorization.attachments import parse
    assert parse("a, b/c@eth1,,d@x", "ns").refs == {"ns/a", "b/c", "ns/d"}
    assert parse('[{"name": "a"}, {"name": "c", "namespace": "b", "interface": "eth1"}]', "ns").refs == {"ns/a", "b/c"}
    assert parse("[{", "ns").problem and not parse("[{", "ns").refs
    single = parse('{"name": "a"}', "ns")  # Multus reads it as JSON and wants a list
    assert not single.refs and "is JSON but not a list of networks" in single.problem


def test_objects_spire_config_generated_survive_authorization() -> None:
    """A package holding workloads and a SPIRE package: spire-config's NetworkPolicy and ConfigMap
    (owner SpireDeployment) are not the authorization function's to delete as stale."""
    owner = "workloadidentity.nephio.org/v1alpha1.SpireDeployment"
    ann = {"workloadidentity.nephio.org/owner": owner, "specializer.nephio.org/owner": owner,
           "config.kubernetes.io/path": "spire/network-policies.yaml",
           "internal.config.kubernetes.io/path": "spire/network-policies.yaml"}
    spire = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "spire-server", "namespace": "spire-server", "annotations": dict(ann)},
              "spec": {"podSelector": {"matchLabels": {"app": "spire-server"}}, "policyTypes": ["Ingress"]}},
             {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "spire-server", "namespace": "spire-server", "annotations": dict(ann)},
              "data": {"server.conf": "server {}"}}]
    out, results, code = render(_package() + copy.deepcopy(spire))
    assert code == 0, errors(results)
    kept = [o for o in out if (o.get("metadata") or {}).get("annotations", {}).get("workloadidentity.nephio.org/owner") == owner]
    assert [(o["kind"], o["metadata"]["name"]) for o in kept] == [("NetworkPolicy", "spire-server"),
                                                                  ("ConfigMap", "spire-server")]
    assert not [r for r in results if r["message"].startswith("deleted") and "spire-server" in r["message"]]

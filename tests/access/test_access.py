"""spiffe-access through the wire format: what it renders from the examples' grants, and every bad
input class of issue 16 point 4 (message, resourceRef, field path, exit code 1, nothing written),
the warnings (wildcards with the exact alternative, broad write access), ownership and
idempotency, and the validator reporting the same findings."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from spiffe_kpt import registry

from ..pkgtools import WI_API, errors, find, items_of, results_of, run_in_process

STEPS = ["spiffe-specializer", "spiffe-access"]
OWNER = "workloadidentity.nephio.org/owner"
GRANT = "AccessGrant"
FOCOM_ID = "spiffe://smo.telco-operator.net/cluster/smo-mgmt/ns/oran-smo/sa/focom"


def oran() -> list[dict[str, Any]]:
    return items_of("oran-focom-ims")


def render(items: list[dict[str, Any]], steps: list[str] = STEPS) -> tuple[list, list, int]:
    return run_in_process(copy.deepcopy(items), [registry.get(s) for s in steps])


def generated(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in items if OWNER in ((o.get("metadata") or {}).get("annotations") or {})]


def grant(items: list[dict[str, Any]], name: str = "focom-provisioning") -> dict[str, Any]:
    return find(items, GRANT, name)


def ctx(items: list[dict[str, Any]]) -> dict[str, Any]:
    return find(items, "IdentityContext", "identity-context")


def one_error(items: list[dict[str, Any]], kind: str, name: str, field: str, *words: str) -> dict[str, Any]:
    out, results, code = render(items)
    assert code == 1
    errs = errors(results)
    assert len(errs) == 1, errs
    [err] = errs
    assert err["resourceRef"] == {"apiVersion": WI_API, "kind": kind, "name": name}
    assert err["field"]["path"] == field
    for w in words:
        assert w in err["message"], err["message"]
    assert not [o for o in generated(out) if o["kind"] != "ClusterSPIFFEID"], "nothing is written on error"
    return err


def warnings_of(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results_of(results, "warning")]


def add_grant(items: list[dict[str, Any]], name: str, clients: list[dict[str, Any]],
              kubernetes: list[dict[str, Any]]) -> dict[str, Any]:
    g = {"apiVersion": WI_API, "kind": GRANT,
         "metadata": {"name": name, "annotations": {"config.kubernetes.io/local-config": "true",
                                                    "config.kubernetes.io/path": f"{name}.yaml"}},
         "spec": {"clients": clients, "kubernetes": kubernetes}}
    items.append(g)
    return g


# ---- what it renders -------------------------------------------------------------------------

def test_oran_example_renders_focoms_clusterrole_binding_and_authenticator() -> None:
    out, results, code = render(oran())
    assert code == 0, errors(results)
    cr = find(out, "ClusterRole", "spiffe-access-focom-provisioning")
    assert cr["rules"] == [{"apiGroups": ["o2ims.provisioning.oran.org"], "resources": ["provisioningrequests"],
                            "verbs": ["create", "get", "list", "watch"]}]
    crb = find(out, "ClusterRoleBinding", "spiffe-access-focom-provisioning")
    assert crb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"spiffe:{FOCOM_ID}"}]
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "spiffe-access-focom-provisioning"}
    assert not [o for o in out if o["kind"] in ("Role", "RoleBinding")]
    cm = find(out, "ConfigMap", "kube-apiserver-authentication-config")
    assert cm["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    import yaml
    config = yaml.safe_load(cm["data"]["authentication-config.yaml"])
    assert set(config) == {"apiVersion", "kind", "jwt"}  # a flag file: no metadata (strict decoding)
    assert config["apiVersion"] == "apiserver.config.k8s.io/v1"
    [jwt] = config["jwt"]
    assert jwt["issuer"] == {"url": "https://oidc.smo.telco-operator.net", "audiences": ["kubernetes:smo-mgmt"]}
    assert jwt["claimMappings"] == {"username": {"claim": "sub", "prefix": "spiffe:"}}
    assert jwt["claimValidationRules"][0]["expression"] == 'claims.sub.startsWith("spiffe://smo.telco-operator.net/")'
    assert find(out, "WorkloadIdentity", "focom")["status"]["jwtAudiences"] == ["kubernetes:smo-mgmt"]
    assert "jwtAudiences" not in find(out, "WorkloadIdentity", "ims")["status"]


def test_prefix_and_trust_domain_clients_become_groups_mapped_by_cel() -> None:
    items = items_of("observability")
    out, results, code = render(items)
    assert code == 0, errors(results)
    rb = find(out, "RoleBinding", "spiffe-access-edge01-metrics")
    assert rb["metadata"]["namespace"] == "observability"
    assert rb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                               "name": "spiffe:spiffe://core.telco-operator.net/cluster/edge01/"}]
    import yaml
    [jwt] = yaml.safe_load(find(out, "ConfigMap", "kube-apiserver-authentication-config")["data"][
        "authentication-config.yaml"])["jwt"]
    assert jwt["issuer"]["url"] == "https://oidc.core.telco-operator.net"
    assert jwt["claimMappings"]["groups"]["expression"] == (
        '["spiffe://core.telco-operator.net/cluster/edge01/", "spiffe://core.telco-operator.net/cluster/edge02/"]'
        '.filter(p, claims.sub.startsWith(p)).map(p, "spiffe:" + p)')


def test_cluster_name_placeholder_names_this_clusters_client_and_waits_without_it() -> None:
    items = read_upf()
    out, results, code = render(items, ["spiffe-specializer", "spiffe-access"])
    assert code == 0, errors(results)
    rb = find(out, "RoleBinding", "spiffe-access-mgmt-upf-scaler")
    assert rb["subjects"][0]["name"] == "spiffe:spiffe://mgmt.telco-operator.net/cluster/mgmt/ns/fleet-ops/sa/upf-scaler-edge01"
    # Awaiting porch's injection (no cluster name yet): no RBAC, no error.
    items = read_upf()
    find(items, "WorkloadCluster", "edge01")["spec"]["clusterName"] = "example"
    del find(items, "IdentityContext", "identity-context")["spec"]["site"]
    out, results, code = render(items, ["spiffe-access"])
    assert code == 0, errors(results)
    assert not generated(out)


def read_upf() -> list[dict[str, Any]]:
    return items_of("5g-core/upf")


def test_render_twice_changes_nothing_and_a_removed_grant_takes_its_rbac_along() -> None:
    once, _, code = render(oran())
    assert code == 0
    twice, results, code = render(once, ["spiffe-access"])
    assert code == 0 and twice == once
    without = [o for o in twice if o["kind"] != GRANT]
    out, results, code = render(without, ["spiffe-access"])
    assert code == 0
    assert not [o for o in out if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert not [o for o in out if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("kube-apiserver")]
    assert any("deleted ClusterRoleBinding spiffe-access-focom-provisioning" in r["message"] for r in results)


def test_authorization_and_access_keep_each_others_configmaps() -> None:
    items = read_upf()
    steps = ["spiffe-specializer", "spiffe-authorization", "spiffe-access"]
    out, results, code = render(items, steps)
    assert code == 0, errors(results)
    again, _, code = render(out, ["spiffe-authorization", "spiffe-access", "spiffe-authorization"])
    assert code == 0
    names = sorted(o["metadata"]["name"] for o in again if o["kind"] == "ConfigMap" and OWNER in o["metadata"]["annotations"])
    assert names == ["authorization-diagram", "kube-apiserver-authentication-config"]
    assert again == out


# ---- bad input: errors -----------------------------------------------------------------------

def test_unknown_identity() -> None:
    items = oran()
    grant(items)["spec"]["clients"][0] = {"identity": "focomm"}
    one_error(items, GRANT, "focom-provisioning", "spec.clients[0].identity",
              "'focomm' is not a WorkloadIdentity of this package (identities: focom, ims)")


@pytest.mark.parametrize("field,value,path,words", [
    ("verbs", ["create", "gett"], "spec.kubernetes[0].verbs[1]", ("'gett' is not a verb of provisioningrequests",
                                                                     "did you mean 'get'?")),
    ("verbs", ["create", "escalate"], "spec.kubernetes[0].verbs[1]", ("'escalate' is not a verb",)),
    ("resources", ["provisioningrequest"], "spec.kubernetes[0].resources[0]",
     ("'provisioningrequest' is not a resource of API group", "did you mean 'provisioningrequests'?")),
    ("apiGroups", ["o2ims.provisioning.oran.io"], "spec.kubernetes[0].apiGroups[0]",
     ("is not an API group of Kubernetes v1.34.4 and no CustomResourceDefinition in the package defines it",
      "did you mean 'o2ims.provisioning.oran.org'?")),
])
def test_verb_resource_or_group_the_api_does_not_serve(field: str, value: list[str], path: str,
                                                       words: tuple[str, ...]) -> None:
    items = oran()
    grant(items)["spec"]["kubernetes"][0][field] = value
    one_error(items, GRANT, "focom-provisioning", path, *words)


def test_builtin_resource_in_the_wrong_group_says_which_group_serves_it() -> None:
    items = oran()
    grant(items)["spec"]["kubernetes"] = [{"apiGroups": [""], "resources": ["deployments"], "verbs": ["get"],
                                           "namespaces": ["oran-smo"]}]
    one_error(items, GRANT, "focom-provisioning", "spec.kubernetes[0].resources[0]",
              "deployments is served by API group [apps]")


def test_crd_resources_need_the_crd_in_the_package() -> None:
    items = [o for o in oran() if o["kind"] != "CustomResourceDefinition"]
    one_error(items, GRANT, "focom-provisioning", "spec.kubernetes[0].apiGroups[0]",
              "'o2ims.provisioning.oran.org' is not an API group", "add the CRD to the package")


def test_cluster_scoped_resource_in_namespaces() -> None:
    items = oran()
    rule = grant(items)["spec"]["kubernetes"][0]
    del rule["clusterScope"]
    rule["namespaces"] = ["oran-smo"]
    one_error(items, GRANT, "focom-provisioning", "spec.kubernetes[0].namespaces",
              "provisioningrequests in namespaces [oran-smo], but it is cluster-scoped",
              "Replace namespaces with clusterScope: true")


def test_namespaces_and_cluster_scope_both_or_neither() -> None:
    items = oran()
    grant(items)["spec"]["kubernetes"][0]["namespaces"] = ["oran-smo"]
    one_error(items, GRANT, "focom-provisioning", "spec.kubernetes[0].namespaces",
              "sets both of namespaces and clusterScope: true")


def test_trust_domain_without_issuer() -> None:
    items = oran()
    del ctx(items)["spec"]["jwtIssuer"]
    one_error(items, GRANT, "focom-provisioning", "spec.clients[0].identity",
              "declares no JWT issuer for it", "Add spec.jwtIssuer")


def test_trust_domain_not_federated_and_federated_without_issuer() -> None:
    items = oran()
    grant(items)["spec"]["clients"].append({"spiffeID": "spiffe://partner.example.net/ns/a/sa/b", "cluster": "p"})
    one_error(items, GRANT, "focom-provisioning", "spec.clients[1].spiffeID",
              "partner.example.net, which is neither this cluster's (smo.telco-operator.net) nor a federation peer",
              "add partner.example.net to spec.federation with its bundle endpoint and jwtIssuer")
    ctx(items)["spec"]["federation"] = [{"trustDomain": "partner.example.net",
                                         "bundleEndpointURL": "https://bundle.partner.example.net",
                                         "bundleEndpointProfile": {"type": "https_web"}}]
    one_error(items, GRANT, "focom-provisioning", "spec.clients[1].spiffeID",
              "spec.federation[0] has no jwtIssuer", "Add spec.federation[0].jwtIssuer")


def test_audiences_of_the_two_targets_must_differ() -> None:
    items = oran()
    ctx(items)["spec"]["access"] = {"kubernetes": {"audience": "smo"}, "secrets": {"audience": "smo"}}
    one_error(items, "IdentityContext", "identity-context", "spec.access.secrets.audience",
              "the Kubernetes API and the secrets manager have the same JWT audience 'smo'")


def test_username_prefix_must_not_pose_as_system_users() -> None:
    items = oran()
    ctx(items)["spec"]["access"] = {"kubernetes": {"usernamePrefix": "system:"}}
    one_error(items, "IdentityContext", "identity-context", "spec.access.kubernetes.usernamePrefix",
              "starts with 'system:'")


def test_two_issuers_with_one_url() -> None:
    items = oran()
    ctx(items)["spec"]["federation"] = [{"trustDomain": "partner.example.net",
                                         "bundleEndpointURL": "https://bundle.partner.example.net",
                                         "bundleEndpointProfile": {"type": "https_web"},
                                         "jwtIssuer": {"url": "https://oidc.smo.telco-operator.net"}}]
    one_error(items, "IdentityContext", "identity-context", "spec.federation[0].jwtIssuer.url",
              "is also the issuer of trust domain 'smo.telco-operator.net'")


def test_generated_rbac_name_collides_with_a_hand_written_one() -> None:
    items = oran()
    items.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                  "metadata": {"name": "spiffe-access-focom-provisioning",
                               "annotations": {"config.kubernetes.io/path": "rbac.yaml"}},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                  "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]})
    out, results, code = render(items)
    assert code == 1
    [err] = errors(results)
    assert err["resourceRef"] == {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                                  "name": "spiffe-access-focom-provisioning"}
    assert err["field"]["path"] == "metadata.name"
    assert "is already in the package (rbac.yaml) and was not generated by spiffe-kpt" in err["message"]
    theirs = find(out, "ClusterRoleBinding", "spiffe-access-focom-provisioning")
    assert theirs["subjects"][0]["name"] == "alice"
    assert not [o for o in out if o["kind"] == "ClusterRole"]


def test_schema_errors_name_the_field() -> None:
    items = oran()
    grant(items)["spec"]["clients"][0] = {"identity": "focom", "podLabels": {"a": "b"}}
    one_error(items, GRANT, "focom-provisioning", "spec.clients[0].podLabels", "unknown field 'podLabels'")


def test_unknown_placeholder() -> None:
    items = oran()
    grant(items)["spec"]["clients"][0] = {"spiffeID": "spiffe://smo.telco-operator.net/ns/x/sa/{cluster}"}
    one_error(items, GRANT, "focom-provisioning", "spec.clients[0].spiffeID",
              "may use the placeholders {clusterName}, {region} and {site}", "(not 'cluster')")


# ---- warnings --------------------------------------------------------------------------------

def test_wildcards_warn_with_the_exact_alternative() -> None:
    items = oran()
    grant(items)["spec"]["kubernetes"][0].update({"verbs": ["*"], "resources": ["*"]})
    out, results, code = render(items)
    assert code == 0, errors(results)
    warns = {r["field"]["path"]: r for r in warnings_of(results) if r.get("resourceRef", {}).get("kind") == GRANT}
    assert warns["spec.kubernetes[0].verbs"]["field"]["proposedValue"] == [
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    assert "name them: verbs: [create, delete, deletecollection, get, list, patch, update, watch]" in \
        warns["spec.kubernetes[0].verbs"]["message"]
    assert warns["spec.kubernetes[0].resources"]["field"]["proposedValue"] == ["provisioningrequests"]
    items = oran()
    grant(items)["spec"]["kubernetes"][0]["apiGroups"] = ["*"]
    out, results, code = render(items)
    assert code == 0
    [w] = [r for r in warnings_of(results) if r.get("field", {}).get("path") == "spec.kubernetes[0].apiGroups"]
    assert "use apiGroups: [o2ims.provisioning.oran.org]" in w["message"]


def test_write_access_through_a_prefix_covering_two_workload_types_warns() -> None:
    items = oran()
    add_grant(items, "smo-writes", [{"spiffeIDPrefix": "spiffe://smo.telco-operator.net/cluster/smo-mgmt/ns/oran-smo/"}],
              [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update"], "namespaces": ["oran-smo"]}])
    out, results, code = render(items)
    assert code == 0, errors(results)
    [w] = [r for r in warnings_of(results) if r.get("resourceRef", {}).get("name") == "smo-writes"]
    assert w["field"]["path"] == "spec.clients[0].spiffeIDPrefix"
    assert "may update, and it covers the IDs of 2 types of workload in this package (focom, ims)" in w["message"]
    assert f"spiffeID: {FOCOM_ID}" in w["message"]
    # Read-only through the same prefix: no warning.
    find(items, GRANT, "smo-writes")["spec"]["kubernetes"][0]["verbs"] = ["get"]
    out, results, code = render(items)
    assert not [r for r in warnings_of(results) if r.get("resourceRef", {}).get("name") == "smo-writes"]


def test_trust_domain_client_with_write_access_warns() -> None:
    items = oran()
    add_grant(items, "td-writes", [{"trustDomain": "smo.telco-operator.net"}],
              [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"], "namespaces": ["oran-smo"]}])
    out, results, code = render(items)
    assert code == 0
    [w] = [r for r in warnings_of(results) if r.get("resourceRef", {}).get("name") == "td-writes"]
    assert "every workload of trust domain smo.telco-operator.net" in w["message"]


def test_resource_names_with_create_warn() -> None:
    items = oran()
    grant(items)["spec"]["kubernetes"][0]["resourceNames"] = ["pr-1"]
    out, results, code = render(items)
    assert code == 0
    [w] = [r for r in warnings_of(results) if r.get("field", {}).get("path") == "spec.kubernetes[0].resourceNames"]
    assert "restricts create, list, watch to resourceNames [pr-1], which RBAC cannot do" in w["message"]


def test_the_validator_reports_what_the_function_does() -> None:
    items = oran()
    grant(items)["spec"]["kubernetes"][0]["verbs"] = ["create", "gett"]
    out, results, code = render(items, ["spiffe-specializer", "spiffe-validator"])
    assert code == 1
    [err] = errors(results)
    assert err["field"]["path"] == "spec.kubernetes[0].verbs[1]"
    items = oran()
    del grant(items)["metadata"]["annotations"]["config.kubernetes.io/local-config"]
    out, results, code = render(items, ["spiffe-specializer", "spiffe-validator"])
    [err] = errors(results)
    assert err["resourceRef"]["kind"] == GRANT and "lacks the annotation config.kubernetes.io/local-config" in \
        err["message"]


def test_the_validator_finds_a_stale_audience_in_status() -> None:
    out, _, code = render(oran())
    assert code == 0
    find(out, "WorkloadIdentity", "focom")["status"]["jwtAudiences"] = ["kubernetes:elsewhere"]
    _, results, code = render(out, ["spiffe-validator"])
    assert code == 1
    [err] = errors(results)
    assert err["resourceRef"]["name"] == "focom" and err["field"]["path"] == "status"

"""spiffe-attestation: what it puts on the workloads, what it creates, and every refusal.

Each error case asserts the message, resourceRef, field path and exit code 1 (items untouched)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

from spiffe_kpt.attestation import make_attestable
from spiffe_kpt.krm import yamlio

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
    of_kind,
    run,
    the_result,
)


def attested(items: list[dict]) -> list[dict]:
    doc, code = run(items, make_attestable)
    assert code == 0, doc.get("results")
    return doc["items"]


def pod(obj: dict) -> dict:
    return obj["spec"]["template"]


def test_service_account_labels_namespace_and_service_account_object() -> None:
    items = items_of("oran-focom-ims")
    ims = find(items, "StatefulSet", "ims")
    del ims["metadata"]["namespace"]
    find(items, "WorkloadIdentity", "ims")["spec"].update(namespace="oran-smo",
                                                         selector={"labels": {"workload.telco/id": "ims-1"}})
    out = attested(items)
    ims = find(out, "StatefulSet", "ims")
    assert list(ims["metadata"])[:2] == ["name", "namespace"] and ims["metadata"]["namespace"] == "oran-smo"
    assert pod(ims)["spec"]["serviceAccountName"] == "o2ims"
    assert pod(ims)["metadata"]["labels"]["workload.telco/id"] == "ims-1"
    # The existing (immutable) selector is never changed.
    assert ims["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "ims"}}
    sa = find(out, "ServiceAccount", "o2ims")
    assert sa["metadata"]["namespace"] == "oran-smo"
    assert sa["metadata"]["annotations"]["workloadidentity.nephio.org/owner"] == f"{WI_API}.WorkloadIdentity.ims"
    assert sa["metadata"]["annotations"]["config.kubernetes.io/path"] == "serviceaccount-o2ims.yaml"


def test_selector_is_added_only_where_there_is_none() -> None:
    items = items_of("oran-focom-ims")
    del find(items, "Deployment", "focom")["spec"]["selector"]
    out = attested(items)
    assert find(out, "Deployment", "focom")["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "focom"}}


def test_hand_written_service_account_is_kept_and_not_duplicated() -> None:
    items = items_of("oran-focom-ims")
    items.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "focom", "namespace": "oran-smo"},
                  "automountServiceAccountToken": False})
    out = attested(items)
    sas = [i for i in of_kind(out, "ServiceAccount") if i["metadata"]["name"] == "focom"]
    assert len(sas) == 1 and sas[0]["automountServiceAccountToken"] is False
    assert "annotations" not in sas[0]["metadata"]


def test_default_service_account_is_never_created() -> None:
    items = items_of("oran-focom-ims")
    find(items, "Deployment", "focom")["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    out = attested(items)
    assert not [i for i in of_kind(out, "ServiceAccount") if i["metadata"]["name"] == "default"]


def test_created_service_account_is_deleted_only_when_nothing_runs_as_it() -> None:
    out = attested(items_of("oran-focom-ims"))
    without_identity = [i for i in out if not (i["kind"] == "WorkloadIdentity" and i["metadata"]["name"] == "ims")]
    # The StatefulSet still runs as o2ims: the account stays.
    assert find(attested(copy.deepcopy(without_identity)), "ServiceAccount", "o2ims")
    without_workload = [i for i in without_identity if not (i["kind"] == "StatefulSet")]
    doc, code = run(without_workload, make_attestable)
    assert code == 0
    assert not [i for i in of_kind(doc["items"], "ServiceAccount") if i["metadata"]["name"] == "o2ims"]


# ---- accounts owned by another package -------------------------------------------

def _sa_names(items: list[dict]) -> set[str]:
    return {i["metadata"]["name"] for i in of_kind(items, "ServiceAccount")}


def test_created_service_account_is_announced_with_the_way_out() -> None:
    doc, code = run(items_of("oran-focom-ims"), make_attestable)
    assert code == 0
    msg = next(r["message"] for r in doc["results"] if r["message"].startswith("created ServiceAccount"))
    assert "oran-smo/focom, oran-smo/o2ims" in msg and "run as them" in msg, msg
    assert "spec.createServiceAccount: false" in msg, msg


def test_an_account_that_exists_elsewhere_is_not_created() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["createServiceAccount"] = False
    doc, code = run(items, make_attestable)
    assert code == 0, doc["results"]
    assert _sa_names(doc["items"]) == {"focom"}
    # The workload still runs as the account, which the other package provides.
    assert pod(find(doc["items"], "StatefulSet", "ims"))["spec"]["serviceAccountName"] == "o2ims"
    msg = next(r["message"] for r in doc["results"] if r["message"].startswith("created ServiceAccount"))
    assert "oran-smo/o2ims" not in msg and "WorkloadIdentity focom" in msg, msg
    assert not [r for r in doc["results"] if r["severity"] != "info"], doc["results"]


def test_marking_an_account_external_removes_the_one_generated_earlier() -> None:
    out = attested(items_of("oran-focom-ims"))
    assert "o2ims" in _sa_names(out)
    find(out, "WorkloadIdentity", "ims")["spec"]["createServiceAccount"] = False
    doc, code = run(out, make_attestable)
    assert code == 0
    assert "o2ims" not in _sa_names(doc["items"])
    the_result(doc, "info", "ServiceAccount", "o2ims", None, "WorkloadIdentity ims says it exists elsewhere")
    assert yamlio.dump(attested(copy.deepcopy(doc["items"]))) == yamlio.dump(doc["items"])


def test_identities_disagreeing_about_an_account_are_warned() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["createServiceAccount"] = False
    find(items, "WorkloadIdentity", "focom")["spec"]["serviceAccountName"] = "o2ims"
    find(items, "Deployment", "focom")["spec"]["template"]["spec"]["serviceAccountName"] = "o2ims"
    # Both run as o2ims; the format is per workload so the IDs differ.
    find(items, "IdentityContext", "identity-context")["spec"].update(idFormat="template",
                                                                     idTemplate="/ns/{namespace}/w/{workloadName}")
    doc, code = run(items, make_attestable)
    assert code == 0, doc["results"]
    assert "o2ims" not in _sa_names(doc["items"])
    the_result(doc, "warning", "WorkloadIdentity", "focom", "spec.createServiceAccount",
               "which WorkloadIdentity ims says exists elsewhere", "Set spec.createServiceAccount: false here too")


def test_an_account_marked_external_but_declared_in_the_package_is_warned() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["createServiceAccount"] = False
    items.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": "o2ims", "namespace": "oran-smo", "annotations": {"config.kubernetes.io/path": "rbac/o2ims.yaml"}}})
    doc, code = run(items, make_attestable)
    assert code == 0
    the_result(doc, "warning", "WorkloadIdentity", "ims", "spec.createServiceAccount",
               "but the package declares it (rbac/o2ims.yaml)", "ConfigSync")


def test_a_local_config_service_account_stands_for_one_that_exists_elsewhere() -> None:
    """kpt never applies a local-config resource: declaring the account that way names it without
    creating it, and it is not a duplicate of the owner's."""
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["createServiceAccount"] = False
    items.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": "o2ims", "namespace": "oran-smo", "annotations": {"config.kubernetes.io/local-config": "true"}}})
    doc, code = run(items, make_attestable)
    assert code == 0
    assert not [r for r in doc["results"] if r["severity"] != "info"], doc["results"]
    assert [i for i in of_kind(doc["items"], "ServiceAccount") if i["metadata"]["name"] == "o2ims"] == [items[-1]]


def _binding(kind: str = "RoleBinding", **subject: str) -> dict:
    meta = {"name": "o2ims-reader", "annotations": {"config.kubernetes.io/path": "rbac.yaml"}}
    if kind == "RoleBinding":
        meta["namespace"] = "oran-smo"
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", **subject}]}


@pytest.mark.parametrize("binding", [_binding(name="o2ims"),
                                     _binding("ClusterRoleBinding", name="o2ims", namespace="oran-smo")],
                         ids=["RoleBinding", "ClusterRoleBinding"])
def test_a_generated_account_the_package_rbac_binds_is_warned(binding: dict) -> None:
    items = items_of("oran-focom-ims") + [binding]
    doc, code = run(items, make_attestable)
    assert code == 0
    assert "o2ims" in _sa_names(doc["items"])  # still created: the warning says how to decide
    the_result(doc, "warning", "WorkloadIdentity", "ims", "spec.createServiceAccount",
               f"{binding['kind']} o2ims-reader binds it", "set spec.createServiceAccount: false",
               "set it to true")
    # The warning stays on every render until the author decides.
    again, _ = run(doc["items"], make_attestable)
    assert [r for r in again["results"] if r["severity"] == "warning"]
    # Deciding either way silences it.
    for decision in (True, False):
        decided = copy.deepcopy(items)
        find(decided, "WorkloadIdentity", "ims")["spec"]["createServiceAccount"] = decision
        doc, code = run(decided, make_attestable)
        assert code == 0 and not [r for r in doc["results"] if r["severity"] != "info"], doc["results"]
        assert ("o2ims" in _sa_names(doc["items"])) is decision


def test_a_binding_of_another_account_or_namespace_is_not_warned() -> None:
    items = items_of("oran-focom-ims") + [_binding(name="o2ims", namespace="other"), _binding(name="reader")]
    doc, code = run(items, make_attestable)
    assert code == 0 and not [r for r in doc["results"] if r["severity"] != "info"], doc["results"]


def test_create_service_account_must_be_a_boolean() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "ims")["spec"]["createServiceAccount"] = "no"
    doc, code = run(copy.deepcopy(items), make_attestable)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", "ims", "spec.createServiceAccount", "must be of type boolean")


def test_idempotent() -> None:
    items = items_of("observability")
    once = attested(items)
    assert yamlio.dump(attested(copy.deepcopy(once))) == yamlio.dump(once)


# ---- the SPIFFE CSI volume -------------------------------------------------------------------

def test_csi_volume_mount_and_endpoint_env() -> None:
    out = attested(items_of("5g-core/amf"))
    spec = pod(find(out, "Deployment", "amf-regional"))["spec"]
    assert {"name": "spiffe-workload-api", "csi": {"driver": "csi.spiffe.io", "readOnly": True}} in spec["volumes"]
    amf = spec["containers"][0]
    assert {"name": "spiffe-workload-api", "mountPath": "/run/spiffe", "readOnly": True} in amf["volumeMounts"]
    assert {"name": "SPIFFE_ENDPOINT_SOCKET", "value": "unix:///run/spiffe/spire-agent.sock"} in amf["env"]


def test_csi_into_init_container_only_when_named() -> None:
    items = items_of("5g-core/smf")
    out = attested(items)
    spec = pod(find(out, "Deployment", "smf-regional"))["spec"]
    assert "volumeMounts" not in spec["initContainers"][0]
    assert any(m["name"] == "spiffe-workload-api" for m in spec["containers"][0]["volumeMounts"])


def test_changing_the_mount_path_moves_mount_and_env() -> None:
    out = attested(items_of("5g-core/smf"))
    find(out, "WorkloadIdentity", "smf-regional")["spec"]["workloadAPI"]["csi"]["mountPath"] = "/run/spire"
    smf = pod(find(attested(out), "Deployment", "smf-regional"))["spec"]["containers"][0]
    assert [m["mountPath"] for m in smf["volumeMounts"] if m["name"] == "spiffe-workload-api"] == ["/run/spire"]
    assert [e["value"] for e in smf["env"] if e["name"] == "SPIFFE_ENDPOINT_SOCKET"] == ["unix:///run/spire/spire-agent.sock"]


def test_csi_into_a_container_that_does_not_exist() -> None:
    items = items_of("5g-core/smf")
    find(items, "WorkloadIdentity", "smf-regional")["spec"]["workloadAPI"]["csi"]["containers"] = ["smf", "sidecar"]
    doc, code = run(items, make_attestable)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", "smf-regional", "spec.workloadAPI.csi.containers[1]",
               "no container 'sidecar'", "smf, wait-nrf")


def test_csi_never_overwrites_a_person_s_env_or_mount() -> None:
    items = items_of("5g-core/smf")
    smf = pod(find(items, "Deployment", "smf-regional"))["spec"]["containers"][0]
    smf["env"] = [{"name": "SPIFFE_ENDPOINT_SOCKET", "value": "unix:///tmp/agent.sock"}]
    doc, code = run(items, make_attestable)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", "smf-regional", "spec.workloadAPI.csi.containers[0]",
               "already sets SPIFFE_ENDPOINT_SOCKET='unix:///tmp/agent.sock'")
    items = items_of("5g-core/smf")
    pod(find(items, "Deployment", "smf-regional"))["spec"]["volumes"].append({"name": "spiffe-workload-api",
                                                                               "emptyDir": {}})
    doc, code = run(items, make_attestable)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", "smf-regional", "spec.workloadAPI.csi", "rename that volume")


@pytest.mark.parametrize("path", ["run/spiffe", "/run/spiffe/", "/a:b"])
def test_csi_mount_path_must_be_an_absolute_directory(path: str) -> None:
    items = items_of("5g-core/smf")
    find(items, "WorkloadIdentity", "smf-regional")["spec"]["workloadAPI"]["csi"]["mountPath"] = path
    doc, code = run(items, make_attestable)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", "smf-regional", "spec.workloadAPI.csi.mountPath",
               "an absolute directory path")


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["Service", "ConfigMap", "ReplicationController"])
def test_workload_kinds_that_cannot_carry_an_identity(kind: str) -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "focom")["spec"]["workloadRef"]["kind"] = kind
    doc, code = run(items, make_attestable)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", "focom", "spec.workloadRef.kind",
               "must be one of Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod", repr(kind))


def test_existing_service_account_contradicting_the_identity() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "focom")["spec"]["serviceAccountName"] = "focom-v2"
    doc, code = run(items, make_attestable)
    assert_failed_untouched(doc, code, items)
    r = the_result(doc, "error", "WorkloadIdentity", "focom", "spec.serviceAccountName", "'focom-v2'", "'focom'")
    assert r["field"]["currentValue"] == "focom-v2" and r["field"]["proposedValue"] == "focom"


def test_existing_namespace_contradicting_the_identity() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "focom")["spec"]["namespace"] = "oran-nonrtric"
    doc, code = run(items, make_attestable)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", "focom", "spec.namespace", "'oran-nonrtric'", "'oran-smo'")


def test_selector_that_also_matches_another_workloads_pods() -> None:
    items = items_of("oran-focom-ims")
    find(items, "WorkloadIdentity", "focom")["spec"]["selector"] = {"labelKeys": ["app.kubernetes.io/part-of"]}
    doc, code = run(items, make_attestable)
    assert_failed_untouched(doc, code, items)
    the_result(doc, "error", "WorkloadIdentity", "focom", "spec.selector", "app.kubernetes.io/part-of=oran-smo",
               "also matches the pods of StatefulSet oran-smo/ims", "spec.selector.labels")
    # The validator reports it too (it trusts nothing earlier steps did).
    doc, code = run(items, "spiffe-validator")
    assert code == 1
    the_result(doc, "error", "WorkloadIdentity", "focom", "spec.selector", "also matches")


def test_same_labels_in_another_namespace_do_not_overlap() -> None:
    items = items_of("oran-focom-ims")
    find(items, "StatefulSet", "ims")["metadata"]["namespace"] = "oran-o2"
    find(items, "WorkloadIdentity", "focom")["spec"]["selector"] = {"labelKeys": ["app.kubernetes.io/part-of"]}
    attested(items)


def test_selector_overlap_check_is_linear(tmp_path: Path) -> None:
    """10,000 workloads in one namespace, each with its own label and a shared one."""
    items = items_of("oran-focom-ims")
    for n in range(10_000):
        items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": f"w{n}", "namespace": "oran-smo"},
                      "spec": {"selector": {"matchLabels": {"app": f"w{n}"}},
                               "template": {"metadata": {"labels": {"app": f"w{n}", "tier": "x"}},
                                            "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
        items.append({"apiVersion": WI_API, "kind": "WorkloadIdentity", "metadata": {"name": f"w{n}"},
                      "spec": {"workloadRef": {"kind": "Deployment", "name": f"w{n}"}}})
    from spiffe_kpt.api.resolve import resolve
    from spiffe_kpt.attestation import check_selector_overlaps
    from spiffe_kpt.krm import ResourceList
    res = resolve(ResourceList(items))
    start = time.perf_counter()
    assert check_selector_overlaps(items, res.identities) == []
    assert time.perf_counter() - start < 1.0


@pytest.mark.kpt
def test_kpt_render_refuses_a_contradicting_service_account(tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "5g-core" / "upf", tmp_path / "upf")
    text = (pkg / "deployment.yaml").read_text()
    (pkg / "deployment.yaml").write_text(text.replace("    spec:\n      containers:",
                                                      "    spec:\n      serviceAccountName: upf-legacy\n      containers:"))
    (pkg / "deployment.yaml").write_text((pkg / "deployment.yaml").read_text().replace(
        "  selector:\n    labelKeys:", "  serviceAccountName: upf\n  selector:\n    labelKeys:"))
    git_snapshot(pkg)
    r = kpt_render(pkg)
    assert r.exit_code == 1 and git_diff(pkg) == ""
    err = next(x for x in r.results if x.get("severity") == "error")
    assert err["resourceRef"]["name"] == "upf-edge01" and err["field"]["path"] == "spec.serviceAccountName"
    assert "'upf'" in err["message"] and "'upf-legacy'" in err["message"]

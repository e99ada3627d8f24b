"""Wrongly typed input is a field error at the boundary, never an internal error, and on any
error the items come back as they came in."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from spiffe_kpt import registry
from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.runner import process

from .pkgtools import EXAMPLES, read_package

FUNCTIONS = ("spiffe-specializer", "spiffe-attestation", "spiffe-registration", "spiffe-authorization",
             "spiffe-validator", "spiffe-hydrate")


def _package() -> list[dict[str, Any]]:
    return read_package(EXAMPLES / "authz-5g-like")


def _wire(items: list, **top: Any) -> str:
    return yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items, **top})


def _function(name: str):
    if name == "spiffe-hydrate":
        from spiffe_kpt.hydrate import hydrate
        return hydrate
    return registry.get(name)


def _run(name: str, text: str) -> tuple[dict[str, Any], int]:
    out, code = process(text, _function(name), name)
    return yamlio.load(out), code


def _errors(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in doc.get("results") or [] if r["severity"] == "error"]


def _first(items: list, kind: str) -> dict[str, Any]:
    return next(i for i in items if i["kind"] == kind)


# ---- 16: items intact on error ---------------------------------------------------------------

@pytest.mark.parametrize("break_it, expected", [
    (lambda items, top: items[1].pop("apiVersion"), "items[1] is not a resource"),
    (lambda items, top: items[2].pop("kind"), "items[2] is not a resource"),
    (lambda items, top: top.update(functionConfig=["not", "a", "mapping"]), "functionConfig must be a mapping"),
    (lambda items, top: items[0].update(kind=["Kptfile"]), "items[0].kind must be a string, not list"),
    (lambda items, top: items[3].update(apiVersion={"v": 1}), "items[3].apiVersion must be a string, not dict"),
    (lambda items, top: items[1].update(metadata="x"), "items[1].metadata must be a mapping, not str"),
], ids=["no-apiVersion", "no-kind", "functionConfig", "kind-list", "apiVersion-map", "metadata-str"])
def test_invalid_resourcelist_gives_the_items_back(break_it, expected: str) -> None:
    # The output keeps the items: kpt replaces the package with the output.
    items, top = _package(), {}
    break_it(items, top)
    text = _wire(items, **top)
    for name in FUNCTIONS:
        doc, code = _run(name, text)
        assert code == 1
        [err] = _errors(doc)
        assert expected in err["message"], err["message"]
        assert doc["items"] == yamlio.load(text)["items"]


def test_every_error_result_gives_the_items_back_unchanged() -> None:
    # An error found late (after the authorization resolved named egress ports) must not leak
    # anything the function already changed.
    items = read_package(EXAMPLES / "5g-core" / "smf")
    wi = next(i for i in items if i["kind"] == "WorkloadIdentity" and i.get("spec", {}).get("egress"))
    wi["spec"]["egress"].append(copy.deepcopy(wi["spec"]["egress"][0]))  # duplicate rule name: error
    text = _wire(items)
    for name in FUNCTIONS:
        doc, code = _run(name, text)
        if code:
            assert doc["items"] == yamlio.load(text)["items"], name
            assert yamlio.dump(doc["items"]) == yamlio.dump(yamlio.load(text)["items"])


# ---- 15: wrong types at the boundary are field errors ---------------------------------------

def _workload(items: list) -> dict[str, Any]:
    return _first(items, "Deployment")


@pytest.mark.parametrize("edit, path, expected", [
    (lambda d: d["spec"]["template"]["spec"].update(containers={"name": "x"}),
     "spec.template.spec.containers", "must be a list, not a mapping"),
    (lambda d: d["spec"]["template"]["spec"].update(containers="app"),
     "spec.template.spec.containers", "must be a list, not a string"),
    (lambda d: d["spec"]["template"]["spec"].update(initContainers=7),
     "spec.template.spec.initContainers", "must be a list, not an integer"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports={"containerPort": 80}),
     "spec.template.spec.containers[0].ports", "must be a list, not a mapping"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports="80"),
     "spec.template.spec.containers[0].ports", "must be a list, not a string"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports=[80]),
     "spec.template.spec.containers[0].ports[0]", "must be a mapping, not an integer"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(ports=[{"containerPort": "80"}]),
     "spec.template.spec.containers[0].ports[0].containerPort", "must be an integer, not a string"),
    (lambda d: d["spec"]["template"]["spec"]["containers"].append("sidecar"),
     "spec.template.spec.containers[1]", "must be a mapping, not a string"),
    (lambda d: d["spec"]["template"]["spec"].update(volumes={"a": 1}),
     "spec.template.spec.volumes", "must be a list, not a mapping"),
    (lambda d: d["spec"]["template"]["spec"].update(serviceAccountName=["a"]),
     "spec.template.spec.serviceAccountName", "must be a string, not a list"),
    (lambda d: d["spec"]["template"].update(spec=["x"]),
     "spec.template.spec", "must be a mapping, not a list"),
    (lambda d: d["spec"]["template"]["metadata"].update(labels=["app"]),
     "spec.template.metadata.labels", "must be a mapping, not a list"),
    (lambda d: d["spec"].update(template="x"),
     "spec.template", "must be a mapping, not a string"),
], ids=["containers-map", "containers-str", "init-int", "ports-map", "ports-str", "port-int",
        "containerPort-str", "container-str", "volumes-map", "sa-list", "spec-list", "labels-list", "template-str"])
def test_workload_fields_of_the_wrong_type_are_field_errors(edit, path: str, expected: str) -> None:
    items = _package()
    deployment = _workload(items)
    edit(deployment)
    text = _wire(items)
    for name in FUNCTIONS:
        doc, code = _run(name, text)
        assert code == 1, name
        errs = _errors(doc)
        assert not any("internal error" in e["message"] for e in errs), errs
        mine = [e for e in errs if e.get("field", {}).get("path") == path]
        assert mine, (name, errs)
        assert expected in mine[0]["message"]
        assert mine[0]["resourceRef"]["kind"] == "Deployment"
        assert mine[0]["resourceRef"]["name"] == deployment["metadata"]["name"]
        assert doc["items"] == yamlio.load(text)["items"]


@pytest.mark.parametrize("edit, path, expected", [
    (lambda k: k.update(info="gates"), "info", "must be a mapping, not a string"),
    (lambda k: k.update(info={"readinessGates": {"conditionType": "x"}}), "info.readinessGates",
     "must be a list, not a mapping"),
    (lambda k: k.update(info={"readinessGates": ["x"]}), "info.readinessGates[0]", "must be a mapping, not a string"),
    (lambda k: k.update(status=["Ready"]), "status", "must be a mapping, not a list"),
    (lambda k: k.update(status={"conditions": "none"}), "status.conditions", "must be a list, not a string"),
    (lambda k: k.update(status={"conditions": [1]}), "status.conditions[0]", "must be a mapping, not an integer"),
], ids=["info-str", "gates-map", "gate-str", "status-list", "conditions-str", "condition-int"])
def test_kptfile_sections_of_the_wrong_type_are_field_errors(edit, path: str, expected: str) -> None:
    items = _package()
    edit(_first(items, "Kptfile"))
    text = _wire(items)
    for name in ("spiffe-specializer", "spiffe-registration", "spiffe-hydrate"):
        doc, code = _run(name, text)
        assert code == 1, name
        errs = _errors(doc)
        assert not any("internal error" in e["message"] for e in errs), errs
        [mine] = [e for e in errs if e.get("field", {}).get("path") == path]
        assert expected in mine["message"] and mine["resourceRef"]["kind"] == "Kptfile"
        assert doc["items"] == yamlio.load(text)["items"]

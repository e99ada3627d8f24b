"""Every spire.spiffe.io resource the examples emit is accepted by the upstream CRD schema and by
our own schema, and the offline SPIFFE ID equals the one Go's text/template renders in-cluster.

The upstream CRDs are read from ../shared/reference/upstream-crds (reference data, never copied
into the project). The Go program in tests/gotemplate renders templates over the same data
structure spire-controller-manager uses (pkg/spireentry templateData).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from spiffe_kpt.api import workloads as wl
from spiffe_kpt.api.schema import load_schema, validate

from ..pkgtools import EXAMPLES, UPSTREAM_CRDS, read_package
from .helpers import SPIRE_API, examples_with_registration, render_chain

GOTEMPLATE = Path(__file__).resolve().parent.parent / "gotemplate"
EXAMPLES_WITH_REGISTRATION = examples_with_registration()
SPIRE_KINDS = {"ClusterSPIFFEID": "clusterspiffeids", "ClusterFederatedTrustDomain": "clusterfederatedtrustdomains",
               "ClusterStaticEntry": "clusterstaticentries"}


def _ids(p: Path) -> str:
    return str(p.relative_to(EXAMPLES))


def upstream_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((UPSTREAM_CRDS / f"spire.spiffe.io_{SPIRE_KINDS[kind]}.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return version["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="module", params=EXAMPLES_WITH_REGISTRATION, ids=_ids)
def rendered(request) -> tuple[Path, list[dict[str, Any]]]:
    items, results, code = render_chain(read_package(request.param))
    assert code == 0, results
    return request.param, items


def _spire(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i.get("apiVersion") == SPIRE_API]


def _emitted(item: dict[str, Any]) -> dict[str, Any]:
    """The resource as applied: without kpt's bookkeeping annotations."""
    item = json.loads(json.dumps(item))
    ann = item["metadata"]["annotations"]
    for key in [k for k in ann if k.startswith(("config.kubernetes.io/", "internal.config.kubernetes.io/"))]:
        del ann[key]
    return item


def test_examples_cover_every_kind() -> None:
    kinds = set()
    for pkg in EXAMPLES_WITH_REGISTRATION:
        items, _, _ = render_chain(read_package(pkg))
        kinds |= {i["kind"] for i in _spire(items)}
    assert kinds == set(SPIRE_KINDS)


def test_emitted_resources_validate_against_upstream_crds(rendered) -> None:
    _, items = rendered
    spire = _spire(items)
    assert spire, "the example emits registrations"
    for item in spire:
        schema = upstream_schema(item["kind"])
        errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(_emitted(item))]
        assert errors == [], (item["metadata"]["name"], errors)


def test_emitted_resources_validate_against_our_schemas(rendered) -> None:
    _, items = rendered
    for item in _spire(items):
        obj = _emitted(item)
        assert validate(item["kind"], obj) == [], item["metadata"]["name"]
        jsonschema.Draft202012Validator(load_schema(item["kind"])).validate(obj)


# ---- the offline ID against Go's text/template ------------------------------------------------

@pytest.fixture(scope="session")
def gotemplate(tmp_path_factory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is required to check templates with the real text/template: install go (https://go.dev/dl/)")
    out = tmp_path_factory.mktemp("gotemplate") / "gotemplate"
    src = tmp_path_factory.mktemp("gotemplate-src")
    shutil.copytree(GOTEMPLATE, src, dirs_exist_ok=True)
    proc = subprocess.run([go, "build", "-o", str(out), "."], cwd=src, capture_output=True, text=True,
                          env={**__import__("os").environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"})
    assert proc.returncode == 0, proc.stderr
    return out


def go_render(binary: Path, cases: list[dict[str, Any]]) -> list[dict[str, str]]:
    proc = subprocess.run([str(binary)], input=json.dumps(cases), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def pods_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One pod per workload, as the API server creates it from the mutated template: the
    namespace of the workload, serviceAccountName defaulted to 'default'."""
    pods = []
    for obj in items:
        if not wl.is_workload(obj):
            continue
        meta = (wl.pod_template(obj).get("metadata") or {})
        spec = wl.pod_spec(obj)
        pods.append({"workload": f"{obj['kind']}/{obj['metadata']['name']}",
                     "PodMeta": {"Name": f"{obj['metadata']['name']}-7d4b9c-x2x7q", "Namespace": wl.namespace(obj),
                                 "UID": "5f1c1d7e-0000-4000-8000-000000000001",
                                 "Labels": {str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
                                 "Annotations": {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}},
                     "PodSpec": {"ServiceAccountName": spec.get("serviceAccountName") or "default",
                                 "NodeName": "worker-1"}})
    return pods


def test_offline_id_equals_go_template_for_every_pod(rendered, gotemplate) -> None:
    _, items = rendered
    ctx = next(i for i in items if i["kind"] == "IdentityContext")["spec"]
    cluster = next(i for i in items if i["kind"] == "WorkloadCluster")["spec"]["clusterName"]
    identities = {i["metadata"]["name"]: i for i in items if i["kind"] == "WorkloadIdentity"}
    csids = [i for i in _spire(items) if i["kind"] == "ClusterSPIFFEID"]
    # A trust-domain migration in dual or cutover registers every identity in both domains: B's
    # twin carries B's className, and B's controller renders its template with B.
    migration = ctx.get("migration") or {}
    twins = migration.get("phase") in ("dual", "cutover")
    assert len(csids) == len(identities) * (2 if twins else 1)
    class_a = ctx.get("className") or f"spire-{cluster}"
    pods = pods_of(items)
    cases, expected = [], []
    for csid in csids:
        owner = csid["metadata"]["annotations"]["workloadidentity.nephio.org/owner"].rsplit(".", 1)[-1]
        ident = identities[owner]
        ref = ident["spec"]["workloadRef"]
        selected = [p for p in pods if _matches(csid["spec"]["namespaceSelector"],
                                                {"kubernetes.io/metadata.name": p["PodMeta"]["Namespace"]})
                    and _matches(csid["spec"]["podSelector"], p["PodMeta"]["Labels"])]
        # Exactly the pods of its own workload, no others.
        assert [p["workload"] for p in selected] == [f"{ref['kind']}/{ref['name']}"], csid["metadata"]["name"]
        td = migration["to"] if twins and csid["spec"].get("className") != class_a else ctx["trustDomain"]
        ids = [ident["status"]["spiffeID"], (ident["status"].get("migration") or {}).get("alternateSPIFFEID", "")]
        for pod in selected:
            cases.append({"template": csid["spec"]["spiffeIDTemplate"],
                          "data": {"TrustDomain": td, "ClusterName": cluster,
                                   "ClusterDomain": "cluster.local", "PodMeta": pod["PodMeta"],
                                   "PodSpec": pod["PodSpec"], "NodeMeta": {"Name": "worker-1"}}})
            expected.append(next(i for i in ids if i.startswith(f"spiffe://{td}/")))
    rendered_ids = go_render(gotemplate, cases)
    assert [r.get("id") or r.get("error") for r in rendered_ids] == expected


def test_go_template_semantics_the_generator_relies_on(gotemplate) -> None:
    """What text/template does with the constructs our templates use, and the pitfalls."""
    data = {"TrustDomain": "core.example-operator.net", "ClusterName": "edge01",
            "PodMeta": {"Namespace": "ns1", "Labels": {"app.kubernetes.io/name": "upf"}},
            "PodSpec": {"ServiceAccountName": "upf"}}
    out = go_render(gotemplate, [
        {"template": 'spiffe://{{ .TrustDomain }}/x/{{ index .PodMeta.Labels "app.kubernetes.io/name" }}', "data": data},
        # A missing label renders as the empty string: an empty path segment, an invalid ID. The
        # generator only uses labels the podSelector requires, so a selected pod always has them.
        {"template": 'spiffe://{{ .TrustDomain }}/x/{{ index .PodMeta.Labels "missing" }}/y', "data": data},
        # Dotted label keys cannot be reached with .PodMeta.Labels.key syntax.
        {"template": "spiffe://{{ .TrustDomain }}/{{ .PodMeta.Labels.app.kubernetes.io/name }}", "data": data},
        {"template": "spiffe://{{ .TrustDomain }}/{{ .PodSpec.Nope }}", "data": data},
    ])
    assert out[0] == {"id": "spiffe://core.example-operator.net/x/upf"}
    assert out[1] == {"id": "spiffe://core.example-operator.net/x//y"}
    assert "error" in out[2] and "error" in out[3]

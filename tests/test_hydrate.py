"""spiffe-hydrate is the chain in one step: the real kpt renders every example both ways and the
packages, results and exit codes must be the same.

Copy A runs the six functions as separate pipeline steps (specializer, attestation,
registration, authorization, access as mutators; validator as validator), copy B runs only
spiffe-hydrate. Everything kpt writes must be equal except the Kptfile's pipeline itself.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from spiffe_kpt.krm import yamlio

from .pkgtools import EXAMPLES, copy_package, kpt_render

IMG = "ghcr.io/spiffe-kpt/{}:v0.1.0"
CHAIN = {"mutators": [{"image": IMG.format(f)}
                      for f in ("specializer", "attestation", "registration", "authorization", "access")],
         "validators": [{"image": IMG.format("validator")}]}
ONE_STEP = {"mutators": [{"image": IMG.format("hydrate")}]}


def _examples() -> list[Path]:
    return sorted(p.parent.parent for p in EXAMPLES.rglob(".expected/config.yaml"))


def _set_pipeline(pkg: Path, pipeline: dict) -> None:
    kf = pkg / "Kptfile"
    obj = yamlio.load(kf.read_text())
    obj["pipeline"] = pipeline
    kf.write_text(yamlio.dump(obj))


def _without_pipeline(kptfile: Path) -> dict:
    obj = yamlio.load(kptfile.read_text())
    obj.pop("pipeline", None)
    return obj


def _view(results: list[dict]) -> list[tuple]:
    out = []
    for r in results:
        tags = {k: v for k, v in (r.get("tags") or {}).items() if k != "function"}
        out.append((r.get("severity"), r.get("message"), str(r.get("resourceRef")),
                    str((r.get("field") or {}).get("path")), str(tags)))
    return sorted(out)


def _tree(pkg: Path) -> set[str]:
    return {p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()}


@pytest.mark.kpt
@pytest.mark.parametrize("example", _examples(), ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_hydrate_renders_what_the_separate_functions_render(example: Path, tmp_path: Path) -> None:
    a = copy_package(example, tmp_path / "chain")
    b = copy_package(example, tmp_path / "hydrate")
    _set_pipeline(a, CHAIN)
    _set_pipeline(b, ONE_STEP)
    ra, rb = kpt_render(a), kpt_render(b)
    assert ra.exit_code == rb.exit_code, (ra.stderr, rb.stderr)
    assert _view(ra.results) == _view(rb.results)
    assert any(r.get("severity") for r in ra.results), "the render reports something to compare"
    assert _tree(a) == _tree(b)
    for rel in sorted(_tree(a)):
        if rel == "Kptfile":
            assert _without_pipeline(a / rel) == _without_pipeline(b / rel)
        else:
            assert filecmp.cmp(a / rel, b / rel, shallow=False), rel
    if ra.exit_code == 0:
        # the chain did something: hydrate's equality is not that of two untouched copies
        assert not filecmp.cmp(a / "Kptfile", example / "Kptfile", shallow=False)


def test_hydrate_checks_each_input_schema_once(monkeypatch) -> None:
    """Five steps in one process resolve the package five times; the WorkloadIdentity schemas are
    checked once (a quarter of hydrate's own time at thousands of workloads), and an invalid one
    is still reported."""
    from spiffe_kpt.api import schema as schema_mod
    from spiffe_kpt.hydrate import hydrate
    from spiffe_kpt.krm.runner import process

    from .pkgtools import read_package

    calls: list[str] = []
    real = schema_mod.validate

    def counting(kind, obj):
        if kind == "WorkloadIdentity":
            calls.append(obj["metadata"]["name"])
        return real(kind, obj)

    monkeypatch.setattr(schema_mod, "validate", counting)
    items = read_package(EXAMPLES / "oran-focom-ims")
    names = sorted(i["metadata"]["name"] for i in items if i["kind"] == "WorkloadIdentity")
    doc = {"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items}
    out, code = process(yamlio.dump(doc), hydrate, "hydrate")
    assert code == 0
    assert sorted(calls) == names  # once each, not once per step

    calls.clear()
    bad = read_package(EXAMPLES / "oran-focom-ims")
    next(i for i in bad if i["kind"] == "WorkloadIdentity")["spec"]["serviceAccount"] = "typo"
    out, code = process(yamlio.dump({**doc, "items": bad}), hydrate, "hydrate")
    assert code == 1 and "path: spec.serviceAccount" in out

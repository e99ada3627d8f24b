"""Every example package under blueprints/examples, rendered by the real kpt and in-process.

An example is a directory with a Kptfile and ``.expected/`` holding ``config.yaml`` (the
expected exit code), ``diff.patch`` (what the render changes) and ``results.yaml`` (the
results). Set UPDATE_EXPECTED=1 to rewrite them, then review the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spiffe_kpt import registry
from spiffe_kpt.krm import yamlio
from spiffe_kpt.local_render import image_refs_to_exec

from .pkgtools import (
    EXAMPLES,
    copy_package,
    git_diff,
    git_snapshot,
    kpt_render,
    read_package,
    run_in_process,
    strip_annotations,
)

UPDATE = os.environ.get("UPDATE_EXPECTED") == "1"


def _examples() -> list[Path]:
    return sorted(p.parent.parent for p in EXAMPLES.rglob(".expected/config.yaml"))


def _key(item: dict) -> tuple:
    meta = item.get("metadata") or {}
    return (item.get("apiVersion"), item.get("kind"), meta.get("namespace", ""), meta.get("name"))


def _result_view(r: dict) -> dict:
    out = {"severity": r.get("severity"), "message": r.get("message")}
    if r.get("resourceRef"):
        out["resourceRef"] = r["resourceRef"]
    if r.get("field"):
        out["field"] = r["field"].get("path")
    return out


@pytest.fixture(params=_examples(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def example(request) -> Path:
    return request.param


def test_example_hides_its_expectations_from_kpt(example: Path) -> None:
    """kpt reads every YAML file under a package; .expected/ must be listed in .krmignore or
    `kpt fn render <example>` fails on .expected/config.yaml."""
    krmignore = example / ".krmignore"
    assert krmignore.is_file() and ".expected" in krmignore.read_text().split(), \
        f"add a .krmignore with the line '.expected' to {example}"


@pytest.mark.kpt
def test_kpt_render_matches_expected_and_is_idempotent(example: Path, tmp_path: Path) -> None:
    expected = example / ".expected"
    config = yamlio.load((expected / "config.yaml").read_text()) or {}
    pkg = copy_package(example, tmp_path / example.name)
    git_snapshot(pkg)
    first = kpt_render(pkg)
    diff = git_diff(pkg)
    results = [_result_view(r) for r in first.results]
    if UPDATE:
        (expected / "diff.patch").write_text(diff)
        (expected / "results.yaml").write_text(yamlio.dump(results))
    assert first.exit_code == config.get("exitCode", 0), first.stderr
    assert diff == (expected / "diff.patch").read_text()
    assert results == (yamlio.load((expected / "results.yaml").read_text()) or [])
    if first.exit_code != 0:
        assert diff == "", "a failed render must not write anything"
        return
    # Rendering the rendered package again changes nothing.
    git_snapshot(pkg)
    second = kpt_render(pkg)
    assert second.exit_code == 0, second.stderr
    assert git_diff(pkg) == ""


def _pipeline(pkg: Path) -> list[str]:
    """The pipeline's function names (console scripts), whether referenced by image or exec."""
    kptfile = yamlio.load(image_refs_to_exec((pkg / "Kptfile").read_text())[0])
    pipeline = kptfile.get("pipeline") or {}
    return [f["exec"] for f in (pipeline.get("mutators") or []) + (pipeline.get("validators") or [])]


def test_python_api_gives_what_kpt_gives(example: Path, tmp_path: Path) -> None:
    """The same pipeline run in-process produces the same resources as the kpt render."""
    if any(p.name == "Kptfile" and p.parent != example for p in example.rglob("Kptfile")):
        pytest.fail("nested packages are not supported by this comparison yet")
    config = yamlio.load((example / ".expected" / "config.yaml").read_text()) or {}
    steps = [registry.get(name) for name in _pipeline(example)]
    items, _, code = run_in_process(read_package(example), steps)
    assert code == config.get("exitCode", 0)
    pkg = copy_package(example, tmp_path / example.name)
    kpt_render(pkg)
    ours = {_key(i): i for i in strip_annotations(items)}
    theirs = {_key(i): i for i in strip_annotations(read_package(pkg))}
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == theirs[key], key

"""The porch function runner mapping is generated from the installed console scripts and covers
every image the blueprints name (so porch renders them unchanged in exec mode)."""

from __future__ import annotations

import re

from spiffe_kpt import porch_exec
from spiffe_kpt.krm import yamlio

from .pkgtools import REPO


def _images_in_blueprints() -> set[str]:
    refs: set[str] = set()
    for kptfile in (REPO / "blueprints").rglob("Kptfile"):
        refs |= set(re.findall(r"image:\s*[\"']?(ghcr\.io/spiffe-kpt/[^\s\"']+)", kptfile.read_text()))
    return refs


def test_every_blueprint_image_is_mapped_to_an_executable(tmp_path) -> None:
    config = yamlio.load(porch_exec.write(tmp_path).read_text())
    mapped = {img: entry["function"] for entry in config["functions"] for img in entry["images"]}
    needed = _images_in_blueprints()
    assert needed, "no blueprint names a spiffe-kpt image"
    assert needed <= set(mapped), needed - set(mapped)
    for script in mapped.values():
        assert (tmp_path / script).resolve().is_file(), script


def test_tools_are_not_mapped_as_functions() -> None:
    scripts = {f.script for f in porch_exec.functions()}
    assert "spiffe-kpt-render" not in scripts
    assert {"spiffe-specializer", "spiffe-validator", "spiffe-hydrate"} <= scripts

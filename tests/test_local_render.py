"""Swapping the project's image references for local console scripts, and back."""

from __future__ import annotations

import subprocess
from pathlib import Path

from spiffe_kpt.local_render import exec_refs_to_images, image_refs_to_exec

from .pkgtools import EXAMPLES

KPTFILE = """\
pipeline:
  mutators:
  - image: ghcr.io/spiffe-kpt/specializer:v0.1.0
    name: specialize
  - name: set-labels
    image: gcr.io/kpt-fn/set-labels:v0.2.0
  validators:
  - name: validate
    image: "ghcr.io/spiffe-kpt/validator:v0.1.0\""""


def test_swaps_only_this_projects_images_and_restores_them_exactly() -> None:
    text, refs = image_refs_to_exec(KPTFILE)
    assert "  - exec: spiffe-specializer\n" in text
    assert "    exec: spiffe-validator" in text
    assert "gcr.io/kpt-fn/set-labels:v0.2.0" in text
    assert refs == {"specializer": "ghcr.io/spiffe-kpt/specializer:v0.1.0",
                    "validator": "ghcr.io/spiffe-kpt/validator:v0.1.0"}
    back = exec_refs_to_images(text, refs)
    assert back == KPTFILE.replace('"ghcr.io/spiffe-kpt/validator:v0.1.0"', "ghcr.io/spiffe-kpt/validator:v0.1.0")
    assert back.count("\n") == KPTFILE.count("\n"), "no line ending is lost"


def test_cli_prints_the_render_and_leaves_the_package_alone(tmp_path: Path) -> None:
    pkg = EXAMPLES / "oran-focom-ims"
    before = {p: p.read_bytes() for p in pkg.rglob("*") if p.is_file()}
    proc = subprocess.run(["spiffe-kpt-render", str(pkg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "spiffeID: spiffe://smo.telco-operator.net/cluster/smo-mgmt/ns/oran-smo/sa/focom" in proc.stdout
    assert "image: ghcr.io/spiffe-kpt/specializer:v0.1.0" in proc.stdout
    assert {p: p.read_bytes() for p in pkg.rglob("*") if p.is_file()} == before


def test_cli_rejects_a_directory_without_kptfile(tmp_path: Path) -> None:
    proc = subprocess.run(["spiffe-kpt-render", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "no Kptfile" in proc.stderr and "Traceback" not in proc.stderr

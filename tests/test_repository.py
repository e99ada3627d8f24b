"""The repository is itself a kpt package whose subpackages are the blueprints."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .pkgtools import REPO


def test_kpt_sees_every_blueprint_and_nothing_else() -> None:
    proc = subprocess.run(["kpt", "pkg", "tree", str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    packages = {line.split('Package "')[1].rstrip('"') for line in proc.stdout.splitlines() if 'Package "' in line}
    expected = {p.parent.name for p in (REPO / "blueprints").rglob("Kptfile")} | {REPO.name}
    assert packages == expected
    # Source, tests and CI files are hidden by .krmignore: only Kptfiles and blueprint files show.
    for line in proc.stdout.splitlines():
        if "[" in line:
            assert not any(part in line for part in ("[tests/", "[functions/", "[.ci/", "[bench/")), line


def test_every_image_has_catalog_metadata_and_a_readme() -> None:
    """Each function built as an image (functions/build-images.sh) carries kpt-functions-catalog
    style metadata naming that image, and a README; every example package it names exists."""
    import re

    import yaml
    root = Path(__file__).resolve().parents[1]
    script = (root / "functions" / "build-images.sh").read_text()
    names = re.search(r'functions=\$\{FUNCTIONS:-"([^"]+)"\}', script).group(1).split()
    assert len(names) == 8
    for name in names:
        d = root / "functions" / "spiffe_kpt" / name.replace("-", "_")
        meta = yaml.safe_load((d / "metadata.yaml").read_text())
        assert meta["image"] == f"ghcr.io/spiffe-kpt/{name}", name
        assert meta["description"] and meta["license"] == "Apache-2.0"
        assert (d / "README.md").is_file(), name
        for url in meta["examplePackageURLs"]:
            rel = url.split("/tree/main/", 1)[1]
            assert (root / rel / "Kptfile").is_file(), url

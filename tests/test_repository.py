"""The repository is itself a kpt package whose subpackages are the blueprints."""

from __future__ import annotations

import subprocess

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

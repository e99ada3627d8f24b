"""checkov over every rendered SPIRE package: no finding outside blueprints/spire/security-exceptions.yaml."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .examples import EXPECTED, SPIRE

EXCEPTIONS = SPIRE / "security-exceptions.yaml"


def _findings(root: Path) -> set[tuple[str, str]]:
    exe = shutil.which("checkov")
    if exe is None:
        pytest.fail("checkov is not installed: pip install checkov (see .ci/run)")
    proc = subprocess.run([exe, "-d", str(root), "--framework", "kubernetes", "--quiet", "--compact", "-o", "json"],
                          capture_output=True, text=True, timeout=600)
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    out = set()
    for rep in reports:
        for f in rep["results"]["failed_checks"]:
            out.add((f["check_id"], f["resource"]))
    return out


def test_checkov_finds_nothing_unjustified(tmp_path: Path) -> None:
    for name in ("spire-server", "spire-agent", "spire-downstream-server"):
        shutil.copytree(EXPECTED / name, tmp_path / name)
    shutil.copytree(SPIRE / "spire-remote-access", tmp_path / "spire-remote-access")
    findings = _findings(tmp_path)
    accepted = yaml.safe_load(EXCEPTIONS.read_text())
    for entry in accepted:
        assert entry["why"].strip(), entry
    def allowed(check: str, resource: str) -> bool:
        return any(e["check"] == check and ("*" in e["resources"] or resource in e["resources"]) for e in accepted)
    unjustified = sorted(f for f in findings if not allowed(*f))
    assert not unjustified, unjustified
    stale = [e["check"] for e in accepted if not any(f[0] == e["check"] for f in findings)]
    assert not stale, f"exceptions that match no finding any more, remove them: {stale}"

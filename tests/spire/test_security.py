"""Two scanners over every rendered SPIRE package, checkov and kube-score: no finding outside
blueprints/spire/security-exceptions.yaml, and no entry there that matches no finding."""

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
    _rendered_packages(tmp_path)
    findings = _findings(tmp_path)
    accepted = _accepted("checkov")
    for entry in accepted:
        assert entry["why"].strip(), entry
    def allowed(check: str, resource: str) -> bool:
        return any(e["check"] == check and ("*" in e["resources"] or resource in e["resources"]) for e in accepted)
    unjustified = sorted(f for f in findings if not allowed(*f))
    assert not unjustified, unjustified
    stale = [e["check"] for e in accepted if not any(f[0] == e["check"] for f in findings)]
    assert not stale, f"exceptions that match no finding any more, remove them: {stale}"


def _accepted(scanner: str) -> list[dict]:
    return [e for e in yaml.safe_load(EXCEPTIONS.read_text()) if e.get("scanner", "checkov") == scanner]


def _rendered_packages(root: Path) -> None:
    for name in ("spire-server", "spire-agent", "spire-downstream-server"):
        shutil.copytree(EXPECTED / name, root / name)
    shutil.copytree(SPIRE / "spire-remote-access", root / "spire-remote-access")


def _cluster_files(root: Path) -> list[Path]:
    """The files that reach a cluster: not the Kptfile, not the local-config values."""
    out = []
    for f in sorted(root.rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
        if docs and not all(str(((d.get("metadata") or {}).get("annotations") or {}).get(
                "config.kubernetes.io/local-config", "")).lower() == "true" for d in docs):
            out.append(f)
    return out


# kube-score's grades (scorecard.Grade): 10 is "all OK"; anything lower is a finding.
KUBE_SCORE_OK = 10


def _kube_score(files: list[Path]) -> set[tuple[str, str]]:
    from ..real import binaries
    exe = binaries.ensure("kube-score")
    proc = subprocess.run([str(exe), "score", "--output-format", "json", "--kubernetes-version", "v1.32",
                           *map(str, files)], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().startswith("["), (proc.returncode, proc.stderr)
    out = set()
    for obj in json.loads(proc.stdout):
        meta, kind = obj["object_meta"], obj["type_meta"]["kind"]
        ref = f"{kind}.{meta['namespace']}.{meta['name']}" if meta.get("namespace") else f"{kind}.{meta['name']}"
        for c in obj["checks"]:
            if not c["skipped"] and c["grade"] < KUBE_SCORE_OK:
                out.add((c["check"]["id"], ref))
    return out


def test_kube_score_finds_nothing_unjustified(tmp_path: Path) -> None:
    """kube-score (pinned, built by tests/real/binaries.py) with its default checks."""
    _rendered_packages(tmp_path)
    findings = _kube_score(_cluster_files(tmp_path))
    accepted = _accepted("kube-score")
    assert accepted and all(e["why"].strip() for e in accepted)

    def allowed(check: str, resource: str) -> bool:
        return any(e["check"] == check and ("*" in e["resources"] or resource in e["resources"]) for e in accepted)
    unjustified = sorted(f for f in findings if not allowed(*f))
    assert not unjustified, unjustified
    stale = [(e["check"], r) for e in accepted for r in e["resources"]
             if not any(f[0] == e["check"] and (r == "*" or f[1] == r) for f in findings)]
    assert not stale, f"exceptions that match no finding any more, remove them: {stale}"


def test_kube_score_sees_what_it_should(tmp_path: Path) -> None:
    """The scan is not blind: without the rendered NetworkPolicies and the headless Service,
    kube-score reports exactly the pods left unprotected and the StatefulSets' serviceName."""
    _rendered_packages(tmp_path)
    files = _cluster_files(tmp_path)
    for f in files:
        if f.name == "network-policies.yaml":
            f.unlink()
        elif f.name == "service.yaml":
            docs = [d for d in yaml.safe_load_all(f.read_text()) if d and d["metadata"]["name"] != "spire-server-headless"]
            f.write_text(yaml.safe_dump_all(docs))
    findings = _kube_score([f for f in files if f.exists()])
    unprotected = {r for c, r in findings if c == "pod-networkpolicy"}
    assert unprotected == {"StatefulSet.spire-server.spire-server", "DaemonSet.spire-system.spire-agent",
                           "DaemonSet.spire-system.spiffe-csi-driver", "DaemonSet.spire-system.spire-upstream-agent",
                           "DaemonSet.spire-system.spire-upstream-csi-driver"}, unprotected
    assert {r for c, r in findings if c == "statefulset-has-servicename"} == {"StatefulSet.spire-server.spire-server"}

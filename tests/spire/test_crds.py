"""The crds package is a kpt upstream reference, not a copy: `kpt pkg update` fetches the CRDs.

The real upstream is GitHub; here a local git repository laid out like spire-controller-manager
(config/crd/bases, tag v0.7.0) is built in a temporary directory from the reference CRDs, and the
package's upstream URL is pointed at it, so the real kpt runs the real update."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ..pkgtools import GIT, upstream_crd_files
from .examples import SPIRE

pytestmark = pytest.mark.kpt


def test_kpt_pkg_update_fetches_the_pinned_crds(tmp_path: Path) -> None:
    kptfile = (SPIRE / "crds" / "Kptfile").read_text()
    assert "repo: https://github.com/spiffe/spire-controller-manager" in kptfile and "ref: v0.7.0" in kptfile
    assert not list((SPIRE / "crds").glob("*.yaml")), "the CRDs must not be copied into the repository"
    up = tmp_path / "upstream"
    (up / "config" / "crd" / "bases").mkdir(parents=True)
    for f in upstream_crd_files():
        shutil.copy(f, up / "config" / "crd" / "bases" / f.name)
    subprocess.run(["git", "init", "-q", str(up)], check=True)
    subprocess.run([*GIT, "-C", str(up), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(up), "commit", "-qm", "crds"], check=True)
    subprocess.run([*GIT, "-C", str(up), "tag", "v0.7.0"], check=True)
    ws = tmp_path / "ws"
    shutil.copytree(SPIRE / "crds", ws / "crds")
    (ws / "crds" / "Kptfile").write_text(kptfile.replace("https://github.com/spiffe/spire-controller-manager", str(up)))
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    subprocess.run([*GIT, "-C", str(ws), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(ws), "commit", "-qm", "get"], check=True)
    proc = subprocess.run(["kpt", "pkg", "update", "crds"], cwd=ws, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.name for p in (ws / "crds").glob("*.yaml"))
    assert "spire.spiffe.io_clusterspiffeids.yaml" in got and len(got) == 4

"""The container images, run by kpt the way porch runs them, give exactly the exec render.

Builds every function image with podman from a locally made Debian base (no registry is
reachable in CI; see functions/build-images.sh), renders every example with
``KPT_FN_RUNTIME=podman`` and compares files, results and exit codes byte for byte with the
``exec:`` render of the same package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from spiffe_kpt.krm import yamlio

from .pkgtools import EXAMPLES, REPO, copy_package, kpt_render

CONF = str(REPO / ".ci" / "containers.conf")
PREFIX = "ghcr.io/spiffe-kpt"
VERSION = "v" + next(line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines()
                     if line.startswith("version = "))


@pytest.fixture(scope="session")
def images() -> list[str]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: apt-get install -y podman runc debootstrap "
                    "(.ci/run does this), then rerun")
    env = {**os.environ, "LOCAL_BASE": "1", "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", CONF)}
    proc = subprocess.run(["bash", str(REPO / "functions" / "build-images.sh")], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("building ")]


def _examples() -> list[Path]:
    return sorted(p.parent.parent for p in EXAMPLES.rglob(".expected/config.yaml"))


def _files(pkg: Path) -> dict[str, bytes]:
    return {str(p.relative_to(pkg)): p.read_bytes() for p in sorted(pkg.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("example", _examples(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_image_render_is_byte_identical_to_exec_render(images, example: Path, tmp_path: Path) -> None:
    via_exec = copy_package(example, tmp_path / "exec" / example.name)
    via_image = copy_package(example, tmp_path / "image" / example.name)
    a = kpt_render(via_exec)
    b = kpt_render(via_image, runtime="podman")
    assert a.exit_code == b.exit_code, b.stderr
    assert _files(via_exec) == _files(via_image)

    def strip_runner(results_dir: Path) -> list:
        doc = yamlio.load((results_dir / "results.yaml").read_text())
        return [(i.get("exitCode"), i.get("results")) for i in doc.get("items") or []]
    assert strip_runner(tmp_path / "exec" / f".results-{example.name}") == \
        strip_runner(tmp_path / "image" / f".results-{example.name}")
    config = yamlio.load((example / ".expected" / "config.yaml").read_text())
    assert b.exit_code == config.get("exitCode", 0)


def test_images_run_as_nobody_with_oci_labels(images) -> None:
    assert images, "no image was built"
    env = {**os.environ, "CONTAINERS_CONF": CONF}
    for ref in images:
        out = subprocess.run(["podman", "inspect", ref, "--format",
                              "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Labels}}"],
                             capture_output=True, text=True, env=env, check=True).stdout.strip()
        user, entrypoint, labels = out.split("|", 2)
        assert user == "65534:65534", ref
        assert entrypoint.startswith('["python3","-S"'), ref
        labels = yamlio.load(labels)
        assert labels["org.opencontainers.image.version"] == VERSION
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
        assert labels["org.opencontainers.image.source"].startswith("https://")


def test_image_needs_no_network(images, tmp_path: Path) -> None:
    """A function image renders with networking disabled, as porch's sandboxed pods may run it."""
    text = (EXAMPLES / "oran-focom-ims" / "identity-context.yaml").read_text()
    rl = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList",
                      "items": [yamlio.load(text)]})
    env = {**os.environ, "CONTAINERS_CONF": CONF}
    proc = subprocess.run(["podman", "run", "--rm", "-i", "--network=none", f"{PREFIX}/specializer:{VERSION}"],
                          input=rl, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert yamlio.load(proc.stdout)["kind"] == "ResourceList"

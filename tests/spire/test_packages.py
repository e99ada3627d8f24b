"""The SPIRE deployment packages rendered by the real kpt with example values.

Compared with the expected output under tests/spire/expected/ (reviewed by hand; regenerate
with SPIFFE_KPT_UPDATE_EXPECTED=1 and review the diff), rendered twice without change, and
checked against the Kubernetes OpenAPI schemas and the upstream spire.spiffe.io CRDs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from ..pkgtools import upstream_crd_files
from .examples import EXPECTED, RENDERED_PACKAGES, files, is_local_config, render_example, resources

pytestmark = pytest.mark.kpt
K8S_VERSION = "1.32.0"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name in RENDERED_PACKAGES:
        pkg, r = render_example(name, tmp_path_factory.mktemp(name))
        assert r.exit_code == 0, (name, r.stderr, r.results)
        out[name] = pkg
    return out


@pytest.mark.parametrize("name", RENDERED_PACKAGES)
def test_render_matches_expected(rendered: dict[str, Path], name: str) -> None:
    got = files(rendered[name])
    exp_dir = EXPECTED / name
    if os.environ.get("SPIFFE_KPT_UPDATE_EXPECTED"):
        shutil.rmtree(exp_dir, ignore_errors=True)
        for rel, text in got.items():
            (exp_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (exp_dir / rel).write_text(text)
    expected = files(exp_dir)
    assert sorted(got) == sorted(expected)
    for rel in got:
        assert got[rel] == expected[rel], rel


@pytest.mark.parametrize("name", RENDERED_PACKAGES)
def test_render_twice_changes_nothing(rendered: dict[str, Path], name: str, tmp_path: Path) -> None:
    from ..pkgtools import kpt_render
    pkg = tmp_path / name
    shutil.copytree(rendered[name], pkg)
    before = files(pkg)
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr
    assert files(pkg) == before


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    import yaml
    out = {}
    for f in upstream_crd_files():
        crd = yaml.safe_load(f.read_text())
        for ver in crd["spec"]["versions"]:
            out[(f"{crd['spec']['group']}/{ver['name']}", crd["spec"]["names"]["kind"])] = ver["schema"]["openAPIV3Schema"]
    return out


@pytest.mark.parametrize("name", RENDERED_PACKAGES + ("spire-remote-access",))
def test_rendered_resources_are_schema_valid(rendered: dict[str, Path], name: str) -> None:
    import jsonschema
    import kubernetes_validate

    from .examples import SPIRE
    pkg = rendered.get(name, SPIRE / name)
    crds = _crd_schemas()
    checked = 0
    for obj in resources(pkg):
        if is_local_config(obj):
            continue
        key = (obj["apiVersion"], obj["kind"])
        if key in crds:
            jsonschema.validate(obj, crds[key])
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        checked += 1
    assert checked > 3


def test_server_conf_wires_every_cluster(rendered: dict[str, Path]) -> None:
    import yaml
    cms = {d["metadata"]["name"]: d for d in yaml.safe_load_all((rendered["spire-server"] / "configmaps.yaml").read_text())}
    conf = cms["spire-server"]["data"]["server.conf"]
    flat = " ".join(conf.split())
    assert '"regional-1" = { service_account_allow_list = ["spire-system:spire-agent"]' in flat
    assert '"edge-1" = { service_account_allow_list = ["spire-system:spire-upstream-agent"]' in flat
    assert 'BundlePublisher "k8s_configmap"' in conf and "k8sbundle" not in conf
    ctrl = cms["spire-controller-manager"]["data"]
    assert sorted(ctrl) == ["edge-1.yaml", "mgmt.yaml", "regional-1.yaml"]
    classes = {yaml.safe_load(v)["className"] for v in ctrl.values()}
    prefixes = {yaml.safe_load(v)["entryIDPrefix"] for v in ctrl.values()}
    assert len(classes) == 3 and len(prefixes) == 3
    sts = yaml.safe_load((rendered["spire-server"] / "statefulset.yaml").read_text())
    names = [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]]
    assert names == ["spire-server", "spire-controller-manager", "spire-controller-manager-regional-1",
                     "spire-controller-manager-edge-1", "spire-oidc-discovery-provider"]


def test_images_are_pinned() -> None:
    from .examples import SPIRE
    for f in SPIRE.rglob("*.yaml"):
        for line in f.read_text().splitlines():
            if line.strip().startswith("image:"):
                ref = line.split("image:", 1)[1].strip()
                tag = ref.rsplit(":", 1)[-1]
                assert ":" in ref and tag not in ("latest", "nightly") and any(ch.isdigit() for ch in tag), (f, ref)


def _configs(rendered: dict[str, Path]) -> list[tuple[str, str, str]]:
    import yaml
    out = []
    for name, pkg in rendered.items():
        for f in pkg.glob("*configmaps.yaml"):
            for doc in yaml.safe_load_all(f.read_text()):
                for key, text in ((doc or {}).get("data") or {}).items():
                    if key in ("server.conf", "agent.conf"):
                        out.append((f"{name}/{doc['metadata']['name']}", key, text))
    return out


def test_real_spire_accepts_the_configs(rendered: dict[str, Path], tmp_path: Path) -> None:
    """`spire-server validate` / `spire-agent validate` of the pinned SPIRE on every generated file
    (binaries built by tests/real/binaries.py; the real tier builds them if missing)."""
    import subprocess

    from ..real import binaries
    confs = _configs(rendered)
    assert len(confs) == 4  # root server, agent, downstream server, upstream agent
    for where, key, text in confs:
        exe = binaries.ensure("spire-server" if key == "server.conf" else "spire-agent")
        path = tmp_path / f"{where.replace('/', '_')}.{key}"
        path.write_text(text)
        proc = subprocess.run([str(exe), "validate", "-config", str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (where, proc.stdout, proc.stderr)

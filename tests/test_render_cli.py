"""What spiffe-kpt-render tells its user: the summary, --diff, errors first, many packages, no kpt."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .pkgtools import EXAMPLES, copy_package

pytestmark = pytest.mark.kpt


def _render(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["spiffe-kpt-render", *args], capture_output=True, text=True, env=env)


def test_summary_names_each_identity_and_each_generated_resource_by_kind_and_file(tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "oran-focom-ims")
    before = {p: p.read_bytes() for p in pkg.rglob("*") if p.is_file()}
    proc = _render(str(pkg))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.splitlines()[0] == f"{pkg}: rendered by 5 functions, 0 errors, 0 warnings"
    # Per identity: SPIFFE ID, namespace, service account, selector.
    assert "focom  spiffe://smo.telco-operator.net/cluster/smo-mgmt/ns/oran-smo/sa/focom\n" in out
    assert "namespace oran-smo, service account focom, selector app.kubernetes.io/name=focom\n" in out
    assert "namespace oran-smo, service account o2ims, selector app.kubernetes.io/name=ims\n" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "generated ClusterSPIFFEID oran-smo.focom registration/clusterspiffeid-oran-smo.focom.yaml" in lines
    assert "generated ServiceAccount oran-smo/o2ims serviceaccount-o2ims.yaml" in lines
    assert "changed WorkloadIdentity focom focom.yaml" in lines
    assert "changed Kptfile oran-focom-ims Kptfile" in lines
    # Infos fold into one line per function; kpt's progress lines and ResourceList stay out.
    assert "spiffe-registration: generated 2 ClusterSPIFFEID" in out
    assert sum(line.startswith("  spiffe-attestation") for line in out.splitlines()) == 1
    assert "(+1 more infos, -v)" in out
    assert "[RUNNING]" not in out + proc.stderr and "internal.config.kubernetes.io" not in out
    assert "not written; --in-place writes them" in out
    assert {p: p.read_bytes() for p in pkg.rglob("*") if p.is_file()} == before, "a summary writes nothing"

    verbose = _render("-v", str(pkg)).stdout
    assert "info: created ServiceAccounts oran-smo/focom, oran-smo/o2ims" in verbose


def test_summary_reports_deletions_and_no_changes_when_rendered(tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "observability", tmp_path / "observability")
    first = _render("--in-place", str(pkg))
    assert first.returncode == 0 and "Changes written:" in first.stdout
    again = _render("--in-place", str(pkg))
    assert "No changes: the package is already rendered." in again.stdout
    static = pkg / "cell-site-gateway.yaml"
    static.unlink()
    gone = _render("--in-place", str(pkg))
    lines = [" ".join(line.split()) for line in gone.stdout.splitlines()]
    assert ("deleted ClusterStaticEntry cell-site-gateway-edge07 "
            "registration/staticentry-cell-site-gateway-edge07.yaml") in lines
    assert "files removed: registration/staticentry-cell-site-gateway-edge07.yaml" in lines
    assert not (pkg / "registration" / "staticentry-cell-site-gateway-edge07.yaml").exists()


def test_errors_and_warnings_come_first_and_a_failed_render_writes_nothing(tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "errors" / "invalid-trust-domain", tmp_path / "bad")
    before = {p: p.read_bytes() for p in pkg.rglob("*") if p.is_file()}
    proc = _render("--in-place", str(pkg))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{pkg}: render FAILED; nothing was written"
    assert lines[2].startswith("  ERROR spiffe-specializer: IdentityContext identity-context spec.trustDomain "
                               "(identity-context.yaml): ")
    assert "use 'smo.telco-operator.net'" in lines[2]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert {p: p.read_bytes() for p in pkg.rglob("*") if p.is_file()} == before

    waiting = _render(str(EXAMPLES / "blueprint-awaiting-injection")).stdout.splitlines()
    assert waiting[0].endswith("0 errors, 1 warnings") and waiting[1] == "Problems (1):"
    assert waiting[2].startswith("  WARNING spiffe-validator: IdentityContext identity-context")


def test_diff_is_the_patch_of_the_render_and_writes_nothing(tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "oran-focom-ims")
    proc = _render("--diff", str(pkg))
    assert proc.returncode == 0, proc.stderr
    assert not (pkg / "registration").exists(), "--diff writes nothing"
    # Applied with patch(1), the diff yields exactly what an in-place render writes.
    patched = tmp_path / "patched"
    shutil.copytree(pkg, patched)
    subprocess.run(["patch", "-s", "-p1", "-d", str(patched)], input=proc.stdout, text=True, check=True)
    assert _render("--in-place", str(pkg)).returncode == 0
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}  # noqa: E731
    assert files(patched) == files(pkg)
    assert "+++ b/registration/clusterspiffeid-oran-smo.focom.yaml" in proc.stdout
    assert _render("--diff", str(pkg)).stdout == "", "nothing to change once rendered"


def test_resourcelist_output_is_the_rendered_package_for_scripts() -> None:
    proc = _render("--output", "resourcelist", str(EXAMPLES / "oran-focom-ims"))
    assert proc.returncode == 0
    assert proc.stdout.startswith("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n")


def test_a_directory_of_packages_renders_each_with_a_progress_line(tmp_path: Path) -> None:
    proc = _render(str(EXAMPLES / "5g-core"), "--results-dir", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    # the NFs' packages and the management cluster's secrets grants (5g-core/secrets)
    assert progress == [f"[{i}/4] rendering {EXAMPLES / '5g-core' / p}"
                        for i, p in enumerate(("amf", "secrets", "smf", "upf"), 1)]
    assert f"{EXAMPLES / '5g-core' / 'secrets'}: rendered by 2 functions" in proc.stdout
    for nf in ("amf", "smf", "upf"):
        assert f"/cluster/{'edge01' if nf == 'upf' else 'regional'}/ns/" in proc.stdout
        # The UPF's package also grants the management cluster's scaler access (spiffe-access).
        assert f"{EXAMPLES / '5g-core' / nf}: rendered by {6 if nf == 'upf' else 5} functions" in proc.stdout
        # kpt's results.yaml, passed through: one per package.
        assert "kind: FunctionResultList" in (tmp_path / "results" / nf / "results.yaml").read_text()


def test_kpt_flags_pass_through() -> None:
    proc = _render("--truncate-output=false", "--image-pull-policy", "never", "--output", "resourcelist",
                   str(EXAMPLES / "oran-focom-ims"))
    assert proc.returncode == 0, proc.stderr
    bad = _render("--truncate-output=maybe", str(EXAMPLES / "oran-focom-ims"))
    assert bad.returncode == 2 and "expected true or false" in bad.stderr


def test_without_kpt_the_error_says_how_to_get_the_pinned_one(tmp_path: Path) -> None:
    # PATH with python and the console script but no kpt; an empty binary cache.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    script = shutil.which("spiffe-kpt-render")
    assert script
    # ... and no Go to build the pinned kpt with (SPIFFE_KPT_GO empty: a machine without Go).
    env = {**os.environ, "PATH": str(bindir), "SPIFFE_KPT_BIN_CACHE": str(tmp_path / "cache"), "SPIFFE_KPT_GO": ""}
    proc = subprocess.run([sys.executable, script, str(EXAMPLES / "oran-focom-ims")], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 2
    assert "kpt is not on PATH and no pinned kpt is cached" in proc.stderr
    assert "it needs Go >= 1.24" in proc.stderr
    assert "python3 -m spiffe_kpt.cli.kptbin" in proc.stderr and "https://kpt.dev/installation/" in proc.stderr


def _path_without_kpt(tmp_path: Path) -> str:
    """This PATH with every directory that holds a kpt replaced by a copy of it (symlinks) without kpt."""
    out = []
    for i, d in enumerate(os.environ["PATH"].split(os.pathsep)):
        if not d or not (Path(d) / "kpt").exists():
            out.append(d)
            continue
        mirror = tmp_path / f"path{i}"
        mirror.mkdir()
        for entry in Path(d).iterdir():
            if entry.name != "kpt":
                (mirror / entry.name).symlink_to(entry)
        out.append(str(mirror))
    return os.pathsep.join(out)


def test_without_kpt_on_path_the_pinned_build_renders(tmp_path: Path) -> None:
    from spiffe_kpt.cli import kptbin
    pinned = kptbin.build()  # cached by .ci/run; builds it (minutes) on a machine that has not yet
    env = {**os.environ, "PATH": _path_without_kpt(tmp_path)}
    assert shutil.which("kpt", path=env["PATH"]) is None
    assert subprocess.run([str(pinned), "version"], capture_output=True, text=True).stdout.strip() == \
        kptbin.KPT_VERSION.removeprefix("v")
    pkg = copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "oran-focom-ims")
    proc = _render("--in-place", str(pkg), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (pkg / "registration" / "clusterspiffeid-oran-smo.focom.yaml").is_file()
    # The directory .ci/run and the README put on PATH holds that kpt.
    on_path = subprocess.run([sys.executable, "-m", "spiffe_kpt.cli.kptbin"], capture_output=True, text=True, env=env)
    assert on_path.returncode == 0, on_path.stderr
    assert (Path(on_path.stdout.strip()) / "kpt").resolve() == pinned.resolve()


def test_without_kpt_the_first_command_builds_the_pinned_one_and_renders(tmp_path: Path) -> None:
    """The README's first command on a machine with Go but no kpt: spiffe-kpt-render builds the
    pinned kpt into an empty cache (Go's own caches, warm after .ci/run, keep this to a link step)
    and renders with it."""
    from spiffe_kpt.cli import kptbin
    env = {**os.environ, "PATH": _path_without_kpt(tmp_path), "SPIFFE_KPT_BIN_CACHE": str(tmp_path / "cache")}
    assert shutil.which("kpt", path=env["PATH"]) is None
    proc = _render(str(EXAMPLES / "oran-focom-ims"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"kpt is not on PATH: building the pinned kpt {kptbin.KPT_VERSION}" in proc.stderr
    assert (tmp_path / "cache" / f"kpt-{kptbin.KPT_VERSION}").is_file()
    assert "rendered by 5 functions, 0 errors, 0 warnings" in proc.stdout

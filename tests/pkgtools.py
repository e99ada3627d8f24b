"""Test helpers: render packages with the real kpt, and run functions in-process the way kpt does.

Both paths read the same example packages under blueprints/, so every example is checked
through the real binary and through the Python API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiffe_kpt import API_VERSION, registry
from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.resourcelist import ResourceList
from spiffe_kpt.krm.runner import process
from spiffe_kpt.local_render import exec_refs_to_images, image_refs_to_exec

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "blueprints" / "examples"
# The upstream CRDs are reference data kept outside the repository: next to it by default, or wherever
# SPIFFE_KPT_UPSTREAM_CRDS points (the same variable tests/real reads).
UPSTREAM_CRDS = Path(os.environ.get("SPIFFE_KPT_UPSTREAM_CRDS")
                     or REPO.parent / "shared" / "reference" / "upstream-crds")
WI_API = API_VERSION


def upstream_crd_files(pattern: str = "spire.spiffe.io_*.yaml") -> list[Path]:
    """The upstream CRD files matching ``pattern``; never an empty list (a missing directory
    would make every check over them pass without checking anything)."""
    files = sorted(UPSTREAM_CRDS.glob(pattern))
    assert files, (f"no upstream CRDs {pattern} in {UPSTREAM_CRDS}: set SPIFFE_KPT_UPSTREAM_CRDS to the "
                   "directory holding them (../shared/reference/upstream-crds next to the repository)")
    return files
GIT = ["git", "-c", "user.email=test@spiffe-kpt", "-c", "user.name=test", "-c", "commit.gpgsign=false"]


@dataclass
class Render:
    exit_code: int
    results: list[dict[str, Any]]
    stderr: str


def kpt_render(pkg: Path, extra_env: dict[str, str] | None = None, runtime: str = "exec") -> Render:
    """``kpt fn render`` in place; returns exit code and the function results.

    runtime "exec": the project's image references are swapped for its console scripts for the
    render and swapped back after (spiffe_kpt.local_render), so files read as the user's do.
    runtime "podman": the images run for real (they must have been built)."""
    results_dir = pkg.parent / f".results-{pkg.name}"
    shutil.rmtree(results_dir, ignore_errors=True)
    env = {**os.environ, **(extra_env or {})}
    swapped: dict[Path, dict[str, str]] = {}
    if runtime == "exec":
        cmd = ["kpt", "fn", "render", "--allow-exec", str(pkg), "--results-dir", str(results_dir)]
        for kptfile in pkg.rglob("Kptfile"):
            text, refs = image_refs_to_exec(kptfile.read_text())
            if refs:
                kptfile.write_text(text)
                swapped[kptfile] = refs
    else:
        env.update(KPT_FN_RUNTIME=runtime, CONTAINERS_CONF=env.get("CONTAINERS_CONF",
                                                                  str(REPO / ".ci" / "containers.conf")))
        cmd = ["kpt", "fn", "render", "--image-pull-policy", "never", str(pkg), "--results-dir", str(results_dir)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    finally:
        for kptfile, refs in swapped.items():
            kptfile.write_text(exec_refs_to_images(kptfile.read_text(), refs))
    results: list[dict[str, Any]] = []
    rf = results_dir / "results.yaml"
    if rf.exists():
        doc = yamlio.load(rf.read_text())
        for item in doc.get("items") or []:
            for r in item.get("results") or []:
                results.append(r)
    return Render(proc.returncode, results, proc.stderr)


def git_snapshot(pkg: Path) -> None:
    subprocess.run(["git", "init", "-q", str(pkg)], check=True)
    subprocess.run([*GIT, "-C", str(pkg), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(pkg), "commit", "-qm", "before render", "--allow-empty"], check=True)


def git_diff(pkg: Path) -> str:
    """The render's change as a patch, without the blob hashes that differ between machines."""
    subprocess.run([*GIT, "-C", str(pkg), "add", "-A"], check=True)
    out = subprocess.run([*GIT, "-C", str(pkg), "diff", "--cached", "--no-color", "--no-ext-diff"],
                         capture_output=True, text=True, check=True).stdout
    return "".join(line + "\n" for line in out.splitlines() if not line.startswith("index "))


def copy_package(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".expected", ".results-*"))
    return dst


def replace_in(path: Path, old: str, new: str) -> None:
    """An author's edit of one file: ``old`` (which must be there) becomes ``new``."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def kpt_render_refused(pkg: Path) -> list[dict[str, Any]]:
    """Real ``kpt fn render`` of a broken package: exit 1, no file changed, no traceback; the
    error results."""
    git_snapshot(pkg)
    result = kpt_render(pkg)
    assert result.exit_code == 1, result.stderr
    assert git_diff(pkg) == ""
    assert "Traceback" not in result.stderr
    return errors(result.results)


# ---- the in-process path ------------------------------------------------------------------

def read_package(pkg: Path) -> list[dict[str, Any]]:
    """Items as kpt would send them: every YAML document of every file, with path/index annotations."""
    items: list[dict[str, Any]] = []
    for path in sorted(pkg.rglob("*")):
        rel = path.relative_to(pkg)
        if any(part.startswith(".") for part in rel.parts) or path.is_dir():
            continue
        if path.name != "Kptfile" and path.suffix not in (".yaml", ".yml"):
            continue
        for idx, doc in enumerate(d for d in _load_all(path.read_text()) if d is not None):
            ann = doc.setdefault("metadata", {}).setdefault("annotations", {})
            for prefix in ("config.kubernetes.io/", "internal.config.kubernetes.io/"):
                ann[prefix + "path"] = rel.as_posix()
                ann[prefix + "index"] = str(idx)
            items.append(doc)
    return items


def _load_all(text: str) -> list[Any]:
    import yaml
    return list(yaml.load_all(text, Loader=yamlio.Loader))  # noqa: S506 - safe loader


def run_in_process(items: list[dict[str, Any]], steps: list[Callable[[ResourceList], None]]) -> tuple[list, list, int]:
    """Run function steps over items through the real wire format (serialize, run, parse)."""
    all_results: list[dict[str, Any]] = []
    for step in steps:
        text = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})
        out, code = process(text, step, getattr(step, "__name__", "step"))
        doc = yamlio.load(out)
        all_results.extend(doc.get("results") or [])
        if code != 0:
            return items, all_results, code
        items = doc["items"]
    return items, all_results, 0


def strip_annotations(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items without the path/index/id annotations kpt adds, for comparing two render paths."""
    out = []
    for item in items:
        item = yamlio.load(yamlio.dump(item))
        ann = (item.get("metadata") or {}).get("annotations") or {}
        for key in list(ann):
            if key.startswith(("config.kubernetes.io/path", "config.kubernetes.io/index", "internal.config.",
                               "config.k8s.io/id")):
                del ann[key]
        if "annotations" in (item.get("metadata") or {}) and not ann:
            del item["metadata"]["annotations"]
        out.append(item)
    return out


# ---- one function over items, and what came back -------------------------------------------

def items_of(name: str) -> list[dict[str, Any]]:
    """The items of an example package under blueprints/examples, as kpt would send them."""
    return read_package(EXAMPLES / name)


def run(items: list[dict[str, Any]], fn: Callable | str = "spiffe-specializer") -> tuple[dict[str, Any], int]:
    """One function (callable or console-script name) over items through the wire format:
    (output ResourceList, exit code)."""
    if isinstance(fn, str):
        fn = registry.get(fn)
    text = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})
    out, code = process(text, fn, "test")
    return yamlio.load(out), code


def find(items: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(i for i in items if i.get("kind") == kind and i["metadata"]["name"] == name)


def of_kind(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [i for i in items if i["kind"] == kind]


def results_of(doc: dict[str, Any] | list[dict[str, Any]], severity: str) -> list[dict[str, Any]]:
    """The results of that severity, of a ResourceList or of a list of results."""
    results = doc if isinstance(doc, list) else doc.get("results") or []
    return [r for r in results if r["severity"] == severity]


def errors(doc: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return results_of(doc, "error")


def the_result(doc: dict[str, Any], severity: str, kind: str, name: str, field: str | None,
               *fragments: str) -> dict[str, Any]:
    """The one result of that severity about that resource and field; every fragment is in its message."""
    matching = [r for r in results_of(doc, severity)
                if r.get("resourceRef", {}).get("kind") == kind and r["resourceRef"]["name"] == name
                and (field is None or r.get("field", {}).get("path") == field)]
    assert matching, doc.get("results")
    for fragment in fragments:
        assert fragment in matching[0]["message"], matching[0]["message"]
    return matching[0]


def assert_failed_untouched(doc: dict[str, Any], code: int, items_in: list[dict[str, Any]]) -> None:
    """Exit 1, and the items come back exactly as they went in."""
    assert code == 1
    assert yamlio.dump(doc["items"]) == yamlio.dump(items_in)

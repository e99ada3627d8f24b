"""Swapping the project's image references for local console scripts, and back."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from spiffe_kpt.krm import yamlio
from spiffe_kpt.local_render import exec_refs_to_images, image_refs_to_exec

from .pkgtools import EXAMPLES, copy_package, kpt_render

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


def test_cli_prints_the_render_as_a_resourcelist_and_leaves_the_package_alone(tmp_path: Path) -> None:
    pkg = EXAMPLES / "oran-focom-ims"
    before = {p: p.read_bytes() for p in pkg.rglob("*") if p.is_file()}
    proc = subprocess.run(["spiffe-kpt-render", "--output", "resourcelist", str(pkg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "spiffeID: spiffe://smo.telco-operator.net/cluster/smo-mgmt/ns/oran-smo/sa/focom" in proc.stdout
    assert "image: ghcr.io/spiffe-kpt/specializer:v0.1.0" in proc.stdout
    assert {p: p.read_bytes() for p in pkg.rglob("*") if p.is_file()} == before


def test_cli_rejects_a_directory_without_kptfile(tmp_path: Path) -> None:
    proc = subprocess.run(["spiffe-kpt-render", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "no Kptfile" in proc.stderr and "Traceback" not in proc.stderr


# ---- --in-place equals kpt fn render, file by file -----------------------------------------

def _examples() -> list[Path]:
    """Every example package that renders (errors/ holds packages meant to fail)."""
    return sorted(p.parent for p in EXAMPLES.rglob("Kptfile")
                  if "errors" not in p.relative_to(EXAMPLES).parts and ".expected" not in p.parts)


def _docs(path: Path) -> list[Any]:
    return [d for d in yaml.load_all(path.read_text(), Loader=yamlio.Loader) if d is not None]  # noqa: S506


def _write_docs(path: Path, docs: list[Any]) -> None:
    if docs:
        path.write_text("---\n".join(yamlio.dump(d) for d in docs))
    else:
        path.unlink()


def _input_files(pkg: Path) -> list[Path]:
    return sorted(p for p in pkg.rglob("*.yaml") if not any(part.startswith(".") for part in p.relative_to(pkg).parts))


def _first(pkg: Path, pred: Callable[[dict[str, Any]], bool]) -> tuple[Path, int] | None:
    for f in _input_files(pkg):
        for i, d in enumerate(_docs(f)):
            if isinstance(d, dict) and pred(d):
                return f, i
    return None


def _is_wi(d: dict[str, Any]) -> bool:
    return d.get("kind") == "WorkloadIdentity"


def _is_ctx(key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda d: d.get("kind") == "IdentityContext" and bool(
        (d.get("spec") or {}).get(key) if key != "backends" else ((d.get("spec") or {}).get("policy") or {}).get(key))


def _edit(pkg: Path, pred: Callable[[dict[str, Any]], bool], change: Callable[[dict[str, Any]], Any]) -> None:
    """Apply ``change`` to the first document ``pred`` selects; a change returning None drops it."""
    hit = _first(pkg, pred)
    assert hit is not None
    f, i = hit
    docs = _docs(f)
    new = change(docs[i])
    docs[i:i + 1] = [] if new is None else [new]
    _write_docs(f, docs)


def _rename(d: dict[str, Any]) -> dict[str, Any]:
    d["metadata"]["name"] += "-renamed"
    return d


def _repoint(pkg: Path, old: str, new: str | None) -> None:
    """Make the other identities' rules follow a renamed (new) or removed (None) identity, as its
    author would: a rule left without peers goes."""
    for f in _input_files(pkg):
        docs = _docs(f)
        touched = _repoint_grants(docs, lambda c: c.get("identity") == old,
                                  (lambda c: {**c, "identity": new}) if new is not None else None)
        for d in docs:
            if not (isinstance(d, dict) and d.get("kind") == "WorkloadIdentity"):
                continue
            for direction, key in (("ingress", "from"), ("egress", "to")):
                rules = (d.get("spec") or {}).get(direction)
                if not rules:
                    continue
                kept_rules = []
                for rule in rules:
                    peers = []
                    for peer in rule.get(key) or []:
                        if peer.get("identity") == old:
                            touched = True
                            if new is None:
                                continue
                            peer = {**peer, "identity": new}
                        peers.append(peer)
                    if peers or not rule.get(key):
                        kept_rules.append({**rule, key: peers} if rule.get(key) else rule)
                d["spec"][direction] = kept_rules
        if touched:
            _write_docs(f, docs)


def _repoint_grants(docs: list[Any], names: Callable[[dict[str, Any]], bool],
                    change: Callable[[dict[str, Any]], dict[str, Any]] | None) -> bool:
    """The AccessGrant clients ``names`` selects changed (or dropped when ``change`` is None), as an
    author would; a grant left without clients goes. Whether anything changed."""
    touched = False
    for i in reversed(range(len(docs))):
        d = docs[i]
        if not (isinstance(d, dict) and d.get("kind") == "AccessGrant"):
            continue
        clients = []
        for c in d["spec"]["clients"]:
            if names(c):
                touched = True
                if change is None:
                    continue
                c = change(c)
            clients.append(c)
        d["spec"]["clients"] = clients
        if not clients:
            del docs[i]
    return touched


def _rename_identity(pkg: Path) -> None:
    hit = _first(pkg, _is_wi)
    assert hit is not None
    old = _docs(hit[0])[hit[1]]["metadata"]["name"]
    _edit(pkg, _is_wi, _rename)
    _repoint(pkg, old, old + "-renamed")


def _remove_identity(pkg: Path) -> None:
    hit = _first(pkg, _is_wi)
    assert hit is not None
    old = _docs(hit[0])[hit[1]]["metadata"]["name"]
    _edit(pkg, _is_wi, lambda d: None)
    _repoint(pkg, old, None)


def _drop_backend(d: dict[str, Any]) -> dict[str, Any]:
    d["spec"]["policy"]["backends"] = d["spec"]["policy"]["backends"][1:]
    return d


def _drop_peer(pkg: Path) -> None:
    """Remove the context's first federation peer as an author must: with every reference to its
    trust domain (federatesWith, and the rule peers that admit it), which are errors otherwise."""
    gone: list[str] = []

    def drop(d: dict[str, Any]) -> dict[str, Any]:
        gone.append(d["spec"]["federation"][0]["trustDomain"])
        d["spec"]["federation"] = d["spec"]["federation"][1:]
        return d
    _edit(pkg, _is_ctx("federation"), drop)
    td = gone[0]

    def names_td(peer: dict[str, Any]) -> bool:
        ref = peer.get("trustDomain") or peer.get("spiffeID") or peer.get("spiffeIDPrefix") or ""
        return ref == td or ref.startswith(f"spiffe://{td}/")
    for f in _input_files(pkg):
        docs = _docs(f)
        changed = _repoint_grants(docs, names_td, None)
        for d in docs:
            if not isinstance(d, dict) or d.get("kind") not in ("WorkloadIdentity", "StaticIdentity"):
                continue
            spec = d.get("spec") or {}
            for holder in (spec.get("svid") or {}, spec):
                if td in (holder.get("federatesWith") or []):
                    holder["federatesWith"] = [t for t in holder["federatesWith"] if t != td]
                    changed = True
            for direction, key in (("ingress", "from"), ("egress", "to")):
                rules = []
                for rule in spec.get(direction) or []:
                    peers = [p for p in rule.get(key) or [] if not names_td(p)]
                    changed |= len(peers) != len(rule.get(key) or [])
                    if peers or rule.get("allowAll"):
                        rules.append({**rule, key: peers} if key in rule else rule)
                if direction in spec:
                    spec[direction] = rules
        if changed:
            _write_docs(f, docs)


def _drop_statics(pkg: Path) -> None:
    for f in _input_files(pkg):
        docs = _docs(f)
        kept = [d for d in docs if not (isinstance(d, dict) and d.get("kind") == "StaticIdentity")]
        if len(kept) != len(docs):
            _write_docs(f, kept)


MUTATIONS: dict[str, tuple[Callable[[Path], bool], Callable[[Path], None]]] = {
    "identity-renamed": (lambda p: _first(p, _is_wi) is not None, _rename_identity),
    "identity-removed": (lambda p: _first(p, _is_wi) is not None, _remove_identity),
    "backend-dropped": (lambda p: _first(p, _is_ctx("backends")) is not None,
                        lambda p: _edit(p, _is_ctx("backends"), _drop_backend)),
    "federation-peer-removed": (lambda p: _first(p, _is_ctx("federation")) is not None,
                                _drop_peer),
    "static-identity-removed": (lambda p: _first(p, lambda d: d.get("kind") == "StaticIdentity") is not None,
                                _drop_statics),
}

CASES = [pytest.param(pkg, name, id=f"{pkg.relative_to(EXAMPLES).as_posix()}-{name}")
         for pkg in _examples() for name, (applies, _) in MUTATIONS.items() if applies(pkg)]


def _tree(root: Path) -> dict[str, bytes | None]:
    """Files with their bytes and directories (None), relative to root: the whole shape of a tree."""
    return {p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in root.rglob("*")
            if not p.name.startswith(".results-")}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """Each example rendered once by real kpt: the starting point every mutation edits."""
    done: dict[Path, Path] = {}

    def get(pkg: Path) -> Path:
        if pkg not in done:
            base = copy_package(pkg, tmp_path_factory.mktemp("base") / pkg.name)
            assert kpt_render(base).exit_code == 0
            done[pkg] = base
        return done[pkg]
    return get


@pytest.mark.kpt
@pytest.mark.parametrize(("example", "mutation"), CASES)
def test_in_place_leaves_the_tree_kpt_fn_render_leaves(example: Path, mutation: str, tmp_path: Path,
                                                        rendered: Callable[[Path], Path]) -> None:
    edited = tmp_path / "edited" / example.name
    shutil.copytree(rendered(example), edited, symlinks=True)
    MUTATIONS[mutation][1](edited)
    by_kpt = tmp_path / "kpt" / example.name
    by_us = tmp_path / "ours" / example.name
    shutil.copytree(edited, by_kpt, symlinks=True)
    shutil.copytree(edited, by_us, symlinks=True)
    ref = kpt_render(by_kpt)
    proc = subprocess.run(["spiffe-kpt-render", "--in-place", str(by_us)], capture_output=True, text=True)
    # Every edit is one an author makes to a valid package: the render succeeds, so the trees
    # compared are renders, not two untouched copies.
    assert ref.exit_code == 0, ref.stderr
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    shutil.rmtree(tmp_path / "kpt" / f".results-{example.name}", ignore_errors=True)
    ours, theirs = _tree(by_us), _tree(by_kpt)
    assert sorted(ours) == sorted(theirs), "the same files and directories"
    assert [p for p in ours if ours[p] != theirs[p]] == [], "with the same bytes"
    # The render took something away, so kpt removed a file or rewrote one: a test of the
    # deletion path, not of an unchanged package.
    assert _tree(edited) != theirs


def test_in_place_removes_the_files_of_a_renamed_identity(tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "oran-focom-ims")
    assert subprocess.run(["spiffe-kpt-render", "--in-place", str(pkg)], capture_output=True).returncode == 0
    old = pkg / "registration" / "clusterspiffeid-oran-smo.focom.yaml"
    assert old.is_file()
    _rename_identity(pkg)  # and FOCOM's access grant follows the rename
    proc = subprocess.run(["spiffe-kpt-render", "--in-place", str(pkg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not old.exists(), "two ClusterSPIFFEIDs would select the same pods"
    assert (pkg / "registration" / "clusterspiffeid-oran-smo.focom-renamed.yaml").is_file()
    again = subprocess.run(["spiffe-kpt-render", "--in-place", str(pkg)], capture_output=True, text=True)
    assert "No changes" in again.stdout, again.stdout

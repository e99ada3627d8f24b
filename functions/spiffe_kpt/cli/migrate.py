"""spiffe-kpt-migrate: a trust-domain migration across a directory of packages (a deployment repository).

For every package with an IdentityContext it reports the migration phase, every place the old
trust domain A is still named (``api.migration.mentions``), and whether the fleet is safe: one
invariant covers every phase, **every rule that names a workload of the fleet accepts the ID that
workload presents**. A workload presents A until its package reaches cutover, B from then on; a
rule accepts the form it names, both forms while its package is in dual or cutover, and (in
complete, where the tool renames A to B) B only. ``--apply`` moves packages one phase on, only
when the fleet stays safe after the move, and edits the one field (``spec.migration.phase``; the
block is added with ``--to`` in a package without one) in place, keeping every other byte; the
move to complete also writes the package's A names in B. Nothing is written when anything is
unsafe (exit 1).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import API_GROUP
from ..api import migration
from ..api.migration import PHASES, Mention
from ..api.resolve import resolve
from ..identity.spiffeid import SCHEME_PREFIX
from ..krm.resourcelist import ResourceList, file_path, resource_ref
from ..local_render import packages_under

NONE = "none"  # no spec.migration
ORDER = (NONE, *PHASES)
PEER_KINDS = ("spiffeID", "spiffeIDPrefix", "trustDomain")


class MigrateError(Exception):
    pass


@dataclass(frozen=True)
class RuleRef:
    """A peer a rule names by SPIFFE ID, prefix or trust domain."""

    identity: str
    path: str  # spec.ingress[1].from[0].spiffeID
    kind: str
    value: str

    @property
    def trust_domain(self) -> str:
        v = self.value[len(SCHEME_PREFIX):] if self.value.startswith(SCHEME_PREFIX) else self.value
        return v.split("/", 1)[0]

    def names(self, sid: str) -> bool:
        if self.kind == "spiffeID":
            return self.value == sid
        if self.kind == "spiffeIDPrefix":
            return sid.startswith(self.value.rstrip("/") + "/")
        return sid.split("/", 3)[2] == self.value


@dataclass
class Package:
    path: Path
    label: str
    source: str = ""  # A: spec.trustDomain
    target: str = ""  # B: spec.migration.to
    phase: str = NONE
    ctx_file: str = ""
    ctx_name: str = ""
    identities: dict[str, str] = field(default_factory=dict)  # name -> ID in A
    rules: list[RuleRef] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def presents(self, phase: str) -> str:
        return self.target if phase in ("cutover", "complete") else self.source

    def accepts(self, phase: str, ref: RuleRef, td: str) -> bool:
        named = ref.trust_domain
        if phase == "complete" and named == self.source:
            named = self.target  # --apply to complete writes A names in B
        if named == td:
            return True
        return phase in ("dual", "cutover") and {named, td} == {self.source, self.target}


def read_package(pkg: Path) -> list[dict[str, Any]]:
    """The package's resources as kpt hands them to functions, with their file path annotated (for edits)."""
    from ..authorization.packagefiles import read_items

    return read_items(str(pkg), annotate_path=True)


def _with_domain(sid: str, td: str) -> str:
    return SCHEME_PREFIX + td + "/" + sid[len(SCHEME_PREFIX):].split("/", 1)[1] if "/" in sid[len(SCHEME_PREFIX):] \
        else SCHEME_PREFIX + td


def load(root: Path) -> list[Package]:
    dirs = packages_under(root)
    if not dirs:
        raise MigrateError(f"{root} holds no kpt package (no Kptfile in it or below)")
    out: list[Package] = []
    for d in dirs:
        try:
            items = read_package(d)
        except (OSError, ValueError) as exc:
            raise MigrateError(f"cannot read package {d}: {exc}") from exc
        ctx_objs = [o for o in items if o.get("kind") == "IdentityContext"
                    and str(o.get("apiVersion", "")).split("/")[0] == API_GROUP]
        if not ctx_objs:
            continue
        pkg = Package(d, str(d.relative_to(root)) if d != root else d.name)
        ctx_obj = ctx_objs[0]
        pkg.ctx_file, pkg.ctx_name = file_path(ctx_obj), resource_ref(ctx_obj).name
        spec = ctx_obj.get("spec") if isinstance(ctx_obj.get("spec"), dict) else {}
        pkg.source = str(spec.get("trustDomain") or "")
        mig = spec.get("migration") if isinstance(spec.get("migration"), dict) else None
        if mig:
            pkg.target, pkg.phase = str(mig.get("to") or ""), str(mig.get("phase") or NONE)
        res = resolve(ResourceList(items))
        pkg.problems = [str(r) for r in res.results if r.severity.value == "error"]
        for ident in res.identities:
            if ident.spiffe_id is not None and pkg.source:
                pkg.identities[ident.name] = _with_domain(str(ident.spiffe_id), pkg.source)
            for direction, key in (("ingress", "from"), ("egress", "to")):
                for i, rule in enumerate(ident.spec.get(direction) or []):
                    for j, peer in enumerate(rule.get(key) or [] if isinstance(rule, dict) else []):
                        for kind in PEER_KINDS:
                            if isinstance(peer, dict) and isinstance(peer.get(kind), str):
                                pkg.rules.append(RuleRef(ident.name, f"spec.{direction}[{i}].{key}[{j}].{kind}",
                                                         kind, peer[kind]))
        if pkg.source:
            pkg.mentions = migration.mentions(items, pkg.source)
        out.append(pkg)
    return out


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning
    package: str
    message: str


def check(pkgs: list[Package], phases: dict[str, str]) -> list[Finding]:
    """The invariant for the fleet in ``phases`` (package label -> phase)."""
    out: list[Finding] = []
    by_id: dict[str, tuple[Package, str]] = {}
    for p in pkgs:
        for name, sid in p.identities.items():
            by_id[sid] = (p, name)
            if p.target:
                by_id[_with_domain(sid, p.target)] = (p, name)
    for q in pkgs:
        qphase = phases[q.label]
        peers_seen: set[str] = set()
        for ref in q.rules:
            if qphase == "complete" and ref.kind != "trustDomain" and ref.trust_domain in (q.source, q.target) \
                    and not any(ref.names(f) for f in by_id):
                out.append(Finding("warning", q.label, (
                    f"{q.label} ({qphase}): WorkloadIdentity {ref.identity} {ref.path} = {ref.value} names no workload "
                    f"of the directory, so whether it presents {q.target} is not checked: it is accepted only as "
                    f"{q.target} now")))
            for p in pkgs:
                if p is q or not p.identities:
                    continue
                for name, sid in p.identities.items():
                    forms = [sid] + ([_with_domain(sid, p.target)] if p.target else [])
                    if not any(ref.names(f) for f in forms):
                        continue
                    peers_seen.add(p.label)
                    pphase = phases[p.label]
                    td = p.presents(pphase)
                    if not q.accepts(qphase, ref, td):
                        out.append(Finding("error", q.label, (
                            f"{q.label} ({qphase}): WorkloadIdentity {ref.identity} {ref.path} = {ref.value} does not "
                            f"accept {td} for {p.label}'s {name}, which presents {td} in phase {pphase}")))
        for label in sorted(peers_seen):
            p = next(x for x in pkgs if x.label == label)
            for a, b in ((q, p), (p, q)):
                if ORDER.index(phases[a.label]) >= ORDER.index("dual") and phases[b.label] in (NONE, "prepare") \
                        and a.target:
                    out.append(Finding("warning", a.label, (
                        f"{a.label} is in {phases[a.label]} but its peer package {b.label} is still in "
                        f"{phases[b.label]}: {b.label} accepts only {a.source} until it reaches dual, so {a.label} "
                        "cannot cut over before it")))
    seen: set[Finding] = set()
    return [f for f in out if not (f in seen or seen.add(f))]


def next_phase(phase: str) -> str | None:
    i = ORDER.index(phase) if phase in ORDER else -1
    return ORDER[i + 1] if 0 <= i < len(ORDER) - 1 else None


# ---- editing in place ---------------------------------------------------------------------

_DOC_SEP = re.compile(r"^---[ \t]*$", re.M)


def _documents(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each YAML document."""
    bounds, start = [], 0
    for m in _DOC_SEP.finditer(text):
        bounds.append((start, m.start()))
        start = m.end()
    bounds.append((start, len(text)))
    return bounds


def _context_doc(text: str, name: str) -> tuple[int, int]:
    for start, end in _documents(text):
        doc = text[start:end]
        if re.search(r"^kind:[ \t]*IdentityContext[ \t]*$", doc, re.M) and \
                re.search(rf"^[ \t]+name:[ \t]*['\"]?{re.escape(name)}['\"]?[ \t]*$", doc, re.M):
            return start, end
    raise MigrateError(f"cannot find IdentityContext {name} in the file's text")


def set_phase(text: str, ctx_name: str, phase: str, to: str = "") -> str:
    """The file's text with the IdentityContext's spec.migration.phase set (the block added under
    spec, with 'to', when missing); every other byte kept."""
    start, end = _context_doc(text, ctx_name)
    doc = text[start:end]
    block = re.search(r"^([ \t]+)migration:[ \t]*\n((?:\1[ \t]+.*\n|[ \t]*#.*\n|[ \t]*\n)*)", doc, re.M)
    if block:
        body = block.group(2)
        new_body, n = re.subn(r"^([ \t]+phase:[ \t]*)['\"]?[a-z]+['\"]?", lambda m: m.group(1) + phase, body,
                              count=1, flags=re.M)
        if n != 1:
            raise MigrateError(f"IdentityContext {ctx_name}: spec.migration has no 'phase:' line to edit")
        doc = doc[:block.start(2)] + new_body + doc[block.end(2):]
    else:
        if not to:
            raise MigrateError(f"IdentityContext {ctx_name} has no spec.migration: give --to <trust domain> to start one")
        spec = re.search(r"^spec:[ \t]*\n", doc, re.M)
        if not spec:
            raise MigrateError(f"IdentityContext {ctx_name} has no block 'spec:' to add spec.migration to")
        nxt = re.compile(r"^([ \t]+)\S", re.M).search(doc, spec.end())
        indent = nxt.group(1) if nxt else "  "
        # Right below spec.trustDomain (A) when it is a one-line value, else first in spec.
        td = re.compile(rf"^{indent}trustDomain:[^\n]*\S[^\n]*\n", re.M).search(doc, spec.end())
        at = td.end() if td else spec.end()
        doc = doc[:at] + f"{indent}migration:\n{indent}{indent}to: {to}\n{indent}{indent}phase: {phase}\n" + doc[at:]
    return text[:start] + doc + text[end:]


def rename_text(text: str, mentions: list[Mention], a: str, b: str, ctx_name: str) -> str:
    """Write each mentioned A value in B, document by document, leaving the IdentityContext's
    spec.trustDomain (the migration's origin) alone."""
    values = sorted({m.value for m in mentions}, key=len, reverse=True)
    if not values:
        return text
    pattern = re.compile(r"(?<![\w.\-/])(" + "|".join(re.escape(v) for v in values) + r")(?![\w.\-])")
    out, last = [], 0
    for start, end in _documents(text):
        doc = text[start:end]
        is_ctx = bool(re.search(r"^kind:[ \t]*IdentityContext[ \t]*$", doc, re.M))
        spec = re.search(r"^spec:[ \t]*\n", doc, re.M)
        child = re.compile(r"^([ \t]+)\S", re.M).search(doc, spec.end()) if is_ctx and spec else None
        origin = re.compile(rf"^{child.group(1)}trustDomain:") if child else None
        lines = doc.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if origin is not None and origin.match(line):
                continue  # the IdentityContext's own spec.trustDomain: the migration's origin stays
            lines[i] = pattern.sub(lambda m: migration.rename(m.group(1), a, b), line)
        out.append(text[last:start] + "".join(lines))
        last = end
    out.append(text[last:])
    return "".join(out)


# ---- the command ----------------------------------------------------------------------------

def report(pkgs: list[Package], phases: dict[str, str], findings: list[Finding], verbose: bool) -> str:
    lines = []
    errs_by_pkg: dict[str, list[Finding]] = {}
    for f in findings:
        errs_by_pkg.setdefault(f.package, []).append(f)
    for p in pkgs:
        ph = phases[p.label]
        what = f"{p.source} -> {p.target}" if p.target else p.source
        nxt = next_phase(ph) if p.target or ph == NONE else None
        lines.append(f"{p.label}: phase {ph} ({what}), next: {nxt or '-'}")
        for prob in p.problems:
            lines.append(f"  problem: {prob}")
        if p.mentions:
            lines.append(f"  names {p.source} in {len(p.mentions)} place(s):")
            for m in p.mentions if verbose or len(p.mentions) <= 20 else p.mentions[:20]:
                lines.append(f"    {m.ref.kind} {m.ref.name} {m.path} = {m.value}")
            if not verbose and len(p.mentions) > 20:
                lines.append(f"    ... {len(p.mentions) - 20} more (-v)")
        for f in errs_by_pkg.get(p.label, []):
            lines.append(f"  {f.severity.upper()}: {f.message}")
    return "\n".join(lines)


def _select(pkgs: list[Package], names: list[str]) -> list[Package]:
    chosen = []
    for n in names:
        hit = [p for p in pkgs if p.label == n.rstrip("/") or p.path.name == n.rstrip("/") or str(p.path) == n]
        if len(hit) != 1:
            raise MigrateError(f"--apply {n}: {'no' if not hit else 'more than one'} package of the directory is "
                               f"called so (packages: {', '.join(p.label for p in pkgs)})")
        chosen.append(hit[0])
    return chosen


def apply(root: Path, pkgs: list[Package], chosen: list[Package], to: str, out) -> int:
    phases = {p.label: p.phase for p in pkgs}
    proposed = dict(phases)
    for p in chosen:
        nxt = next_phase(p.phase)
        if nxt is None:
            raise MigrateError(f"{p.label} is in phase {p.phase}: there is no next phase")
        if p.phase == NONE:
            if not to:
                raise MigrateError(f"{p.label} has no spec.migration: give --to <new trust domain> to start it")
            p.target = to
        proposed[p.label] = nxt
    problems = [f for f in check(pkgs, proposed) if f.severity == "error"]
    for p in chosen:
        if p.problems and proposed[p.label] != "prepare":
            problems += [Finding("error", p.label, f"{p.label} does not render: {x}") for x in p.problems]
    for f in check(pkgs, proposed):
        if f.severity == "warning" and f.package in {p.label for p in chosen}:
            print(f"  WARNING: {f.message}", file=out)
    if problems:
        print("not applied, nothing written: the fleet would not be safe after the move:", file=out)
        for f in problems:
            print(f"  ERROR: {f.message}", file=out)
        return 1
    writes: dict[Path, str] = {}
    for p in chosen:
        path = p.path / p.ctx_file
        text = writes.get(path, path.read_text())
        writes[path] = set_phase(text, p.ctx_name, proposed[p.label], p.target)
        if proposed[p.label] == "complete" and p.mentions:
            for rel in sorted({m_file for m_file in _mention_files(p)}):
                fpath = p.path / rel
                writes[fpath] = rename_text(writes.get(fpath, fpath.read_text()), p.mentions, p.source, p.target,
                                            p.ctx_name)
    for path, text in writes.items():
        path.write_text(text)
    for p in chosen:
        extra = f", {len(p.mentions)} name(s) of {p.source} written in {p.target}" \
            if proposed[p.label] == "complete" and p.mentions else ""
        print(f"{p.label}: phase {phases[p.label]} -> {proposed[p.label]}{extra} "
              f"({p.ctx_file}); render it (spiffe-kpt-render {p.path} --in-place) and commit", file=out)
    return 0


def _mention_files(p: Package) -> set[str]:
    items = read_package(p.path)
    refs = {(m.ref.kind, m.ref.name) for m in p.mentions}
    return {file_path(o) for o in items if (resource_ref(o).kind, resource_ref(o).name) in refs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="spiffe-kpt-migrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="a directory of kpt packages (a deployment repository)")
    ap.add_argument("--apply", nargs="+", metavar="PKG", default=[],
                    help="move these packages (directory names below DIR) to their next phase")
    ap.add_argument("--to", default="", help="the new trust domain, for packages that start the migration")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        pkgs = load(args.dir)
        if not pkgs:
            raise MigrateError(f"no package under {args.dir} has an IdentityContext")
        if args.apply:
            return apply(args.dir, pkgs, _select(pkgs, args.apply), args.to, sys.stdout)
        phases = {p.label: p.phase for p in pkgs}
        findings = check(pkgs, phases)
        print(report(pkgs, phases, findings, args.verbose))
        errors = [f for f in findings if f.severity == "error"]
        print(f"{len(pkgs)} package(s), {len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
        return 1 if errors else 0
    except MigrateError as exc:
        print(f"spiffe-kpt-migrate: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

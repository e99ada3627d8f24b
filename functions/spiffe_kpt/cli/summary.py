"""What a render did, for a person: identities, changes by kind and file, and the results.

Problems come first (an error or warning is what the author must act on); the identities
and the changes follow; each function's infos fold into one line unless ``verbose``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ..api.paths import get_path
from ..krm import yamlio
from .tree import Entry, TreeChange

WI_KIND = "WorkloadIdentity"
# Lists longer than this are cut (with a count of the rest) unless verbose: a package of
# thousands of workloads must not print thousands of lines by default.
SHORT = 20

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def _is_yaml(rel: str) -> bool:
    p = PurePosixPath(rel)
    return p.name == "Kptfile" or p.suffix in (".yaml", ".yml")


def _docs(entry: Entry | None) -> list[dict[str, Any]]:
    if entry is None or entry.link:
        return []
    try:
        import yaml
        return [d for d in yaml.load_all(entry.data, Loader=yamlio.Loader)  # noqa: S506 - safe loader
                if isinstance(d, dict) and d.get("kind")]
    except Exception:  # a file that is not YAML is simply not a resource file
        return []


def _key(doc: dict[str, Any]) -> Key:
    meta = doc.get("metadata") or {}
    return (str(doc.get("apiVersion", "")), str(doc["kind"]), str(meta.get("namespace") or ""),
            str(meta.get("name") or ""))


def _resources(tree: dict[str, Entry], files: Iterable[str]) -> dict[Key, tuple[str, dict[str, Any]]]:
    out: dict[Key, tuple[str, dict[str, Any]]] = {}
    for rel in files:
        if _is_yaml(rel):
            for doc in _docs(tree.get(rel)):
                out[_key(doc)] = (rel, doc)
    return out


@dataclass
class ResourceChanges:
    """Keys of the resources a render generated, changed and deleted, with their files."""
    generated: list[tuple[Key, str]] = field(default_factory=list)
    changed: list[tuple[Key, str]] = field(default_factory=list)
    deleted: list[tuple[Key, str]] = field(default_factory=list)


def resource_changes(before: dict[str, Entry], after: dict[str, Entry], change: TreeChange) -> ResourceChanges:
    files = change.added + change.modified + change.removed  # resources in untouched files are unchanged
    old, new = _resources(before, files), _resources(after, files)
    rc = ResourceChanges()

    def order(key: Key) -> tuple[str, str, str]:
        return key[1], key[2], key[3]
    for key in sorted(set(new) - set(old), key=order):
        rc.generated.append((key, new[key][0]))
    for key in sorted(set(old) & set(new), key=order):
        if old[key][1] != new[key][1] or old[key][0] != new[key][0]:
            moved = f"{old[key][0]} -> {new[key][0]}" if old[key][0] != new[key][0] else new[key][0]
            rc.changed.append((key, moved))
    for key in sorted(set(old) - set(new), key=order):
        # A resource whose file was not rewritten is still there (only its file changed).
        rc.deleted.append((key, old[key][0]))
    return rc


@dataclass
class Identity:
    name: str
    spiffe_id: str
    namespace: str
    service_account: str
    selector: str
    file: str


def identities(after: dict[str, Entry]) -> tuple[list[Identity], list[Identity]]:
    """Resolved WorkloadIdentities (from their status) and the static entries generated."""
    wis: list[Identity] = []
    statics: list[Identity] = []
    for rel, entry in sorted(after.items()):
        if not _is_yaml(rel) or entry.link or PurePosixPath(rel).parts[0].startswith("."):
            continue
        if b"WorkloadIdentity" not in entry.data and b"ClusterStaticEntry" not in entry.data:
            continue
        for doc in _docs(entry):
            name = str((doc.get("metadata") or {}).get("name", ""))
            if doc["kind"] == WI_KIND:
                st = doc.get("status") or {}
                labels = st.get("selectorLabels") or {}
                wis.append(Identity(name, str(st.get("spiffeID") or "(not resolved)"),
                                    str(st.get("namespace") or "?"), str(st.get("serviceAccountName") or "?"),
                                    ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-", rel))
            elif doc["kind"] == "ClusterStaticEntry":
                spec = doc.get("spec") or {}
                statics.append(Identity(name, str(spec.get("spiffeID", "?")), "-", "-",
                                        ", ".join(str(s) for s in spec.get("selectors") or []) or "-", rel))
    return wis, statics


@dataclass
class FnResults:
    name: str
    exit_code: int
    results: list[dict[str, Any]]
    stderr: str


def function_results(doc: dict[str, Any] | None) -> list[FnResults]:
    """kpt's FunctionResultList (``--results-dir``/results.yaml) as one entry per function run."""
    out = []
    for item in (doc or {}).get("items") or []:
        name = str(item.get("exec") or item.get("image") or "?")
        out.append(FnResults(PurePosixPath(name).name if item.get("exec") else name,
                             int(item.get("exitCode") or 0), list(item.get("results") or []),
                             str(item.get("stderr") or "")))
    return out


def _where(r: dict[str, Any]) -> str:
    ref = r.get("resourceRef") or {}
    parts = []
    if ref:
        ns = f"{ref['namespace']}/" if ref.get("namespace") else ""
        parts.append(f"{ref.get('kind', '?')} {ns}{ref.get('name', '?')}")
    if get_path(r, "field", "path"):
        parts.append(str(r["field"]["path"]))
    if get_path(r, "file", "path"):
        parts.append(f"({r['file']['path']})")
    return " ".join(parts)


class Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def _c(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def error(self, t: str) -> str:
        return self._c("1;31", t)

    def warning(self, t: str) -> str:
        return self._c("1;33", t)

    def bold(self, t: str) -> str:
        return self._c("1", t)


def _cut(items: list[str], verbose: bool, what: str) -> list[str]:
    if verbose or len(items) <= SHORT:
        return items
    return items[:SHORT] + [f"... and {len(items) - SHORT} more {what} (-v lists them all)"]


def problems(fns: list[FnResults], style: Style) -> list[str]:
    lines = []
    for sev, paint in (("error", style.error), ("warning", style.warning)):
        for fn in fns:
            for r in fn.results:
                if r.get("severity") == sev:
                    where = _where(r)
                    lines.append(f"{paint(sev.upper())} {fn.name}: {where + ': ' if where else ''}{r.get('message', '')}")
    for fn in fns:
        # A function that failed without an error result (a crash) must not fail silently.
        if fn.exit_code != 0 and not any(r.get("severity") == "error" for r in fn.results):
            lines.append(f"{style.error('ERROR')} {fn.name} exited with {fn.exit_code}"
                         + (f":\n{_indent(fn.stderr.strip())}" if fn.stderr.strip() else ""))
    return lines


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def _kind(key: Key) -> str:
    return key[1]


def _name(key: Key) -> str:
    return f"{key[2]}/{key[3]}" if key[2] else key[3]


def format_summary(pkg: str, before: dict[str, Entry], after: dict[str, Entry], change: TreeChange,
                   fns: list[FnResults], *, wrote: bool, failed: bool, verbose: bool,
                   color: bool | None = None) -> str:
    style = Style(sys.stdout.isatty() if color is None else color)
    out: list[str] = []
    probs = problems(fns, style)
    if failed:
        # A failed render is never written (kpt writes nothing either).
        out.append(style.error(f"{pkg}: render FAILED; nothing was written"))
    if probs:
        out.append(style.bold("Problems") + f" ({len(probs)}):")
        out += [f"  {line}" for line in probs]
    if failed:
        return "\n".join(out) + "\n"
    n_err = sum(1 for fn in fns for r in fn.results if r.get("severity") == "error")
    n_warn = sum(1 for fn in fns for r in fn.results if r.get("severity") == "warning")
    out.insert(0, style.bold(f"{pkg}: rendered{' and written' if wrote else ''} by {len(fns)} functions, "
                             f"{n_err} errors, {n_warn} warnings"))

    wis, statics = identities(after)
    if wis:
        out.append(style.bold("Identities") + f" ({len(wis)}):")
        width = max(len(i.name) for i in wis)
        rows = [f"  {i.name:<{width}}  {i.spiffe_id}\n  {'':<{width}}  namespace {i.namespace}, "
                f"service account {i.service_account}, selector {i.selector}" for i in wis]
        out += _cut(rows, verbose, "identities")
    if statics:
        out.append(style.bold("Static entries") + f" ({len(statics)}):")
        out += _cut([f"  {s.name}  {s.spiffe_id}  (selectors {s.selector})" for s in statics], verbose, "entries")

    rc = resource_changes(before, after, change)
    rows = [(what, key, file) for what, entries in (("generated", rc.generated), ("changed", rc.changed),
                                                   ("deleted", rc.deleted)) for key, file in entries]
    if rows:
        out.append(style.bold("Changes") + (" written:" if wrote else " (not written; --in-place writes them):"))
        shown = rows if verbose or len(rows) <= SHORT else rows[:SHORT]
        kw = max(len(_kind(k)) for _, k, _ in shown)
        nw = max(len(_name(k)) for _, k, _ in shown)
        out += [f"  {what:<9}  {_kind(key):<{kw}}  {_name(key):<{nw}}  {file}" for what, key, file in shown]
        if len(shown) < len(rows):
            counts: dict[str, int] = {}
            for what, key, _ in rows[len(shown):]:
                counts[f"{what} {_kind(key)}"] = counts.get(f"{what} {_kind(key)}", 0) + 1
            out.append(f"  ... and {len(rows) - len(shown)} more: "
                       + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + " (-v lists them all)")
        if change.removed:
            out.append(f"  files {'removed' if wrote else 'to remove'}: {', '.join(_cut(change.removed, verbose, 'files'))}")
    else:
        out.append("No changes: the package is already rendered.")

    out.append(style.bold("Functions") + ":")
    for fn in fns:
        infos = [str(r.get("message", "")) for r in fn.results if r.get("severity") in (None, "info")]
        if verbose:
            out.append(f"  {fn.name}:")
            out += [f"    info: {_where(r) + ': ' if _where(r) else ''}{r.get('message', '')}"
                    for r in fn.results if r.get("severity") in (None, "info")]
        elif infos:
            # The last info of each function is its own summary ("generated 2 ClusterSPIFFEID").
            more = f" (+{len(infos) - 1} more infos, -v)" if len(infos) > 1 else ""
            out.append(f"  {fn.name}: {infos[-1]}{more}")
        else:
            out.append(f"  {fn.name}: ok")
    return "\n".join(out) + "\n"

"""Render a package with this project's functions run as local programs instead of images.

    spiffe-kpt-render PACKAGE                 # what the render would do: identities, changes, results
    spiffe-kpt-render PACKAGE --in-place      # render and write it, exactly as `kpt fn render` would
    spiffe-kpt-render PACKAGE --diff          # the unified diff of the files a render would change
    spiffe-kpt-render PACKAGE --output resourcelist   # the rendered package as a ResourceList (scripts)

The blueprints reference the functions by pinned image, as porch needs. Without a container
runtime, this renders a copy of the package in which each ``image: ghcr.io/spiffe-kpt/<fn>:<tag>``
is replaced by ``exec: spiffe-<fn>`` (the console scripts this package installs), then puts
the image references back. Other functions in the pipeline stay images. ``--in-place`` then
makes the package equal the rendered copy file by file (new files written, files whose
resources are all gone removed), which is what ``kpt fn render`` does to a package.

PACKAGE may also be a directory of packages (each rendered in turn, with a progress line).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .cli import kptbin, summary, tree
from .krm import yamlio

IMAGE_PREFIX = "ghcr.io/spiffe-kpt/"
# [ \t] rather than \s: a line's pattern must never eat the newline that ends it.
_IMAGE = re.compile(r"^(?P<lead>[ \t]*-?[ \t]*)image:[ \t]*[\"']?(?P<ref>" + re.escape(IMAGE_PREFIX) +
                    r"(?P<fn>[a-z-]+):[A-Za-z0-9._-]+)[\"']?[ \t]*$", re.M)
_EXEC = re.compile(r"^(?P<lead>[ \t]*-?[ \t]*)exec:[ \t]*spiffe-(?P<fn>[a-z-]+)[ \t]*$", re.M)


def image_refs_to_exec(text: str) -> tuple[str, dict[str, str]]:
    """The Kptfile with this project's images as exec: scripts, and fn -> image ref to undo it."""
    refs: dict[str, str] = {}

    def swap(m: re.Match[str]) -> str:
        refs[m.group("fn")] = m.group("ref")
        return f"{m.group('lead')}exec: spiffe-{m.group('fn')}"
    return _IMAGE.sub(swap, text), refs


def exec_refs_to_images(text: str, refs: dict[str, str]) -> str:
    return _EXEC.sub(lambda m: f"{m.group('lead')}image: {refs[m.group('fn')]}" if m.group("fn") in refs
                     else m.group(0), text)


def swap_to_exec(root: Path) -> dict[Path, dict[str, str]]:
    """Point every Kptfile under ``root`` at the console scripts; returns what to put back."""
    swapped: dict[Path, dict[str, str]] = {}
    for kptfile in root.rglob("Kptfile"):
        text, refs = image_refs_to_exec(kptfile.read_text())
        if refs:
            kptfile.write_text(text)
            swapped[kptfile] = refs
    return swapped


def swap_back(swapped: dict[Path, dict[str, str]]) -> None:
    for kptfile, refs in swapped.items():
        kptfile.write_text(exec_refs_to_images(kptfile.read_text(), refs))


def render_locally(pkg: Path, work: Path, results_dir: Path | None = None, kpt: str = "kpt",
                   kpt_flags: list[str] | None = None, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Copy ``pkg`` to ``work`` and render it there with local executables (kpt's own in-place render)."""
    shutil.copytree(pkg, work, symlinks=True)
    swapped = swap_to_exec(work)
    cmd = [kpt, "fn", "render", "--allow-exec", str(work), *(kpt_flags or [])]
    if results_dir is not None:
        cmd += ["--results-dir", str(results_dir)]
    try:
        return subprocess.run(cmd, text=True, stderr=subprocess.PIPE if capture else None)
    finally:
        swap_back(swapped)


def packages_under(root: Path) -> list[Path]:
    """``root`` if it is a package, else the outermost packages below it (kpt renders their
    subpackages with them)."""
    if (root / "Kptfile").is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if (Path(dirpath) / "Kptfile").is_file():
            found.append(Path(dirpath))
            dirnames[:] = []
    return found


def _read_results(results_dir: Path) -> dict | None:
    f = results_dir / "results.yaml"
    if not f.is_file():
        return None
    try:
        doc = yamlio.load(f.read_text())
    except Exception:  # kpt wrote something unreadable: the summary says the render failed anyway
        return None
    return doc if isinstance(doc, dict) else None


def render_one(pkg: Path, args: argparse.Namespace, kpt: str, results_dir: Path | None) -> int:
    out_summary = args.output == "summary"
    kpt_flags = []
    if args.truncate_output is not None:
        kpt_flags.append(f"--truncate-output={str(args.truncate_output).lower()}")
    if args.image_pull_policy:
        kpt_flags += ["--image-pull-policy", args.image_pull_policy]
    with tempfile.TemporaryDirectory(prefix="spiffe-kpt-render-") as tmp:
        work = Path(tmp) / pkg.resolve().name
        results_dir = results_dir or Path(tmp) / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        # kpt's progress lines are noise next to the summary; kept to show when a render fails.
        proc = render_locally(pkg, work, results_dir, kpt, kpt_flags, capture=out_summary or args.diff)
        failed = proc.returncode != 0
        fns = summary.function_results(_read_results(results_dir))
        if failed:
            if out_summary or args.diff:
                text = summary.format_summary(str(pkg), {}, {}, tree.TreeChange(), fns, wrote=False,
                                              failed=True, verbose=args.verbose)
                sys.stdout.write(text)
                if not summary.problems(fns, summary.Style(False)) or args.verbose:
                    sys.stderr.write(proc.stderr or "")
            return proc.returncode
        before, after = tree.snapshot(pkg), tree.snapshot(work)
        change = tree.compare(before, after)
        if args.diff:
            sys.stdout.write(tree.unified_diff(before, after, change))
            return 0
        if args.in_place:
            tree.mirror(work, pkg)
        if out_summary:
            if args.verbose:
                sys.stderr.write(proc.stderr or "")
            sys.stdout.write(summary.format_summary(str(pkg), before, after, change, fns, wrote=args.in_place,
                                                    failed=False, verbose=args.verbose))
            return 0
        if not args.in_place:
            return subprocess.run([kpt, "fn", "source", str(work)]).returncode
        return 0


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="spiffe-kpt-render",
        description="Render a kpt package with the spiffe-kpt functions run locally (kpt fn render --allow-exec "
                    "under the hood) and say what the render did.")
    ap.add_argument("package", type=Path, help="a package directory, or a directory holding packages")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--in-place", action="store_true",
                      help="write the render into PACKAGE, exactly as `kpt fn render` would "
                           "(new files written, files whose resources are gone removed)")
    mode.add_argument("--diff", action="store_true",
                      help="print the unified diff of the files a render would change; write nothing")
    ap.add_argument("--output", "-o", choices=["summary", "resourcelist"], default="summary",
                    help="summary (default): identities, changes and results for a person; "
                         "resourcelist: the rendered package as a ResourceList, for scripts")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="every info result, every identity and file, and kpt's own progress lines")
    ap.add_argument("--results-dir", type=Path, help="where kpt writes results.yaml (passed to kpt)")
    ap.add_argument("--truncate-output", type=_bool, nargs="?", const=True, default=None, metavar="BOOL",
                    help="passed to kpt: whether kpt truncates the function output it prints")
    ap.add_argument("--image-pull-policy", choices=["always", "ifNotPresent", "never"],
                    help="passed to kpt, for the pipeline's functions that stay images")
    args = ap.parse_args(argv)
    if not args.package.is_dir():
        print(f"spiffe-kpt-render: {args.package} is not a directory", file=sys.stderr)
        return 2
    pkgs = packages_under(args.package)
    if not pkgs:
        print(f"spiffe-kpt-render: {args.package} is not a kpt package (it has no Kptfile, nor has any "
              "directory below it)", file=sys.stderr)
        return 2
    try:
        kpt = kptbin.find_or_build_kpt()
    except kptbin.KptMissing as exc:
        print(f"spiffe-kpt-render: {exc}", file=sys.stderr)
        return 2
    worst = 0
    for n, pkg in enumerate(pkgs, 1):
        if len(pkgs) > 1:
            print(f"[{n}/{len(pkgs)}] rendering {pkg}", file=sys.stderr, flush=True)
        # kpt writes one results.yaml per render: with several packages, one directory each.
        results = args.results_dir / pkg.relative_to(args.package) if args.results_dir and len(pkgs) > 1 \
            else args.results_dir
        code = render_one(pkg, args, kpt, results)
        worst = worst or code
    return worst


if __name__ == "__main__":
    sys.exit(main())

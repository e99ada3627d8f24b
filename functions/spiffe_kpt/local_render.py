"""Render a package with this project's functions run as local programs instead of images.

    spiffe-kpt-render PACKAGE             # print the rendered package as a ResourceList
    spiffe-kpt-render PACKAGE --in-place  # write the render into PACKAGE

The blueprints reference the functions by pinned image, as porch needs. Without a container
runtime, this renders a copy of the package in which each ``image: ghcr.io/spiffe-kpt/<fn>:<tag>``
is replaced by ``exec: spiffe-<fn>`` (the console scripts this package installs), then puts
the image references back. Other functions in the pipeline stay images.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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


def render_locally(pkg: Path, work: Path, results_dir: Path | None = None) -> int:
    """Copy ``pkg`` to ``work`` and render it there with local executables; returns kpt's exit code."""
    shutil.copytree(pkg, work, symlinks=True)
    swapped: dict[Path, dict[str, str]] = {}
    for kptfile in work.rglob("Kptfile"):
        text, refs = image_refs_to_exec(kptfile.read_text())
        if refs:
            kptfile.write_text(text)
            swapped[kptfile] = refs
    cmd = ["kpt", "fn", "render", "--allow-exec", str(work)]
    if results_dir is not None:
        cmd += ["--results-dir", str(results_dir)]
    code = subprocess.run(cmd).returncode
    for kptfile, refs in swapped.items():
        kptfile.write_text(exec_refs_to_images(kptfile.read_text(), refs))
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="spiffe-kpt-render",
                                 description="Render a package with spiffe-kpt functions run locally.")
    ap.add_argument("package", type=Path)
    ap.add_argument("--in-place", action="store_true", help="write the rendered files into PACKAGE")
    ap.add_argument("--results-dir", type=Path, help="where kpt writes results.yaml")
    args = ap.parse_args(argv)
    if not (args.package / "Kptfile").is_file():
        print(f"spiffe-kpt-render: {args.package} is not a kpt package (it has no Kptfile)", file=sys.stderr)
        return 2
    if shutil.which("kpt") is None:
        print("spiffe-kpt-render: kpt is not on PATH; install it from https://kpt.dev/installation/",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / args.package.resolve().name
        code = render_locally(args.package, work, args.results_dir)
        if code != 0:
            return code
        if args.in_place:
            shutil.copytree(work, args.package, dirs_exist_ok=True, symlinks=True)
            return 0
        return subprocess.run(["kpt", "fn", "source", str(work)]).returncode


if __name__ == "__main__":
    sys.exit(main())

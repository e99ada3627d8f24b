"""Find kpt, or build the pinned one from the Go module proxy when the machine has none.

    python3 -m spiffe_kpt.cli.kptbin           # build the pinned kpt if missing, print its directory
    python3 -m spiffe_kpt.cli.kptbin --path    # print the kpt that would be used (or why none)

The pinned kpt is cached as ``~/.cache/spiffe-kpt/bin/kpt-<version>`` (the same cache, and the
same ``SPIFFE_KPT_BIN_CACHE`` override, as the real-tier binaries of tests/real/binaries.py);
``~/.cache/spiffe-kpt/kpt-on-path/kpt`` links to it so a shell can put just kpt on PATH.
kpt's go.mod has no replace directive, so a throw-away module that requires it builds it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KPT_MODULE = "github.com/kptdev/kpt"
KPT_VERSION = "v1.0.0-beta.61"


class KptMissing(RuntimeError):
    pass


def cache_dir() -> Path:
    d = os.environ.get("SPIFFE_KPT_BIN_CACHE")
    return Path(d) if d else Path.home() / ".cache" / "spiffe-kpt" / "bin"


def cached_kpt() -> Path:
    return cache_dir() / f"kpt-{KPT_VERSION}"


def path_dir() -> Path:
    """A directory holding only ``kpt`` (a link to the cached build), for PATH."""
    return cache_dir().parent / "kpt-on-path"


def _go() -> str | None:
    """The go command: SPIFFE_KPT_GO when set (empty: use no Go), else PATH, else Go's default install."""
    if "SPIFFE_KPT_GO" in os.environ:
        chosen = os.environ["SPIFFE_KPT_GO"]
        return chosen if chosen and os.access(chosen, os.X_OK) else None
    return shutil.which("go") or (("/usr/local/go/bin/go") if os.access("/usr/local/go/bin/go", os.X_OK) else None)


def find_or_build_kpt(log=sys.stderr) -> str:
    """kpt on PATH, else the cached pinned build, else build it now when Go is here (minutes, once).
    Raises KptMissing with how to get one when none of these works."""
    kpt = find_kpt()
    if kpt:
        return kpt
    if _go() is None:
        raise KptMissing(how_to_get_kpt())
    print(f"kpt is not on PATH: building the pinned kpt {KPT_VERSION} from the Go module proxy into "
          f"{cached_kpt()} (once; a few minutes)", file=log, flush=True)
    return str(build(log=log))


def how_to_get_kpt() -> str:
    go = "Go is on this machine" if _go() else "it needs Go >= 1.24 (https://go.dev/dl/)"
    return (f"kpt is not on PATH and no pinned kpt is cached at {cached_kpt()}. "
            f"Build the pinned kpt {KPT_VERSION} from the Go module proxy with "
            f"`python3 -m spiffe_kpt.cli.kptbin` ({go}; a few minutes, once) and put it on PATH with "
            f"`export PATH=\"$(python3 -m spiffe_kpt.cli.kptbin):$PATH\"`, "
            "or install a kpt release from https://kpt.dev/installation/")


def find_kpt() -> str | None:
    """kpt on PATH first (the user's choice), then the pinned build in the cache."""
    on_path = shutil.which("kpt")
    if on_path:
        return on_path
    cached = cached_kpt()
    return str(cached) if cached.is_file() and os.access(cached, os.X_OK) else None


def _link_on_path(binary: Path) -> Path:
    d = path_dir()
    d.mkdir(parents=True, exist_ok=True)
    link = d / "kpt"
    tmp = d / ".kpt.new"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(binary)
    os.replace(tmp, link)
    return d


# kpt's alpha `rollouts` commands import the nested module github.com/kptdev/kpt/rollouts at a
# pseudo-version the Go module proxy refuses (403 for its .mod and .zip), so the module graph
# cannot be built as published. Rendering needs none of it: the build drops that one command
# (two lines of commands/alpha/alphacmd.go and the require in go.mod) in a throw-away copy of the
# verified module source. Nothing else of kpt changes.
ROLLOUTS_MODULE = "github.com/kptdev/kpt/rollouts"
ROLLOUTS_IMPORT = '"github.com/kptdev/kpt/commands/alpha/rollouts"'
ROLLOUTS_CMD = "rollouts.NewCommand(ctx, version),"


def _patched_source(go: str, env: dict[str, str], tmp: Path, log) -> Path:
    """The pinned kpt module's source (verified against sum.golang.org by `go mod download`),
    copied to ``tmp`` without the alpha rollouts command; raises KptMissing if it changed shape."""
    import json
    cmd = [go, "mod", "download", "-json", f"{KPT_MODULE}@{KPT_VERSION}"]
    print("+", " ".join(cmd), file=log, flush=True)
    p = subprocess.run(cmd, cwd=tmp, env=env, text=True, capture_output=True)
    info = json.loads(p.stdout[p.stdout.index("{"):]) if "{" in p.stdout else {}
    if p.returncode != 0 or "Dir" not in info:
        raise KptMissing(f"downloading {KPT_MODULE}@{KPT_VERSION} failed: {info.get('Error') or p.stderr}\n"
                         + how_to_get_kpt())
    src = tmp / "kpt"
    shutil.copytree(info["Dir"], src)
    for d, _, files in os.walk(src):  # the module cache is read-only
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    alpha = src / "commands" / "alpha" / "alphacmd.go"
    gomod = src / "go.mod"
    text, mod = alpha.read_text(), gomod.read_text()
    if ROLLOUTS_IMPORT not in text or ROLLOUTS_CMD not in text or ROLLOUTS_MODULE not in mod:
        raise KptMissing(f"kpt {KPT_VERSION}'s source is not as expected ({alpha.name} or go.mod changed); "
                         "update spiffe_kpt/cli/kptbin.py for it.\n" + how_to_get_kpt())
    alpha.write_text(text.replace(ROLLOUTS_IMPORT, "").replace(ROLLOUTS_CMD, ""))
    gomod.write_text("".join(line for line in mod.splitlines(keepends=True)
                             if not line.split() or line.split()[0] != ROLLOUTS_MODULE))
    shutil.rmtree(src / "commands" / "alpha" / "rollouts")
    return src


def build(log=sys.stderr) -> Path:
    """Build the pinned kpt into the cache unless it is there; returns the binary's path."""
    out = cached_kpt()
    out.parent.mkdir(parents=True, exist_ok=True)
    go = _go()
    with open(out.parent / ".kpt.lock", "w") as lock:
        # A second caller waits for the first build rather than building twice.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_file():
            return out
        if go is None:
            raise KptMissing(how_to_get_kpt())
        env = dict(os.environ, GOTOOLCHAIN=os.environ.get("GOTOOLCHAIN", "local"), CGO_ENABLED="0",
                   GOFLAGS=(os.environ.get("GOFLAGS", "") + " -mod=mod -buildvcs=false").strip())
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="spiffe-kpt-kpt-") as tmp:
            partial = out.with_name(out.name + ".partial")
            src = _patched_source(go, env, Path(tmp), log)
            # kpt's Makefile sets the version the same way (`kpt version` says "unknown" otherwise).
            ldflags = f"-s -w -X {KPT_MODULE}/run.version={KPT_VERSION.removeprefix('v')}"
            cmd = [go, "build", f"-ldflags={ldflags}", "-o", str(partial), "."]
            print("+", " ".join(cmd), file=log, flush=True)
            p = subprocess.run(cmd, cwd=src, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode != 0:
                raise KptMissing(f"building kpt {KPT_VERSION} failed: {' '.join(cmd)}:\n{p.stdout[-4000:]}\n"
                                 + how_to_get_kpt())
            os.replace(partial, out)
        print(f"built kpt {KPT_VERSION} in {time.monotonic() - start:.0f} s: {out}", file=log)
        return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--path"]:
        kpt = find_kpt()
        print(kpt or how_to_get_kpt(), file=sys.stdout if kpt else sys.stderr)
        return 0 if kpt else 1
    if args:
        print("usage: python3 -m spiffe_kpt.cli.kptbin [--path]", file=sys.stderr)
        return 2
    try:
        print(_link_on_path(build()))
    except KptMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
    return shutil.which("go") or (("/usr/local/go/bin/go") if os.access("/usr/local/go/bin/go", os.X_OK) else None)


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
            # `go install kpt@version` would ask the proxy for the module's version list; an exact
            # requirement in a throw-away module fetches only the pinned version.
            Path(tmp, "go.mod").write_text(f"module spiffekpt.invalid/kptwrapper\n\ngo 1.24\n\n"
                                           f"require {KPT_MODULE} {KPT_VERSION}\n")
            partial = out.with_name(out.name + ".partial")
            for cmd in ([go, "mod", "download", f"{KPT_MODULE}@{KPT_VERSION}"],
                        [go, "get", f"{KPT_MODULE}@{KPT_VERSION}"],
                        [go, "build", "-ldflags=-s -w", "-o", str(partial), KPT_MODULE]):
                print("+", " ".join(cmd), file=log, flush=True)
                p = subprocess.run(cmd, cwd=tmp, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                if p.returncode != 0:
                    raise KptMissing(f"building kpt {KPT_VERSION} failed: {' '.join(cmd)}:\n"
                                     f"{p.stdout[-4000:]}\n{how_to_get_kpt()}")
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

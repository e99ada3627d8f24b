"""Build the real SPIRE / Kubernetes binaries used by the `real` test tier.

Everything is built here from the Go module proxy (``go env GOPROXY``) at the
pinned versions below and cached as ``~/.cache/spiffe-kpt/bin/<name>-<version>``
(override the directory with ``SPIFFE_KPT_BIN_CACHE``), so only the first run
pays for the build.  No release tarballs are downloaded and no third-party
source or build script lives in this repository: only the ``go`` commands
below.

Usage::

    python -m tests.real.binaries            # build whatever is missing, print times
    python -m tests.real.binaries --print    # just print the cached paths

    from tests.real import binaries
    path = binaries.ensure("spire-server")

Without Go on PATH this fails with :class:`GoMissing`, whose message says how
to get Go; it never silently skips.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ---------------------------------------------------------------------------
# Pinned versions.  Each must be served by the Go module proxy and build with
# the machine's Go (1.26.8 at the time of writing; spire-controller-manager v0.7.0
# declares go 1.26.5, the others go <= 1.25).
# ---------------------------------------------------------------------------

SPIRE_VERSION = "v1.13.3"
# The CRDs in ../shared/reference/upstream-crds/ come from spire-controller-manager
# 430567c (after v0.6.6).  v0.6.5 and v0.6.6 are not served by the module proxy
# reachable from these machines (HTTP 403); v0.6.4 is the newest v0.6.x that is,
# and its CRDs carry the same ClusterSPIFFEID fields the project emits.
# v0.7.0 is served (and adds filterByClassName); it declares go 1.26.5.
SPIRE_CONTROLLER_MANAGER_VERSION = "v0.7.0"
# v1.33.x would be within kubectl 1.32's +/-1 minor skew, but the module proxy
# reachable from these machines refuses some of its staging modules
# (k8s.io/kube-aggregator@v0.33.9, k8s.io/endpointslice@v0.33.9: 403;
# sumdb lookup of k8s.io/cloud-provider@v0.33.9: 404).  Every staging module of
# v1.34.4 is served.  kubectl 1.32 against a 1.34 apiserver is outside the
# documented skew, but the tests only use `apply --server-side`, `get`,
# `wait` and `delete`, whose wire protocol is stable.
KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.5"
# kube-score: the second security scanner of the rendered SPIRE packages (tests/spire/test_security.py).
KUBE_SCORE_VERSION = "v1.20.0"

VERSIONS = {
    "spire-server": SPIRE_VERSION,
    "spire-agent": SPIRE_VERSION,
    # The OIDC discovery provider serving the JWT issuer's discovery document and JWKS
    # (support/oidc-discovery-provider, a main package inside the spire module).
    "oidc-discovery-provider": SPIRE_VERSION,
    "spire-controller-manager": SPIRE_CONTROLLER_MANAGER_VERSION,
    "kube-apiserver": KUBERNETES_VERSION,
    "etcd": ETCD_VERSION,
    "kube-score": KUBE_SCORE_VERSION,
}

# --- porch -------------------------------------------------------
# v1.5.8 is the newest tag that is a valid Go version of this module path (its
# v2-v4 tags are not).  Three binaries of one module, built together.  Porch's test git
# server (test/git) is not built: it listens on all interfaces, and `git daemon --listen`
# serves the tests' repositories on loopback.
PORCH_VERSION = "v1.5.8"
PORCH_PACKAGES = {
    "porch-server": "github.com/nephio-project/porch/cmd/porch",
    "porch-function-runner": "github.com/nephio-project/porch/func/server",
    # PackageVariant / PackageVariantSet controllers.
    "porch-controllers": "github.com/nephio-project/porch/controllers",
}
VERSIONS.update({name: PORCH_VERSION for name in PORCH_PACKAGES})
# The wrapper-server porch's pod evaluator runs in every function pod (its init container copies
# it from the wrapper-server image; the function container runs it in front of the image's
# entrypoint). Built on its own so an existing porch cache is not rebuilt for it.
PORCH_WRAPPER_SERVER = "porch-wrapper-server"
VERSIONS[PORCH_WRAPPER_SERVER] = PORCH_VERSION
# --- end porch ---------------------------------------------------------------

# --- secrets manager (issue 17) ---------------------------------------------
# OpenBao first: its newest release, v2.6.2 (commit dd9c19c37a87, 2026-08-18), declares
# module github.com/openbao/openbao (no /v2 suffix), so its v2 tags are not Go versions of
# that path; the one exact version tried, the release commit
# (github.com/openbao/openbao@dd9c19c37a87, i.e. its pseudo-version), is refused by the
# module proxy reachable here: "403 Forbidden ... This module version is not available".
#
# So Vault, at a release licensed MPL-2.0: v1.14.1 (July 2023; LICENSE in the module zip:
# "Mozilla Public License, version 2.0", as in every 1.14.x up to 1.14.8; 1.15.0 and the 1.14.x
# patches after 1.14.8 are BUSL-1.1).
# Its go.mod replaces its nested modules (api, api/auth/*, sdk) with ./ directories, which
# `go install` refuses; a wrapper module ignores those replaces, and the nested modules
# resolve to the published versions v1.14.1 requires (api v1.9.2, api/auth/approle v0.1.0,
# api/auth/userpass v0.1.0, api/auth/kubernetes v0.4.0), except the sdk: v1.14.1 requires
# v0.9.2-0.20230530190758-08ee474850e0 (a commit of May 30), which the proxy serves but which
# predates the release's own ./sdk ("undefined: certutil.ParseBasicConstraintExtension" in
# builtin/logical/pki, "dstP.WrapKey undefined" in builtin/logical/transit; 8.5 minutes into
# the build). The tag sdk v0.9.2 compiles, but its framework panics on v1.14.1's system backend
# at the first write to sys/ ("Pattern managed-keys/... defines a CreateOperation but no
# ExistenceCheck", a check added to the sdk after the 1.14 branch; the server closes the
# connection). The proxy refuses the release commit by hash (sdk@bf23fe8636b0: 403) but serves
# its canonical pseudo-version v0.9.2-0.20230721171514-bf23fe8636b0: the sdk exactly as in
# v1.14.1, required directly (see _build_vault). Built without the UI and without CGO, with
# GODEBUG x509negativeserial=1 (see _build_vault).
# Build (2 CPUs): 416 s from empty Go caches, 77 s with the dependencies in GOCACHE. Binary:
# 175 MB (stripped).
#
# History: v1.14.8 (the last MPL-2.0 1.14 patch) does not build against any published sdk:
# with the v0.9.2 it requires, physical.FencingHABackend, logical.CtxKeyRequestRole and
# logical.ContextOriginalBodyValue (added to its ./sdk after v0.9.2) are undefined; v0.10.2
# lacks the last; with v0.11.0, vault/eventbus fails ("*pluginEventBus does not implement
# logical.EventSender (missing method SendEvent)").
VAULT_VERSION = "v1.14.1"
VAULT_SDK_VERSION = "v0.9.2-0.20230721171514-bf23fe8636b0"
VERSIONS["vault"] = VAULT_VERSION
# --- end secrets manager ------------------------------------------------------

GO_HELP = (
    "Go is required to build the real SPIRE/Kubernetes binaries for the `real` "
    "test tier, and `go` was not found on PATH.  Install Go >= 1.26.5 from "
    "https://go.dev/dl/ (e.g. `curl -fsSL https://go.dev/dl/go1.26.8.linux-amd64.tar.gz "
    "| tar -C /usr/local -xz && export PATH=/usr/local/go/bin:$PATH`) or with your "
    "distribution's package (`apt-get install golang-go` only if it is >= 1.26.5), "
    "make sure `go env GOPROXY` reaches https://proxy.golang.org, and that a C "
    "compiler (gcc) is installed: spire's sqlite3 datastore needs CGO_ENABLED=1."
)


class GoMissing(RuntimeError):
    pass


class BuildFailed(RuntimeError):
    pass


def cache_dir() -> Path:
    d = os.environ.get("SPIFFE_KPT_BIN_CACHE")
    p = Path(d) if d else Path.home() / ".cache" / "spiffe-kpt" / "bin"
    p.mkdir(parents=True, exist_ok=True)
    return p


def cached_path(name: str) -> Path:
    return cache_dir() / f"{name}-{VERSIONS[name]}"


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise GoMissing(GO_HELP)
    return go


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    # Never let go download another toolchain behind our back; if a module
    # needs a newer Go, the build fails with Go's own clear message.
    env.setdefault("GOTOOLCHAIN", "local")
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=mod -buildvcs=false").strip()
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: str | None = None, **envextra: str) -> str:
    print("+", " ".join(cmd), f"(in {cwd})" if cwd else "", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, cwd=cwd, env=_env(**envextra), text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise BuildFailed(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-6000:]}")
    return p.stdout


LDFLAGS = "-s -w"


def _wrapper_module(tmp: str, requires: dict[str, str], replaces: dict[str, str],
                    godebug: dict[str, str] | None = None) -> None:
    """Write a throw-away go.mod that depends on the given modules (``godebug``: the binary's
    default GODEBUG settings, as a main module's go.mod ``godebug`` block sets them)."""
    lines = ["module spiffekpt.invalid/buildwrapper", "", "go 1.25", ""]
    if godebug:
        lines.append("godebug (")
        lines += [f"\t{k}={v}" for k, v in sorted(godebug.items())]
        lines.append(")")
    if requires:
        lines.append("require (")
        lines += [f"\t{m} {v}" for m, v in sorted(requires.items())]
        lines.append(")")
    if replaces:
        lines.append("replace (")
        lines += [f"\t{m} => {target}" for m, target in sorted(replaces.items())]
        lines.append(")")
    Path(tmp, "go.mod").write_text("\n".join(lines) + "\n")


def _module_dir(tmp: str, module: str, version: str) -> Path:
    """Download module@version (verified against sum.golang.org) and return its directory."""
    import json
    out = _run([_go(), "mod", "download", "-json", f"{module}@{version}"], cwd=tmp)
    return Path(json.loads(out[out.index("{"):])["Dir"])


def _seed_go_sum(tmp: str, modules: list[str]) -> None:
    """Copy the upstream go.sum of each required module into the wrapper.

    The upstream go.sum is part of the module's zip, whose own hash is checked
    against sum.golang.org, so its checksums are as trustworthy as a sumdb
    lookup; and the sumdb lookup endpoint of the proxy reachable from these
    machines answers 404 for some of spire's dependencies
    (e.g. github.com/GoogleCloudPlatform/cloudsql-proxy@v1.37.9), which
    otherwise fails the build with "verifying module: ... 404 Not Found".
    """
    gomod = Path(tmp, "go.mod").read_text()
    sums = []
    for m in modules:
        v = re.search(rf"^\s*{re.escape(m)}\s+(v\S+)\s*$", gomod, re.M)
        if not v:
            continue
        f = _module_dir(tmp, m, v.group(1)) / "go.sum"
        if f.exists():
            sums.append(f.read_text())
    Path(tmp, "go.sum").write_text("".join(sums))


def _wrapper_build(requires: dict[str, str], pkgs: dict[str, Path], cgo: bool = False,
                   replaces: dict[str, str] | None = None,
                   sum_from: list[str] | None = None, godebug: dict[str, str] | None = None) -> None:
    """Build main packages of pinned modules inside a throw-away wrapper module.

    `go install pkg@version` is not used: it looks up the module's deprecation
    through the proxy's `@v/list`, which the proxy reachable from these
    machines refuses (403) for some modules.  A wrapper module with exact
    requirements only fetches the pinned versions.

    The wrapper's go.sum is seeded with the go.sum shipped inside each
    required module (see :func:`_seed_go_sum`).
    """
    with tempfile.TemporaryDirectory(prefix="spiffe-kpt-build-") as tmp:
        _wrapper_module(tmp, requires, replaces or {}, godebug)
        _seed_go_sum(tmp, sum_from or list(requires))
        for pkg, out in pkgs.items():
            _run([_go(), "build", f"-ldflags={LDFLAGS}", "-o", str(out), pkg],
                 cwd=tmp, CGO_ENABLED="1" if cgo else "0")


def _build_spire(out: Path) -> None:
    # spire has no replace directives.  CGO for the sqlite3 datastore.
    outs = {n: cached_path(n).with_name(cached_path(n).name + ".partial")
            for n in ("spire-server", "spire-agent")}
    _wrapper_build({"github.com/spiffe/spire": SPIRE_VERSION},
                   {f"github.com/spiffe/spire/cmd/{n}": o for n, o in outs.items()},
                   cgo=True)
    for n, o in outs.items():
        os.replace(o, cached_path(n))


def _build_oidc_discovery_provider(out: Path) -> None:
    # Same module and wrapper as spire-server (so the same go.sum and, warm, the same
    # build cache); no CGO: the provider has no datastore.  Measured here: 13 s with spire's build
    # cache warm (10 s right after spire-server's build from empty caches).
    _wrapper_build({"github.com/spiffe/spire": SPIRE_VERSION},
                   {"github.com/spiffe/spire/support/oidc-discovery-provider": out})


def _build_scm(out: Path) -> None:
    # The main package is ./cmd (it would be named `cmd`), hence `go build -o`.
    _wrapper_build({"github.com/spiffe/spire-controller-manager": SPIRE_CONTROLLER_MANAGER_VERSION},
                   {"github.com/spiffe/spire-controller-manager/cmd": out})


def _build_etcd(out: Path) -> None:
    # go.etcd.io/etcd/server/v3 is a main package, but its go.mod has
    # `replace ... => ../api` directives, so `go install @version` refuses it.
    # In a wrapper module those replaces are ignored and the sibling modules
    # resolve to the versions server/v3 requires (the same release).
    _wrapper_build({"go.etcd.io/etcd/server/v3": ETCD_VERSION}, {"go.etcd.io/etcd/server/v3": out})


def _build_kube_apiserver(out: Path) -> None:
    _build_kubernetes_cmd("kube-apiserver", out)


def _build_kubernetes_cmd(cmd: str, out: Path) -> None:
    # k8s.io/kubernetes replaces every k8s.io/* staging module with
    # ./staging/src/k8s.io/<name> and requires them at v0.0.0, so neither
    # `go install` nor a plain `require` works.  The known way: a throw-away
    # wrapper module requiring k8s.io/kubernetes@v1.X.Y whose own replace
    # directives point every staging module at its published copy v0.X.Y
    # (the staging trees are published as separate modules, same commit).
    # The list of staging modules is read from k8s.io/kubernetes' own go.mod.
    go = _go()
    with tempfile.TemporaryDirectory(prefix="spiffe-kpt-build-") as tmp:
        _wrapper_module(tmp, {}, {})
        info = _run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], cwd=tmp)
        import json
        gomod = Path(json.loads(info[info.index("{"):])["GoMod"]).read_text()
        staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, re.M)))
        if not staging:
            raise BuildFailed(f"no staging replace directives found in k8s.io/kubernetes@{KUBERNETES_VERSION} go.mod")
        staging_version = "v0." + KUBERNETES_VERSION[len("v1."):]
        replaces = {m: f"{m} {staging_version}" for m in staging}
        # Only k8s.io/kubernetes is required: requiring every staging module
        # would make Go fetch the go.mod of unused ones too (e.g.
        # k8s.io/sample-cli-plugin@v0.34.4, which the proxy here refuses).
        requires = {"k8s.io/kubernetes": KUBERNETES_VERSION}
        _wrapper_module(tmp, requires, replaces)
        _seed_go_sum(tmp, ["k8s.io/kubernetes"])
        _run([go, "build", f"-ldflags={LDFLAGS}", "-o", str(out), f"k8s.io/kubernetes/cmd/{cmd}"],
             cwd=tmp, CGO_ENABLED="0")


def _build_kube_score(out: Path) -> None:
    # A plain module without replace directives; its main package is ./cmd/kube-score.
    _wrapper_build({"github.com/zegl/kube-score": KUBE_SCORE_VERSION},
                   {"github.com/zegl/kube-score/cmd/kube-score": out})


def _build_porch(out: Path) -> None:
    """Build the four porch binaries in one wrapper module.

    `go install` is refused: porch's go.mod replaces k8s.io/apiserver with a
    directory under third_party/ (a longer request timeout only), which a
    wrapper module ignores, so the published k8s.io/apiserver is used.
    porch v1.5.8 requires github.com/kptdev/kpt v1.0.0-beta.61.1, which the
    module proxy reachable from these machines refuses; v1.0.0-beta.61 is
    served and is what it builds with.  Porch's own go.sum seeds the wrapper's
    because the checksum database lookups of the kptdev function modules fail
    here.
    """
    outs = {n: cached_path(n).with_name(cached_path(n).name + ".partial") for n in PORCH_PACKAGES}
    _wrapper_build({"github.com/nephio-project/porch": PORCH_VERSION},
                   {PORCH_PACKAGES[n]: o for n, o in outs.items()},
                   replaces={"github.com/kptdev/kpt v1.0.0-beta.61.1":
                             "github.com/kptdev/kpt v1.0.0-beta.61"})
    for n, o in outs.items():
        os.replace(o, cached_path(n))


def _build_vault(out: Path) -> None:
    # No UI (built only with the `ui` build tag) and no CGO; vault's own go.sum seeds the
    # wrapper's (see _seed_go_sum). The sdk (v1.14.1's own commit, see VAULT_SDK_VERSION) is
    # required directly (not a replace), so its own requirements join the module graph.
    # x509negativeserial=1: built with today's Go, every vault command panicked at start-up
    # ("failed to parse CA certificate." in github.com/snowflakedb/gosnowflake@v1.6.18 ocsp.go
    # init: one of the CA certificates it embeds has a negative serial number, which
    # crypto/x509 refuses since Go 1.23 unless this GODEBUG setting allows it). It is the
    # binary's default, set in the wrapper's go.mod; nothing else about parsing changes.
    _wrapper_build({"github.com/hashicorp/vault": VAULT_VERSION, "github.com/hashicorp/vault/sdk": VAULT_SDK_VERSION},
                   {"github.com/hashicorp/vault": out}, godebug={"x509negativeserial": "1"})


def _build_porch_wrapper_server(out: Path) -> None:
    # static (CGO off, as porch's Dockerfile-wrapperserver builds it): it runs inside the
    # function's image, not on this machine's libraries
    _wrapper_build({"github.com/nephio-project/porch": PORCH_VERSION},
                   {"github.com/nephio-project/porch/func/wrapper-server": out},
                   replaces={"github.com/kptdev/kpt v1.0.0-beta.61.1":
                             "github.com/kptdev/kpt v1.0.0-beta.61"})


def porch_source() -> Path:
    """porch's module directory (its CRDs), from the module cache the build filled."""
    with tempfile.TemporaryDirectory(prefix="spiffe-kpt-build-") as tmp:
        _wrapper_module(tmp, {}, {})
        return _module_dir(tmp, "github.com/nephio-project/porch", PORCH_VERSION)


BUILDERS = {
    "spire-server": _build_spire,
    "spire-agent": _build_spire,
    "oidc-discovery-provider": _build_oidc_discovery_provider,
    "spire-controller-manager": _build_scm,
    "etcd": _build_etcd,
    "kube-apiserver": _build_kube_apiserver,
    "kube-score": _build_kube_score,
    **{name: _build_porch for name in PORCH_PACKAGES},
    PORCH_WRAPPER_SERVER: _build_porch_wrapper_server,
    "vault": _build_vault,
}

# ---------------------------------------------------------------------------
# The node tier (tests/real/node*.py): the rest of a single-node cluster, from
# the same k8s.io/kubernetes release and wrapper as kube-apiserver (the Go
# build cache of that build makes these much cheaper).  containerd and runc
# come from Debian's packages (.ci/run).
# ---------------------------------------------------------------------------

NODE_COMMANDS = ("kube-controller-manager", "kube-scheduler", "kubelet")
for _cmd in NODE_COMMANDS:
    VERSIONS[_cmd] = KUBERNETES_VERSION
    BUILDERS[_cmd] = (lambda c: lambda out: _build_kubernetes_cmd(c, out))(_cmd)


def _local_source_version(name: str) -> str:
    """Programs of this repository (tests/real/gosrc/<name>): versioned by content."""
    import hashlib
    h = hashlib.sha256()
    for f in sorted((Path(__file__).parent / "gosrc" / name).rglob("*")):
        if f.is_file():
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return "local-" + h.hexdigest()[:12]


def _build_local(name: str, out: Path) -> None:
    # static (CGO off): the image holds this one file and nothing else
    src = Path(__file__).parent / "gosrc" / name
    with tempfile.TemporaryDirectory(prefix="spiffe-kpt-build-") as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        if not Path(tmp, "go.mod").exists():
            _wrapper_module(tmp, {}, {})
        _run([_go(), "build", f"-ldflags={LDFLAGS}", "-o", str(out), "."], cwd=tmp, CGO_ENABLED="0")


# pause: the pod sandbox (no registry serves registry.k8s.io/pause here)
VERSIONS["pause"] = _local_source_version("pause")
BUILDERS["pause"] = lambda out: _build_local("pause", out)
# chown: the socket-dir-owner init container's image (the package names busybox,
# which no registry here serves); stdlib only
VERSIONS["chown"] = _local_source_version("chown")
BUILDERS["chown"] = lambda out: _build_local("chown", out)
# svid-workload: the workload image (go-spiffe, pinned by its go.mod/go.sum)
VERSIONS["svid-workload"] = _local_source_version("svid-workload")
BUILDERS["svid-workload"] = lambda out: _build_local("svid-workload", out)
# csi-registrar: registers the SPIFFE CSI driver with the kubelet.  The proxy
# here serves no version of github.com/kubernetes-csi/node-driver-registrar
# (v2.13.0, v2.12.0, v1.3.0, +incompatible, @latest: all 403), so this is a
# small program of this repository on k8s.io/kubelet's pluginregistration/v1
# API, taking the same flags as the rendered package passes to that image.
VERSIONS["csi-registrar"] = _local_source_version("csi-registrar")
BUILDERS["csi-registrar"] = lambda out: _build_local("csi-registrar", out)

# The SPIFFE CSI driver.  The proxy serves v0.2.6 (the rendered package names
# image 0.2.7, whose module version the proxy refuses: 403), but the checksum
# database answers 404 for it, so sum.golang.org cannot vouch for it: its two
# checksums are pinned here instead (as the proxy served them on 2026-11-29)
# and the go command verifies the download against them (GONOSUMDB only skips
# the database lookup, not go.sum).
SPIFFE_CSI_VERSION = "v0.2.6"
SPIFFE_CSI_SUMS = (
    "github.com/spiffe/spiffe-csi v0.2.6 h1:8uHSGzE3l4BAZlPx2ge0XUlVFkyovFaSomJHcsGais4=\n"
    "github.com/spiffe/spiffe-csi v0.2.6/go.mod h1:E3Vx+wcIoJ5enb3J5SLOV0DRFdCT2kHITbEB4qJJHMs=\n"
)


def _build_spiffe_csi(out: Path) -> None:
    module = "github.com/spiffe/spiffe-csi"
    with tempfile.TemporaryDirectory(prefix="spiffe-kpt-build-") as tmp:
        _wrapper_module(tmp, {module: SPIFFE_CSI_VERSION}, {})
        Path(tmp, "go.sum").write_text(SPIFFE_CSI_SUMS)
        # the module's own go.sum (inside the zip just verified) for its dependencies
        upstream = _module_dir_nosumdb(tmp, module, SPIFFE_CSI_VERSION) / "go.sum"
        Path(tmp, "go.sum").write_text(SPIFFE_CSI_SUMS + upstream.read_text())
        _run([_go(), "build", f"-ldflags={LDFLAGS}", "-o", str(out), f"{module}/cmd/spiffe-csi-driver"],
             cwd=tmp, CGO_ENABLED="0", GONOSUMDB=module)


def _module_dir_nosumdb(tmp: str, module: str, version: str) -> Path:
    import json
    out = _run([_go(), "mod", "download", "-json", f"{module}@{version}"], cwd=tmp, GONOSUMDB=module)
    return Path(json.loads(out[out.index("{"):])["Dir"])


VERSIONS["spiffe-csi-driver"] = SPIFFE_CSI_VERSION
BUILDERS["spiffe-csi-driver"] = _build_spiffe_csi


@contextlib.contextmanager
def _lock():
    with open(cache_dir() / ".build.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


TIMES: dict[str, float] = {}


def ensure(name: str) -> Path:
    """Return the path of the pinned binary, building it first if needed."""
    if name not in VERSIONS:
        raise KeyError(f"unknown binary {name!r}; known: {sorted(VERSIONS)}")
    p = cached_path(name)
    if p.exists():
        return p
    _go()  # fail early and clearly without Go
    with _lock():
        if p.exists():
            return p
        t0 = time.monotonic()
        tmp_out = p.with_name(p.name + ".partial")
        BUILDERS[name](tmp_out)
        if tmp_out.exists():
            os.replace(tmp_out, p)
        TIMES[name] = time.monotonic() - t0
        print(f"built {p.name} in {TIMES[name]:.0f}s", file=sys.stderr, flush=True)
    if not p.exists():
        raise BuildFailed(f"build of {name} finished but {p} does not exist")
    return p


def ensure_all(names=None) -> dict[str, Path]:
    return {n: ensure(n) for n in (names or VERSIONS)}


def main(argv: list[str]) -> int:
    if "--print" in argv:
        for n in VERSIONS:
            p = cached_path(n)
            print(f"{n}\t{VERSIONS[n]}\t{p}\t{'cached' if p.exists() else 'missing'}")
        return 0
    names = [a for a in argv if not a.startswith("-")] or list(VERSIONS)
    t0 = time.monotonic()
    try:
        for n in names:
            t = time.monotonic()
            p = ensure(n)
            print(f"{n:26s} {VERSIONS[n]:9s} {time.monotonic() - t:7.1f}s  {p}", flush=True)
    except (GoMissing, BuildFailed) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"total {time.monotonic() - t0:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Fixtures for the `real` tier: real spire-server/agent, spire-controller-manager,
etcd and kube-apiserver, built from the Go module proxy by tests.real.binaries.

Nothing here skips: without Go (or when a build fails) the fixtures fail
with the reason, so a green run always means the real components ran.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from . import binaries
from .stack import LOOPBACK, Kube, Stack

REPO_ROOT = Path(__file__).resolve().parents[2]

UPSTREAM_CRD_FILES = (
    "spire.spiffe.io_clusterspiffeids.yaml",
    "spire.spiffe.io_clusterfederatedtrustdomains.yaml",
    "spire.spiffe.io_clusterstaticentries.yaml",
    "spire.spiffe.io_controllermanagerconfigs.yaml",
    "security.istio.io_crds.yaml",
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "real: runs real spire-server/agent, spire-controller-manager, etcd and "
        "kube-apiserver built from the Go module proxy (first run builds them)")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real)


def upstream_crds_dir() -> Path:
    d = Path(os.environ.get("SPIFFE_KPT_UPSTREAM_CRDS",
                            REPO_ROOT.parent / "shared" / "reference" / "upstream-crds"))
    missing = [f for f in UPSTREAM_CRD_FILES if not (d / f).exists()]
    if missing:
        pytest.fail(f"upstream CRDs not found in {d} (missing {missing}); "
                    "set SPIFFE_KPT_UPSTREAM_CRDS to the directory holding them", pytrace=False)
    return d


def _ensure_or_fail(names=None) -> dict[str, Path]:
    try:
        return binaries.ensure_all(names)
    except binaries.GoMissing as e:
        pytest.fail(str(e), pytrace=False)
    except binaries.BuildFailed as e:
        pytest.fail(f"building the real binaries failed:\n{e}", pytrace=False)


@pytest.fixture(scope="session")
def real_binaries() -> dict[str, Path]:
    """Build (first run) or find (cached) every pinned binary."""
    return _ensure_or_fail()


@pytest.fixture(scope="session")
def spire_binaries() -> dict[str, Path]:
    return _ensure_or_fail(["spire-server", "spire-agent", "spire-controller-manager"])


@pytest.fixture(scope="session")
def kube_binaries() -> dict[str, Path]:
    return _ensure_or_fail(["etcd", "kube-apiserver"])


@pytest.fixture(scope="session")
def oidc_binaries() -> dict[str, Path]:
    return _ensure_or_fail(["spire-server", "spire-agent", "oidc-discovery-provider", "etcd", "kube-apiserver"])


@pytest.fixture(scope="session")
def session_stack():
    with Stack() as st:
        yield st


@pytest.fixture
def real_stack(spire_binaries):
    """A Stack for one test; its processes are stopped when the test ends, pass or fail."""
    with Stack() as st:
        yield st


UPSTREAM_CRD_NAMES = (
    "clusterspiffeids.spire.spiffe.io", "clusterfederatedtrustdomains.spire.spiffe.io",
    "clusterstaticentries.spire.spiffe.io", "controllermanagerconfigs.spire.spiffe.io",
    "authorizationpolicies.security.istio.io", "peerauthentications.security.istio.io",
)


def install_upstream_crds(k: Kube) -> Kube:
    """Server-side apply the upstream spire.spiffe.io and Istio CRDs and wait until served."""
    d = upstream_crds_dir()
    for f in UPSTREAM_CRD_FILES:
        k.apply_file(d / f)
    k.wait_crds_established(list(UPSTREAM_CRD_NAMES))
    return k


@pytest.fixture(scope="session")
def kube(kube_binaries, session_stack) -> Kube:
    """etcd + kube-apiserver on loopback with the upstream spire.spiffe.io and Istio CRDs installed."""
    return install_upstream_crds(session_stack.kube())


@pytest.fixture
def oidc_issuer(oidc_binaries, kube, real_stack, tmp_path):
    """A JWT issuer for trust domain telco.acme.net, rendered and run for real (tests/real/oidc.py):
    spire-server, spire-agent (k8s_psat) and the OIDC discovery provider over TLS on 127.0.0.1.
    ``.url``, ``.ca_pem``/``.ca_path``, ``.jwks_url``, ``.jwt_svid(spiffe_id, audience)``,
    ``.mint_jwt(spiffe_id, audience, ttl)``. For another trust domain (a second issuer), call
    ``oidc.start_oidc_issuer(real_stack, kube, tmp_path, trust_domain=..., name=...)``."""
    from .oidc import start_oidc_issuer
    return start_oidc_issuer(real_stack, kube, tmp_path)


# ---------------------------------------------------------------------------
# node tier: a real single-node cluster (tests/real/node.py)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def node_binaries() -> dict[str, Path]:
    return _ensure_or_fail(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                            "kubelet", "pause"])


@pytest.fixture(scope="session")
def node_cluster(node_binaries):
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd and a
    kubelet (node ``node-1``), in a stack of their own; torn down at the end of the session
    (pods killed, shims stopped, mounts and pod cgroups removed, or the teardown fails).
    Holds the machine's node lock (/tmp/spiffe-kpt-node.lock) for its whole life."""
    from .node import Node, apiserver_args, node_lock
    # one node tier per machine: a second run waits here (node.node_lock) for the first
    with node_lock(), Stack() as st:
        k = st.kube(extra_args=apiserver_args())
        yield Node(st, k)


@pytest.fixture
def closed_ports():
    """Two ports on 127.0.0.1 bound by this test and never listened on: a connection is refused,
    and no other process can take them while the test runs (bundle endpoints that must never be
    reached: test_real_gitops_federation.py, test_real_migration.py)."""
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((LOOPBACK, 0))
        socks.append(s)
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()

"""spiffe-kpt-migrate over a copy of the 5G core's three packages, moved through every phase with
the real kpt rendering each package in between (what a user does), and its in-place edits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spiffe_kpt.api.migration import Mention
from spiffe_kpt.cli.migrate import rename_text, set_phase
from spiffe_kpt.krm.results import ResourceRef

from ..pkgtools import EXAMPLES, REPO, WI_API, copy_package, kpt_render
from .helpers import A, B

pytestmark = pytest.mark.kpt

NFS = ("upf", "smf", "amf")


def migrate(fleet: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env_path = str(REPO / "functions")
    return subprocess.run([sys.executable, "-m", "spiffe_kpt.cli.migrate", str(fleet), *args], capture_output=True,
                          text=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, timeout=120)


def snapshot(fleet: Path) -> dict[str, bytes]:
    return {str(p.relative_to(fleet)): p.read_bytes() for p in sorted(fleet.rglob("*")) if p.is_file()}


def rendered(fleet: Path, *names: str) -> None:
    for name in names:
        r = kpt_render(fleet / name)
        assert r.exit_code == 0, (name, r.stderr[-3000:])


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    root = tmp_path / "deployments"
    root.mkdir()
    for nf in NFS:
        copy_package(EXAMPLES / "5g-core" / nf, root / nf)
    return root


def test_report_lists_every_place_a_is_named(fleet: Path) -> None:
    out = migrate(fleet)
    assert out.returncode == 0, out.stderr
    assert "amf: phase none (core.telco-operator.net), next: prepare" in out.stdout
    assert f"names {A} in 3 place(s)" in out.stdout  # amf: SBI in, SBI out to the SMF, the NRF
    assert f"names {A} in 5 place(s)" in out.stdout  # smf
    assert f"names {A} in 2 place(s)" in out.stdout  # upf
    assert (f"WorkloadIdentity smf-regional spec.ingress[1].from[0].spiffeID = spiffe://{A}/cluster/regional/ns/"
            "free5gc-cp/sa/amf-regional") in out.stdout
    assert out.stdout.rstrip().endswith("3 package(s), 0 error(s), 0 warning(s)")


def test_the_fleet_walks_through_the_phases(fleet: Path) -> None:
    before = snapshot(fleet)
    started = migrate(fleet, "--apply", *NFS, "--to", B)
    assert started.returncode == 0, started.stdout + started.stderr
    after = snapshot(fleet)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {f"{nf}/cluster-context.yaml" for nf in NFS}
    for nf in NFS:
        old, new = before[f"{nf}/cluster-context.yaml"].decode(), after[f"{nf}/cluster-context.yaml"].decode()
        line = f"  trustDomain: {A}\n"
        assert new == old.replace(line, line + f"  migration:\n    to: {B}\n    phase: prepare\n")
    rendered(fleet, *NFS)

    assert migrate(fleet, "--apply", "amf").returncode == 0
    rendered(fleet, "amf")
    report = migrate(fleet)
    assert report.returncode == 0
    assert ("WARNING: amf is in dual but its peer package smf is still in prepare: smf accepts only "
            f"{A} until it reaches dual") in report.stdout

    # The AMF may not cut over while the SMF (prepare) accepts only A's ID for it: refused, nothing written.
    before = snapshot(fleet)
    refused = migrate(fleet, "--apply", "amf")
    assert refused.returncode == 1
    assert "not applied, nothing written" in refused.stdout
    assert (f"smf (prepare): WorkloadIdentity smf-regional spec.ingress[1].from[0].spiffeID = spiffe://{A}/cluster/"
            f"regional/ns/free5gc-cp/sa/amf-regional does not accept {B} for amf's amf-regional") in refused.stdout
    assert snapshot(fleet) == before

    assert migrate(fleet, "--apply", "smf", "upf").returncode == 0
    rendered(fleet, "smf", "upf")
    assert migrate(fleet, "--apply", "amf").returncode == 0
    rendered(fleet, "amf")
    # The AMF cannot complete while the SMF it calls still presents A (its rules would accept only B).
    refused = migrate(fleet, "--apply", "amf")
    assert refused.returncode == 1
    assert f"does not accept {A} for smf's smf-regional, which presents {A} in phase dual" in refused.stdout

    assert migrate(fleet, "--apply", "smf", "upf").returncode == 0
    rendered(fleet, "smf", "upf")
    done = migrate(fleet, "--apply", *NFS)
    assert done.returncode == 0, done.stdout
    assert f"amf: phase cutover -> complete, 3 name(s) of {A} written in {B}" in done.stdout
    # The NRF is in no package of the directory: accepted only as B from now on, said, not checked.
    assert (f"WARNING: amf (complete): WorkloadIdentity amf-regional spec.egress[1].to[0].spiffeID = spiffe://{A}/"
            f"cluster/regional/ns/free5gc-cp/sa/nrf names no workload of the directory") in done.stdout
    rendered(fleet, *NFS)
    report = migrate(fleet)
    assert report.returncode == 0
    assert f"names {A}" not in report.stdout
    for nf in NFS:
        regs = sorted(p.name for p in (fleet / nf / "registration").glob("clusterspiffeid-*"))
        assert regs == [f"clusterspiffeid-{'free5gc-upf' if nf == 'upf' else 'free5gc-cp'}.{nf}-"
                        f"{'edge01' if nf == 'upf' else 'regional'}.telco-operator.yaml"]
        text = "".join(p.read_text() for p in (fleet / nf).rglob("*.yaml") if ".expected" not in p.parts)
        assert text.count(A) == 1 + text.count(f"{A} -> {B}"), nf  # spec.trustDomain and the phase record


CONTEXT = """\
# a comment that stays
apiVersion: v1
kind: ConfigMap
metadata:
  name: unrelated
data:
  phase: prepare
---
apiVersion: workloadidentity.nephio.org/v1alpha1
kind: IdentityContext
metadata:
  name: identity-context
spec:
  trustDomain: core.telco-operator.net   # A
  migration:
    # where we are going
    to: telco.operator
    phase: "dual"   # moved by the tool
  policy:
    backends: [istio]
"""


def test_set_phase_edits_the_one_field() -> None:
    out = set_phase(CONTEXT, "identity-context", "cutover")
    assert out == CONTEXT.replace('phase: "dual"', "phase: cutover")


def test_rename_keeps_the_origin_and_everything_else() -> None:
    text = CONTEXT + """\
---
apiVersion: workloadidentity.nephio.org/v1alpha1
kind: WorkloadIdentity
metadata:
  name: x
spec:
  ingress:
  - name: sbi
    from:
    - spiffeID: spiffe://core.telco-operator.net/ns/a/sa/b   # the caller
    - trustDomain: core.telco-operator.net
    - spiffeIDPrefix: spiffe://core.telco-operator.net.example/ns/
"""
    ref = ResourceRef(WI_API, "WorkloadIdentity", "x", "")
    mentions = [Mention(ref, "spec.ingress[0].from[0].spiffeID", f"spiffe://{A}/ns/a/sa/b"),
                Mention(ref, "spec.ingress[0].from[1].trustDomain", A)]
    out = rename_text(text, mentions, A, B, "identity-context")
    assert out == text.replace(f"spiffe://{A}/ns/a/sa/b", f"spiffe://{B}/ns/a/sa/b").replace(
        f"- trustDomain: {A}", f"- trustDomain: {B}")
    assert f"  trustDomain: {A}   # A" in out


def test_unknown_package_and_missing_target_are_clear(fleet: Path) -> None:
    before = snapshot(fleet)
    r = migrate(fleet, "--apply", "nrf")
    assert r.returncode == 1 and "--apply nrf: no package of the directory is called so" in r.stderr
    r = migrate(fleet, "--apply", "amf")
    assert r.returncode == 1 and "give --to <new trust domain>" in r.stderr
    assert "Traceback" not in r.stderr
    assert snapshot(fleet) == before

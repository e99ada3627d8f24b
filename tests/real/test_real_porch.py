"""Porch runs the functions end to end, as a Nephio user drives it (tests.real.porch).

* A draft of ``oran-focom-ims`` renders in porch to the same files as ``kpt fn render`` with
  the console scripts, and goes Draft -> Proposed -> Published with a tag in git.
* A PackageVariantSet fans ``5g-core/upf`` out to a fleet of workload clusters with config
  injection; readiness gates hold until the IdentityContext is injected; every variant gets its
  own cluster's SPIFFE ID and ClusterSPIFFEID; a second reconcile changes nothing; an upstream
  change reaches every variant through porch's upgrade.
* An invalid trust domain injected into a variant fails its render, and the porch user sees
  every error result (resource, field, fix) in what porch returns.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from spiffe_kpt import porch_exec

from ..pkgtools import EXAMPLES, copy_package, kpt_render
from .porch import Porch
from .stack import Stack, wait_until

FLEET_SIZE = 10
FLEET_EXAMPLE = EXAMPLES / "5g-core" / "fleet"
UPF = EXAMPLES / "5g-core" / "upf"
# Files porch adds to every package it creates (init task / clone), not the functions' output.
PORCH_OWN_FILES = {"README.md", "package-context.yaml"}
CONDITION = "workloadidentity.nephio.org/v1alpha1.WorkloadIdentity.upf-edge01"


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

def upf_blueprint(dst: Path, extra_port: bool = False) -> Path:
    """5g-core/upf as a blueprint repository holds it: the cluster context is the placeholder
    the fleet example's cluster-context.yaml gives (porch injects each cluster's)."""
    pkg = copy_package(UPF, dst)
    shutil.copy(FLEET_EXAMPLE / "blueprint-cluster-context.yaml", pkg / "cluster-context.yaml")
    if extra_port:
        # The upstream change: the N4 ingress rule also admits GTP-U (2152/UDP).
        text = (pkg / "deployment.yaml").read_text()
        old = "    ports:\n    - port: pfcp\n    network: upf-edge01-n4\n"
        assert old in text
        (pkg / "deployment.yaml").write_text(text.replace(old, old.replace(
            "- port: pfcp\n", "- port: pfcp\n    - port: gtpu\n"), 1))
    return pkg


@pytest.fixture(scope="module")
def porch(tmp_path_factory) -> Porch:
    fn_dir = tmp_path_factory.mktemp("porch-functions")
    porch_exec.write(fn_dir)
    with Stack() as st:
        p = Porch(st, fn_dir)
        src = tmp_path_factory.mktemp("blueprints-src")
        bp = p.bare_repo("blueprints", {
            "oran-focom-ims": EXAMPLES / "oran-focom-ims",
            "5g-core/upf": upf_blueprint(src / "upf"),
        }, tags=["oran-focom-ims/v1", "5g-core/upf/v1"])
        p.register_repository("blueprints", bp)
        p.register_repository("deployments", p.bare_repo("deployments"), deployment=True)
        yield p


# ---------------------------------------------------------------------------
# helpers: the porch API as a user drives it with kubectl
# ---------------------------------------------------------------------------

def package_revisions(p: Porch, repo: str | None = None, package: str | None = None) -> list[dict[str, Any]]:
    items = p.get("packagerevisions")["items"]
    return [i for i in items if (repo is None or i["spec"]["repository"] == repo)
            and (package is None or i["spec"]["packageName"] == package)]


def resources(p: Porch, name: str) -> dict[str, Any]:
    return p.get("packagerevisionresources", name)


def new_draft(p: Porch, repo: str, package: str, workspace: str) -> str:
    pr = p.create({"apiVersion": "porch.kpt.dev/v1alpha1", "kind": "PackageRevision",
                   "metadata": {"namespace": "default"},
                   "spec": {"packageName": package, "repository": repo, "workspaceName": workspace,
                            "lifecycle": "Draft", "tasks": [{"type": "init", "init": {"description": package}}]}})
    return pr["metadata"]["name"]


def push_files(p: Porch, name: str, pkg: Path) -> dict[str, Any]:
    """Replace the draft's resources with the package's files; porch renders; returns the PRR."""
    prr = resources(p, name)
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and not any(part.startswith(".results") for part in f.parts):
            prr["spec"]["resources"][f.relative_to(pkg).as_posix()] = f.read_text()
    out = p.replace(prr, check=False)
    if out.returncode != 0:
        # porch refuses an update whose render fails: the error is in the API response
        return {"error": out.stderr}
    return json.loads(out.stdout)


def publish(p: Porch, name: str) -> None:
    pr = p.get("packagerevisions", name)
    pr["spec"]["lifecycle"] = "Proposed"
    p.replace(pr)
    pr = p.get("packagerevisions", name)
    pr["spec"]["lifecycle"] = "Published"
    p.kubectl("replace", "--raw", f"/apis/porch.kpt.dev/v1alpha1/namespaces/default/packagerevisions/{name}/approval",
              "-f", "-", input=json.dumps(pr))
    wait_until(lambda: p.get("packagerevisions", name)["spec"]["lifecycle"] == "Published", 60,
               f"{name} Published")


def render_status(prr: dict[str, Any]) -> dict[str, Any]:
    return (prr.get("status") or {}).get("renderStatus") or {}


def kptfile_conditions(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    kf = yaml.safe_load(files["Kptfile"])
    return {c["type"]: c for c in (kf.get("status") or {}).get("conditions") or []}


def docs(files: dict[str, str], kind: str) -> list[dict[str, Any]]:
    out = []
    for path, text in files.items():
        if path.endswith(".yaml") or path == "Kptfile":
            out += [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == kind]
    return out


def exec_render(pkg: Path) -> dict[str, str]:
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr
    return {f.relative_to(pkg).as_posix(): f.read_text() for f in sorted(pkg.rglob("*"))
            if f.is_file() and not f.name.startswith(".")}


# ---------------------------------------------------------------------------
# one package
# ---------------------------------------------------------------------------

def test_draft_renders_like_exec_and_is_published_with_a_tag(porch: Porch, tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "oran-focom-ims")
    name = new_draft(porch, "deployments", "oran-focom-ims", "v1")
    prr = push_files(porch, name, pkg)
    assert "error" not in prr, prr
    status = render_status(prr)
    assert status["result"]["exitCode"] == 0, status
    got = {k: v for k, v in prr["spec"]["resources"].items() if k not in PORCH_OWN_FILES}
    want = exec_render(copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "exec" / "oran-focom-ims"))
    want.pop(".krmignore", None)
    got.pop(".krmignore", None)
    # The example's own README.md is documentation, not the functions' output; porch's init task
    # writes a README.md of its own under that name, so neither side's is compared.
    for own in PORCH_OWN_FILES:
        want.pop(own, None)
    assert sorted(got) == sorted(want)
    for path in want:
        assert got[path] == want[path], path

    publish(porch, name)
    assert "oran-focom-ims/v1" in porch.tags("deployments")
    for path in want:  # what git holds at the tag is the rendered package
        assert porch.show("deployments", "oran-focom-ims/v1", f"oran-focom-ims/{path}") == want[path], path


# ---------------------------------------------------------------------------
# errors through porch
# ---------------------------------------------------------------------------

def test_invalid_trust_domain_shows_every_error_result_to_the_porch_user(porch: Porch, tmp_path: Path) -> None:
    pkg = copy_package(EXAMPLES / "errors" / "invalid-trust-domain", tmp_path / "bad")
    expected = [r for r in kpt_render(copy_package(pkg, tmp_path / "exec" / "bad")).results
                if r["severity"] == "error"]
    assert expected
    name = new_draft(porch, "deployments", "bad-trust-domain", "v1")
    out = push_files(porch, name, pkg)
    assert "error" in out, "porch accepted a package whose render fails"
    message = out["error"]
    assert "see the results above" not in message
    for r in expected:
        ref = r["resourceRef"]
        line = f"error: {ref['kind']} {ref['name']} {r['field']['path']}: "
        assert line in message, (line, message)
        # the fix the result proposes, verbatim
        assert "use 'smo.telco-operator.net'" in message


# ---------------------------------------------------------------------------
# a fleet
# ---------------------------------------------------------------------------

def clusters(n: int) -> list[str]:
    return [f"edge-{i:03d}" for i in range(1, n + 1)]


def cluster_objects(names: list[str], kind: str) -> list[dict[str, Any]]:
    """The management cluster's objects for each workload cluster, from the fleet example."""
    examples = {d["kind"]: d for d in yaml.safe_load_all((FLEET_EXAMPLE / "clusters.yaml").read_text()) if d}
    out = []
    for c in names:
        obj = json.loads(json.dumps(examples[kind]).replace("edge-001", c))
        out.append(obj)
    return out


def fleet_variants(p: Porch) -> list[dict[str, Any]]:
    return [pv for pv in p.get("packagevariants")["items"]
            if any(o.get("kind") == "PackageVariantSet" for o in pv["metadata"].get("ownerReferences", []))]


def drafts_by_package(p: Porch) -> dict[str, dict[str, Any]]:
    return {pr["spec"]["packageName"]: pr for pr in package_revisions(p, "deployments")
            if pr["spec"]["lifecycle"] == "Draft" and pr["spec"]["packageName"].startswith("upf-")}


def retrigger(p: Porch, value: str) -> None:
    # The PackageVariant controller does not watch the injected kinds; Nephio re-queues the
    # variants when the cluster context changes, here an annotation does.
    p.kubectl("annotate", "packagevariants", "--all", "-n", "default", "--overwrite", f"spiffe-kpt.test/retrigger={value}")


def wait_variant_files(p: Porch, names: list[str], ready: bool, timeout: float = 300) -> dict[str, dict[str, str]]:
    """Wait until each cluster's draft is rendered with its condition ``ready``; return files."""
    def check():
        drafts = drafts_by_package(p)
        if not all(f"upf-{c}" in drafts for c in names):
            return None
        out = {}
        for c in names:
            prr = resources(p, drafts[f"upf-{c}"]["metadata"]["name"])
            files = prr["spec"]["resources"]
            cond = kptfile_conditions(files).get(CONDITION)
            if cond is None or (cond["status"] == "True") != ready:
                return None
            out[c] = {"files": files, "status": render_status(prr)}
        return out
    return wait_until(check, timeout, f"{len(names)} variants rendered with ready={ready}", interval=2,
                      proc=p.controllers)


def test_fleet_fan_out_injection_idempotency_and_upgrade(porch: Porch, tmp_path: Path) -> None:
    names = clusters(FLEET_SIZE)
    porch.apply_objects(cluster_objects(names, "WorkloadCluster"))
    pvs = yaml.safe_load((FLEET_EXAMPLE / "packagevariantset.yaml").read_text())
    porch.apply_objects([pvs])

    # Before injection of the IdentityContext: every variant exists as a draft whose identities
    # wait (Kptfile condition False, readiness gate set), rendered without any error.
    waiting = wait_variant_files(porch, names, ready=False)
    for v in waiting.values():
        assert v["status"]["result"]["exitCode"] == 0, v["status"]
        assert not [r for r in v["status"]["result"].get("items", [])
                    for rr in r.get("results") or [] if rr.get("severity") == "error"]
        kf = yaml.safe_load(v["files"]["Kptfile"])
        gates = {g["conditionType"] for g in kf["info"]["readinessGates"]}
        assert CONDITION in gates
        assert kptfile_conditions(v["files"])[CONDITION]["reason"] == "ContextMissing"
        assert not docs(v["files"], "ClusterSPIFFEID")

    # The cluster contexts arrive: every variant resolves to its own cluster's identity.
    porch.apply_objects(cluster_objects(names, "IdentityContext"))
    retrigger(porch, "1")
    resolved = wait_variant_files(porch, names, ready=True)
    ids = {}
    for c, v in resolved.items():
        assert v["status"]["result"]["exitCode"] == 0, v["status"]
        (wi,) = [d for d in docs(v["files"], "WorkloadIdentity")]
        ids[c] = wi["status"]["spiffeID"]
        assert ids[c] == f"spiffe://core.telco-operator.net/cluster/{c}/ns/free5gc-upf/sa/upf-edge01"
        (cs,) = docs(v["files"], "ClusterSPIFFEID")
        assert cs["spec"]["className"] == f"spire-{c}"
        assert cs["metadata"]["labels"]["spire.spiffe.io/class-name"] == f"spire-{c}"
    assert len(set(ids.values())) == FLEET_SIZE

    # One variant's files are what the exec render gives for them: `kpt fn render` with the
    # console scripts over porch's output changes nothing (porch's clone adds kpt-merge
    # comments and upstream-identifier annotations, so the blueprint itself is not the input).
    c0 = names[0]
    local = tmp_path / "variant"
    for path, text in resolved[c0]["files"].items():
        (local / path).parent.mkdir(parents=True, exist_ok=True)
        (local / path).write_text(text)
    ctx = {d["kind"]: d for d in yaml.safe_load_all(resolved[c0]["files"]["cluster-context.yaml"])}
    assert ctx["IdentityContext"]["metadata"]["annotations"]["kpt.dev/injected-resource"] == c0
    want = exec_render(local)
    assert sorted(want) == sorted(p for p in resolved[c0]["files"] if not p.startswith("."))
    for path, text in want.items():
        assert resolved[c0]["files"][path] == text, path

    # Publish the fleet (a Nephio approval policy would; here the test approves).
    for c in names:
        publish(porch, drafts_by_package(porch)[f"upf-{c}"]["metadata"]["name"])
    tags = set(porch.tags("deployments"))
    assert {f"upf-{c}/v1" for c in names} <= tags

    # A second reconcile changes nothing: no new revision, no new commit.
    before = {pr["metadata"]["name"]: pr["spec"]["lifecycle"] for pr in package_revisions(porch, "deployments")}
    head = porch.show("deployments", "main", f"upf-{c0}/Kptfile")
    retrigger(porch, "2")
    time.sleep(15)
    after = {pr["metadata"]["name"]: pr["spec"]["lifecycle"] for pr in package_revisions(porch, "deployments")}
    assert after == before
    assert porch.show("deployments", "main", f"upf-{c0}/Kptfile") == head

    # The blueprint gains a port in an ingress rule; publishing upstream revision 2 and pointing
    # the set at it upgrades every variant through porch's upgrade path.
    porch.push_tree("blueprints", {"5g-core/upf": upf_blueprint(tmp_path / "upf-v2", extra_port=True)},
                    tags=["5g-core/upf/v2"])
    wait_until(lambda: any(pr["spec"].get("workspaceName") == "v2" and pr["spec"]["lifecycle"] == "Published"
                           for pr in package_revisions(porch, "blueprints", "5g-core/upf")),
               120, "porch to see 5g-core/upf v2", interval=2)
    pvs = porch.get("packagevariantsets", pvs["metadata"]["name"])
    pvs["spec"]["upstream"]["workspaceName"] = "v2"
    porch.replace(pvs)
    upgraded = wait_variant_files(porch, names, ready=True)
    for c, v in upgraded.items():
        assert v["status"]["result"]["exitCode"] == 0, v["status"]
        mnps = docs(v["files"], "MultiNetworkPolicy")
        ports = {p.get("port") for m in mnps for rule in m["spec"].get("ingress") or []
                 for p in rule.get("ports") or []}
        assert 2152 in ports, (c, ports)
        (wi,) = docs(v["files"], "WorkloadIdentity")
        assert wi["status"]["spiffeID"] == ids[c]


def test_invalid_trust_domain_injected_into_a_variant_fails_with_every_error(porch: Porch) -> None:
    bad = "edge-bad"
    wc, = cluster_objects([bad], "WorkloadCluster")
    ic, = cluster_objects([bad], "IdentityContext")
    ic["spec"]["trustDomain"] = "spiffe://Core.telco-operator.net"
    wc["metadata"]["labels"] = {"fleet.spiffe-kpt.test/role": "broken"}
    porch.apply_objects([wc, ic])
    porch.apply_objects([{
        "apiVersion": "config.porch.kpt.dev/v1alpha1", "kind": "PackageVariant",
        "metadata": {"name": "upf-edge-bad", "namespace": "default"},
        "spec": {"upstream": {"repo": "blueprints", "package": "5g-core/upf", "workspaceName": "v1"},
                 "downstream": {"repo": "deployments", "package": "upf-edge-bad"},
                 "injectors": [{"group": "infra.nephio.org", "kind": "WorkloadCluster", "name": bad},
                               {"group": "workloadidentity.nephio.org", "kind": "IdentityContext", "name": bad}]}}])

    def failed():
        pv = porch.get("packagevariants", "upf-edge-bad")
        for c in pv.get("status", {}).get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "False" and "trustDomain" in c.get("message", ""):
                return c["message"]
        return None
    message = wait_until(failed, 180, "the variant to fail on the trust domain", interval=2, proc=porch.controllers)
    assert "see the results above" not in message
    assert re.search(r"error: IdentityContext identity-context spec\.trustDomain: .*must be the bare name", message), message
    assert "use 'core.telco-operator.net'" in message

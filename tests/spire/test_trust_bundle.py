"""GitOps federation in the SPIRE server package, rendered with the real kpt: a peer's bundle
committed as a TrustBundle file (written by spiffe-kpt-trustbundle) becomes the rendered
ClusterFederatedTrustDomain's trustDomainBundle; a bundle of the wrong trust domain, an expired
or unparseable one fails the render with the package untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from spiffe_kpt.cli.trustbundle import main as trustbundle_main

from ..bundles import NOW, bundle_doc, bundle_text, ca_cert
from ..pkgtools import REPO, WI_API, kpt_render
from .examples import SPECS, copy_package, files, set_values

pytestmark = pytest.mark.kpt

PEER = "partner.operator.net"


def gitops_peer(**extra) -> dict:
    """ROOT_SPEC's partner, federated from a committed bundle: no endpoint ranges, so no egress to it."""
    return {"bundleEndpoint": {"profile": "https_spiffe", "port": 8443},
            "peers": [{"trustDomain": PEER, "bundleEndpointURL": "https://spire-bundle.partner-operator.net:8443",
                       "profile": "https_spiffe", "endpointSPIFFEID": f"spiffe://{PEER}/spire/server",
                       "trustBundle": "partner", **extra}]}


def commit_bundle(pkg: Path, text: str, td: str = PEER) -> Path:
    src = pkg.parent / "partner.json"
    src.write_text(text)
    out = pkg / "bundles" / "partner.yaml"
    assert trustbundle_main(["--trust-domain", td, "--name", "partner", str(src), "-o", str(out)]) == 0
    return out


def test_a_committed_bundle_renders_into_the_cluster_federated_trust_domain(tmp_path: Path) -> None:
    pkg = copy_package("spire-server", tmp_path)
    set_values(pkg, {**SPECS["spire-server"], "federation": gitops_peer()})
    doc = bundle_doc(PEER)
    tb_file = commit_bundle(pkg, json.dumps(doc))
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr
    cftd = yaml.safe_load((pkg / "federation" / f"{PEER}.yaml").read_text())
    assert json.loads(cftd["spec"]["trustDomainBundle"]) == doc
    assert cftd["spec"]["trustDomain"] == PEER
    # the TrustBundle file is kept as committed (kpt passes it through, local config)
    tb = yaml.safe_load(tb_file.read_text())
    assert tb["kind"] == "TrustBundle" and tb["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    assert json.loads(tb["spec"]["bundle"]) == doc
    # no peer ranges: the server's NetworkPolicy has no egress rule to the peer, and none without 'to'
    policies = [d for d in yaml.safe_load_all((pkg / "network-policies.yaml").read_text())
                if d and d["metadata"]["name"].startswith("spire-server")]
    egress = [rule for p in policies for rule in p["spec"].get("egress", [])]
    assert egress and all(rule.get("to") for rule in egress), egress
    assert not [rule for rule in egress if any(t.get("ipBlock", {}).get("cidr") == "203.0.113.0/28"
                                               for t in rule["to"])]
    # rendering again changes nothing
    before = files(pkg)
    assert kpt_render(pkg).exit_code == 0
    assert files(pkg) == before


@pytest.mark.parametrize("case", ["wrong-trust-domain", "authority-of-another-domain", "expired", "not-json",
                                  "missing"])
def test_a_bad_committed_bundle_fails_the_render_untouched(tmp_path: Path, case: str) -> None:
    pkg = copy_package("spire-server", tmp_path)
    set_values(pkg, {**SPECS["spire-server"], "federation": gitops_peer()})
    (pkg / "bundles").mkdir()
    good = bundle_text(PEER)
    tb = {"apiVersion": WI_API, "kind": "TrustBundle",
          "metadata": {"name": "partner", "annotations": {"config.kubernetes.io/local-config": "true"}},
          "spec": {"trustDomain": PEER, "bundle": good}}
    ref, field, fragment = ("SpireDeployment", "spire-server"), "spec.federation.peers[0].trustBundle", ""
    if case == "wrong-trust-domain":
        tb["spec"] = {"trustDomain": "telco.example", "bundle": bundle_text("telco.example")}
        fragment = "holds the bundle of trust domain 'telco.example', not of the peer 'partner.operator.net'"
    elif case == "authority-of-another-domain":
        tb["spec"]["bundle"] = bundle_text("telco.example")
        ref, field, fragment = ("TrustBundle", "partner"), "spec.bundle", "belongs to trust domain 'telco.example'"
    elif case == "expired":
        old = ca_cert(PEER, not_before=NOW - timedelta(days=3), not_after=NOW - timedelta(days=1))[0]
        tb["spec"]["bundle"] = bundle_text(PEER, certs=[old])
        ref, field, fragment = ("TrustBundle", "partner"), "spec.bundle", "expired at"
    elif case == "not-json":
        tb["spec"]["bundle"] = good[:-5]
        ref, field, fragment = ("TrustBundle", "partner"), "spec.bundle", "not JSON"
    elif case == "missing":
        tb["metadata"]["name"] = "partner-old"
        fragment = "'partner', which is not in the package (the package has: partner-old)"
    (pkg / "bundles" / "partner.yaml").write_text(yaml.safe_dump(tb, sort_keys=False))
    before = files(pkg)
    r = kpt_render(pkg)
    assert r.exit_code == 1, r.stderr
    errors = [x for x in r.results if x.get("severity") == "error"]
    match = [x for x in errors if x.get("field", {}).get("path") == field
             and x["resourceRef"]["kind"] == ref[0] and x["resourceRef"]["name"] == ref[1]]
    assert match, errors
    assert fragment in match[0]["message"], match[0]["message"]
    assert files(pkg) == before


def test_the_cli_refuses_a_bad_bundle_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "b.json"
    src.write_text(bundle_text("telco.example"))
    out = tmp_path / "tb.yaml"
    p = subprocess.run([sys.executable, "-m", "spiffe_kpt.cli.trustbundle", "--trust-domain", PEER, str(src),
                        "-o", str(out)], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 1 and not out.exists()
    assert "belongs to trust domain 'telco.example'" in p.stderr and "Traceback" not in p.stderr
    soon = ca_cert(PEER, not_after=NOW + timedelta(days=2))[0]
    src.write_text(bundle_text(PEER, certs=[soon]))
    p = subprocess.run([sys.executable, "-m", "spiffe_kpt.cli.trustbundle", "--trust-domain", PEER, str(src),
                        "-o", str(out)], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "warning" in p.stderr and "before the next expected refresh" in p.stderr
    assert yaml.safe_load(out.read_text())["metadata"]["name"] == PEER

"""GitOps federation, run for real: two rendered SPIRE servers that never reach each other's
bundle endpoint federate from the bundles committed to their packages alone.

The workflow is the one the README gives an operator: render and run both servers (no
federation yet), take each server's `spire-server bundle show -format spiffe`, wrap it with
spiffe-kpt-trustbundle into the other package (bundles/<peer>.yaml), name it in the
SpireDeployment's peer (`trustBundle`), render again and apply the rendered
ClusterFederatedTrustDomain. Each peer's bundleEndpointURL is a port on 127.0.0.1 that this test
holds bound and never listens on, so nothing can answer there: connections are refused before,
during and after, and SPIRE's attempts to refresh from it fail.

Proved: each server's `bundle list` holds the other's bundle exactly (X.509 authorities and JWT
keys) once its controller manager applied the rendered resource; an X.509-SVID minted by each
server verifies (openssl) against the bundle the other stored for it, and not against the
other's own; a workload registered on one side with federatesWith gets the partner's bundle
from the rendered agent (k8s_psat). And the limit the README states: a refreshed bundle
committed to an existing ClusterFederatedTrustDomain does not reach a server that already
federates (spire-controller-manager compares relationships without the bundle); `spire-server
bundle set` from the same file does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from spiffe_kpt.cli.trustbundle import main as trustbundle_main

from ..pkgtools import kpt_render
from ..spire.examples import set_values
from .conftest import install_upstream_crds
from .rendered import configmap_data, render_spire, start_psat_agent, start_rendered_server, to_yaml
from .stack import LOOPBACK, Stack, spiffe_id_str, wait_until

pytestmark = pytest.mark.real

A_TD = "telco.acme.net"
B_TD = "telco.operator.net"
UID = os.getuid()


@pytest.fixture(scope="module")
def gkube(kube_binaries, spire_binaries):
    """An apiserver of its own (with the upstream CRDs): no other module's objects reach the
    controllers started here."""
    with Stack() as st:
        yield install_upstream_crds(st.kube())


def refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
        c.settimeout(2)
        return c.connect_ex((LOOPBACK, port)) != 0


def _keys(bundle: dict | None, use: str) -> set[str]:
    return {json.dumps(k, sort_keys=True) for k in (bundle or {}).get("keys", []) if k.get("use") == use}


def _stored(server, td: str) -> dict | None:
    p = server.cli("bundle", "list", "-id", f"spiffe://{td}", "-format", "spiffe", check=False)
    return json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None


def _server_conf(pkg: Path) -> str:
    return configmap_data(pkg, "spire-server", "spire-server")["server.conf"]


def _openssl_verify(ca_pem: Path, leaf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca_pem), str(leaf)], capture_output=True, text=True)


def test_two_servers_federate_from_committed_bundles_alone(gkube, real_stack, closed_ports, tmp_path):
    ports = dict(zip((A_TD, B_TD), closed_ports))
    assert all(refused(p) for p in ports.values())
    clusters = {A_TD: "a", B_TD: "mgmt"}
    # B: the management root of tests/spire/examples.py (its workload cluster regional-1 runs the
    # agent below); A: a partner with one cluster. Neither has federation yet.
    pkgs = {
        A_TD: render_spire("spire-server", tmp_path / "a", changes={"trustDomain": A_TD, "clusterName": "a"},
                           drop=("workloadClusters", "federation")),
        B_TD: render_spire("spire-server", tmp_path / "b", changes={"trustDomain": B_TD},
                           drop=("federation",)),
    }
    confs = {td: _server_conf(pkg) for td, pkg in pkgs.items()}
    gkube.ensure_namespace("spire-system")
    servers = {td: start_rendered_server(real_stack, gkube, confs[td], name=f"server-{clusters[td]}")[0]
               for td in pkgs}
    for td, pkg in pkgs.items():
        text = configmap_data(pkg, "spire-controller-manager", "spire-server")[f"{clusters[td]}.yaml"]
        real_stack.controller_manager(gkube, servers[td], text, name=f"scm-{clusters[td]}",
                                      default_cluster_domain=False)

    # The exchange: each side's bundle, as its operator hands it over, committed to the other's
    # package with the CLI; A's copy keeps the default refresh interval (720h, longer than the
    # rendered 168h CA: the render warns), B's says 24h.
    shown = {}
    for src, dst, interval in ((A_TD, B_TD, ""), (B_TD, A_TD, "24h")):
        shown[src] = json.loads(servers[src].cli("bundle", "show", "-format", "spiffe").stdout)
        assert _keys(shown[src], "x509-svid") and _keys(shown[src], "jwt-svid")
        f = tmp_path / f"{src}.json"
        f.write_text(servers[src].cli("bundle", "show", "-format", "spiffe").stdout)
        argv = ["--trust-domain", src, str(f), "-o", str(pkgs[dst] / "bundles" / f"{src}.yaml")]
        assert trustbundle_main(argv + (["--refresh-interval", interval] if interval else [])) == 0
        set_values(pkgs[dst], {"federation": {"peers": [{
            "trustDomain": src, "bundleEndpointURL": f"https://{LOOPBACK}:{ports[src]}", "profile": "https_spiffe",
            "endpointSPIFFEID": f"spiffe://{src}/spire/server", "trustBundle": src.replace("_", "-")}]}})
        r = kpt_render(pkgs[dst])
        assert r.exit_code == 0, r.stderr
        warnings = [x for x in r.results if x.get("severity") == "warning" and x.get("resourceRef", {}).get("kind")
                    == "TrustBundle"]
        if interval:
            assert warnings == [], warnings
        else:
            assert warnings and "before the next expected refresh (the refresh interval of 720h)" in \
                warnings[0]["message"], warnings
        # committing a peer's bundle changes no server setting: nothing to restart
        assert _server_conf(pkgs[dst]) == confs[dst]

    cftds = {td: yaml.safe_load((pkg / "federation" / f"{peer}.yaml").read_text())
             for (td, pkg), peer in zip(pkgs.items(), (B_TD, A_TD))}
    for td, c in cftds.items():
        peer = B_TD if td == A_TD else A_TD
        assert c["spec"]["bundleEndpointURL"] == f"https://{LOOPBACK}:{ports[peer]}"
        assert json.loads(c["spec"]["trustDomainBundle"]) == shown[peer]
        gkube.apply_manifests(to_yaml([c]), field_manager=f"kpt-{clusters[td]}")
    try:
        _federated(gkube, real_stack, servers, pkgs, shown, ports, cftds, tmp_path)
    finally:
        for c in cftds.values():
            gkube.kubectl("delete", "--ignore-not-found", "clusterfederatedtrustdomain", c["metadata"]["name"],
                          check=False)


def _federated(gkube, real_stack, servers, pkgs, shown, ports, cftds, tmp_path):
    a, b = servers[A_TD], servers[B_TD]
    for srv, peer in ((a, B_TD), (b, A_TD)):
        rel = wait_until(lambda srv=srv: json.loads(srv.cli("federation", "list", "-output", "json").stdout)
                         .get("federation_relationships"), 60, f"{srv.name}'s federation relationship", proc=srv.proc)
        assert [r["trust_domain"] for r in rel] == [peer]
        assert rel[0]["bundle_endpoint_url"] == f"https://{LOOPBACK}:{ports[peer]}"
        got = wait_until(lambda srv=srv, peer=peer: _stored(srv, peer), 60, f"{peer}'s bundle on {srv.name}",
                         proc=srv.proc)
        # exactly the committed bundle: X.509 authorities and JWT keys, which the peer's endpoint
        # (never reachable) cannot have supplied
        assert _keys(got, "x509-svid") == _keys(shown[peer], "x509-svid")
        assert _keys(got, "jwt-svid") == _keys(shown[peer], "jwt-svid")
    # A refresh from the endpoint, forced now, fails (closed), and the committed bundle stays.
    for srv, peer in ((a, B_TD), (b, A_TD)):
        p = srv.cli("federation", "refresh", "-id", peer, check=False)
        assert p.returncode != 0 and "connection refused" in p.stdout + p.stderr, p.stdout + p.stderr
        assert _keys(_stored(srv, peer), "jwt-svid") == _keys(shown[peer], "jwt-svid")
    assert all(refused(p) for p in ports.values())

    # An X.509-SVID of each side verifies against the bundle the other side stored for it, and
    # not against the other side's own bundle.
    for src, dst in ((a, b), (b, a)):
        d = tmp_path / f"svid-{src.name}"
        d.mkdir()
        src.cli("x509", "mint", "-spiffeID", f"spiffe://{src.trust_domain}/ns/core/sa/amf", "-write", d)
        fed = tmp_path / f"{src.trust_domain}-on-{dst.name}.pem"
        fed.write_text(dst.cli("bundle", "list", "-id", f"spiffe://{src.trust_domain}", "-format", "pem").stdout)
        ok = _openssl_verify(fed, d / "svid.pem")
        assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
        own = tmp_path / f"{dst.name}-own.pem"
        own.write_text(dst.bundle_pem())
        bad = _openssl_verify(own, d / "svid.pem")
        assert bad.returncode != 0, bad.stdout

    # A workload of B registered with federatesWith A gets A's bundle from B's rendered agent.
    agent_pkg = render_spire("spire-agent", tmp_path / "agent", changes={"trustDomain": B_TD})
    pa = start_psat_agent(real_stack, gkube, b, agent_pkg, daemonset="spire-agent", configmap="spire-agent",
                          name="agent-b", bundle_pem=b.bundle_pem())
    b.create_entry(f"spiffe://{B_TD}/ns/core/sa/smf", pa.agent.spiffe_id, [f"unix:uid:{UID}"],
                   "-federatesWith", f"spiffe://{A_TD}")
    out = pa.agent.fetch_x509(tmp_path / "workload")
    fed_files = sorted(p.name for p in out.iterdir() if p.name.startswith("federated_bundle"))
    assert fed_files, sorted(p.name for p in out.iterdir())
    fed_pem = "".join((out / n).read_text() for n in fed_files)
    a_pem = b.cli("bundle", "list", "-id", f"spiffe://{A_TD}", "-format", "pem").stdout
    assert _pem_set(fed_pem) == _pem_set(a_pem) and _pem_set(a_pem)
    a_svid = tmp_path / "svid-server-a" / "svid.pem"
    ok = _openssl_verify(out / fed_files[0], a_svid)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    # The limit: a refreshed bundle committed and applied does not reach B, which already
    # federates with A (spire-controller-manager v0.7.0 compares relationships by trust domain,
    # URL and profile); `spire-server bundle set` from the same file does.
    a.cli("localauthority", "x509", "prepare")
    fresh_text = a.cli("bundle", "show", "-format", "spiffe").stdout
    fresh = json.loads(fresh_text)
    assert len(_keys(fresh, "x509-svid")) == 2
    f = tmp_path / "a-fresh.json"
    f.write_text(fresh_text)
    assert trustbundle_main(["--trust-domain", A_TD, str(f), "-o", str(pkgs[B_TD] / "bundles" / f"{A_TD}.yaml")]) == 0
    r = kpt_render(pkgs[B_TD])
    assert r.exit_code == 0, r.stderr
    c = yaml.safe_load((pkgs[B_TD] / "federation" / f"{A_TD}.yaml").read_text())
    assert json.loads(c["spec"]["trustDomainBundle"]) == fresh
    gkube.apply_manifests(to_yaml([c]), field_manager="kpt-mgmt")
    time.sleep(15)  # several reconciles of the changed resource (the controller watches it)
    assert _keys(_stored(b, A_TD), "x509-svid") == _keys(shown[A_TD], "x509-svid")
    b.cli("bundle", "set", "-format", "spiffe", "-id", f"spiffe://{A_TD}", "-path", f)
    assert _keys(_stored(b, A_TD), "x509-svid") == _keys(fresh, "x509-svid")
    assert refused(ports[A_TD])
    rel = json.loads(b.cli("federation", "list", "-output", "json").stdout)["federation_relationships"]
    assert [spiffe_id_str(r["https_spiffe"]["endpoint_spiffe_id"]) for r in rel] == [f"spiffe://{A_TD}/spire/server"]


def _pem_set(pem: str) -> set[str]:
    return {blk.strip() for blk in pem.split("-----END CERTIFICATE-----") if "BEGIN CERTIFICATE" in blk}

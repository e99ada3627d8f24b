"""Every bad-value path: exit 1, an error result naming the SpireDeployment and the field,
a message that says how to fix it, and the package left exactly as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..pkgtools import WI_API, kpt_render
from .examples import SPECS, copy_package, files, set_values

pytestmark = pytest.mark.kpt

CASES: list[tuple[str, str, dict[str, Any], tuple[str, ...], str, str]] = [
    # (case, package, changes, dropped keys, field, message fragment)
    ("shipped-placeholders", "spire-server", {}, ("__as_shipped__",), "spec.trustDomain", "is a placeholder"),
    ("placeholder-trust-domain", "spire-agent", {"trustDomain": "example.org"}, (), "spec.trustDomain",
     "'example.org' is a placeholder"),
    ("invalid-trust-domain", "spire-server", {"trustDomain": "Telco.ACME.net"}, (), "spec.trustDomain",
     "contains uppercase letters"),
    ("placeholder-cluster", "spire-agent", {"clusterName": "example"}, (), "spec.clusterName", "is a placeholder"),
    ("svid-ttl-above-ca", "spire-server", {"svid": {"x509TTL": "48h"}}, (), "spec.svid.x509TTL",
     "is above what the CA TTL 168h allows"),
    ("offline-window", "spire-downstream-server", {"offlineTolerance": "72h"}, (), "spec.offlineTolerance",
     "can only guarantee 12h of offline operation"),
    ("duplicate-class", "spire-server",
     {"workloadClusters": [{"name": "regional-1", "className": "spire-mgmt"}]}, (),
     "spec.workloadClusters[0].className", "needs its own className"),
    ("unreachable-service", "spire-server", {"service": {"type": "ClusterIP"}}, (), "spec.service.type",
     "cannot reach a ClusterIP service"),
    ("bad-duration", "spire-server", {"ca": {"ttl": "7d"}}, (), "spec.ca.ttl", "Go duration"),
    ("unknown-field", "spire-agent", {"serverAddress": "x"}, (), "spec.serverAddress", "unknown field"),
    ("agent-with-server-settings", "spire-agent", {"ca": {"ttl": "24h"}}, (), "spec.ca",
     "configures a SPIRE server, not an agent"),
    ("https-spiffe-needs-id", "spire-server",
     {"federation": {"bundleEndpoint": {"profile": "https_spiffe"},
                     "peers": [{"trustDomain": "partner.operator.net", "profile": "https_spiffe",
                                "bundleEndpointURL": "https://b.partner.net"}]}}, (),
     "spec.federation.peers[0].endpointSPIFFEID", "needs the SPIFFE ID"),
    # NetworkPolicies (on by default) need address ranges the operator has to give.
    ("policy-needs-node-ranges", "spire-agent", {}, ("networkPolicy",), "spec.networkPolicy.nodeCIDRs",
     "need the address ranges of this cluster's nodes"),
    ("policy-needs-apiserver", "spire-server", {"networkPolicy": {"nodeCIDRs": ["10.10.0.0/24"]}}, (),
     "spec.networkPolicy.apiServer.cidrs", "kubectl get endpointslices -n default"),
    ("policy-needs-cluster-sources", "spire-server",
     {"workloadClusters": [{"name": "regional-1", "apiServer": {"cidrs": ["10.20.1.10/32"]}}]}, (),
     "spec.workloadClusters[0].sourceCIDRs", "the agents of cluster 'regional-1' connect from"),
    ("policy-needs-cluster-apiserver", "spire-server",
     {"workloadClusters": [{"name": "edge-1", "mode": "nested", "sourceCIDRs": ["10.30.0.0/24"]}]}, (),
     "spec.workloadClusters[0].apiServer.cidrs", "the kube-apiserver of cluster 'edge-1'"),
    ("policy-needs-peer-ranges", "spire-server",
     {"federation": {"bundleEndpoint": {"profile": "https_spiffe"},
                     "peers": [{"trustDomain": "partner.operator.net", "profile": "https_web",
                                "bundleEndpointURL": "https://b.partner.net"}]}}, (),
     "spec.federation.peers[0].cidrs", "b.partner.net is a DNS name"),
    ("policy-needs-upstream-ranges", "spire-downstream-server",
     {"upstream": {"address": "spire.mgmt.acme.net", "rootCATTL": "168h"}}, (),
     "spec.upstream.cidrs", "set spec.upstream.cidrs"),
    ("policy-needs-server-ranges", "spire-agent", {"server": {"address": "spire.mgmt.acme.net"}}, (),
     "spec.server.cidrs", "spire.mgmt.acme.net is a DNS name outside this cluster"),
    ("policy-bad-range", "spire-agent", {"networkPolicy": {"nodeCIDRs": ["10.20.0.1/24"]}}, (),
     "spec.networkPolicy.nodeCIDRs[0]", "host bits"),
    ("policy-range-syntax", "spire-agent", {"networkPolicy": {"nodeCIDRs": ["nodes"]}}, (),
     "spec.networkPolicy.nodeCIDRs[0]", "CIDR notation"),
    ("policy-acme-needs-public", "spire-server",
     {"federation": {"bundleEndpoint": {"profile": "https_web", "acme": {
         "domainName": "bundle.acme.net", "email": "pki@acme.net", "tosAccepted": True}}}}, (),
     "spec.federation.bundleEndpoint.public", "public: true"),
    ("host-network-is-a-server-setting", "spire-agent",
     {"networkPolicy": {"nodeCIDRs": ["10.20.0.0/24"], "agentsOnHostNetwork": True}}, (),
     "spec.networkPolicy.agentsOnHostNetwork", "set it in the server package's values"),
    ("agent-has-no-apiserver-rule", "spire-agent",
     {"networkPolicy": {"nodeCIDRs": ["10.20.0.0/24"], "apiServer": {"cidrs": ["10.20.1.10/32"]}}}, (),
     "spec.networkPolicy.apiServer", "an agent never calls the kube-apiserver"),
    # The JWT issuer and the OIDC discovery provider serving it.
    ("issuer-not-https", "spire-server", {"svid": {"jwtIssuer": "http://oidc.telco.acme.net"}}, (),
     "spec.svid.jwtIssuer", "must be an https:// URL"),
    ("issuer-with-path", "spire-server", {"svid": {"jwtIssuer": "https://oidc.telco.acme.net/"}}, (),
     "spec.svid.jwtIssuer", "write https://oidc.telco.acme.net"),
    ("issuer-without-host", "spire-downstream-server", {"svid": {"jwtIssuer": "https://"}}, (),
     "spec.svid.jwtIssuer", "has no host"),
    ("provider-needs-issuer", "spire-server", {"svid": {"x509TTL": "1h"}}, (),
     "spec.svid.jwtIssuer", "set spec.svid.jwtIssuer to the https URL"),
    ("issuer-host-not-a-domain", "spire-server",
     {"oidcDiscoveryProvider": {"domains": ["oidc.acme.net"], "cidrs": ["10.10.1.10/32"]}}, (),
     "spec.oidcDiscoveryProvider.domains", "'oidc.telco.acme.net' (spec.svid.jwtIssuer) is not among"),
    ("provider-not-on-downstream", "spire-downstream-server",
     {"oidcDiscoveryProvider": {"public": True}}, (),
     "spec.oidcDiscoveryProvider", "publishes its JWT signing keys to the root"),
    ("provider-not-on-agent", "spire-agent", {"oidcDiscoveryProvider": {"public": True}}, (),
     "spec.oidcDiscoveryProvider", "configures a SPIRE server, not an agent"),
    ("policy-needs-verifier-ranges", "spire-server", {"oidcDiscoveryProvider": {}}, (),
     "spec.oidcDiscoveryProvider.cidrs", "the verifiers that fetch the issuer's keys"),
    ("provider-port-taken", "spire-server",
     {"federation": {"bundleEndpoint": {"profile": "https_spiffe", "port": 8444}}}, (),
     "spec.federation.bundleEndpoint.port", "the OIDC discovery provider's in the same pod"),
]


@pytest.mark.parametrize("case,name,changes,drop,field,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_values_are_rejected(tmp_path: Path, case: str, name: str, changes: dict[str, Any],
                                 drop: tuple[str, ...], field: str, fragment: str) -> None:
    pkg = copy_package(name, tmp_path)
    if drop != ("__as_shipped__",):
        set_values(pkg, {**SPECS[name], **changes}, drop)
    before = files(pkg)
    r = kpt_render(pkg)
    assert r.exit_code == 1, r.stderr
    errors = [x for x in r.results if x.get("severity") == "error"]
    match = [x for x in errors if x.get("field", {}).get("path") == field]
    assert match, errors
    res = match[0]
    assert fragment in res["message"], res["message"]
    assert res["resourceRef"] == {"apiVersion": WI_API, "kind": "SpireDeployment", "name": name}
    assert files(pkg) == before


def test_downstream_issuer_must_match_root(tmp_path: Path) -> None:
    """A parent package holding the root and a downstream server: one JWT issuer (JWT-SVIDs
    minted at the edge are checked against the root's provider, iss included)."""
    parent = tmp_path / "fleet"
    parent.mkdir()
    (parent / "Kptfile").write_text(
        "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: fleet\n  annotations:\n"
        "    config.kubernetes.io/local-config: \"true\"\npipeline:\n  mutators:\n"
        "  - image: ghcr.io/spiffe-kpt/spire-config:v0.1.0\n")
    root = copy_package("spire-server", parent)
    set_values(root, SPECS["spire-server"])
    ds = copy_package("spire-downstream-server", parent)
    set_values(ds, {**SPECS["spire-downstream-server"],
                    "svid": {"x509TTL": "1h", "jwtTTL": "5m", "jwtIssuer": "https://oidc.edge-1.acme.net"}})
    before = files(parent)
    r = kpt_render(parent)
    assert r.exit_code == 1
    res = [x for x in r.results if x.get("field", {}).get("path") == "spec.svid.jwtIssuer"]
    assert res and "differs from the root's" in res[0]["message"], r.results
    assert "set 'https://oidc.telco.acme.net'" in res[0]["message"]
    assert res[0]["resourceRef"]["name"] == "spire-downstream-server"
    assert files(parent) == before
    # Fixed: renders.
    set_values(ds, {"svid": SPECS["spire-downstream-server"]["svid"]})
    r = kpt_render(parent)
    assert r.exit_code == 0, r.results


def test_agent_cluster_must_match_server(tmp_path: Path) -> None:
    """A cluster's parent package holding server and agent: their cluster names must agree."""
    parent = tmp_path / "mgmt"
    parent.mkdir()
    (parent / "Kptfile").write_text(
        "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: mgmt\n  annotations:\n"
        "    config.kubernetes.io/local-config: \"true\"\npipeline:\n  mutators:\n"
        "  - image: ghcr.io/spiffe-kpt/spire-config:v0.1.0\n")
    server = copy_package("spire-server", parent)
    set_values(server, {**SPECS["spire-server"], "workloadClusters": [], "service": {"type": "ClusterIP"}})
    agent = copy_package("spire-agent", parent)
    set_values(agent, {**SPECS["spire-agent"], "clusterName": "mgmt-1",
                       "server": {"address": "spire-server.spire-server.svc"}})
    before = files(parent)
    r = kpt_render(parent)
    assert r.exit_code == 1
    res = [x for x in r.results if x.get("field", {}).get("path") == "spec.clusterName"]
    assert res and "is not one the server" in res[0]["message"] and res[0]["resourceRef"]["name"] == "spire-agent"
    assert files(parent) == before
    # Fixed: renders.
    set_values(agent, {"clusterName": "mgmt"})
    assert kpt_render(parent).exit_code == 0

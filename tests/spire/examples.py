"""Example values for the SPIRE packages: what a platform engineer sets before rendering."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from spiffe_kpt.krm import yamlio

from ..pkgtools import REPO, Render, kpt_render

SPIRE = REPO / "blueprints" / "spire"
EXPECTED = Path(__file__).resolve().parent / "expected"
RENDERED_PACKAGES = ("spire-server", "spire-agent", "spire-downstream-server")

# The management root of a fleet with one central workload cluster and one nested edge,
# federated with a partner trust domain. Addresses (documentation ranges where public):
# mgmt nodes 10.10.0.0/24 (apiserver 10.10.1.10), regional-1 nodes 10.20.0.0/24 (apiserver
# 10.20.1.10), edge-1 nodes 10.30.0.0/24 (apiserver 10.30.1.10), the root's LoadBalancer
# 192.0.2.10 (spire.mgmt.acme.net), the partner's servers 203.0.113.0/28. The apiservers sit
# outside the node ranges (a managed or separate control plane): an apiserver on a node shares
# that node's address, and an address-based policy cannot tell it from the kubelet.
ROOT_SPEC: dict[str, Any] = {
    "trustDomain": "telco.acme.net",
    "clusterName": "mgmt",
    "ca": {"ttl": "168h", "keyType": "ec-p256", "subject": {"country": ["DE"], "organization": ["ACME Telco"]}},
    "svid": {"x509TTL": "1h", "jwtTTL": "5m", "jwtIssuer": "https://oidc.telco.acme.net"},
    "service": {"type": "LoadBalancer"},
    # The trust domain's JWT issuer, served from the root's pod; the verifiers are the three
    # clusters' kube-apiservers (they check JWT-SVIDs presented as bearer tokens), two of them
    # outside this cluster, hence a LoadBalancer (oidc.telco.acme.net resolves to it).
    "oidcDiscoveryProvider": {"service": {"type": "LoadBalancer"},
                              "cidrs": ["10.10.1.10/32", "10.20.1.10/32", "10.30.1.10/32"]},
    "workloadClusters": [{"name": "regional-1", "mode": "central", "sourceCIDRs": ["10.20.0.0/24"],
                          "apiServer": {"cidrs": ["10.20.1.10/32"]}},
                         {"name": "edge-1", "mode": "nested", "sourceCIDRs": ["10.30.0.0/24"],
                          "apiServer": {"cidrs": ["10.30.1.10/32"], "port": 443}}],
    "networkPolicy": {"nodeCIDRs": ["10.10.0.0/24"], "apiServer": {"cidrs": ["10.10.1.10/32"], "port": 6443}},
    "federation": {
        "bundleEndpoint": {"profile": "https_spiffe", "port": 8443},
        "peers": [{"trustDomain": "partner.operator.net",
                   "bundleEndpointURL": "https://spire-bundle.partner-operator.net:8443",
                   "profile": "https_spiffe",
                   "endpointSPIFFEID": "spiffe://partner.operator.net/spire/server",
                   "cidrs": ["203.0.113.0/28"]}],
    },
}
AGENT_SPEC: dict[str, Any] = {
    "trustDomain": "telco.acme.net",
    "clusterName": "regional-1",
    "server": {"address": "spire.mgmt.acme.net", "port": 8081, "cidrs": ["192.0.2.10/32"]},
    "networkPolicy": {"nodeCIDRs": ["10.20.0.0/24"]},
}
DOWNSTREAM_SPEC: dict[str, Any] = {
    "trustDomain": "telco.acme.net",
    "clusterName": "edge-1",
    "upstream": {"address": "spire.mgmt.acme.net", "port": 8081, "rootCATTL": "168h", "cidrs": ["192.0.2.10/32"]},
    "networkPolicy": {"nodeCIDRs": ["10.30.0.0/24"], "apiServer": {"cidrs": ["10.30.1.10/32"], "port": 443}},
    "offlineTolerance": "12h",
    "ca": {"ttl": "24h", "keyType": "ec-p256"},
    # The root's issuer: JWT-SVIDs minted at the edge verify against the root's provider.
    "svid": {"x509TTL": "1h", "jwtTTL": "5m", "jwtIssuer": "https://oidc.telco.acme.net"},
}
SPECS = {"spire-server": ROOT_SPEC, "spire-agent": AGENT_SPEC, "spire-downstream-server": DOWNSTREAM_SPEC}


def set_values(pkg: Path, changes: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
    """Set spec fields of the package's SpireDeployment, the way a user edits spire-values.yaml."""
    f = pkg / "spire-values.yaml"
    obj = yamlio.load(f.read_text())
    obj["spec"].update(changes)
    for key in drop:
        obj["spec"].pop(key, None)
    f.write_text(yamlio.dump(obj))


def copy_package(name: str, dest: Path) -> Path:
    pkg = dest / name
    shutil.copytree(SPIRE / name, pkg)
    return pkg


def render_example(name: str, dest: Path, changes: dict[str, Any] | None = None) -> tuple[Path, Render]:
    pkg = copy_package(name, dest)
    set_values(pkg, {**SPECS[name], **(changes or {})})
    return pkg, kpt_render(pkg)


def files(pkg: Path) -> dict[str, str]:
    return {str(p.relative_to(pkg)): p.read_text() for p in sorted(pkg.rglob("*")) if p.is_file()}


def resources(pkg: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(pkg.rglob("*.yaml")):
        for doc in _load_all(p.read_text()):
            if isinstance(doc, dict) and doc.get("kind") and doc.get("kind") != "Kptfile":
                out.append(doc)
    return out


def _load_all(text: str) -> list[Any]:
    import yaml
    return list(yaml.safe_load_all(text))


def is_local_config(obj: dict[str, Any]) -> bool:
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    return str(ann.get("config.kubernetes.io/local-config", "")).lower() == "true"

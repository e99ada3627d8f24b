"""Generate packages of N workloads with identities, for the benchmarks.

Each workload is a Deployment in one of a few namespaces with its own service account and a
WorkloadIdentity; there is one IdentityContext and a Kptfile whose pipeline is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spiffe_kpt.krm import yamlio

LOCAL = {"config.kubernetes.io/local-config": "true"}


def workload(i: int, namespaces: int = 10, rules: bool = False) -> list[dict[str, Any]]:
    name, ns = f"nf-{i}", f"core-{i % namespaces}"
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"name": name}},
                       "template": {"metadata": {"labels": {"name": name}},
                                    "spec": {"serviceAccountName": name,
                                             "containers": [{"name": "nf", "image": "registry.telco.net/nf:1.0",
                                                             "ports": [{"name": "pfcp", "containerPort": 8805,
                                                                        "protocol": "UDP"},
                                                                       {"name": "sbi", "containerPort": 8080,
                                                                        "protocol": "TCP"}]}]}}}}
    wi = {"apiVersion": "workloadidentity.nephio.org/v1alpha1", "kind": "WorkloadIdentity",
          "metadata": {"name": name, "annotations": dict(LOCAL)},
          "spec": {"workloadRef": {"kind": "Deployment", "name": name}, "svid": {"x509TTL": "1h"}}}
    if rules and i > 0:
        # A chain of N4/SBI-like flows: each workload is reached by the previous one, so every
        # rule names another identity of the package (what rule resolution must look up).
        wi["spec"]["ingress"] = [
            {"name": "pfcp", "from": [{"identity": f"nf-{i - 1}"}], "ports": [{"port": "pfcp"}]},
            {"name": "sbi", "from": [{"identity": f"nf-{i - 1}"}] + ([{"identity": "nf-0"}] if i > 1 else []),
             "ports": [{"port": 8080, "protocol": "TCP"}]}]
    if rules and i > 0 and access_api():
        # And an API grant per workload (spiffe-access): the previous one may read its ConfigMap.
        grant = {"apiVersion": "workloadidentity.nephio.org/v1alpha1", "kind": "AccessGrant",
                 "metadata": {"name": f"{name}-config", "annotations": dict(LOCAL)},
                 "spec": {"clients": [{"identity": f"nf-{i - 1}"}],
                          "kubernetes": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                                          "resourceNames": [name], "namespaces": [ns]}]}}
        return [deploy, wi, grant]
    return [deploy, wi]


def access_api() -> bool:
    """Whether this version has AccessGrant (spiffe-access)."""
    return (Path(__file__).resolve().parent.parent / "schemas" / "AccessGrant.json").is_file()


def rules_api() -> bool:
    """Whether WorkloadIdentity has authorization rules (spec.ingress) in this version."""
    import json
    schema = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "WorkloadIdentity.json").read_text())
    return "ingress" in schema.get("properties", {}).get("spec", {}).get("properties", {})


def context(cluster: str = "edge-1", trust_domain: str = "telco.net", region: str = "eu-1") -> dict[str, Any]:
    return {"apiVersion": "workloadidentity.nephio.org/v1alpha1", "kind": "IdentityContext",
            "metadata": {"name": "identity-context", "annotations": dict(LOCAL)},
            "spec": {"trustDomain": trust_domain, "clusterName": cluster, "region": region, "idFormat": "cluster",
                     **({"className": "spiffe-kpt", "policy": {"backends": ["istio", "networkpolicy"]}}
                        if rules_api() else {}),
                     **({"jwtIssuer": {"url": f"https://oidc.{trust_domain}"}} if access_api() else {})}}


def items(n: int, rules: bool = False) -> list[dict[str, Any]]:
    out = [context()]
    for i in range(n):
        out.extend(workload(i, rules=rules))
    return out


def write_package(root: Path, n: int, pipeline: dict[str, Any], rules: bool = False) -> Path:
    """A kpt package of n workloads in root, one file per 100 workloads (as large packages are split)."""
    root.mkdir(parents=True, exist_ok=True)
    kptfile = {"apiVersion": "kpt.dev/v1", "kind": "Kptfile",
               "metadata": {"name": root.name, "annotations": dict(LOCAL)}, "pipeline": pipeline}
    (root / "Kptfile").write_text(yamlio.dump(kptfile))
    (root / "context.yaml").write_text(yamlio.dump(context()))
    for start in range(0, n, 100):
        docs = []
        for i in range(start, min(n, start + 100)):
            docs.extend(workload(i, rules=rules))
        (root / f"workloads-{start // 100:04d}.yaml").write_text("---\n".join(yamlio.dump(d) for d in docs))
    return root

"""Generate packages of N workloads with identities, for the benchmarks.

Each workload is a Deployment in one of a few namespaces with its own service account and a
WorkloadIdentity; there is one IdentityContext and a Kptfile whose pipeline is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spiffe_kpt.krm import yamlio

LOCAL = {"config.kubernetes.io/local-config": "true"}


def workload(i: int, namespaces: int = 10) -> list[dict[str, Any]]:
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
    return [deploy, wi]


def context(cluster: str = "edge-1", trust_domain: str = "telco.net", region: str = "eu-1") -> dict[str, Any]:
    return {"apiVersion": "workloadidentity.nephio.org/v1alpha1", "kind": "IdentityContext",
            "metadata": {"name": "identity-context", "annotations": dict(LOCAL)},
            "spec": {"trustDomain": trust_domain, "clusterName": cluster, "region": region, "idFormat": "cluster"}}


def items(n: int) -> list[dict[str, Any]]:
    out = [context()]
    for i in range(n):
        out.extend(workload(i))
    return out


def write_package(root: Path, n: int, pipeline: dict[str, Any]) -> Path:
    """A kpt package of n workloads in root, one file per 100 workloads (as large packages are split)."""
    root.mkdir(parents=True, exist_ok=True)
    kptfile = {"apiVersion": "kpt.dev/v1", "kind": "Kptfile",
               "metadata": {"name": root.name, "annotations": dict(LOCAL)}, "pipeline": pipeline}
    (root / "Kptfile").write_text(yamlio.dump(kptfile))
    (root / "context.yaml").write_text(yamlio.dump(context()))
    for start in range(0, n, 100):
        docs = []
        for i in range(start, min(n, start + 100)):
            docs.extend(workload(i))
        (root / f"workloads-{start // 100:04d}.yaml").write_text("---\n".join(yamlio.dump(d) for d in docs))
    return root

"""A fleet the way a PackageVariantSet fans a blueprint out: one variant per cluster, one render each.

Each variant gets its own injected cluster context, as porch does: the Nephio
``WorkloadCluster``'s ``spec.clusterName`` and the IdentityContext's ``clusterName`` and
``region``. Every variant is rendered in-process through ``spiffe_kpt.krm.runner.process``
(the ResourceList goes through the same YAML load and dump as under kpt; what is not paid is
kpt itself and the process start, which the kpt sample measures). Then, across the whole
fleet:

- identities whose ID format promises fleet-wide uniqueness (the format carries the cluster:
  the specializer then records ``status.clusterName``; or the opaque format, whose hash covers
  the cluster) must all have distinct SPIFFE IDs; other IDs must be unique within a cluster;
- every SPIFFE ID that a rendered resource refers to (an explicit ``spiffe://`` ID, an Istio
  principal, a ``federatesWith`` trust domain) must resolve to an identity somewhere in the
  fleet or in the rest of the deployment (packages rendered once, as they are: for the 5G
  core's UPF fleet, the regional SMF and AMF its N4 rule names), or to a trust domain the
  fleet federates with.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spiffe_kpt import registry
from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.runner import process

from . import kptrun


def chain() -> tuple[Callable, str]:
    """hydrate when all its functions exist; until then the registered functions in its order."""
    missing = kptrun.hydrate_missing()
    if not missing:
        from spiffe_kpt.hydrate import hydrate
        return hydrate, "spiffe-hydrate"
    fns = [registry.get(n) for n in kptrun.separate_steps()]

    def available_chain(rl) -> None:
        for fn in fns[:-1]:
            fn(rl)
            if rl.has_errors():
                return
        items = rl.items
        rl.items = list(items)
        fns[-1](rl)
        rl.items = items
    return available_chain, ("in-process chain of " + " + ".join(kptrun.separate_steps()) +
                             f" (spiffe-hydrate needs {', '.join(missing)})")


def cluster_of(i: int) -> tuple[str, str]:
    return f"edge-{i:04d}", f"region-{i % 7}"


def inject(items: list[dict[str, Any]], cluster: str, region: str) -> list[dict[str, Any]]:
    """What porch's config injection does to a variant: the cluster's context into the package."""
    out = copy.deepcopy(items)
    for obj in out:
        kind = obj.get("kind")
        if kind == "WorkloadCluster":
            obj.setdefault("spec", {})["clusterName"] = cluster
        elif kind == "IdentityContext":
            spec = obj.setdefault("spec", {})
            spec["clusterName"] = cluster
            spec["region"] = region
        elif kind == "ConfigMap" and (obj.get("metadata") or {}).get("name") == "kptfile.kpt.dev":
            obj.setdefault("data", {})["name"] = f"{obj['data'].get('name', 'pkg')}-{cluster}"
    return out


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


@dataclass
class FleetReport:
    variants: int
    chain: str
    per_variant_ms: list[float]
    identities: int = 0
    fleet_unique_ids: int = 0
    cluster_unique_ids: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    references: int = 0
    unresolved: list[str] = field(default_factory=list)
    failed_variants: list[str] = field(default_factory=list)
    kpt_sample: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        import statistics as st
        t = self.per_variant_ms
        return {"variants": self.variants, "chain": self.chain,
                "per_variant_ms_median": st.median(t), "per_variant_ms_min": min(t),
                "per_variant_ms_max": max(t), "total_s": sum(t) / 1000,
                "identities": self.identities, "fleet_unique_ids": self.fleet_unique_ids,
                "cluster_unique_ids": self.cluster_unique_ids, "duplicate_ids": self.duplicate_ids[:20],
                "references": self.references, "unresolved": self.unresolved[:20],
                "failed_variants": self.failed_variants[:20], "kpt_sample": self.kpt_sample}


def rendered_ids(packages: list[Path], fn: Callable, label: str) -> set[str]:
    """SPIFFE IDs of the identities of packages rendered once, as they are (no injection)."""
    from tests.pkgtools import read_package
    ids: set[str] = set()
    for pkg in packages:
        text = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList",
                            "items": read_package(pkg)})
        out, code = process(text, fn, label)
        if code != 0:
            raise RuntimeError(f"{pkg} does not render (exit {code}); the fleet's references cannot be checked")
        ids |= {obj["status"]["spiffeID"] for obj in yamlio.load(out)["items"]
                if obj.get("kind") == "WorkloadIdentity" and (obj.get("status") or {}).get("spiffeID")}
    return ids


def simulate(blueprint: Path, variants: int, kpt_sample: int, rest: list[Path] = ()) -> FleetReport:
    """Fan ``blueprint`` out to ``variants`` clusters; ``rest``: the other packages of the
    deployment, rendered once, whose identities the variants may name."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pkgtools import read_package  # items exactly as kpt sends them, path/index annotated

    fn, label = chain()
    base = read_package(blueprint)
    report = FleetReport(variants, label, [])
    ids_by_cluster: dict[str, set[str]] = {}
    fleet_ids: dict[str, str] = {}  # SPIFFE ID -> cluster, for IDs promised unique fleet-wide
    all_ids: set[str] = set()
    known_ids = rendered_ids(list(rest), fn, label)  # identities outside the fleet it may name
    trust_domains: set[str] = set()
    refs: list[tuple[str, str, str]] = []  # (cluster, where, referenced ID or trust domain)
    for i in range(variants):
        cluster, region = cluster_of(i)
        text = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList",
                            "items": inject(base, cluster, region)})
        t0 = time.perf_counter()
        out, code = process(text, fn, label)
        report.per_variant_ms.append((time.perf_counter() - t0) * 1000)
        doc = yamlio.load(out)
        if code != 0:
            report.failed_variants.append(f"{cluster}: " + "; ".join(
                r.get("message", "") for r in doc.get("results") or [] if r.get("severity") == "error")[:300])
            continue
        seen: set[str] = ids_by_cluster.setdefault(cluster, set())
        for obj in doc["items"]:
            kind, meta = obj.get("kind"), obj.get("metadata") or {}
            where = f"{cluster}/{kind}/{meta.get('name')}"
            if kind == "WorkloadIdentity":
                status = obj.get("status") or {}
                sid = status.get("spiffeID")
                if sid:
                    report.identities += 1
                    all_ids.add(sid)
                    trust_domains.add(sid.split("/")[2])
                    if sid in seen:
                        report.duplicate_ids.append(f"{sid} twice in {cluster}")
                    seen.add(sid)
                    if "clusterName" in status or "opaqueSource" in status:
                        report.fleet_unique_ids += 1
                        if sid in fleet_ids:
                            report.duplicate_ids.append(f"{sid} in {fleet_ids[sid]} and {cluster}")
                        fleet_ids[sid] = cluster
                    else:
                        report.cluster_unique_ids += 1
                for td in ((obj.get("spec") or {}).get("svid") or {}).get("federatesWith") or []:
                    refs.append((cluster, f"{where} spec.svid.federatesWith", "td:" + td))
                scan: Any = obj.get("spec") or {}  # rules may name other identities by ID
            elif kind == "Kptfile":
                continue
            else:
                scan = obj
            for path, value in _strings(scan):
                if value.startswith("spiffe://") and "{{" not in value:
                    refs.append((cluster, f"{where} {path}", value))
                elif ".principals[" in path and "/" in value:
                    refs.append((cluster, f"{where} {path}", "spiffe://" + value))  # Istio drops the scheme
                elif path.endswith("trustDomain") and kind == "ClusterFederatedTrustDomain":
                    trust_domains.add(value)
    targets = all_ids | known_ids
    for _cluster, where, ref in refs:
        report.references += 1
        if ref.startswith("td:"):
            ok = ref[3:] in trust_domains
        elif ref.endswith("/") or ref.endswith("*"):
            prefix = ref.rstrip("*")
            ok = any(s.startswith(prefix) for s in targets) or ref.split("/")[2] not in trust_domains
        else:
            # An ID in our trust domains must be an identity of the fleet or of the rest of the
            # deployment; an ID in a trust domain the fleet federates with is outside what this
            # fleet can check.
            ok = ref in targets or ref.split("/")[2] not in {s.split("/")[2] for s in targets}
        if not ok:
            report.unresolved.append(f"{where}: {ref}")
    if kpt_sample:
        report.kpt_sample = kpt_sample_render(base, kpt_sample)
    return report


def kpt_sample_render(base: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Render the first n variants as files with the real kpt, one render each, as porch would."""
    import statistics as st
    import tempfile

    hydrate = not kptrun.hydrate_missing()
    times, floors, codes = [], [], []
    steps: list[str] = []
    with tempfile.TemporaryDirectory(prefix="spiffe-fleet-") as tmp:
        for i in range(n):
            cluster, region = cluster_of(i)
            pkg = Path(tmp) / cluster
            write_items(pkg, inject(base, cluster, region))
            ours = kptrun.render(pkg, "hydrate" if hydrate else "functions")
            floor = kptrun.render(pkg, "hydrate-floor" if hydrate else "floor")
            steps = ours.steps
            times.append(ours.seconds)
            floors.append(floor.seconds)
            codes.append(ours.exit_code)
    return {"variants": n, "steps": steps, "per_variant_s_median": st.median(times),
            "floor_s_median": st.median(floors),
            "ratio_median": st.median(t / f for t, f in zip(times, floors)),
            "exit_codes": sorted(set(codes))}


def write_items(pkg: Path, items: list[dict[str, Any]]) -> None:
    """Write items back to the files their path annotations name (what kpt reads)."""
    files: dict[str, list[dict[str, Any]]] = {}
    for obj in items:
        obj = copy.deepcopy(obj)
        ann = obj["metadata"]["annotations"]
        path = ann.get("internal.config.kubernetes.io/path") or ann.get("config.kubernetes.io/path")
        for key in [k for k in ann if k.startswith(("config.kubernetes.io/path", "config.kubernetes.io/index",
                                                     "internal.config.kubernetes.io/"))]:
            del ann[key]
        if not ann:
            del obj["metadata"]["annotations"]
        files.setdefault(path, []).append(obj)
    for path, docs in files.items():
        target = pkg / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("---\n".join(yamlio.dump(d) for d in docs))

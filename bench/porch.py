"""The porch section: the functions as porch v1.5.8 runs them (tests.real.porch).

* one package rendered by porch (a PackageRevisionResources update, which porch renders before
  it answers) with the one-step ``hydrate`` vs the same package with a ``cat`` function mapped
  to an image the same way (porch's exec function runner): porch's own cost is in both;
* fan-out: a PackageVariantSet over N workload clusters (the fleet example), from applying the
  set until every variant's draft is rendered with its identities resolved; per variant and
  total;
* peak RSS of porch-server, the function runner and the controllers.

Needs the porch binaries (``python3 -m tests.real.binaries``); runs in a network namespace
(root or unprivileged user namespaces).
"""

from __future__ import annotations

import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from spiffe_kpt import porch_exec
from tests.real import porch as porchstack
from tests.real import test_real_porch as flow
from tests.real.stack import Stack

CAT_IMAGE = "ghcr.io/spiffe-kpt/bench-cat:v0.1.0"
HYDRATE_IMAGE = "ghcr.io/spiffe-kpt/hydrate:v0.1.0"


def _function_dir(tmp: Path) -> Path:
    d = tmp / "functions"
    mapped = porch_exec.functions()
    porch_exec.write(d, mapped)
    cat = d / "bench-cat"
    cat.write_text("#!/bin/sh\nexec cat\n")
    cat.chmod(0o755)
    # the cat floor, mapped the same way as the project's functions
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["functions"].append({"function": "bench-cat", "images": [CAT_IMAGE]})
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return d


def _one_step(pkg: Path, image: str) -> None:
    kf = yaml.safe_load((pkg / "Kptfile").read_text())
    kf["pipeline"] = {"mutators": [{"image": image}]}
    (pkg / "Kptfile").write_text(yaml.safe_dump(kf, sort_keys=False))


def _render_once(p: porchstack.Porch, pkg: Path, workspace: str) -> float:
    name = flow.new_draft(p, "deployments", f"bench-{workspace}", workspace)
    t = time.perf_counter()
    prr = flow.push_files(p, name, pkg)
    took = time.perf_counter() - t
    if "error" in prr or flow.render_status(prr)["result"]["exitCode"] != 0:
        raise RuntimeError(f"porch render failed: {json.dumps(prr)[:2000]}")
    return took


def hydrate_vs_cat(p: porchstack.Porch, tmp: Path, runs: int) -> dict[str, Any]:
    src = flow.copy_package(flow.UPF, tmp / "upf-src")
    ours, floor = [], []
    for i in range(runs):  # interleaved, so load on the shared machine hits both alike
        for image, bucket, tag in ((HYDRATE_IMAGE, ours, "h"), (CAT_IMAGE, floor, "c")):
            pkg = flow.copy_package(src, tmp / f"{tag}{i}")
            _one_step(pkg, image)
            bucket.append(_render_once(p, pkg, f"{tag}{i}"))
    ratios = [a / b for a, b in zip(ours, floor)]
    return {"package": "5g-core/upf", "runs": runs, "hydrate_s": statistics.median(ours),
            "cat_s": statistics.median(floor), "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios)}


def _wait_fleet(p: porchstack.Porch, set_name: str, names: list[str], t0: float,
                timeout: float) -> dict[str, float]:
    """Seconds after ``t0`` at which each cluster's draft was first seen rendered (exit 0) with its
    identity resolved.

    Cheap on purpose: each poll is two list calls (the set's PackageVariants, the drafts), and a
    draft's resources are read once, after its PackageVariant reports Ready, so the completion
    time of every variant is known (the profile of a run: is the last variant slower than the
    first?) without reading N drafts per poll."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(names):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(done)}/{len(names)} variants rendered after {timeout:.0f} s")
        ready = {pv["spec"]["downstream"]["package"] for pv in p.get("packagevariants")["items"]
                 if any(o.get("name") == set_name for o in pv["metadata"].get("ownerReferences", []))
                 and any(c["type"] == "Ready" and c["status"] == "True"
                         for c in pv.get("status", {}).get("conditions", []))}
        drafts = flow.drafts_by_package(p)
        for c in names:
            pkg = f"upf-{c}"
            if c in done or pkg not in ready or pkg not in drafts:
                continue
            prr = flow.resources(p, drafts[pkg]["metadata"]["name"])
            cond = flow.kptfile_conditions(prr["spec"]["resources"]).get(flow.CONDITION)
            status = flow.render_status(prr)
            if cond and cond["status"] == "True" and status.get("result", {}).get("exitCode") == 0:
                done[c] = time.perf_counter() - t0
        if len(done) < len(names):
            if p.controllers.poll() is not None:
                raise RuntimeError("porch's controllers exited:\n" + p.controllers.log_tail())
            time.sleep(2)
    return done


def fan_out(p: porchstack.Porch, n: int) -> dict[str, Any]:
    names = [f"n{n}-{i:03d}" for i in range(1, n + 1)]
    label = {"spiffe-kpt.bench/fleet": f"n{n}"}
    wcs = flow.cluster_objects(names, "WorkloadCluster")
    for wc in wcs:
        wc["metadata"]["labels"] = label
    p.apply_objects(wcs + flow.cluster_objects(names, "IdentityContext"))
    pvs = yaml.safe_load((flow.FLEET_EXAMPLE / "packagevariantset.yaml").read_text())
    pvs["metadata"]["name"] = f"bench-{n}"
    target = pvs["spec"]["targets"][0]
    target["objectSelector"]["matchLabels"] = label
    t = time.perf_counter()
    p.apply_objects([pvs])
    before = p.controller_metrics()
    done = _wait_fleet(p, pvs["metadata"]["name"], names, t, timeout=120 + 30 * n)
    after = p.controller_metrics()
    total = max(done.values())
    times = sorted(done.values())
    return {"variants": n, "total_s": total, "per_variant_s": total / n,
            "first_s": times[0], "median_s": statistics.median(times),
            # the rate at which variants complete in the first and the second half of the run
            "first_half_s_per_variant": times[n // 2 - 1] / (n // 2) if n >= 2 else total,
            "second_half_s_per_variant": (times[-1] - times[n // 2 - 1]) / (n - n // 2) if n >= 2 else total,
            # PackageVariant reconciles while the set fanned out (each PackageRevision event
            # re-queues every PackageVariant of the namespace) and their summed time
            "reconciles": {k.removeprefix("controller_runtime_"): v - before.get(k, 0.0) for k, v in after.items()}}


def _stack(tmp: Path, hydrate: bool = False) -> tuple[Stack, porchstack.Porch, float]:
    tmp.mkdir(parents=True, exist_ok=True)
    st = Stack()
    try:
        t = time.perf_counter()
        # No repository is changed behind porch's back here, so no fast re-sync (the tests use 5 s
        # to see an upstream push; a sync walks every draft branch of the deployment repository).
        p = porchstack.Porch(st, _function_dir(tmp), repo_sync_frequency="10m")
        blueprint = flow.upf_blueprint(tmp / "bp-upf")
        if hydrate:  # the same blueprint with its five steps as the one-step hydrate function
            _one_step(blueprint, HYDRATE_IMAGE)
        bp = p.bare_repo("blueprints", {"5g-core/upf": blueprint}, tags=["5g-core/upf/v1"])
        p.register_repository("blueprints", bp)
        p.register_repository("deployments", p.bare_repo("deployments"), deployment=True)
        return st, p, time.perf_counter() - t
    except BaseException:
        st.close()
        raise


def measure(sizes: list[int], runs: int, hydrate_sizes: list[int] = ()) -> dict[str, Any]:
    # SIGTERM (a CI timeout, kill) must still stop porch's processes: exit through the Stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="spiffe-bench-porch-") as tmp_s:
        tmp = Path(tmp_s)
        st, p, start_s = _stack(tmp / "one")
        with st:
            one = hydrate_vs_cat(p, tmp / "one", runs)
        print(f"[bench] porch hydrate/cat {one['ratio_median']:.2f}x", file=sys.stderr, flush=True)
        fleet = []
        # A fresh porch per size: the PackageVariant controller re-queues every variant of the
        # namespace on any PackageRevision event, so the variants of an earlier size would be
        # reconciled during a later one; peak RSS is then per size too.
        for n, hydrate in [(n, False) for n in sizes] + [(n, True) for n in hydrate_sizes]:
            st, p, _ = _stack(tmp / f"n{n}{'h' if hydrate else ''}", hydrate=hydrate)
            with st:
                fleet.append(fan_out(p, n))
                fleet[-1]["pipeline"] = "hydrate" if hydrate else "five functions"
                fleet[-1]["peak_rss_kib"] = p.rss_kib()
            print(f"[bench] porch fan-out {n} ({fleet[-1]['pipeline']}): {fleet[-1]['total_s']:.1f} s",
                  file=sys.stderr, flush=True)
        return {"porch": "v1.5.8", "start_s": start_s, "one_package": one, "fan_out": fleet}


def markdown(r: dict[str, Any], title: str) -> list[str]:
    one = r["one_package"]
    lines = [f"## {title}", "",
             f"porch {r['porch']} with its exec function runner, in a network namespace; stack up in "
             f"{r['start_s']:.0f} s. One package ({one['package']}, {one['runs']} runs, interleaved): a "
             "PackageRevisionResources update, which porch renders before it answers.", "",
             "| pipeline | median | ratio |", "|---|---:|---:|",
             f"| `hydrate` (one step) | {one['hydrate_s'] * 1000:.0f} ms | "
             f"{one['ratio_median']:.2f}x ({one['ratio_min']:.2f}..{one['ratio_max']:.2f}) |",
             f"| `cat` mapped the same way | {one['cat_s'] * 1000:.0f} ms | 1.00x |", "",
             "Fan-out: a PackageVariantSet over N clusters, from apply until every variant's draft is "
             "rendered with its identities resolved: porch renders each variant twice (the clone, then "
             "the injected package), one PackageVariant at a time. A fresh porch per row.", "",
             "| blueprint pipeline | variants | total | per variant | s/variant, first half | "
             "s/variant, second half | peak RSS |", "|---|---:|---:|---:|---:|---:|---|"]
    for f in r["fan_out"]:
        rss = ", ".join(f"{k} {v / 1024:.0f} MB" for k, v in f.get("peak_rss_kib", {}).items())
        lines.append(f"| {f.get('pipeline', 'five functions')} | {f['variants']} | {f['total_s']:.1f} s | "
                     f"{f['per_variant_s']:.2f} s | {f['first_half_s_per_variant']:.2f} | "
                     f"{f['second_half_s_per_variant']:.2f} | {rss} |")
    rec = [f for f in r["fan_out"] if f.get("reconciles", {}).get("reconcile_total")]
    if rec:
        lines += ["", "PackageVariant reconciles during the fan-out (controller-runtime's metrics; every "
                  "PackageRevision event re-queues every PackageVariant of the namespace, one worker): " +
                  "; ".join(f"{f['variants']} variants ({f.get('pipeline', 'five functions')}): "
                            f"{f['reconciles']['reconcile_total']:.0f} reconciles, "
                            f"{f['reconciles']['reconcile_total'] / f['variants']:.1f} per variant, "
                            f"{f['reconciles'].get('reconcile_time_seconds_sum', 0):.0f} s in reconcile"
                            for f in rec)]
    lines.append("")
    return lines

"""The benchmark: the project's functions against kpt's own floor, in one run on one machine.

    python -m bench            # full: sizes 10..10,000, 5 runs (1 at 10,000), fleet of 1,000
    python -m bench --quick    # what CI runs: sizes 10 and 100, 3 runs, fleet of 20

Sections (each printed as markdown, and written to OUT/bench.md and OUT/bench.json; the
growth plot to OUT/bench.png when matplotlib is installed: ``pip install -e '.[bench]'``):

1. the 5G core example, three packages (UPF, SMF, AMF), each rendered by the real
   ``kpt fn render`` with the project's pipeline and with the same number of ``cat`` steps
   (kpt's passthrough floor), for the separate functions and for the one-step hydrate, and
   the steady state: hydrate re-rendering the package it has rendered against one ``cat`` over
   it (porch re-renders on every edit); one row per package, the SMF's (the richest) also as
   the headline in the JSON (falls back to authz-5g-like, then oran-focom-ims, when 5g-core is
   absent);
2. generated packages of N workloads: render time and peak RSS against the floor, growth;
3. each function's cold start against ``python3 -c 'import yaml'``;
4. a fleet: the 5G core's UPF package fanned out one variant per edge cluster, each with its
   own injected cluster context, references checked against the SMF and AMF rendered once;
5. porch (full runs, or ``--only porch``; not in ``--quick`` by default, to keep CI cheap): a
   real porch v1.5.8 renders one package with ``hydrate`` vs a ``cat`` function mapped the same
   way, and a PackageVariantSet fans the UPF out to N = 10, 50, 100 clusters (``--porch-sizes``;
   ``--porch-hydrate-sizes`` with the blueprint's steps as one hydrate step), a fresh porch per
   size; peak memory of porch's processes, PackageVariant reconciles. Needs
   ``python3 -m tests.real.binaries``; ``python -m bench.porch_profile`` reads a kept stack's log.

Ratios are measured in the same run with our render and the floor interleaved; quote them,
not the single times (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import cold_start, fleet, generate, kptrun

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "blueprints" / "examples"
SECTIONS = ("example", "scaling", "cold_start", "fleet")
TITLES = {"example": "1. Example blueprint: functions vs kpt's passthrough floor",
          "scaling": "2. Generated packages: render time and peak memory vs the floor",
          "cold_start": "3. Cold start vs python3 -c 'import yaml'",
          "fleet": "4. Fleet: one render per variant",
          "porch": "5. Porch: render and fan-out through a real porch"}
# Opt-in in --quick runs: starting porch and rendering through it costs a minute or more.
OPT_IN = ("porch",)


FIVE_G_CORE = EXAMPLES / "5g-core"
FIVE_G_NFS = ("upf", "smf", "amf")  # three kpt packages: UPF on an edge cluster, SMF and AMF regional
HEADLINE_NF = "smf"  # the richest: N4 to another cluster, SBI, the SPIFFE CSI volume


def example_packages() -> list[tuple[Path, str]]:
    """The packages section 1 renders, one kpt render each: the 5G core's UPF, SMF and AMF."""
    if all((FIVE_G_CORE / nf / "Kptfile").is_file() for nf in FIVE_G_NFS):
        return [(FIVE_G_CORE / nf, f"5g-core/{nf}") for nf in FIVE_G_NFS]
    if (EXAMPLES / "authz-5g-like" / "Kptfile").is_file():
        return [(EXAMPLES / "authz-5g-like", "authz-5g-like (blueprints/examples/5g-core/{upf,smf,amf} missing)")]
    return [(EXAMPLES / "oran-focom-ims", "oran-focom-ims (the 5G examples are missing)")]


def example_package() -> tuple[Path, str]:
    """The headline package of section 1: the 5G core's SMF, else the only fallback package."""
    packages = example_packages()
    return next((p for p in packages if p[1] == f"5g-core/{HEADLINE_NF}"), packages[0])


def fleet_packages() -> tuple[Path, str, list[tuple[Path, str]]]:
    """What the fleet fans out, its label, and the rest of the deployment rendered once.

    The 5G core's UPF, one variant per edge cluster as Nephio's PackageVariantSet deploys it; its
    N4 rule names the regional SMF, so the SMF and AMF packages are rendered once (not injected)
    and the variants' references are checked against them too."""
    packages = example_packages()
    if len(packages) == 1:
        return packages[0][0], packages[0][1], []
    upf = packages[FIVE_G_NFS.index("upf")]
    rest = [p for p in packages if p != upf]
    return upf[0], f"{upf[1]} (one per edge cluster; references checked against " \
                   f"{' and '.join(label for _, label in rest)} rendered once)", rest


rules_api = generate.rules_api


def section_example(runs: int) -> dict[str, Any]:
    """One entry per package in ``packages``; the headline package's numbers also at the top
    level (``package``, ``functions``, ``hydrate``)."""
    missing = kptrun.hydrate_missing()
    packages = []
    for pkg, label in example_packages():
        entry: dict[str, Any] = {"package": label,
                                 "functions": kptrun.compare(f"{label}: separate functions", pkg, runs).as_dict()}
        if missing:
            entry["hydrate"] = {"skipped": f"spiffe-hydrate needs {', '.join(missing)}, not registered yet"}
            entry["rerender"] = entry["hydrate"]
        else:
            entry["hydrate"] = kptrun.compare(f"{label}: one-step hydrate", pkg, runs, hydrate=True).as_dict()
            entry["rerender"] = kptrun.compare_rerender(f"{label}: hydrate re-rendering its own output",
                                                        pkg, runs).as_dict()
        packages.append(entry)
        print(f"[bench] example {label} done", file=sys.stderr)
    head_label = example_package()[1]
    head = next(e for e in packages if e["package"] == head_label)
    return {"package": head_label, "runs": runs, "functions": head["functions"], "hydrate": head["hydrate"],
            "rerender": head["rerender"], "packages": packages}


def section_scaling(sizes: list[int], runs: int, big_runs: int, output_floor: bool = False) -> dict[str, Any]:
    pipeline = {"mutators": [{"image": kptrun.PROJECT_IMAGE + s.removeprefix("spiffe-") + ":v0.1.0"}
                             for s in kptrun.separate_steps()[:-1]],
                "validators": [{"image": kptrun.PROJECT_IMAGE + "validator:v0.1.0"}]}
    rows = []
    hydrate = not kptrun.hydrate_missing()
    with tempfile.TemporaryDirectory(prefix="spiffe-scaling-") as tmp:
        for n in sizes:
            pkg = generate.write_package(Path(tmp) / f"pkg-{n}", n, pipeline, rules=rules_api())
            r = runs if n < 10_000 else big_runs
            row = {"workloads": n, "resources": len(generate.items(n, rules=rules_api())) + 1,  # + the Kptfile
                   "functions": kptrun.compare(f"{n} workloads", pkg, r, output_floor=output_floor).as_dict()}
            if hydrate:
                row["hydrate"] = kptrun.compare(f"{n} workloads, hydrate", pkg, r, hydrate=True).as_dict()
            rows.append(row)
            shutil.rmtree(pkg)
    growth = []
    for a, b in zip(rows, rows[1:]):
        fa, fb = a["functions"], b["functions"]
        size = b["workloads"] / a["workloads"]
        growth.append({"from": a["workloads"], "to": b["workloads"], "size_x": size,
                       "added_time_x": _safe((fb["ours_s"] - fb["floor_s"]), (fa["ours_s"] - fa["floor_s"])),
                       "fn_rss_x": _safe(fb["fn_rss_kb"], fa["fn_rss_kb"])})
    return {"rows": rows, "growth": growth, "rules": rules_api(),
            "rules_note": "each identity with two ingress rules naming other identities" if rules_api() else
            "identities only: schemas/WorkloadIdentity.json has no spec.ingress yet (no rules to generate)"}


def _safe(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def section_cold_start(runs: int) -> dict[str, Any]:
    samples = cold_start.measure(runs)
    base = statistics.median(samples[cold_start.BASELINE])
    return {"runs": runs, "rows": [{"program": name, "median_ms": statistics.median(v) * 1000,
                                    "min_ms": min(v) * 1000, "max_ms": max(v) * 1000,
                                    "ratio": statistics.median(v) / base} for name, v in samples.items()]}


def section_fleet(variants: int, kpt_sample: int) -> dict[str, Any]:
    pkg, label, rest = fleet_packages()
    report = fleet.simulate(pkg, variants, kpt_sample, rest=[p for p, _ in rest]).as_dict()
    report["blueprint"] = label
    report["rendered_once"] = [name for _, name in rest]
    return report


# ---- report -----------------------------------------------------------------------------------

def _ratio(c: dict[str, Any]) -> str:
    failed = "" if c.get("ok", True) else " FAILED: " + "; ".join(e.strip() for e in c.get("errors", []))
    return f"{c['ratio_median']:.2f}x ({c['ratio_min']:.2f}..{c['ratio_max']:.2f}){failed}"


STARTS = {"script": "the installed console scripts",
          "image": "the images start them (python3 -S -m spiffe_kpt.<fn>)"}


def _cpu_ratio(c: dict[str, Any]) -> str:
    return f"{c['cpu_ratio_median']:.2f}x" if c.get("cpu_ratio_median") else "-"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Benchmark ({'quick' if report['quick'] else 'full'} run, {report['date']})", "",
             "Ratios are medians over interleaved runs of the same package in the same run "
             "(min..max in brackets); the floor is the same package with each of our pipeline steps "
             "replaced by `exec: cat`. The CPU time ratio compares the CPU time (user + system) of kpt and "
             "every process it ran: on a shared machine it moves far less with the other users' load. "
             f"Our steps start as {STARTS[report.get('start', 'script')]}.", ""]
    ex = report.get("example")
    if ex:
        packages = ex.get("packages") or [ex]
        names = ", ".join(e["package"] for e in packages)
        lines += [f"## {TITLES['example']}", "",
                  f"Packages: {names}, one render each; {ex['runs']} runs. Headline: {ex['package']}. "
                  "`re-render`: hydrate over the package it has already rendered against one `cat` over "
                  "that rendered package (the steady state: porch re-renders on every edit).", "",
                  "| package | pipeline | steps | ours (median) | floor (median) | ratio | CPU time ratio | fn peak RSS |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for entry in packages:
            for key, name in (("functions", "functions"), ("hydrate", "hydrate"), ("rerender", "hydrate re-render")):
                c = entry.get(key)
                if c is None:
                    continue
                if "skipped" in c:
                    lines.append(f"| {entry['package']} | {name} | - | - | - | skipped: {c['skipped']} | - | - |")
                else:
                    lines.append(f"| {entry['package']} | {name} | {len(c['steps'])} | {c['ours_s'] * 1000:.0f} ms | "
                                 f"{c['floor_s'] * 1000:.0f} ms | {_ratio(c)} | {_cpu_ratio(c)} | "
                                 f"{c['fn_rss_kb'] / 1024:.0f} MB |")
        lines.append("")
        floors = [(e["package"], e["rerender"]) for e in packages if "python_floor_cpu_s" in e.get("rerender", {})]
        if floors:
            lines += ["Re-render floors, CPU time of the whole render (median): one `cat` step; the step as a "
                      "Python passthrough started as the images start a function (`python3 -S`); the same "
                      "importing PyYAML; hydrate. The least a Python function can cost is the second.", "",
                      "| package | cat | python3 -S passthrough | + import yaml | hydrate |", "|---|---:|---:|---:|---:|"]
            for name, c in floors:
                lines.append(f"| {name} | {c['floor_cpu_s'] * 1000:.0f} ms | {c['python_floor_cpu_s'] * 1000:.0f} ms "
                             f"({c['python_floor_cpu_s'] / c['floor_cpu_s']:.2f}x) | {c['yaml_floor_cpu_s'] * 1000:.0f} ms "
                             f"({c['yaml_floor_cpu_s'] / c['floor_cpu_s']:.2f}x) | {c['ours_cpu_s'] * 1000:.0f} ms "
                             f"({c['ours_cpu_s'] / c['floor_cpu_s']:.2f}x) |")
            lines.append("")
    sc = report.get("scaling")
    if sc:
        lines += [f"## {TITLES['scaling']}", "", f"Generated packages ({sc['rules_note']}); steps: "
                  f"{', '.join(sc['rows'][0]['functions']['steps']) if sc['rows'] else '-'}.", "",
                  "`output floor`: the same cat steps over the package as our render leaves it (with the "
                  "resources the functions generate): kpt's own share of the added time.", "",
                  "| workloads | resources | runs | ours | floor | ratio | added | output floor | ratio to it | "
                  "fn peak RSS | kpt peak RSS (floor) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in sc["rows"]:
            for key in ("functions", "hydrate"):
                c = row.get(key)
                if not c:
                    continue
                name = f"{row['workloads']:,}" + (" (hydrate)" if key == "hydrate" else "")
                of = row["functions"]
                out_floor = (f"{of['output_floor_s']:.2f} s | {c['ours_s'] / of['output_floor_s']:.2f}x"
                             if "output_floor_s" in of and key == "functions" else "- | -")
                lines.append(f"| {name} | {row['resources']:,} | {c['runs']} | {c['ours_s']:.2f} s | "
                             f"{c['floor_s']:.2f} s | {_ratio(c)} | +{(c['ratio_median'] - 1) * 100:.0f}% | "
                             f"{out_floor} | {c['fn_rss_kb'] / 1024:.0f} MB | "
                             f"{c['kpt_rss_kb'] / 1024:.0f} MB ({c['kpt_floor_rss_kb'] / 1024:.0f} MB) |")
        if sc["growth"]:
            lines += ["", "Growth (size step: how the time our functions add and their peak RSS grow; "
                      "1.0 per 1.0 is linear):", ""]
            for g in sc["growth"]:
                t = f"{g['added_time_x']:.1f}x" if g["added_time_x"] else "n/a"
                m = f"{g['fn_rss_x']:.1f}x" if g["fn_rss_x"] else "n/a"
                lines.append(f"- {g['from']:,} -> {g['to']:,} workloads ({g['size_x']:.0f}x): added time {t}, "
                             f"function RSS {m}")
        if report.get("plot"):
            lines += ["", f"Plot: {report['plot']}"]
        lines.append("")
    cs = report.get("cold_start")
    if cs:
        lines += [f"## {TITLES['cold_start']}", "",
                  f"20-resource package, {cs['runs']} runs, interleaved; bytecode compiled, as pip and the "
                  "images install it.", "",
                  "| program | median | min..max | ratio |", "|---|---:|---:|---:|"]
        for r in cs["rows"]:
            lines.append(f"| {r['program']} | {r['median_ms']:.0f} ms | {r['min_ms']:.0f}..{r['max_ms']:.0f} ms | "
                         f"{r['ratio']:.2f}x |")
        lines.append("")
    fl = report.get("fleet")
    if fl:
        ks = fl.get("kpt_sample") or {}
        lines += [f"## {TITLES['fleet']}", "",
                  f"{fl['variants']:,} variants of {fl['blueprint']}, each with its own cluster name and region "
                  f"injected; rendered in-process (`spiffe_kpt.krm.runner.process`, the same YAML load and "
                  f"dump as under kpt, no kpt and no process start) with {fl['chain']}.", "",
                  f"- time per variant: median {fl['per_variant_ms_median']:.1f} ms "
                  f"({fl['per_variant_ms_min']:.1f}..{fl['per_variant_ms_max']:.1f}); whole fleet "
                  f"{fl['total_s']:.1f} s",
                  f"- failed variants: {len(fl['failed_variants'])}",
                  f"- identities: {fl['identities']:,} ({fl['fleet_unique_ids']:,} whose ID format promises "
                  f"fleet-wide uniqueness, {fl['cluster_unique_ids']:,} unique per cluster); duplicate IDs: "
                  f"{len(fl['duplicate_ids'])}",
                  f"- cross-cluster and federation references checked: {fl['references']:,}; unresolved: "
                  f"{len(fl['unresolved'])}"
                  + ("" if fl["references"] else " (the rendered packages name no other identity yet)")]
        if ks:
            lines.append(f"- real kpt sample: {ks['variants']} variants, {', '.join(ks['steps'])}: median "
                         f"{ks['per_variant_s_median'] * 1000:.0f} ms per variant, "
                         f"{ks['ratio_median']:.2f}x the cat floor; exit codes {ks['exit_codes']}")
        for item in fl["duplicate_ids"][:5] + fl["unresolved"][:5] + fl["failed_variants"][:5]:
            lines.append(f"  - {item}")
        lines.append("")
    if report.get("porch"):
        from . import porch
        lines += porch.markdown(report["porch"], TITLES["porch"])
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = report["scaling"]["rows"]
    n = [r["workloads"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.loglog(n, [r["functions"]["ours_s"] for r in rows], "o-", label="our functions (kpt fn render)")
    ax1.loglog(n, [r["functions"]["floor_s"] for r in rows], "s--", label="kpt + cat floor, same steps as ours")
    if all("hydrate" in r for r in rows):
        ax1.loglog(n, [r["hydrate"]["ours_s"] for r in rows], "^-", label="one-step hydrate")
        ax1.loglog(n, [r["hydrate"]["floor_s"] for r in rows], "v:", label="kpt + one cat step")
    ax1.set_xlabel("workloads (2 resources each)")
    ax1.set_ylabel("render time, s (median)")
    ax1.grid(True, which="both", alpha=.3)
    ax1.legend(fontsize=8)
    ax2.loglog(n, [r["functions"]["fn_rss_kb"] / 1024 for r in rows], "o-", label="function peak RSS")
    ax2.loglog(n, [r["functions"]["kpt_rss_kb"] / 1024 for r in rows], "s--", label="kpt peak RSS")
    ax2.set_xlabel("workloads")
    ax2.set_ylabel("MB")
    ax2.grid(True, which="both", alpha=.3)
    ax2.legend(fontsize=8)
    fig.suptitle("spiffe-kpt vs kpt's passthrough floor (same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="sizes 10 and 100, 3 runs, a fleet of 20 (CI)")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], help="e.g. 10,100,1000")
    ap.add_argument("--runs", type=int, help="kpt runs per measurement")
    ap.add_argument("--big-runs", type=int, default=1, help="runs at 10,000 workloads (default 1)")
    ap.add_argument("--fleet", type=int, help="fleet size")
    ap.add_argument("--kpt-sample", type=int, help="fleet variants also rendered with the real kpt")
    ap.add_argument("--output-floor", action="store_true",
                    help="also time the cat floor over the rendered package (kpt's cost for generated resources)")
    ap.add_argument("--only", choices=SECTIONS + OPT_IN, action="append", help="run only these sections")
    ap.add_argument("--start", choices=kptrun.START_MODES, default="script",
                    help="how kpt starts our steps: the console scripts (default) or as the images do, "
                         "python3 -S -m spiffe_kpt.<fn>")
    ap.add_argument("--porch-sizes", type=lambda s: [int(x) for x in s.split(",")],
                    help="PackageVariantSet fan-out sizes (default 10,50,100; 10 with --quick)")
    ap.add_argument("--porch-hydrate-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[],
                    help="fan-out sizes with the blueprint's five steps as one hydrate step (default none)")
    ap.add_argument("--out", type=Path, help="where bench.md/.json/.png go (default docs/, or a temporary "
                                             "directory with --quick so CI never rewrites the docs)")
    args = ap.parse_args(argv)
    q = args.quick
    sizes = args.sizes or ([10, 100] if q else [10, 100, 1000, 10_000])
    runs = args.runs or (3 if q else 5)
    variants = args.fleet or (20 if q else 1000)
    sample = args.kpt_sample if args.kpt_sample is not None else (2 if q else 5)
    only = args.only or list(SECTIONS) + ([] if q else list(OPT_IN))
    out = args.out or (Path(tempfile.mkdtemp(prefix="spiffe-bench-out-")) if q else REPO / "docs")
    out.mkdir(parents=True, exist_ok=True)
    if shutil.which("kpt") is None:
        print("python -m bench: kpt is not on PATH; install it from https://kpt.dev/installation/", file=sys.stderr)
        return 2

    kptrun.start = args.start
    report: dict[str, Any] = {"quick": q, "date": time.strftime("%Y-%m-%d %H:%M"), "sizes": sizes,
                              "start": args.start}
    t0 = time.perf_counter()
    if "example" in only:
        report["example"] = section_example(runs)
        print(f"[bench] example done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if "scaling" in only:
        report["scaling"] = section_scaling(sizes, runs, args.big_runs, args.output_floor)
        report["plot"] = plot(report, out / "bench.png")
        print(f"[bench] scaling done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if "cold_start" in only:
        report["cold_start"] = section_cold_start(max(runs, 5))
    if "fleet" in only:
        report["fleet"] = section_fleet(variants, sample)
    if "porch" in only:
        from . import porch
        report["porch"] = porch.measure(args.porch_sizes or ([10] if q else [10, 50, 100]), runs,
                                        args.porch_hydrate_sizes)
        print(f"[bench] porch done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if "scaling" in only and not report.get("plot"):
        report["plot_note"] = "matplotlib not installed (pip install -e '.[bench]'): no plot"
    text = markdown(report)
    (out / "bench.md").write_text(text + "\n")
    (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    print(text)
    print(f"[bench] wrote {out / 'bench.md'}, bench.json" + (", bench.png" if report.get("plot") else "")
          + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark command runs (reduced) in CI so it cannot rot; timings are never asserted.

`python -m bench --quick` renders with the real kpt, so this is a kpt test. What is asserted:
the report parses, has every section with numbers in it, and the correctness checks the
benchmark makes along the way (renders exit 0, the fleet has no duplicate SPIFFE IDs and no
unresolved references) hold.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("kpt") is None, reason="kpt is not on PATH")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "bench.md").read_text()
    assert md.strip() in proc.stdout  # the same report is printed
    return json.loads((out / "bench.json").read_text()), md


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_section_is_in_the_markdown(report) -> None:
    from bench.__main__ import SECTIONS, TITLES
    _, md = report
    for key in SECTIONS:
        assert f"## {TITLES[key]}" in md


def test_example_section_compares_with_the_floor(report) -> None:
    data, _ = report
    ex = data["example"]
    assert ex["package"]
    c = ex["functions"]
    assert c["ok"], c["errors"]
    assert c["runs"] == 3 and c["steps"] and all(s.startswith("spiffe-") for s in c["steps"])
    for key in ("ours_s", "floor_s", "ratio_median", "ratio_min", "ratio_max", "fn_rss_kb", "kpt_rss_kb"):
        assert _finite(c[key]), key
    assert c["ratio_min"] <= c["ratio_median"] <= c["ratio_max"]
    h = ex["hydrate"]
    # every function of hydrate is registered in this tree: it must run (the report's "skipped"
    # is for a tree that lacks one)
    assert h["ok"] and h["steps"] == ["spiffe-hydrate"], h
    # The steady state: hydrate re-rendering its own output, against cat over that output.
    r = ex["rerender"]
    assert r["ok"] and r["steps"] == ["spiffe-hydrate"] and _finite(r["ratio_median"]), r


def test_scaling_section_has_every_size(report) -> None:
    data, md = report
    sc = data["scaling"]
    assert [r["workloads"] for r in sc["rows"]] == [10, 100]
    for row in sc["rows"]:
        assert row["functions"]["ok"], row["functions"]["errors"]
        assert _finite(row["functions"]["ratio_median"]) and _finite(row["functions"]["fn_rss_kb"])
        assert f"| {row['workloads']:,} |" in md
    assert len(sc["growth"]) == 1


def test_cold_start_section_has_every_function(report) -> None:
    from spiffe_kpt import registry
    data, _ = report
    programs = {r["program"] for r in data["cold_start"]["rows"]}
    assert programs >= {*registry.FUNCTIONS, "spiffe-hydrate", "python3 -c 'import yaml'"}
    assert all(_finite(r["ratio"]) for r in data["cold_start"]["rows"])


def test_fleet_is_consistent(report) -> None:
    data, _ = report
    fl = data["fleet"]
    assert fl["variants"] == 20 and _finite(fl["per_variant_ms_median"])
    assert fl["failed_variants"] == []
    assert fl["identities"] > 0 and fl["identities"] == fl["fleet_unique_ids"] + fl["cluster_unique_ids"]
    assert fl["duplicate_ids"] == [] and fl["unresolved"] == []
    assert fl["kpt_sample"]["variants"] == 2 and fl["kpt_sample"]["exit_codes"] == [0]


def test_fleet_check_catches_a_duplicate_id(tmp_path) -> None:
    """The uniqueness check must be able to fail: without the injected cluster, every variant of a
    cluster-scoped format resolves to the same IDs."""
    from bench import fleet
    real = fleet.cluster_of
    try:
        fleet.cluster_of = lambda i: ("edge-same", "r")
        rep = fleet.simulate(REPO / "blueprints" / "examples" / "oran-focom-ims", 2, 0)
    finally:
        fleet.cluster_of = real
    assert rep.duplicate_ids, rep

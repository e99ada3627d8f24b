"""`python -m bench.ab` (same-run A/B of two trees) runs, so it cannot rot; timings are never asserted.

This tree against itself, one round, the SMF example and 10 generated workloads: a row per function
of the chain for each input, every ratio a finite positive number, and a base that is not a
checkout is refused with exit 2 and the reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHAIN = ("specializer", "attestation", "registration", "authorization", "access", "validator")


def test_ab_of_the_tree_against_itself_has_a_row_per_function_and_input() -> None:
    p = subprocess.run([sys.executable, "-m", "bench.ab", str(REPO), "--rounds", "1", "--sizes", "10"], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = re.findall(r"^\| (5g-core/smf|10 workloads) \| (\w+) \| (\d+) ms \| (\d+) ms \| ([\d.]+)x \| [\d.]+ / [\d.]+ MB \|$",
                      p.stdout, re.M)
    assert sorted((label, fn) for label, fn, *_ in rows) == \
        sorted((label, fn) for label in ("5g-core/smf", "10 workloads") for fn in CHAIN)
    assert all(float(r[4]) > 0 and int(r[2]) > 0 and int(r[3]) > 0 for r in rows)


def test_a_base_that_is_not_a_checkout_is_refused(tmp_path) -> None:
    p = subprocess.run([sys.executable, "-m", "bench.ab", str(tmp_path)], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "has no functions/spiffe_kpt" in p.stderr

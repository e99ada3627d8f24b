"""Same-run A/B of two trees of this project: each function as a process, on identical inputs.

    git worktree add --detach /tmp/base <rev>
    python -m bench.ab /tmp/base                  # this tree against the one at /tmp/base
    python -m bench.ab /tmp/base --rounds 9 --sizes 1000,5000

What a change costs or saves, with the machine's noise taken out as far as one run can: both trees
run the same function on the same bytes (this tree's output of the previous step, so both see the
input the chain gives it), alternately, ``--rounds`` times; the report is the median CPU time
(user + system of the process) and its ratio this/base, with both outputs' sizes (where they
differ, the two trees do different work on that input). A step that fails on either tree ends
that input's comparison with its error. Inputs: the 5G core's SMF package (the base's copy) and the
generated packages of ``--sizes`` workloads (bench.generate, with ingress rules; without access
grants, so a base without spiffe-access gets the same input). Functions missing in either tree are
skipped. Each tree runs as ``python3 -c 'from spiffe_kpt.<fn> import main; main()'`` with
PYTHONPATH at its ``functions`` directory, so no install is needed for the base; both trees' bytecode
is compiled first (without it the base pays for compiling every module in every process).
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from spiffe_kpt.krm import yamlio

from . import generate

REPO = Path(__file__).resolve().parent.parent
CHAIN = ("specializer", "attestation", "registration", "authorization", "access", "validator")


def resource_list(items: list[dict]) -> bytes:
    return yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items}).encode()


def generated(n: int) -> bytes:
    """n generated workloads as the oldest comparable base reads them: rules, no access API (no
    AccessGrants, no IdentityContext jwtIssuer)."""
    with_access, generate.access_api = generate.access_api, lambda: False
    try:
        items = generate.items(n, rules=generate.rules_api())
    finally:
        generate.access_api = with_access
    for it in items:
        it.setdefault("metadata", {}).setdefault("annotations", {})["config.kubernetes.io/path"] = "pkg.yaml"
    return resource_list(items)


def example(base: Path) -> bytes:
    """The 5G core's SMF package as the base has it (a newer tree must read it; the base may not
    know fields the example gained since)."""
    from tests.pkgtools import read_package  # items exactly as kpt sends them
    pkg = base / "blueprints" / "examples" / "5g-core" / "smf"
    return resource_list(read_package(pkg if pkg.is_dir() else REPO / pkg.relative_to(base)))


def run(tree: Path, fn: str, data: bytes) -> tuple[float, bytes, int]:
    """CPU seconds of one process of ``fn`` from ``tree``, its stdout and exit code."""
    env = dict(os.environ, PYTHONPATH=str(tree / "functions"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "-c", f"from spiffe_kpt.{fn} import main; main()"], input=data,
                       capture_output=True, env=env, cwd="/")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), p.stdout, p.returncode


def compare(base: Path, label: str, data: bytes, rounds: int) -> list[str]:
    fns = [f for f in CHAIN if (base / "functions" / "spiffe_kpt" / f).is_dir()
           and (REPO / "functions" / "spiffe_kpt" / f).is_dir()]
    inputs = {}
    for fn in fns:  # this tree's chain decides every step's input, the same bytes for both trees
        inputs[fn] = data
        _, out, code = run(REPO, fn, data)
        if code != 0:
            return [f"{label}: {fn} exited {code} on this tree; stopped"]
        data = out if fn != "validator" else data
    lines = []
    for fn in fns:
        ours, theirs, sizes = [], [], {}
        for r in range(rounds):
            order = ((REPO, ours), (base, theirs)) if r % 2 == 0 else ((base, theirs), (REPO, ours))
            for tree, acc in order:
                cpu, out, code = run(tree, fn, inputs[fn])
                if code != 0:
                    return lines + [f"{label}: {fn} of {tree} exited {code} on this input (its results: "
                                    f"{_errors(out)}); not comparable from here on"]
                acc.append(cpu)
                sizes[tree] = len(out)
        a, b = statistics.median(ours), statistics.median(theirs)
        lines.append(f"| {label} | {fn} | {b * 1000:.0f} ms | {a * 1000:.0f} ms | {a / b:.2f}x | "
                     f"{sizes[base] / 1e6:.2f} / {sizes[REPO] / 1e6:.2f} MB |")
    return lines


def _errors(out: bytes) -> str:
    try:
        results = (yamlio.load(out) or {}).get("results") or []
    except Exception:  # not a ResourceList: say so rather than fail the report
        return "output is not a ResourceList"
    return "; ".join(str(r.get("message", ""))[:200] for r in results if r.get("severity") == "error")[:600]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    ap.add_argument("base", type=Path, help="the other tree (a git worktree of the base revision)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000])
    args = ap.parse_args(argv)
    if not (args.base / "functions" / "spiffe_kpt").is_dir():
        print(f"python -m bench.ab: {args.base} has no functions/spiffe_kpt: give a checkout of this project",
              file=sys.stderr)
        return 2
    for tree in (REPO, args.base):  # both with bytecode, as pip installs them (PYTHONDONTWRITEBYTECODE is common)
        compileall.compile_dir(str(tree / "functions" / "spiffe_kpt"), quiet=1)
    print(f"base: {args.base}; {args.rounds} rounds, alternating; CPU time per process (median), bytecode "
          "compiled in both trees\n")
    print("| input | function | base | this tree | this/base | output base / this |\n"
          "|---|---|---:|---:|---:|---:|")
    cases = [("5g-core/smf", example(args.base))] + [(f"{n:,} workloads", generated(n)) for n in args.sizes]
    for label, data in cases:
        for line in compare(args.base, label, data, args.rounds):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

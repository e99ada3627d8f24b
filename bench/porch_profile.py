"""Where a porch fan-out spends its time, read from porch-server's log of a kept stack.

    SPIFFE_KPT_KEEP_STACK=1 python -m bench --only porch --porch-sizes 100
    python -m bench.porch_profile /tmp/skpt-XXXXXXXX      # the stack directory of one size

Per quarter of the variants (in the order porch finished their injected render): seconds per
variant in function evaluations (porch-server's ``[PASS]/[FAIL] "<image>" in <duration>``), in
``git push``, and the rest; and the time porch-server's ``CreatePackageRevision`` spends between
"Validating and preparing package creation" and "Creating draft" (where porch v1.5.8 lists every
package revision of the repository).
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path

_TS = re.compile(r"[IWE]\d{4} (\d\d:\d\d:\d\d\.\d+)")
_FN = re.compile(r'\[(?:PASS|FAIL)\] "[^"]+" in ([\d.]+)(ms|s|m)\b')
_PUSH = re.compile(r"git push completed.* in ([\d.]+)(ms|s)$")
_REQ = re.compile(r'requestID="([^"]+)"')


def _ts(line: str) -> float | None:
    m = _TS.match(line)
    return datetime.strptime(m.group(1), "%H:%M:%S.%f").timestamp() if m else None


def _seconds(value: str, unit: str) -> float:
    return float(value) * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def profile(stack_dir: Path) -> list[str]:
    lines = [(t, line) for line in (stack_dir / "porch-server.log").read_text(errors="replace").splitlines()
             if (t := _ts(line)) is not None]
    done = [t for t, line in lines if "Update operation completed for PackageRevisionResources" in line]
    clones = [t for t, line in lines if 'action="Clone"' in line and "Operation started" in line]
    fns = [(t, _seconds(*m.groups())) for t, line in lines if (m := _FN.search(line))]
    pushes = [(t, _seconds(*m.groups())) for t, line in lines if (m := _PUSH.search(line))]
    started: dict[str, float] = {}
    listing = []
    for t, line in lines:
        m = _REQ.search(line)
        if not m:
            continue
        if "Validating and preparing package creation" in line:
            started[m.group(1)] = t
        elif "Creating draft and preparing to save to Git" in line and m.group(1) in started:
            listing.append(t - started.pop(m.group(1)))
    if not done or not clones:
        return [f"{stack_dir}: no fan-out in porch-server.log"]
    out = [f"{len(done)} injected renders, {len(clones)} clones, {len(fns)} function evaluations"]
    q = max(1, len(done) // 4)
    prev = clones[0]
    for i in range(0, len(done), q):
        chunk = done[i:i + q]
        t1 = chunk[-1]
        f = sum(s for t, s in fns if prev < t <= t1)
        nf = sum(1 for t, _ in fns if prev < t <= t1)
        g = sum(s for t, s in pushes if prev < t <= t1)
        k = len(chunk)
        out.append(f"variants {i + 1:4d}-{i + k:4d}: {(t1 - prev) / k:5.1f} s/variant; functions {f / k:5.1f} "
                   f"({nf / k:.1f} runs, {f / max(nf, 1):.2f} s each), git push {g / k:.2f}, "
                   f"other {(t1 - prev - f - g) / k:5.1f}")
        prev = t1
    if listing:
        q = max(1, len(listing) // 4)
        out.append("CreatePackageRevision list+validate per draft, by quarter: " + ", ".join(
            f"{sum(listing[i:i + q]) / len(listing[i:i + q]):.2f} s" for i in range(0, len(listing), q)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for d in args:
        print("\n".join(profile(Path(d))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cold start of each function on a 20-resource package, against ``python3 -c 'import yaml'``.

Run: python -m bench.cold_start [runs]. Both are measured in the same run, interleaved, with
the same interpreter; the ratio is what to quote (these machines are noisy).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from spiffe_kpt import registry
from spiffe_kpt.krm import yamlio

from . import kptrun

REPO = Path(__file__).resolve().parent.parent


def package_text() -> str:
    sys.path.insert(0, str(REPO))
    from tests.pkgtools import read_package
    items = read_package(REPO / "blueprints" / "examples" / "oran-focom-ims")
    # Pad to 20 resources with ConfigMaps, as a small real package would have.
    while len(items) < 20:
        items.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{len(items)}"},
                      "data": {"k": "v"}})
    return yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})


# As installed (pip compiles bytecode; so do the images), not as a shell that sets
# PYTHONDONTWRITEBYTECODE: without .pyc files every start recompiles the package from source
# (docs/import-costs.md). Each command runs once untimed to write its .pyc.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], stdin: str, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False, env=env or ENV)
    return time.perf_counter() - t0


BASELINE = "python3 -c 'import yaml'"
# As the images start a function: ``python3 -S`` (no site-packages discovery, no .pth files), the
# package and PyYAML on PYTHONPATH. Against the bare interpreter started the same way.
IMAGE_BASELINE = "python3 -S -c pass"
IMAGE_HYDRATE = "spiffe-hydrate (python3 -S, as the images run it)"



def measure(runs: int) -> dict[str, list[float]]:
    """Seconds per start, interleaved: the baseline, then every registered function, per round."""
    text = package_text()
    baseline_cmd = [sys.executable, "-c", "import yaml"]
    cmds = {name: [sys.executable, "-c", f"import sys; from {mod} import main; main()"]
            for name, (mod, _) in registry.FUNCTIONS.items()}
    # The one-step chain is not in the registry (it is made of it) but is what porch runs.
    cmds["spiffe-hydrate"] = [sys.executable, "-c", "import sys; from spiffe_kpt.hydrate import main; main()"]
    image = {IMAGE_BASELINE: [sys.executable, "-S", "-c", "pass"],
             IMAGE_HYDRATE: [sys.executable, "-S", "-m", "spiffe_kpt.hydrate"]}
    env = kptrun.image_env()
    samples: dict[str, list[float]] = {BASELINE: [], **{n: [] for n in cmds}, **{n: [] for n in image}}
    for cmd in cmds.values():
        timed(cmd, text)  # warm-up: writes the bytecode
    for _ in range(runs):
        samples[BASELINE].append(timed(baseline_cmd, ""))
        for name, cmd in cmds.items():
            samples[name].append(timed(cmd, text))
        for name, cmd in image.items():
            samples[name].append(timed(cmd, text, env))
    return samples


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    samples = measure(runs)
    base = statistics.median(samples[BASELINE])
    print(f"cold start, 20-resource package, median of {runs} (min..max), ratio to import yaml")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"  {name:28s} {med * 1000:6.0f} ms ({min(values) * 1000:.0f}..{max(values) * 1000:.0f})"
              f"  {med / base:4.2f}x")


if __name__ == "__main__":
    main()

"""Render packages with the real ``kpt fn render`` and with kpt's passthrough floor, timed.

A measured render is a copy of the package whose Kptfile pipeline is replaced by a given list
of ``exec:`` steps. The floor is the same package with the same number of steps, each
``exec: cat``: what kpt itself costs (reading the files, serializing the ResourceList for
every step, parsing it back, restoring comments, writing the files). Every step, ours and
``cat`` alike, runs under ``/usr/bin/time -f %M`` so the peak RSS of each function process
is recorded; the wrapper costs both sides the same fork/exec.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spiffe_kpt import registry
from spiffe_kpt.krm import yamlio

TIME = "/usr/bin/time"
# The order the one-step chain runs them in (spiffe_kpt.hydrate), validator last.
CHAIN = ("spiffe-specializer", "spiffe-attestation", "spiffe-registration", "spiffe-authorization", "spiffe-access")
VALIDATOR = "spiffe-validator"


def separate_steps() -> list[str]:
    """The project's functions as separate pipeline steps: those registered today, in chain order."""
    return [n for n in CHAIN if n in registry.FUNCTIONS] + [VALIDATOR]


def hydrate_missing() -> list[str]:
    """Functions the one-step hydrate needs that are not registered yet (it fails without them)."""
    from spiffe_kpt.hydrate import MUTATORS
    from spiffe_kpt.hydrate import VALIDATOR as HV
    return [n for n in (*MUTATORS, HV) if n not in registry.FUNCTIONS]


@dataclass
class Render:
    seconds: float
    exit_code: int
    kpt_rss_kb: int
    step_rss_kb: list[int] = field(default_factory=list)
    stderr: str = ""
    steps: list[str] = field(default_factory=list)


PROJECT_IMAGE = "ghcr.io/spiffe-kpt/"
MODES = ("functions", "floor", "hydrate", "hydrate-floor")


def _project_step(entry: Any) -> str | None:
    """The console script of one of our steps (image or exec form), else None."""
    if not isinstance(entry, dict):
        return None
    image, exe = str(entry.get("image", "")), str(entry.get("exec", ""))
    if image.startswith(PROJECT_IMAGE):
        return "spiffe-" + image[len(PROJECT_IMAGE):].split(":")[0]
    if exe.startswith(TIME):  # a package this benchmark rendered before
        exe = exe.split()[-1]
    if exe.startswith("spiffe-") or exe == "cat":
        return exe.split()[0]
    return None


def set_pipelines(pkg: Path, mode: str, mem_dir: Path) -> list[str]:
    """Rewrite every Kptfile's pipeline in ``pkg`` for ``mode``; returns the steps in kpt's order.

    functions: our steps as the console scripts (what the package declares);
    floor: each of those steps replaced by ``cat``, the same number of steps;
    hydrate: all our steps of a Kptfile replaced by the one ``spiffe-hydrate`` step;
    hydrate-floor: that one step as ``cat``. Steps that are not ours stay as they are."""
    steps: list[str] = []

    def wrap(cmd: str) -> dict[str, Any]:
        i = len(steps)
        steps.append(cmd)
        return {"name": f"step-{i}", "exec": f"{TIME} -a -o {mem_dir}/rss-{i}.txt -f %M {cmd}"}

    for kptfile in sorted(pkg.rglob("Kptfile"), key=lambda p: (len(p.parts), str(p)), reverse=True):
        obj = yamlio.load(kptfile.read_text())
        pipeline = obj.get("pipeline") or {}
        ours = [_project_step(e) for e in (pipeline.get("mutators") or []) + (pipeline.get("validators") or [])]
        if not any(ours):
            continue
        new: dict[str, list] = {"mutators": [], "validators": []}
        if mode.startswith("hydrate"):
            new["mutators"] = [e for e in pipeline.get("mutators") or [] if not _project_step(e)]
            new["mutators"].append(wrap("cat" if mode == "hydrate-floor" else "spiffe-hydrate"))
            new["validators"] = [e for e in pipeline.get("validators") or [] if not _project_step(e)]
        else:
            for key in ("mutators", "validators"):
                for e in pipeline.get(key) or []:
                    fn = _project_step(e)
                    new[key].append(e if fn is None else wrap("cat" if mode == "floor" else fn))
        obj["pipeline"] = {k: v for k, v in new.items() if v}
        kptfile.write_text(yamlio.dump(obj))
    return steps


def render(src: Path, mode: str, keep: Path | None = None) -> Render:
    """Render a fresh copy of ``src`` in ``mode`` (see set_pipelines); times kpt, collects RSS.
    With ``keep``, the rendered package is copied there (its Kptfile pipeline as rewritten)."""
    with tempfile.TemporaryDirectory(prefix="spiffe-bench-") as tmp:
        work = Path(tmp) / src.name
        shutil.copytree(src, work, symlinks=True, ignore=shutil.ignore_patterns(".expected", ".results-*"))
        mem = Path(tmp) / "mem"
        mem.mkdir()
        steps = set_pipelines(work, mode, mem)
        kpt_mem = mem / "kpt.txt"
        cmd = [TIME, "-o", str(kpt_mem), "-f", "%M", "kpt", "fn", "render", "--allow-exec", str(work)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        steps_rss = []
        for i in range(len(steps)):
            f = mem / f"rss-{i}.txt"
            vals = [int(v) for v in f.read_text().split() if v.isdigit()] if f.exists() else []
            steps_rss.append(max(vals) if vals else 0)
        kpt_vals = [int(v) for v in kpt_mem.read_text().split() if v.isdigit()] if kpt_mem.exists() else []
        if keep is not None and proc.returncode == 0:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(work, keep, symlinks=True)
        return Render(seconds, proc.returncode, max(kpt_vals) if kpt_vals else 0, steps_rss,
                      proc.stderr[-2000:], steps)


@dataclass
class Comparison:
    """Medians over interleaved runs of the project's pipeline and the same-length cat floor."""

    label: str
    ours: list[Render]
    floor: list[Render]
    output_floor: list[Render] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [o.seconds / f.seconds for o, f in zip(self.ours, self.floor)]

    @property
    def ok(self) -> bool:
        return all(r.exit_code == 0 for r in self.ours + self.floor)

    def as_dict(self) -> dict[str, Any]:
        import statistics as st
        ratios = self.ratios
        return {
            "label": self.label, "steps": self.ours[0].steps if self.ours else [], "runs": len(self.ours), "ok": self.ok,
            "ours_s": st.median(r.seconds for r in self.ours),
            "floor_s": st.median(r.seconds for r in self.floor),
            "ratio_median": st.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "fn_rss_kb": max((max(r.step_rss_kb, default=0) for r in self.ours), default=0),
            "cat_rss_kb": max((max(r.step_rss_kb, default=0) for r in self.floor), default=0),
            "kpt_rss_kb": max((r.kpt_rss_kb for r in self.ours), default=0),
            "kpt_floor_rss_kb": max((r.kpt_rss_kb for r in self.floor), default=0),
            **({"output_floor_s": st.median(r.seconds for r in self.output_floor),
                "ratio_to_output_floor": st.median(o.seconds / f.seconds
                                                   for o, f in zip(self.ours, self.output_floor)),
                "kpt_output_floor_rss_kb": max(r.kpt_rss_kb for r in self.output_floor)}
               if self.output_floor else {}),
            "errors": sorted({r.stderr.strip().splitlines()[-1] for r in self.ours + self.floor
                              if r.exit_code != 0 and r.stderr.strip()}),
        }


def compare(label: str, pkg: Path, runs: int, hydrate: bool = False, output_floor: bool = False) -> Comparison:
    """Interleave our render and the floor so that machine noise hits both alike.

    With ``output_floor``, also the cat floor on the package as our render left it: kpt's own
    cost for the resources the functions generate (ServiceAccounts, registrations, policies,
    Kptfile conditions), which the input's floor cannot contain."""
    ours, floor, out_floor = [], [], []
    mode, floor_mode = ("hydrate", "hydrate-floor") if hydrate else ("functions", "floor")
    with tempfile.TemporaryDirectory(prefix="spiffe-bench-out-") as tmp:
        rendered = Path(tmp) / pkg.name
        for _ in range(runs):
            ours.append(render(pkg, mode, keep=rendered if output_floor else None))
            floor.append(render(pkg, floor_mode))
            if output_floor and rendered.exists():
                out_floor.append(render(rendered, floor_mode))
    c = Comparison(label, ours, floor)
    c.output_floor = out_floor
    return c

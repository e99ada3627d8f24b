"""Render packages with the real ``kpt fn render`` and with kpt's passthrough floor, timed.

A measured render is a copy of the package whose Kptfile pipeline is replaced by a given list
of ``exec:`` steps. The floor is the same package with the same number of steps, each
``exec: cat``: what kpt itself costs (reading the files, serializing the ResourceList for
every step, parsing it back, restoring comments, writing the files). Every step, ours and
``cat`` alike, runs under ``/usr/bin/time -f %M`` so the peak RSS of each function process
is recorded; the wrapper costs both sides the same fork/exec.

Every step runs its program as installed, by path: our console scripts from beside this
interpreter (where pip put them; not a version manager's shim found first on PATH, such as
pyenv's bash wrapper, which starts bash and pyenv before every step) and ``cat`` from PATH.
And with bytecode, as pip and the images install the functions: ``PYTHONDONTWRITEBYTECODE`` is
not passed on (kpt passes its environment to ``exec`` steps), since without ``.pyc`` files every
start recompiles the package (docs/import-costs.md).
"""

from __future__ import annotations

import compileall
import os
import resource
import shutil
import subprocess
import sys
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
    # CPU time (user + system) of kpt and every process it ran: on a shared machine far less
    # disturbed by the other users than the wall-clock seconds.
    cpu_seconds: float = 0.0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


PROJECT_IMAGE = "ghcr.io/spiffe-kpt/"
MODES = ("functions", "floor", "hydrate", "hydrate-floor", "hydrate-python", "hydrate-yaml")
# Python passthroughs as one step, started as the images start a function: the least any Python
# function costs, without and with PyYAML.
PASSTHROUGH = {
    "hydrate-python": "import sys\nsys.stdout.write(sys.stdin.read())\n",
    "hydrate-yaml": "import sys\nimport yaml\nsys.stdout.write(sys.stdin.read())\n",
}
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
# How our steps start: "script", the console script as pip installed it (site-packages, .pth files
# and all); "image", as the images start a function: ``python3 -S -m spiffe_kpt.<fn>`` with the
# package and PyYAML on PYTHONPATH (no site-packages discovery). ``python -m bench --start``.
START_MODES = ("script", "image")
start = "script"


def image_env() -> dict[str, str]:
    """ENV with PYTHONPATH holding the package and PyYAML, for ``python3 -S``."""
    import yaml

    import spiffe_kpt
    paths = [os.path.dirname(os.path.dirname(os.path.abspath(m.__file__))) for m in (spiffe_kpt, yaml)]
    return {**ENV, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def executable(name: str) -> str:
    """The program a step runs, by path: our console scripts beside this interpreter (or the
    interpreter started as the images start it), else PATH's."""
    if name.startswith("spiffe-") and start == "image":
        return f"{sys.executable} -S -m spiffe_kpt.{name.removeprefix('spiffe-').replace('-', '_')}"
    beside = Path(sys.executable).parent / name
    if name.startswith("spiffe-") and beside.is_file():
        return str(beside)
    return shutil.which(name) or name


def compile_bytecode() -> None:
    """Write the functions' .pyc files once, as pip does at install time."""
    import spiffe_kpt
    compileall.compile_dir(os.path.dirname(spiffe_kpt.__file__), quiet=1)


def _project_step(entry: Any) -> str | None:
    """The console script of one of our steps (image or exec form), else None."""
    if not isinstance(entry, dict):
        return None
    image, exe = str(entry.get("image", "")), str(entry.get("exec", ""))
    if image.startswith(PROJECT_IMAGE):
        return "spiffe-" + image[len(PROJECT_IMAGE):].split(":")[0]
    if exe.startswith(TIME):  # a package this benchmark rendered before
        exe = os.path.basename(exe.split()[-1])
        if exe.startswith("spiffe_kpt."):  # started as the images start it
            exe = "spiffe-" + exe.removeprefix("spiffe_kpt.").replace("_", "-")
    if exe.startswith("spiffe-") or exe == "cat":
        return exe.split()[0]
    return None


def set_pipelines(pkg: Path, mode: str, mem_dir: Path) -> list[str]:
    """Rewrite every Kptfile's pipeline in ``pkg`` for ``mode``; returns the steps in kpt's order.

    functions: our steps as the console scripts (what the package declares);
    floor: each of those steps replaced by ``cat``, the same number of steps;
    hydrate: all our steps of a Kptfile replaced by the one ``spiffe-hydrate`` step;
    hydrate-floor: that one step as ``cat``; hydrate-python and hydrate-yaml: as a Python passthrough
    (PASSTHROUGH). Steps that are not ours stay as they are."""
    steps: list[str] = []

    def wrap(cmd: str) -> dict[str, Any]:
        i = len(steps)
        steps.append(cmd)
        program = executable(cmd)
        if mode in PASSTHROUGH:
            script = mem_dir / "passthrough.py"
            script.write_text(PASSTHROUGH[mode])
            program = f"{sys.executable} -S {script}"
        return {"name": f"step-{i}", "exec": f"{TIME} -a -o {mem_dir}/rss-{i}.txt -f %M {program}"}

    for kptfile in sorted(pkg.rglob("Kptfile"), key=lambda p: (len(p.parts), str(p)), reverse=True):
        obj = yamlio.load(kptfile.read_text())
        pipeline = obj.get("pipeline") or {}
        ours = [_project_step(e) for e in (pipeline.get("mutators") or []) + (pipeline.get("validators") or [])]
        if not any(ours):
            continue
        new: dict[str, list] = {"mutators": [], "validators": []}
        if mode.startswith("hydrate"):
            new["mutators"] = [e for e in pipeline.get("mutators") or [] if not _project_step(e)]
            new["mutators"].append(wrap("spiffe-hydrate" if mode == "hydrate" else "cat"))
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
        cpu0, t0 = _children_cpu(), time.perf_counter()
        image = start == "image" or mode in PASSTHROUGH
        proc = subprocess.run(cmd, capture_output=True, text=True, env=image_env() if image else ENV)
        seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
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
                      proc.stderr[-2000:], steps, cpu)


@dataclass
class Comparison:
    """Medians over interleaved runs of the project's pipeline and the same-length cat floor."""

    label: str
    ours: list[Render]
    floor: list[Render]
    output_floor: list[Render] = field(default_factory=list)
    # Other floors of the same renders, by name (compare_rerender's Python passthroughs).
    floors: dict[str, list[Render]] = field(default_factory=dict)

    @property
    def ratios(self) -> list[float]:
        return [o.seconds / f.seconds for o, f in zip(self.ours, self.floor)]

    @property
    def ok(self) -> bool:
        return all(r.exit_code == 0 for r in self.ours + self.floor + [r for rs in self.floors.values() for r in rs])

    def as_dict(self) -> dict[str, Any]:
        import statistics as st
        ratios = self.ratios
        return {
            "label": self.label, "steps": self.ours[0].steps if self.ours else [], "runs": len(self.ours), "ok": self.ok,
            "ours_s": st.median(r.seconds for r in self.ours),
            "floor_s": st.median(r.seconds for r in self.floor),
            "ratio_median": st.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ours_cpu_s": st.median(r.cpu_seconds for r in self.ours),
            "floor_cpu_s": st.median(r.cpu_seconds for r in self.floor),
            "cpu_ratio_median": st.median(o.cpu_seconds / f.cpu_seconds if f.cpu_seconds else 0.0
                                          for o, f in zip(self.ours, self.floor)),
            "fn_rss_kb": max((max(r.step_rss_kb, default=0) for r in self.ours), default=0),
            "cat_rss_kb": max((max(r.step_rss_kb, default=0) for r in self.floor), default=0),
            "kpt_rss_kb": max((r.kpt_rss_kb for r in self.ours), default=0),
            "kpt_floor_rss_kb": max((r.kpt_rss_kb for r in self.floor), default=0),
            **({"output_floor_s": st.median(r.seconds for r in self.output_floor),
                "ratio_to_output_floor": st.median(o.seconds / f.seconds
                                                   for o, f in zip(self.ours, self.output_floor)),
                "kpt_output_floor_rss_kb": max(r.kpt_rss_kb for r in self.output_floor)}
               if self.output_floor else {}),
            **{f"{name}_s": st.median(r.seconds for r in renders) for name, renders in self.floors.items()},
            **{f"{name}_cpu_s": st.median(r.cpu_seconds for r in renders) for name, renders in self.floors.items()},
            "errors": sorted({r.stderr.strip().splitlines()[-1] for r in self.ours + self.floor
                              if r.exit_code != 0 and r.stderr.strip()}),
        }


def compare(label: str, pkg: Path, runs: int, hydrate: bool = False, output_floor: bool = False) -> Comparison:
    """Interleave our render and the floor so that machine noise hits both alike.

    With ``output_floor``, also the cat floor on the package as our render left it: kpt's own
    cost for the resources the functions generate (ServiceAccounts, registrations, policies,
    Kptfile conditions), which the input's floor cannot contain."""
    compile_bytecode()
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


def compare_rerender(label: str, pkg: Path, runs: int) -> Comparison:
    """The steady state: the one-step hydrate over a package it has already rendered, against one
    ``cat`` step over that same rendered package. What porch does on every edit of a package
    revision: the whole pipeline runs again over a package that is already hydrated. Also timed:
    the same step as a Python passthrough (``python_floor``) and one that imports PyYAML
    (``yaml_floor``), the least any Python function costs there."""
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="spiffe-bench-rendered-") as tmp:
        rendered = Path(tmp) / pkg.name
        first = render(pkg, "hydrate", keep=rendered)
        if first.exit_code != 0:
            return Comparison(label, [first], [first])
        ours, floor, python, yaml = [], [], [], []
        for _ in range(runs):
            ours.append(render(rendered, "hydrate"))
            floor.append(render(rendered, "hydrate-floor"))
            python.append(render(rendered, "hydrate-python"))
            yaml.append(render(rendered, "hydrate-yaml"))
    return Comparison(label, ours, floor, floors={"python_floor": python, "yaml_floor": yaml})

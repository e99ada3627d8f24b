"""Measure the YAML strategies a function could use on a ResourceList as kpt sends it.

Run: python -m bench.yaml_strategy [N]. N workloads (Deployment + WorkloadIdentity each, with
kpt's path/index/id annotations, quoted as kpt quotes them). Load and dump are timed
separately, each strategy interleaved with the others, median of 5; ratios are to the
previous yamlio (PyYAML's C loader and dumper with their Python constructors and
representers) measured in the same run. "same data" compares every value, its type and its
remembered quote style or number spelling with the previous loader: a parser that loses them
cannot keep a render byte-exact.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.yamlio import StyledStr

from . import generate


class ReferenceLoader(yamlio.Loader):
    """yamlio's loader before the fast paths: PyYAML's resolver and constructors."""


ReferenceLoader.resolve = yaml.resolver.BaseResolver.resolve
ReferenceLoader.descend_resolver = yaml.resolver.BaseResolver.descend_resolver
ReferenceLoader.ascend_resolver = yaml.resolver.BaseResolver.ascend_resolver


def reference_load(text: str) -> Any:
    return yaml.load(text, Loader=ReferenceLoader)  # noqa: S506 - safe loader


def resource_list(n: int) -> str:
    items = generate.items(n)
    for i, item in enumerate(items):
        ann = item.setdefault("metadata", {}).setdefault("annotations", {})
        path = f"workloads-{i // 200:04d}.yaml"
        for prefix in ("config.kubernetes.io/", "internal.config.kubernetes.io/"):
            ann[prefix + "index"] = StyledStr(str(i % 200), "'")
            ann[prefix + "path"] = StyledStr(path, "'")
        ann["internal.config.kubernetes.io/seqindent"] = StyledStr("compact", "'")
        ann["internal.config.kubernetes.io/id"] = StyledStr(str(i + 1), "'")
        ann["config.k8s.io/id"] = StyledStr(str(i + 1), "'")
    return yamlio.dump_pyyaml({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})


def view(x: Any) -> Any:
    if isinstance(x, dict):
        return [(view(k), view(v)) for k, v in x.items()]
    if isinstance(x, list):
        return [view(v) for v in x]
    return (type(x).__name__, x, getattr(x, "style", None), getattr(x, "text", None))


def strategies() -> list[tuple[str, Callable[[str], Any] | None, Callable[[Any], str] | None]]:
    out: list = [("previous yamlio: PyYAML C + Python constructors/representers (baseline)",
                  reference_load, yamlio.dump_pyyaml),
                 ("yamlio now: load (rapidyaml if installed) + fast emitter", yamlio.load, yamlio.dump),
                 ("yamlio now without rapidyaml: libyaml + tight constructor", yamlio.load_libyaml, None)]
    try:
        import ryml  # noqa: F401
        out.append(("rapidyaml path alone (style-keeping walk)", lambda t: yamlio._load_ryml(t.encode()), None))
    except ImportError:
        pass
    try:
        import yaml_rs
        out.append(("yaml-rs (Rust; no styles)", yaml_rs.loads, None))
    except ImportError:
        pass
    try:
        import yaml12
        out.append(("py-yaml12 (Rust; no styles)", yaml12.parse_yaml, None))
    except ImportError:
        pass
    try:
        import fast_yaml  # the fastyaml-rs package
        out.append(("fastyaml-rs (Rust; no styles)", fast_yaml.safe_load, None))
    except ImportError:
        pass
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    text = resource_list(n)
    ref = reference_load(text)
    ref_view = view(ref)
    strats = strategies()
    loads: dict[str, list[float]] = {s[0]: [] for s in strats}
    dumps: dict[str, list[float]] = {s[0]: [] for s in strats if s[2]}
    same: dict[str, str] = {}
    for r in range(runs):
        for name, load, dump in strats:
            t0 = time.perf_counter()
            data = load(text)
            loads[name].append(time.perf_counter() - t0)
            if r == 0:
                same[name] = "yes" if view(data) == ref_view else ("values only" if data == ref else "no")
            if dump:
                t0 = time.perf_counter()
                out = dump(ref)
                dumps[name].append(time.perf_counter() - t0)
                if r == 0 and dump is not yamlio.dump_pyyaml:
                    same[name] += ", dump byte-identical" if out == yamlio.dump_pyyaml(ref) else ", dump DIFFERS"
    base_l = statistics.median(loads[strats[0][0]])
    base_d = statistics.median(dumps[strats[0][0]])
    print(f"{n:,} workloads, {len(text) / 1e6:.1f} MB as kpt sends them; median of {runs}, interleaved; "
          "ratio = time / baseline (same run)")
    print()
    print("| strategy | load | ratio | dump | ratio | same data as before |")
    print("|---|---:|---:|---:|---:|---|")
    for name, _load, dump in strats:
        lm = statistics.median(loads[name])
        row = f"| {name} | {lm * 1000:.0f} ms | {lm / base_l:.2f}x | "
        if dump:
            dm = statistics.median(dumps[name])
            row += f"{dm * 1000:.0f} ms | {dm / base_d:.2f}x | "
        else:
            row += "- | - | "
        print(row + same[name] + " |")


if __name__ == "__main__":
    main()

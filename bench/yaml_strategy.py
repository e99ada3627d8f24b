"""Measure the YAML strategies a function could use on a ResourceList of N Deployments.

Run: python -m bench.yaml_strategy [N]. Prints the median of 5 round trips (load + dump) per
strategy and the ratio to PyYAML's C loader/dumper measured in the same run. The chosen
strategy is spiffe_kpt.krm.yamlio (PyYAML C + YAML 1.2 scalar fix-ups).
"""

from __future__ import annotations

import io
import statistics
import sys
import time

import yaml

from spiffe_kpt.krm import yamlio


def resource_list(n: int) -> str:
    items = []
    for i in range(n):
        items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": f"nf-{i}", "namespace": "core",
                                   "annotations": {"config.kubernetes.io/path": f"nf-{i}.yaml",
                                                   "internal.config.kubernetes.io/id": str(i)}},
                      "spec": {"selector": {"matchLabels": {"name": f"nf-{i}"}},
                               "template": {"metadata": {"labels": {"name": f"nf-{i}"}},
                                            "spec": {"containers": [{"name": "nf", "image": "nf:1.0",
                                                                     "ports": [{"containerPort": 8805,
                                                                                "protocol": "UDP"}]}]}}}})
    return yaml.safe_dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})


def strategies():
    yield "pyyaml-c (chosen: spiffe_kpt.krm.yamlio)", lambda t: yamlio.dump(yamlio.load(t))
    yield "pyyaml-pure", lambda t: yaml.dump(yaml.load(t, Loader=yaml.SafeLoader), Dumper=yaml.SafeDumper)
    try:
        from ruamel.yaml import YAML
    except ImportError:
        return
    rt = YAML()

    def ruamel_round_trip(t: str) -> str:
        buf = io.StringIO()
        rt.dump(rt.load(t), buf)
        return buf.getvalue()
    yield "ruamel.yaml round trip", ruamel_round_trip


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    text = resource_list(n)
    base = None
    print(f"{n} Deployments, {len(text) / 1e6:.1f} MB; median of 5 load+dump round trips")
    for name, fn in strategies():
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn(text)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        base = base or med
        print(f"  {name:45s} {med * 1000:8.0f} ms  {med / base:5.1f}x")


if __name__ == "__main__":
    main()

"""Does an identity's pod selector also match another workload's pods? One indexed pass.

spire-controller-manager gives a ClusterSPIFFEID's ID to every pod its selectors match, so a
selector that also matches a neighbour's pods hands the neighbour this identity: a silent
privilege grant. Pods are indexed by (namespace, label, value); an identity's candidates are
the pods of its rarest selector label, so the check costs O(workloads + labels) when each
workload has one label of its own (the normal case), never a pairwise comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..krm.results import ResourceRef


@dataclass(frozen=True)
class PodSet:
    """The pods one workload creates, as the API server will see them."""

    workload: ResourceRef
    namespace: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Overlap:
    selector_of: ResourceRef  # the workload whose identity selects too much
    also_matches: ResourceRef  # the other workload whose pods match


def find_overlaps(selectors: list[tuple[ResourceRef, str, Mapping[str, str]]],
                  pods: list[PodSet]) -> list[Overlap]:
    """For each (workload, namespace, selector) the other workloads' pods in that namespace it matches."""
    index: dict[tuple[str, str, str], list[PodSet]] = {}
    for p in pods:
        for k, v in p.labels.items():
            index.setdefault((p.namespace, k, v), []).append(p)
    out: list[Overlap] = []
    for wref, ns, sel in selectors:
        if not sel:
            continue
        candidates = min((index.get((ns, k, v), []) for k, v in sel.items()), key=len)
        for p in candidates:
            if p.workload != wref and all(p.labels.get(k) == v for k, v in sel.items()):
                out.append(Overlap(wref, p.workload))
    return out

"""Ownership of generated resources: mark them, replace them, delete them, never touch others.

Every resource a function generates carries two annotations naming its owner's Kptfile
condition type (``workloadidentity.nephio.org/v1alpha1.WorkloadIdentity.upf``): the project's
own ``workloadidentity.nephio.org/owner`` and Nephio's ``specializer.nephio.org/owner``, so
Nephio tooling reads them as children of our conditions. ``sync`` makes the package hold
exactly the desired generated resources of some kinds: owned ones are replaced in place (their
file, index and kpt ids kept, so comments and order survive), owned ones nobody wants any more
are deleted, and a hand-written resource with the same kind and name is never overwritten.
One pass over the items: packages of 10,000 resources stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import API_GROUP
from ..krm.resourcelist import (
    ANN_INDEX,
    ANN_INTERNAL_INDEX,
    ANN_INTERNAL_PATH,
    ANN_PATH,
    ResourceList,
    annotations,
    file_path,
    place,
    resource_ref,
)
from ..krm.results import Result

OWNER = f"{API_GROUP}/owner"
NEPHIO_OWNER = "specializer.nephio.org/owner"
# Annotations that tie an item to its place in the package; a replacement keeps them.
_PLACEMENT = (ANN_PATH, ANN_INDEX, ANN_INTERNAL_PATH, ANN_INTERNAL_INDEX, "internal.config.kubernetes.io/id",
              "config.k8s.io/id", "internal.config.kubernetes.io/seqindent",
              "internal.config.kubernetes.io/package-path")

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def key_of(obj: dict[str, Any]) -> Key:
    ref = resource_ref(obj)
    return ref.api_version, ref.kind, ref.namespace, ref.name


def mark(obj: dict[str, Any], owner: str) -> dict[str, Any]:
    ann = obj.setdefault("metadata", {}).setdefault("annotations", {})
    ann[OWNER] = owner
    ann[NEPHIO_OWNER] = owner
    return obj


def owner_of(obj: dict[str, Any]) -> str:
    """The owner condition type of a resource one of our functions generated, else ''."""
    owner = str(annotations(obj).get(OWNER, ""))
    return owner if owner.startswith(API_GROUP + "/") else ""


@dataclass
class Desired:
    obj: dict[str, Any]
    path: str  # where a new resource is written (an existing owned one keeps its file)


@dataclass
class SyncReport:
    created: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[tuple[Desired, dict[str, Any]]] = field(default_factory=list)


def sync(rl: ResourceList, kinds: frozenset[tuple[str, str]], desired: list[Desired],
         keep: Callable[[dict[str, Any]], bool] = lambda obj: False) -> SyncReport:
    """Make the owned resources of ``kinds`` in ``rl`` exactly ``desired``.

    A desired resource whose kind and name a hand-written one already has is not written and
    comes back in ``conflicts`` (the caller decides whether that is an error or means "the
    package already has it"). ``keep`` spares owned resources nobody desires any more."""
    report = SyncReport()
    owned: dict[Key, int] = {}
    written: dict[Key, dict[str, Any]] = {}
    taken: dict[str, int] = {}  # file path -> next free index
    for i, item in enumerate(rl.items):
        path = file_path(item)
        if path:
            idx = annotations(item).get(ANN_INTERNAL_INDEX, annotations(item).get(ANN_INDEX, "0"))
            n = int(idx) + 1 if str(idx).isdigit() else 1
            if n > taken.get(path, 0):
                taken[path] = n
        if (str(item.get("apiVersion", "")), str(item.get("kind", ""))) in kinds:
            (owned.__setitem__(key_of(item), i) if owner_of(item) else written.__setitem__(key_of(item), item))

    wanted: set[Key] = set()
    for d in desired:
        key = key_of(d.obj)
        if key in written:
            report.conflicts.append((d, written[key]))
            continue
        wanted.add(key)
        if key in owned:
            old = rl.items[owned[key]]
            old_ann = annotations(old)
            new_ann = d.obj.setdefault("metadata", {}).setdefault("annotations", {})
            for a in _PLACEMENT:
                if a in old_ann:
                    new_ann[a] = old_ann[a]
            if d.obj != old:
                report.updated.append(d.obj)
            rl.items[owned[key]] = d.obj
        else:
            index = taken.get(d.path, 0)
            taken[d.path] = index + 1
            place(d.obj, d.path, index)
            rl.items.append(d.obj)
            report.created.append(d.obj)

    stale = {i for key, i in owned.items() if key not in wanted and not keep(rl.items[i])}
    if stale:
        report.deleted = [rl.items[i] for i in sorted(stale)]
        rl.items[:] = [item for i, item in enumerate(rl.items) if i not in stale]
    return report


def conflict_message(d: Desired, theirs: dict[str, Any], owner: str) -> str:
    ref = resource_ref(theirs)
    where = file_path(theirs)
    return (f"{ref.kind} {ref.name} is already in the package{f' ({where})' if where else ''} and was not "
            f"generated by spiffe-kpt, so it is not overwritten; {owner} would generate a {ref.kind} of that "
            "name. Delete or rename the hand-written one, or add the annotation "
            f"{OWNER}: {owner} to hand it over to the generator")


def conflict_results(report: SyncReport, error: Callable[..., Result]) -> list[Result]:
    out = []
    for d, theirs in report.conflicts:
        owner = str(annotations(d.obj).get(OWNER, ""))
        out.append(error(conflict_message(d, theirs, owner), resource_ref(theirs), "metadata.name",
                         current_value=resource_ref(theirs).name))
    return out

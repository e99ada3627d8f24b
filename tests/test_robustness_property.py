"""Property: whatever a ResourceList holds, every function answers with a ResourceList and an
exit code that tells the truth.

For every console script's function, over mutated example packages (any field of any
resource replaced by a value of another type, deleted, or nested) and over YAML-level attacks
(aliases, deep nesting, tags, bytes that are not UTF-8, truncation):

- the exit code is 0 or 1, and 1 exactly when there is an error result;
- stdout is a ResourceList;
- on error the items are the input's items, unchanged;
- no internal error (an exception caught by the runner: a traceback the user does not see);
- memory stays bounded (peak RSS of the test process).

Hypothesis runs derandomized (a fixed seed) with a bounded number of examples, so CI runs the
same cases each time in about a minute; ``SPIFFE_KPT_FUZZ_EXAMPLES=N`` runs N per test instead.
"""

from __future__ import annotations

import copy
import os
import resource
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiffe_kpt import registry
from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.runner import process

from .pkgtools import EXAMPLES, read_package

EXAMPLES_PER_TEST = int(os.environ.get("SPIFFE_KPT_FUZZ_EXAMPLES", "100"))
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=EXAMPLES_PER_TEST,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PEAK_RSS_BYTES = 1536 << 20  # the biggest example package needs ~150 MB; a bomb needs gigabytes
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet")
PACKAGES = ("authz-5g-like", "5g-core/smf", "oran-focom-ims", "observability")


def _functions() -> dict[str, Any]:
    from spiffe_kpt.hydrate import hydrate
    from spiffe_kpt.spire_config import configure
    fns = {name: registry.get(name) for name in registry.FUNCTIONS}
    fns["spiffe-hydrate"] = hydrate
    fns["spiffe-spire-config"] = configure
    return fns


FUNCTIONS = _functions()


@cache
def _package(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(read_package(EXAMPLES / name))


def _wire(items: list[Any]) -> str:
    return yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def check_contract(text: str | bytes) -> None:
    """The contract of every function on one input."""
    try:
        source = yamlio.load(text)
    except yamlio.YAMLError:
        source = None
    source_items = source.get("items") if isinstance(source, dict) else None
    functions = list(FUNCTIONS.items())
    if source is None:
        # Refused by the YAML layer, which runs before any function's code and is the same for
        # all: one function per input (a different one each time) keeps the test within a minute.
        functions = [functions[len(text) % len(functions)]]
    for name, fn in functions:
        out, code = process(text, fn, name)
        assert code in (0, 1)
        doc = yamlio.load(out)
        assert isinstance(doc, dict) and doc["kind"] == "ResourceList" and isinstance(doc["items"], list)
        results = doc.get("results") or []
        errors = [r for r in results if r["severity"] == "error"]
        assert code == (1 if errors else 0), (name, results)
        internal = [r["message"] for r in errors if "internal error" in r["message"]]
        assert not internal, (name, internal)
        if code == 1 and isinstance(source_items, list):
            assert doc["items"] == source_items, f"{name} changed the items although it failed: {errors}"
    assert _peak_rss() < PEAK_RSS_BYTES


# ---- mutated packages ---------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.floats(allow_nan=False),
                    st.sampled_from(["", "x", "80", "http", "TCP", "spiffe://", "a/b", "-", "0644", "true",
                                     "10.0.0.0/33", "::1", "${x}", "{{ .Name }}", "null"]),
                    st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a resource, but not into the path/index annotations the test adds."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "annotations" or prefix != ("metadata",):
                out.extend(_paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, prefix + (i,)))
    return out


def _mutate(items: list[dict[str, Any]], index: int, path: tuple, action: str, value: Any) -> None:
    parent: Any = items[index]
    if not path:
        items[index] = value if action == "replace" else {"kind": value}
        return
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "wrap":
        parent[key] = [parent[key]] if not isinstance(parent[key], list) else {"x": parent[key]}
    else:
        parent[key] = value


@st.composite
def mutated_packages(draw: st.DrawFn) -> str:
    items = copy.deepcopy(list(_package(draw(st.sampled_from(PACKAGES)))))
    for _ in range(draw(st.integers(1, 3))):
        # The project's resources (WorkloadIdentity, IdentityContext, ...) and the workloads they
        # name hold most of what the functions read: they are drawn twice as often.
        weighted = [i for i, item in enumerate(items) for _ in range(
            2 if isinstance(item, dict) and ("nephio" in str(item.get("apiVersion"))
                                             or item.get("kind") in WORKLOADS) else 1)]
        index = draw(st.sampled_from(weighted))
        paths = _paths(items[index])
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "wrap"]))
        if action == "delete" and not path:
            action = "replace"
        _mutate(items, index, path, action, draw(VALUES))
    return _wire(items)


@FUZZ
@given(mutated_packages())
def test_every_function_keeps_the_contract_on_mutated_packages(text: str) -> None:
    check_contract(text)


# ---- YAML-level attacks -------------------------------------------------------------------

HEAD = ("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n")


@st.composite
def yaml_attacks(draw: st.DrawFn) -> str | bytes:
    kind = draw(st.sampled_from(["bomb", "recursive", "deep-flow", "deep-block", "tag", "bytes", "truncate",
                                 "splice"]))
    if kind == "bomb":
        width, levels = draw(st.integers(2, 10)), draw(st.integers(2, 12))
        lines = ["    l0: &l0 [" + ", ".join(["lol"] * width) + "]\n"]
        lines += [f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]\n" for i in range(1, levels)]
        return HEAD + "  data:\n" + "".join(lines)
    if kind == "recursive":
        return HEAD + draw(st.sampled_from(["  data: &a {x: *a}\n", "  x: &s [1, [2, *s]]\n"]))
    if kind == "deep-flow":
        # (9,990 levels load and round-trip in test_robustness_yaml; each such run takes seconds)
        depth = draw(st.sampled_from([900, 3000, 10_010, 50_000]))
        opener = draw(st.sampled_from(["[", "{a: "]))
        closer = "]" if opener == "[" else "}"
        return HEAD + "  x: " + opener * depth + "1" + closer * depth + "\n"
    if kind == "deep-block":
        return HEAD + "  x:\n  " + "- " * draw(st.sampled_from([900, 3000, 10_010, 40_000])) + "a\n"
    if kind == "tag":
        tag = draw(st.sampled_from(["!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary", "!!str",
                                    "!!map", "!!seq", "!!set", "!!omap", "!!merge", "!custom", "!!python/none"]))
        value = draw(st.sampled_from(["abc", "'1'", "[a]", "{a: b}", "0x" + "f" * 5000, "9" * 5000,
                                      "2024-13-45", "=", "<<"]))
        where = draw(st.sampled_from(["  x: {} {}\n", "  x: {{<<: {} {}}}\n", "  {} {}: 1\n"]))
        return HEAD + where.format(tag, value)
    text = _wire(copy.deepcopy(list(_package(draw(st.sampled_from(PACKAGES))))))
    if kind == "bytes":
        data = text.encode()
        at = draw(st.integers(0, len(data) - 1))
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x00", b"\xe2\x80\xa8", b"\x85", b"\xef\xbb\xbf"]))
        return data[:at] + junk + data[at:]
    if kind == "truncate":
        return text[:draw(st.integers(0, len(text)))]
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(["&a ", "*a", "!!int ", "? ", "- ", ": ", "{", "]", "\t",
                                             "<<: *a\n", "---\n", "%YAML 1.1\n"])) + text[at:]


@FUZZ
@given(yaml_attacks())
def test_every_function_keeps_the_contract_on_yaml_attacks(text: str | bytes) -> None:
    check_contract(text)

"""YAML-level attacks on a function's input: each is one error result and exit 1, never a
traceback, an unbounded expansion or a crash.

The limits are those of kpt's own parser, Go's yaml.v3: nesting up to 10,000 levels
(scannerc.go max_flow_level / max_indents) and its alias ratio rule (decode.go
allowedAliasRatio). What kpt reads we read; what it refuses we refuse with a result.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import pytest

from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.runner import process

HEAD = ("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n")


def _one_error(text: str | bytes) -> str:
    """Run a passthrough function; the output must be a ResourceList with exactly one error."""
    out, code = process(text, lambda rl: None, "t")
    doc = yamlio.load(out)
    assert code == 1, out[:500]
    assert doc["kind"] == "ResourceList"
    assert [r["severity"] for r in doc["results"]] == ["error"]
    return doc["results"][0]["message"]


def _billion_laughs(levels: int = 9) -> str:
    lines = ["  data:\n", "    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n")
    return HEAD + "".join(lines)


def test_alias_bomb_is_refused_quickly_and_small() -> None:
    text = _billion_laughs()
    assert len(text) < 1000  # 9**9 = 387 million strings once expanded: run it memory-bounded
    start = time.perf_counter()
    proc = _run_script(text.encode(), memory_mb=512)
    assert time.perf_counter() - start < 30
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    [result] = yamlio.load(proc.stdout)["results"]
    assert "excessive aliasing" in result["message"] and "line 8" in result["message"]


def test_moderate_aliasing_is_kept_as_kpt_keeps_it() -> None:
    # An anchor reused a few times is ordinary YAML: yaml.v3 accepts it and so do we (expanded).
    text = HEAD + "  data: &d {a: '1', b: '2'}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n  data: *d\n"
    out, code = process(text, lambda rl: None, "t")
    assert code == 0
    items = yamlio.load(out)["items"]
    assert items[0]["data"] == items[1]["data"] == {"a": "1", "b": "2"}
    assert "*" not in out and "&" not in out


def test_alias_ratio_follows_yaml_v3() -> None:
    # 1,000 plain nodes and 500 copied by aliases (33%): fine for yaml.v3 (99% allowed below
    # 400,000 decoded nodes); 10 anchors of 100 scalars each aliased 100 times (99.x%): refused.
    plain = "".join(f"    k{i}: v\n" for i in range(1000))
    ok = HEAD + "  data:\n" + plain + "    big: &big [" + ", ".join(["x"] * 100) + "]\n" + \
        "".join(f"    c{i}: *big\n" for i in range(5))
    out, code = process(ok, lambda rl: None, "t")
    assert code == 0 and len(yamlio.load(out)["items"][0]["data"]) == 1006
    bad = HEAD + "  data:\n    big: &big [" + ", ".join(["x"] * 100) + "]\n" + \
        "".join(f"    c{i}: [*big, *big, *big, *big, *big, *big, *big, *big, *big, *big]\n" for i in range(100))
    assert "excessive aliasing" in _one_error(bad)


@pytest.mark.parametrize("text", [
    HEAD + "  data: &a {x: *a}\n",
    HEAD + "  data: {x: &s [1, *s]}\n",
    "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: &i\n- apiVersion: v1\n  kind: X\n  x: *i\n",
], ids=["map", "seq", "items"])
def test_recursive_alias_is_refused(text: str) -> None:
    assert "recursive alias" in _one_error(text)


def _flow(depth: int) -> str:
    return HEAD + "  data: {x: '" + "[" * depth + "]" * depth + "'}\n  x: " + "[" * depth + "]" * depth + "\n"


def _chain(depth: int) -> str:
    return HEAD + "  x:\n  " + "- " * depth + "a\n"


@pytest.mark.parametrize("make", [_flow, _chain], ids=["flow", "block"])
def test_nesting_up_to_yaml_v3s_limit_round_trips(make) -> None:
    # 9,990 levels under the item (plus items and the item itself): kpt reads it, so do we, and
    # the output is the input (Python's default recursion limit made this a RecursionError at ~900).
    text = make(yamlio.MAX_DEPTH - 10)
    out, code = process(text, lambda rl: None, "t")
    assert code == 0
    assert out == text


@pytest.mark.parametrize("make", [_flow, _chain], ids=["flow", "block"])
@pytest.mark.parametrize("depth", [yamlio.MAX_DEPTH + 10, 300_000])
def test_nesting_past_the_limit_is_one_error_with_its_line(make, depth: int) -> None:
    # 300,000 levels overflow libyaml's C stack (a segfault, exit 139) without the check.
    message = _one_error(make(depth))
    assert "nested deeper than 10,000 levels" in message and ("at line 7" in message or "at line 8" in message)


def test_aliases_cannot_nest_past_the_limit() -> None:
    half = yamlio.MAX_DEPTH // 2 + 100
    text = HEAD + "  x: &a " + "[" * half + "]" * half + "\n  y: " + "[" * half + "*a" + "]" * half + "\n"
    assert "nested deeper than 10,000 levels" in _one_error(text)


def test_deep_nesting_in_a_large_input_takes_the_same_limit() -> None:
    # Above 256 KB the input goes through rapidyaml first (when installed).
    pad = "  pad: '" + "x" * 300_000 + "'\n"
    depth = yamlio.MAX_DEPTH + 10
    assert "nested deeper" in _one_error(HEAD + pad + "  x: " + "[" * depth + "]" * depth + "\n")
    ok = HEAD + pad + "  x: " + "[" * 9_000 + "]" * 9_000 + "\n"
    out, code = process(ok, lambda rl: None, "t")
    assert code == 0 and out == ok


@pytest.mark.parametrize("pad", ["", "  pad: '" + "x" * 300_000 + "'\n"], ids=["libyaml", "rapidyaml"])
def test_the_limit_is_exact_on_both_paths(pad: str) -> None:
    # The root map, items and the item are three levels: 3 + 9,997 = 10,000 levels load, one more
    # is refused, whether libyaml (small input) or rapidyaml (above 256 KB) parses it.
    def text(depth: int) -> str:
        return HEAD + pad + "  x: " + "[" * depth + "]" * depth + "\n"
    out, code = process(text(yamlio.MAX_DEPTH - 3), lambda rl: None, "t")
    assert code == 0 and out == text(yamlio.MAX_DEPTH - 3)
    assert "nested deeper than 10,000 levels" in _one_error(text(yamlio.MAX_DEPTH - 2))


def test_braces_in_scalars_keep_a_large_input_on_rapidyaml(monkeypatch) -> None:
    # 1,250 ClusterSPIFFEIDs carry 10,000 braces in their templates ("spiffe://{{ .TrustDomain }}"),
    # none of which nests anything: the input must not fall back to libyaml's path (2-3x slower
    # and 1.5x the memory; the fallback is what a brace count as the nesting bound did).
    template = "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"
    text = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n" + "".join(
        f"- apiVersion: spire.spiffe.io/v1alpha1\n  kind: ClusterSPIFFEID\n  metadata:\n    name: id-{i}\n"
        f"  spec:\n    spiffeIDTemplate: {template}\n" for i in range(1_700))
    assert len(text) > yamlio.RYML_MIN_BYTES and text.count("{") > yamlio.MAX_DEPTH

    def refuse(_text):
        raise AssertionError("a large input without anchors or tags went to libyaml's path")
    monkeypatch.setattr(yamlio, "load_libyaml", refuse)
    doc = yamlio.load(text)
    assert len(doc["items"]) == 1_700 and doc["items"][-1]["spec"]["spiffeIDTemplate"] == template


@pytest.mark.parametrize("value, expected", [
    ('!!int "abc"', "'abc' is not an integer"),
    ("!!int 0x", "'0x' is not an integer"),
    ("!!float abc", "'abc' is not a number"),
    ("!!bool maybe", "'maybe' is not a boolean"),
    ('!!bool "on the string"', "is not a boolean"),
    ("!!timestamp 2024-13-45", "'2024-13-45' is not a timestamp"),
    ("!!timestamp nope", "'nope' is not a timestamp"),
    ("0x" + "f" * 5000, "is not an integer"),
    ("9" * 5000, "is not an integer"),
    ("!!int " + "9" * 5000, "is not an integer"),
    ("!!map a", "needs a mapping, but found a scalar"),
    ("!!map [a]", "needs a mapping, but found a sequence"),
    ("!!seq {a: b}", "needs a sequence, but found a mapping"),
    ("!!seq a", "needs a sequence, but found a scalar"),
    ("!!str [a]", "expected a scalar node"),
    ("{!!merge <<: 5}", "expected a mapping or list of mappings for merging"),
    ("{!!merge <<: [5]}", "expected a mapping for merging"),
    ("{!!merge <<: !!map [a]}", "expected a mapping for merging"),
    ("{<<: !!seq {a: b}}", "needs a sequence, but found a mapping"),
])
def test_explicit_tag_that_does_not_fit_is_one_error_with_its_line(value: str, expected: str) -> None:
    message = _one_error(HEAD + f"  x: {value}\n")
    assert expected in message and "at line 7" in message


def test_well_typed_explicit_tags_still_load() -> None:
    doc = yamlio.load("a: !!int '7'\nb: !!float '1.5'\nc: !!bool 'true'\nd: !!str 7\ne: !!timestamp 2024-01-02\n")
    assert doc["a"] == 7 and doc["b"] == 1.5 and doc["c"] is True and doc["d"] == "7"
    assert str(doc["e"]) == "2024-01-02"


def test_non_utf8_bytes_in_a_large_input_are_one_error() -> None:
    # Above 256 KB rapidyaml parsed it and the walk raised UnicodeDecodeError.
    body = HEAD + "  data:\n" + "".join(f"    k{i}: v\n" for i in range(30_000))
    data = body.encode() + b"    z: \xff\xfe\n"
    assert len(data) > yamlio.RYML_MIN_BYTES
    assert "invalid leading UTF-8 octet" in _one_error(data)
    assert "invalid leading UTF-8 octet" in _one_error(HEAD.encode() + b"  z: \xff\n")


def _run_script(data: bytes, memory_mb: int = 1024) -> subprocess.CompletedProcess:
    def limit() -> None:  # bounded memory: a bomb would hit this and fail, not eat the machine
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    return subprocess.run([sys.executable, "-m", "spiffe_kpt.validator"], input=data, capture_output=True,
                          timeout=120, preexec_fn=limit)


@pytest.mark.parametrize("data", [
    _billion_laughs(10).encode(),
    _flow(1_000_000).encode(),
    _chain(1_000_000).encode(),
    HEAD.encode() + b"  x: !!int abc\n",
], ids=["bomb", "flow-1e6", "block-1e6", "tag"])
def test_console_script_answers_every_attack_with_a_result(data: bytes) -> None:
    proc = _run_script(data)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert b"Traceback" not in proc.stderr + proc.stdout
    doc = yamlio.load(proc.stdout)
    assert doc["kind"] == "ResourceList" and doc["results"][0]["severity"] == "error"
    assert len(proc.stdout) < 10_000

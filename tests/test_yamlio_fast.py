"""The fast emitter (krm/fastyaml.py) writes exactly what the PyYAML dumper writes.

Property: for random nested data of the kinds a ResourceList holds (dicts, lists, str, int,
float, bool, None, and the loader's StyledStr/IntText/FloatText), ``yamlio.dump`` is
byte-identical to ``yamlio.dump_pyyaml`` and reads back as the same data under YAML 1.2 (our
loader) and, for plain values, under YAML 1.1 (PyYAML's safe loader, what a Kubernetes-era
reader might be). Then the same on every example package and on generated packages.
"""

from __future__ import annotations

import math
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.yamlio import FloatText, FlowDict, FlowList, IntText, StyledStr

from .pkgtools import EXAMPLES, read_package

# Strings that stress the quoting rules: YAML keywords of both versions, numbers, indicators,
# spaces at the edges, line breaks, escapes, unicode.
TRICKY = ["yes", "No", "on", "OFF", "y", "true", "False", "null", "~", "", "0644", "0o17", "0x1F", "1e3",
          "1_000", "1:20", "2024-01-01", ".inf", "-.inf", ".nan", "=", "<<", "-", "- x", "? x", ":x",
          "a: b", "a #b", "#c", "x:", "*ref", "&anc", "!tag", "|", ">", "%", "@", "`", "'", '"', "{a}",
          "[a]", "a, b", " lead", "trail ", "tab\there", "two\nlines", "end\n", "keep\n\n", "\nstart",
          " \nx", "x \ny", "ünïcödé", "\x07bell", "\u2028", "\x85", "...", "---", "-- x", "spiffe://td/ns/a",
          "{{ .TrustDomain }}", "a\\b", "0.5", "+1", "-1", ".5", "1.", "12e", "0b101"]
SAFE_CHARS = st.characters(blacklist_categories=("Cs",))
strings = st.one_of(st.sampled_from(TRICKY), st.text(alphabet=string.printable, max_size=12),
                    st.text(alphabet=SAFE_CHARS, max_size=8))
styled = st.builds(StyledStr, strings, st.sampled_from(['"', "'", "|"]))
int_text = st.sampled_from([IntText(420, "0644"), IntText(31, "0x1F"), IntText(15, "0o17"), IntText(5, "+5")])
float_text = st.sampled_from([FloatText(1000.0, "1e3"), FloatText(1.5, "1.50"), FloatText(0.5, ".5")])
plain_scalars = st.one_of(strings, st.integers(), st.booleans(), st.none(),
                          st.floats(allow_nan=False))
scalars = st.one_of(plain_scalars, styled, int_text, float_text)
keys = st.one_of(strings.filter(lambda s: len(s) < 100), st.integers())


def nested(leaves):
    # Block and flow collections (as the loader marks the input's [a, b] and {k: v}), mixed.
    return st.recursive(leaves, lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(keys, kids, max_size=4),
        st.lists(kids, min_size=1, max_size=4).map(FlowList),
        st.dictionaries(keys, kids, min_size=1, max_size=4).map(FlowDict)), max_leaves=25)


documents = st.dictionaries(keys, nested(scalars), min_size=1, max_size=5)
plain_documents = st.dictionaries(strings.filter(lambda s: len(s) < 100), nested(plain_scalars),
                                  min_size=1, max_size=5)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b or (isinstance(a, str) and isinstance(b, str) and str(a) == str(b))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_fast_dump_is_byte_identical_to_pyyaml(doc) -> None:
    assert yamlio.dump(doc) == yamlio.dump_pyyaml(doc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_fast_dump_reads_back_as_the_same_data(doc) -> None:
    back = yamlio.load(yamlio.dump(doc))
    assert back == doc
    # Styles and spellings survive: a second round trip writes the same bytes.
    assert yamlio.dump(back) == yamlio.dump(doc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_documents)
def test_fast_dump_reads_the_same_under_yaml_1_1(doc) -> None:
    assert _same(yaml.safe_load(yamlio.dump(doc)), doc)


def test_fast_path_is_taken_for_a_resource_list() -> None:
    """The speed claim needs the fast path: a ResourceList must not fall back to PyYAML."""
    items = read_package(EXAMPLES / "oran-focom-ims")
    yamlio._fast_dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})


def test_unsupported_data_falls_back_to_pyyaml() -> None:
    long_key = {"k" * 200: 1}
    assert yamlio.dump(long_key) == yamlio.dump_pyyaml(long_key)
    with pytest.raises(yamlio._fast.Unsupported):
        yamlio._fast_dump(long_key)
    assert yamlio.dump({"t": (1, 2)}) == yamlio.dump_pyyaml({"t": (1, 2)})


@pytest.mark.parametrize("pkg", sorted(p.parent for p in EXAMPLES.rglob("Kptfile")), ids=lambda p: p.name)
def test_examples_dump_identically(pkg) -> None:
    doc = {"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": read_package(pkg)}
    assert yamlio.dump(doc) == yamlio.dump_pyyaml(doc)


def test_generated_package_dumps_identically() -> None:
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import generate
    doc = {"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": generate.items(200)}
    assert yamlio.dump(doc) == yamlio.dump_pyyaml(doc)


# ---- the loader ---------------------------------------------------------------------------------

class _ReferenceLoader(yamlio.Loader):
    """The loader as it was before the fast paths: PyYAML's own resolver and constructors."""


_ReferenceLoader.resolve = yaml.resolver.BaseResolver.resolve
_ReferenceLoader.descend_resolver = yaml.resolver.BaseResolver.descend_resolver
_ReferenceLoader.ascend_resolver = yaml.resolver.BaseResolver.ascend_resolver


def reference_load(text):
    return yaml.load(text, Loader=_ReferenceLoader)  # noqa: S506 - safe loader


def _styled_view(x):
    """Data with every scalar's type and remembered style/spelling, and every collection's
    block or flow style, made visible to ==."""
    if isinstance(x, dict):
        return [(type(x).__name__, _styled_view(k), _styled_view(v)) for k, v in x.items()]
    if isinstance(x, list):
        return [type(x).__name__, *[_styled_view(v) for v in x]]
    if isinstance(x, float) and math.isnan(x):
        return (type(x).__name__, "nan", getattr(x, "text", None))
    return (type(x).__name__, x, getattr(x, "style", None), getattr(x, "text", None))


def _ryml_or_fallback(text):
    # rapidyaml refuses a few valid inputs (e.g. a key starting with '-' right after an
    # indentless sequence); yamlio.load then parses with libyaml. What must never happen is
    # rapidyaml returning different data, which is what these tests look for.
    try:
        return yamlio._load_ryml(text.encode())
    except yamlio._fast.Unsupported:
        return yamlio.load_pyyaml(text)


LOADERS = {"libyaml+build": lambda t: yamlio.load(t) if len(t) < yamlio.RYML_MIN_BYTES else None,
           "rapidyaml": _ryml_or_fallback}


def _has_ryml() -> bool:
    try:
        import ryml  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.fixture(params=[n for n in LOADERS if n != "rapidyaml" or _has_ryml()])
def fast_load(request):
    return LOADERS[request.param]


def _kpt_like_texts():
    """Every example file as written, and every example as the ResourceList kpt sends."""
    for pkg in sorted(p.parent for p in EXAMPLES.rglob("Kptfile")):
        yield f"{pkg.name}:resourcelist", yamlio.dump(
            {"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": read_package(pkg)})
        for f in sorted(pkg.glob("*.yaml")) + [pkg / "Kptfile"]:
            for i, doc in enumerate(f.read_text().split("\n---\n")):
                yield f"{pkg.name}/{f.name}#{i}", doc


@pytest.mark.parametrize("name,text", list(_kpt_like_texts()), ids=lambda v: v if len(v) < 60 else "")
def test_loader_equals_reference_on_examples(fast_load, name, text) -> None:
    assert _styled_view(fast_load(text)) == _styled_view(reference_load(text)), name


def test_loader_equals_reference_on_kpt_output(fast_load, tmp_path) -> None:
    """A generated package as kpt itself serializes it (an exec step that tees its input)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    if shutil.which("kpt") is None:
        pytest.fail("kpt is not on PATH: install it (https://kpt.dev/installation/); .ci/run requires it")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import generate
    captured = tmp_path / "rl.yaml"
    pkg = generate.write_package(tmp_path / "pkg", 50, {"mutators": [{"exec": f"tee {captured}"}]})
    (pkg / "notes.yaml").write_text(
        "# a comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes # trailing\n"
        "data:\n  single: 'it''s'\n  double: \"tab\\tnl\\n\"\n  block: |\n    a: b\n     indented\n"
        "  keep: |+\n    x\n\n  strip: |-\n    y\n  folded: >\n    f\n    g\n  octal: 0644\n  hex: 0x1F\n"
        "  yes11: yes\n  date: 2024-01-01\n  empty:\n  tilde: ~\n  flow: {a: [1, '2', \"3\"]}\n"
        "  float: 1e3\n  inf: -.inf\n  \"8080\": quoted key\n  unicode: ünï\n")
    subprocess.run(["kpt", "fn", "render", "--allow-exec", str(pkg)], check=True, capture_output=True)
    text = captured.read_text()
    assert _styled_view(fast_load(text) if fast_load(text) is not None else reference_load(text)) == \
        _styled_view(reference_load(text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(documents)
def test_loader_equals_reference_on_random_documents(fast_load, doc) -> None:
    text = yamlio.dump_pyyaml(doc)
    assert _styled_view(fast_load(text)) == _styled_view(reference_load(text))


def test_loader_falls_back_on_anchors_tags_and_errors() -> None:
    big = " " * yamlio.RYML_MIN_BYTES
    assert yamlio.load("a: &x [1]\nb: *x\n" + big) == {"a": [1], "b": [1]}
    assert yamlio.load("a: !!str 1\n" + big) == {"a": "1"}
    with pytest.raises(yamlio.YAMLError):
        yamlio.load("a: [\n" + big)
    with pytest.raises(yamlio.YAMLError):
        yamlio.load("a: [\n")


def test_rapidyaml_takes_a_resource_list_without_falling_back() -> None:
    """The speed claim needs the rapidyaml path to accept what kpt sends."""
    if not _has_ryml():
        pytest.fail("rapidyaml is not installed: it is a dependency (pip install -e .)")
    items = read_package(EXAMPLES / "oran-focom-ims")
    text = yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items})
    assert _styled_view(yamlio._load_ryml(text.encode())) == _styled_view(reference_load(text))

"""YAML reading and writing for ResourceLists, tuned for speed and for kpt's round trip.

Strategy, chosen by measurement (numbers in docs/yaml-strategy.md, reproduced by
``python -m bench.yaml_strategy``): PyYAML with its libyaml C loader and dumper. A
ruamel.yaml round trip keeps comments but is about 8x slower on a 10,000-resource package,
and it is not needed: kpt restores comments and field order itself from the
``internal.config.kubernetes.io/id`` annotations, which we pass through untouched.

Two YAML 1.1 habits of PyYAML are removed because kpt (Go, yaml.v3) speaks YAML 1.2:
``yes``/``no``/``on``/``off`` are strings, not booleans, and ``2024-01-01`` or ``1:20`` are
strings, not dates or sexagesimal numbers. The dumper keeps PyYAML's wider YAML 1.1 quoting,
which only ever adds quotes, so the output reads the same in both YAML versions.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

from . import fastyaml as _fast
from .yamltypes import (
    BOOL_TAG,
    FLOAT_TAG,
    INT_TAG,
    MAP_TAG,
    NULL_TAG,
    SEQ_TAG,
    STR_TAG,
    FloatText,
    FlowDict,
    FlowList,
    IntText,
    StyledStr,
)

try:  # libyaml is in every PyYAML wheel; the pure-Python fallback is far slower (docs/import-costs.md).
    from yaml import CSafeDumper as _BaseDumper
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader with YAML 1.2 core-schema scalars (as kpt's Go yaml.v3 reads them)."""


Loader.yaml_implicit_resolvers = {}
_RESOLVERS_12 = [
    (BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (INT_TAG,
     re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")),
    (FLOAT_TAG,
     re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789.")),
    (NULL_TAG, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
]
for _tag, _regexp, _first in _RESOLVERS_12:
    Loader.add_implicit_resolver(_tag, _regexp, _first)


def _int_from_text(text: str) -> int:
    body = text.lstrip("+-")
    if body.startswith("0o"):
        value = int(body[2:], 8)
    elif body.startswith("0x"):
        value = int(body[2:], 16)
    elif len(body) > 1 and body.startswith("0"):
        value = int(body, 8) if set(body) <= set("01234567") else int(body, 10)
    else:
        value = int(body, 10)
    if text.startswith("-"):
        value = -value
    return value if str(value) == text else IntText(value, text)


def _float_from_text(text: str) -> float:
    # SafeConstructor.construct_yaml_float for the spellings the YAML 1.2 resolver admits.
    body = text.replace("_", "").lower()
    sign = -1.0 if body.startswith("-") else 1.0
    if body[:1] in "+-":
        body = body[1:]
    if body == ".inf":
        value = sign * float("inf")
    elif body == ".nan":
        value = float("nan")
    else:
        value = sign * float(body)
    return value if repr(value) == text else FloatText(value, text)


def _construct_int(loader: Loader, node: yaml.ScalarNode) -> int:
    return _int_from_text(loader.construct_scalar(node))


def _construct_float(loader: Loader, node: yaml.ScalarNode) -> float:
    return _float_from_text(loader.construct_scalar(node))


def _checked(construct: Any, what: str) -> Any:
    """A scalar constructor whose failures on a value that does not fit the tag (an explicit
    ``!!int "abc"``, ``!!bool maybe``, ``!!timestamp 2024-13-45``, an integer of more than
    4,300 digits) are YAML errors with the node's line, not a ValueError/KeyError traceback.
    Only explicitly tagged or absurd scalars get here: the implicit resolvers admit only
    spellings these constructors read."""

    def checked(loader: Loader, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"the tag {node.tag} needs a scalar, but found a {node.id}", node.start_mark)
        try:
            return construct(loader, node)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
            value = str(node.value)
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown!r} is not {what} (tag {node.tag}, {type(exc).__name__})",
                node.start_mark) from None

    return checked


def _construct_str(loader: Loader, node: yaml.ScalarNode) -> str:
    value = loader.construct_scalar(node)
    # Folded ('>') scalars are written back as ordinary strings: with the dumper's unlimited
    # width a folded block would collapse to one line anyway.
    if node.style in ('"', "'", "|"):
        return StyledStr(value, node.style)
    return value


def _expect(node: yaml.Node, kind: type, what: str) -> None:
    # An explicit !!seq / !!map on the wrong kind of node (or a !!merge value that is neither):
    # a YAML error with the line, where PyYAML's constructors raised an AttributeError.
    if not isinstance(node, kind):
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag {node.tag} needs a {what}, but found a {node.id}", node.start_mark)


def _construct_seq(loader: Loader, node: yaml.SequenceNode) -> Any:
    # SafeConstructor.construct_yaml_seq, keeping the flow style.
    _expect(node, yaml.SequenceNode, "sequence")
    data: list = FlowList() if node.flow_style and node.value else []
    yield data
    data.extend(loader.construct_sequence(node))


def _construct_map(loader: Loader, node: yaml.MappingNode) -> Any:
    # SafeConstructor.construct_yaml_map, keeping the flow style.
    _expect(node, yaml.MappingNode, "mapping")
    data: dict = FlowDict() if node.flow_style and node.value else {}
    yield data
    data.update(loader.construct_mapping(node))


Loader.add_constructor(STR_TAG, _construct_str)
Loader.add_constructor(SEQ_TAG, _construct_seq)
Loader.add_constructor(MAP_TAG, _construct_map)
Loader.add_constructor(INT_TAG, _checked(_construct_int, "an integer"))
Loader.add_constructor(FLOAT_TAG, _checked(_construct_float, "a number"))
Loader.add_constructor(BOOL_TAG, _checked(yaml.SafeLoader.construct_yaml_bool, "a boolean"))
Loader.add_constructor(NULL_TAG, _checked(yaml.SafeLoader.construct_yaml_null, "null"))
Loader.add_constructor("tag:yaml.org,2002:timestamp",
                       _checked(yaml.SafeLoader.construct_yaml_timestamp, "a timestamp"))
Loader.add_constructor("tag:yaml.org,2002:binary", _checked(yaml.SafeLoader.construct_yaml_binary, "base64"))


class Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """Block-style dumper: multi-line strings (config files in ConfigMaps) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        # A function may put one dict in two places (a label map on a pod template and a
        # selector); the files must get two plain copies, never &id001 anchors and aliases.
        return True




def _represent_str(dumper: Dumper, data: str) -> yaml.ScalarNode:
    # Literal style keeps server.conf and similar readable in the written files; trailing
    # spaces on a line would make libyaml fall back to quoting, which is still correct.
    if "\n" in data:
        return dumper.represent_scalar(STR_TAG, data, style="|")
    # A string that would read as another type is double-quoted, as Go's yaml.v3 (kpt) does.
    if dumper.resolve(yaml.ScalarNode, data, (True, False)) != STR_TAG:
        return dumper.represent_scalar(STR_TAG, data, style='"')
    return dumper.represent_scalar(STR_TAG, data)


def _represent_styled(dumper: Dumper, data: StyledStr) -> yaml.ScalarNode:
    style = data.style
    if style == "|" and "\n" not in data:
        style = '"'
    return dumper.represent_scalar(STR_TAG, str(data), style=style)


# The dumper quotes any string that either YAML version would read as something else: the
# YAML 1.1 resolvers of SafeDumper plus the YAML 1.2 integer and float spellings.
Dumper.add_implicit_resolver(INT_TAG, _RESOLVERS_12[1][1], _RESOLVERS_12[1][2])
Dumper.add_implicit_resolver(FLOAT_TAG, _RESOLVERS_12[2][1], _RESOLVERS_12[2][2])
Dumper.add_representer(str, _represent_str)
Dumper.add_representer(StyledStr, _represent_styled)
Dumper.add_representer(FlowList, lambda d, v: d.represent_sequence(SEQ_TAG, v, flow_style=True))
Dumper.add_representer(FlowDict, lambda d, v: d.represent_mapping(MAP_TAG, v, flow_style=True))
Dumper.add_representer(IntText, lambda d, v: d.represent_scalar(INT_TAG, v.text))
Dumper.add_representer(FloatText, lambda d, v: d.represent_scalar(FLOAT_TAG, v.text))


def load_pyyaml(text: str | bytes) -> Any:
    """The reference loader: PyYAML's constructors. ``load`` returns equal data, styles included."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a safe loader


_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ = STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG, MAP_TAG, SEQ_TAG
_FIRST = {ch: tuple((tag, rx) for tag, rx in rs) for ch, rs in Loader.yaml_implicit_resolvers.items()}


class _Fallback(Exception):
    pass


def _resolve(self: Loader, kind: Any, value: str, implicit: tuple[bool, bool]) -> str:
    # BaseResolver.resolve without the path-resolver machinery we never use: libyaml calls it
    # once per node from C.
    if kind is yaml.ScalarNode:
        if implicit[0]:
            for tag, rx in _FIRST.get(value[:1], ()):
                if rx.match(value):
                    return tag
        return _STR
    return _MAP if kind is yaml.MappingNode else _SEQ


def _noop(*_args: Any) -> None:
    return None


Loader.resolve = _resolve
Loader.descend_resolver = _noop
Loader.ascend_resolver = _noop
_BOOL_VALUES = yaml.SafeLoader.bool_values


def _build(loader: Loader, node: yaml.Node) -> Any:
    """The same data as PyYAML's constructors for the plain tags of a ResourceList, in one tight
    recursion (PyYAML's generic construct_object was ~60% of load time on 10,000 workloads).
    Any other tag (explicit !!binary, !!timestamp, !!merge, custom tags) raises _Fallback."""
    cls = node.__class__
    if cls is yaml.ScalarNode:
        tag = node.tag
        if tag == _STR:
            style = node.style
            if style == '"' or style == "'" or style == "|":
                return StyledStr(node.value, style)
            return node.value
        if tag == _INT:
            return _construct_int(loader, node)
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return _BOOL_VALUES[node.value.lower()]
        if tag == _FLOAT:
            return _construct_float(loader, node)
        raise _Fallback(tag)
    if cls is yaml.MappingNode:
        if node.tag != _MAP:
            raise _Fallback(node.tag)
        out = FlowDict() if node.flow_style and node.value else {}
        for key_node, value_node in node.value:
            out[_build(loader, key_node)] = _build(loader, value_node)
        return out
    if node.tag != _SEQ:
        raise _Fallback(node.tag)
    # A loop, not a comprehension: on Python 3.11 a comprehension is one more frame per level,
    # and load's depth limit counts one frame per level.
    items: list = FlowList() if node.flow_style and node.value else []
    append = items.append
    for v in node.value:
        append(_build(loader, v))
    return items


def _plain_scalar(text: str) -> Any:
    """An unquoted scalar as the PyYAML loader above reads it (YAML 1.2 core schema)."""
    for tag, rx in _FIRST.get(text[:1], ()):
        if rx.match(text):
            if tag == _INT:
                return _int_from_text(text)
            if tag == _NULL:
                return None
            if tag == _BOOL:
                return _BOOL_VALUES[text.lower()]
            return _float_from_text(text)
    return text


# rapidyaml is optional (the ``fast`` extra): below this size its import costs more than it
# saves; above it, it parses faster than libyaml + _build (measured in docs/yaml-strategy.md).
RYML_MIN_BYTES = 256 * 1024
_ryml_load: Any = False  # not tried yet


def _load_ryml(data: bytes) -> Any:
    global _ryml_load
    if _ryml_load is False:
        _ryml_load = _fast.make_ryml_loader(_plain_scalar, MAX_DEPTH)
    if _ryml_load is None:
        raise _fast.Unsupported("rapidyaml is not installed")
    return _ryml_load(data)


# Limits of kpt's own parser, Go's yaml.v3, so that what kpt reads we read, and what it refuses
# we refuse (scannerc.go: max_flow_level and max_indents, 10,000 each; decode.go: the alias ratio
# below). Without them a few hundred bytes of aliases ("billion laughs") expanded to gigabytes,
# and nesting past Python's recursion limit raised RecursionError (past ~20,000 levels libyaml's
# composer overflows the C stack: a segfault).
MAX_DEPTH = 10_000
_ALIAS_RATIO_LOW, _ALIAS_RATIO_HIGH = 400_000, 4_000_000
# Python frames per nesting level, generously: _build and fastyaml's emitter take one or two,
# PyYAML's constructors and representers three or four.
_FRAMES_PER_LEVEL = 5
# A line starting with this many indentation or compact-indicator characters ("- - - x", "? ")
# may hold a block node nested about twice as deep; below it, nesting is bounded cheaply.
_RUN = MAX_DEPTH // 4
# (Two patterns, not one with "(?:^|\n)": a leading literal lets re skip from line to line fast.)
_DEEP_START = re.compile(r"[ \t?:-]{%d}" % _RUN)  # noqa: UP031 (as the bytes patterns below)
_DEEP_LINE = re.compile(r"\n[ \t?:-]{%d}" % _RUN)  # noqa: UP031
_DEEP_START_B = re.compile(rb"[ \t?:-]{%d}" % _RUN)
_DEEP_LINE_B = re.compile(rb"\n[ \t?:-]{%d}" % _RUN)
_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s\[\]{},]")
_ANCHOR_B = re.compile(rb"(?:^|[\s\[{,])&[^\s\[\]{},]")


class LimitError(yaml.constructor.ConstructorError):
    """The document is nested too deeply or expands too many aliases (kpt's parser refuses it too)."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(None, None, problem, mark)


def _too_deep(mark: Any = None) -> LimitError:
    return LimitError(f"the document is nested deeper than {MAX_DEPTH:,} levels, the limit of kpt's "
                      "YAML parser (Go yaml.v3); no Kubernetes resource nests this deep", mark)


def _stack_depth() -> int:
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _recursion_limit(levels: int) -> int:
    """Raise the recursion limit so ``levels`` more frames fit; return the old limit to restore.
    Only yamlio's own recursions run under it: the functions keep Python's default."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _stack_depth() + levels + 50))
    return old


def load(text: str | bytes) -> Any:
    """Parse one YAML document. Large inputs go through rapidyaml when it is installed; the
    rest, and anything rapidyaml's path does not handle, through libyaml: it composes the nodes
    in C and ``_build`` makes the data. What ``_build`` does not handle (tags it does not know,
    unhashable keys) is constructed by PyYAML's own constructors. A document nested deeper than
    ``MAX_DEPTH``, with recursive aliases or with excessive aliasing raises ``LimitError``
    (a ``YAMLError``), as kpt's parser refuses it."""
    if len(text) >= RYML_MIN_BYTES:
        # (rapidyaml parses any nesting without recursing; its walk refuses past MAX_DEPTH levels,
        # and libyaml's path then reports the document with its line)
        old = _recursion_limit(MAX_DEPTH + 10)
        try:
            return _load_ryml(text.encode() if isinstance(text, str) else text)
        except _fast.Unsupported:
            pass
        finally:
            sys.setrecursionlimit(old)
    return load_libyaml(text)


def load_libyaml(text: str | bytes) -> Any:
    """``load`` without rapidyaml: libyaml nodes, ``_build``, PyYAML constructors as fallback."""
    if type(text) is not str and isinstance(text, str):
        text = str(text)  # a StyledStr (e.g. a ConfigMap's block value): libyaml takes exact str only
    _check_depth_before_composing(text)
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if ("&" in text if isinstance(text, str) else b"&" in text) and \
                (_ANCHOR if isinstance(text, str) else _ANCHOR_B).search(text):
            _check_aliases(node)
        # _build recurses once per level: with the limit at MAX_DEPTH levels from here, a
        # RecursionError means the data (aliases expanded) nests deeper than kpt's parser allows.
        old = _recursion_limit(MAX_DEPTH + 10)
        try:
            return _build(loader, node)
        except RecursionError:
            raise _too_deep(node.start_mark) from None
        except (_Fallback, TypeError, ValueError, KeyError):
            # Tags _build does not know, unhashable keys, and scalars that do not fit an explicit
            # tag (the checked constructors report those with their line).
            sys.setrecursionlimit(_stack_depth() + _FRAMES_PER_LEVEL * MAX_DEPTH + 100)
            try:
                return loader.construct_document(node)
            except RecursionError:
                raise _too_deep(node.start_mark) from None
        finally:
            sys.setrecursionlimit(old)
    finally:
        loader.dispose()


def _nesting_bounded(text: str | bytes) -> bool:
    """True when the document cannot nest deeper than MAX_DEPTH: the flow openers plus about
    twice the longest run of indentation and compact indicators ("- - x", "? ") that starts a
    line bound its nesting. Two counts and a regex that stops only at line starts: cheap next to
    parsing (docs/yaml-strategy.md)."""
    if isinstance(text, str):
        openers = text.count("[") + text.count("{")
        deep_start, deep_line = _DEEP_START, _DEEP_LINE
    else:
        openers = text.count(b"[") + text.count(b"{")
        deep_start, deep_line = _DEEP_START_B, _DEEP_LINE_B
    return (openers + 2 * _RUN + 2 <= MAX_DEPTH and not deep_start.match(text)
            and not deep_line.search(text))


def _check_depth_before_composing(text: str | bytes) -> None:
    """Refuse a document nested deeper than MAX_DEPTH before libyaml composes it: its composer
    recurses in C. Only when the cheap bound of ``_nesting_bounded`` is over the limit (thousands
    of flow collections, or a pathological line) are the parser's events counted, which costs
    about as much as loading."""
    if _nesting_bounded(text):
        return
    parser = Loader(text)
    try:
        depth = 0
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep(event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        parser.dispose()


def _allowed_alias_ratio(decoded: int) -> float:
    # yaml.v3 decode.go allowedAliasRatio: small documents may be 99% alias expansion; from
    # 400,000 decoded nodes the share falls linearly to 10% at 4,000,000.
    if decoded <= _ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


def _check_aliases(root: yaml.Node) -> None:
    """yaml.v3's alias rules over libyaml's node graph, where an alias is the anchored node
    itself, met again: an alias inside its own anchor's value is refused ("contains itself"),
    and so is a document whose decoding would be mostly alias expansion (more than 100 nodes
    from aliases, more than 1,000 in all, and more than the allowed share). Walks without
    recursion, in document order, and stops at the first violation: a bomb costs little."""
    seen: set[int] = set()
    on_path: set[int] = set()
    decoded = aliased = 0
    stack: list[tuple[yaml.Node, bool, bool]] = [(root, False, False)]
    while stack:
        node, in_alias, leaving = stack.pop()
        nid = id(node)
        if leaving:
            on_path.discard(nid)
            continue
        if nid in on_path:
            raise LimitError("an alias refers to the anchored node that contains it (a recursive "
                             "alias): replace the alias by the data it should stand for", node.start_mark)
        decoded += 1
        if nid in seen:
            in_alias = True
        else:
            seen.add(nid)
        if in_alias:
            aliased += 1
            if aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded):
                raise LimitError("the document contains excessive aliasing (most of it would be "
                                 "copies of anchored nodes; kpt's YAML parser refuses it too): write "
                                 "the data out instead of through aliases", node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            continue
        on_path.add(nid)
        stack.append((node, in_alias, True))
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                stack.append((value, in_alias, False))
                stack.append((key, in_alias, False))
        else:
            for item in reversed(node.value):
                stack.append((item, in_alias, False))


# No line folding: a long message (a result listing many names, a big embedded file) folded by
# libyaml is something the fast emitter cannot reproduce, and the whole document would go through
# the slow dumper. kpt reads the line back the same either way.
_WIDTH = 1 << 30


def dump_pyyaml(data: Any) -> str:
    """The reference dumper: PyYAML with the representers above. ``dump`` writes the same bytes."""
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=_WIDTH)


def _slow_scalar(value: Any) -> str:
    # A second key keeps libyaml from ending the document after a |+ block ("...").
    text = dump_pyyaml({"k": value, "z": 0})
    if not text.startswith("k: ") or not text.endswith("\nz: 0\n"):
        raise _fast.Unsupported("scalar needs the full dumper")
    text = text[3:-6]
    # Only "\n" continuation lines are re-indented by the emitter; libyaml also breaks lines at
    # these characters, which a Kubernetes resource practically never holds.
    if ("\n" in text and text[0] != "|") or any(c in text for c in "\r\x85\u2028\u2029"):
        raise _fast.Unsupported("scalar needs the full dumper")  # e.g. a folded long quoted string
    return text


def _slow_flow_scalar(value: Any, as_key: bool) -> str:
    # The same for a scalar inside a flow collection: an item or value, or a key.
    if as_key:
        text, head, tail = dump_pyyaml({"k": FlowDict({value: 0}), "z": 0}), "k: {", ": 0}\nz: 0\n"
    else:
        text, head, tail = dump_pyyaml({"k": FlowList([value]), "z": 0}), "k: [", "]\nz: 0\n"
    body = text[len(head):-len(tail)]
    if (not text.startswith(head) or not text.endswith(tail) or body.startswith("? ")
            or any(c in body for c in "\n\r\x85\u2028\u2029")):
        raise _fast.Unsupported("scalar needs the full dumper")  # e.g. a multi-line single-quoted string
    return body


_fast_dump = _fast.make_emitter(Dumper.yaml_implicit_resolvers, _slow_scalar, _slow_flow_scalar)


def dump(data: Any) -> str:
    """Block-style YAML, byte-identical to ``dump_pyyaml``. The string-building emitter in
    ``fastyaml`` is ~4x faster on a ResourceList; it hands anything unusual back to PyYAML."""
    # Data as deep as MAX_DEPTH (what load accepts) must be writable: both emitters recurse.
    old = _recursion_limit(_FRAMES_PER_LEVEL * MAX_DEPTH)
    try:
        try:
            return _fast_dump(data)
        except _fast.Unsupported:
            return dump_pyyaml(data)
    finally:
        sys.setrecursionlimit(old)


YAMLError = yaml.YAMLError

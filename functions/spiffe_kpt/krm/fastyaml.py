"""A fast block-style YAML emitter for ResourceLists, byte-identical to ``yamlio``'s PyYAML dumper.

Why: PyYAML's C dumper only emits in C; representing every value is Python (representer,
resolver, event objects). On a 10,000-workload ResourceList (18 MB out of kpt, 41 MB after
the chain) the dump was ~7 s of the function's time (25 s on a loaded machine); building the
string directly is several times faster (numbers in docs/yaml-strategy.md, from
``python -m bench.yaml_strategy``).

How it stays correct: the layout is PyYAML's (indent 2, sequences in mappings not indented,
``{}``/``[]`` for empty containers, the loader's flow collections as ``[a, b]``/``{k: v}`` on
one line). Scalars take a fast path only when the choice is obvious
(plain ASCII that no YAML 1.1 or 1.2 resolver reads as anything but a string, ints, bools,
None, floats); every other scalar (quoting, escapes, literal blocks with their chomping and
indentation hints, non-ASCII) is rendered once by libyaml itself through the PyYAML dumper
and cached, then re-indented for its place. Anything unusual for a ResourceList (a non-mapping
document, a key that is not a simple key, a type the dumper does not know) makes ``dump``
raise ``Unsupported`` and the caller uses the PyYAML dumper for the whole document.
``tests/test_yamlio_fast.py`` checks byte equality with the PyYAML dumper on random data
and on every example package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .yamltypes import FloatText, FlowDict, FlowList, IntText, StyledStr


class Unsupported(Exception):
    """The data holds something the fast emitter does not write; use the PyYAML dumper."""


# Plain ASCII scalars libyaml writes plain in block context: no indicator first, no ': ' or
# ' #', no trailing ':' or space, no control characters, not a document marker.
_PLAIN = re.compile(r"[A-Za-z0-9_/.(^$=+~<;\\][\x20-\x7e]*\Z")
_NOT_PLAIN_INSIDE = (": ", " #", "\t")
# Inside a flow collection libyaml also quotes any scalar holding a flow indicator or ':'.
_FLOW_NOT_PLAIN = re.compile(r"[,?\[\]{}:]")
# libyaml starts a new line inside a flow collection past the dumper's width (yamlio: 1 << 30);
# a flow collection longer than this, less room for indentation and key, goes to the PyYAML dumper.
_FLOW_MAX = (1 << 30) - 4096
_BREAKS = "\n\r\x85\u2028\u2029"
_LIBYAML_ONLY_BREAKS = tuple(c.encode() for c in "\x85\u2028\u2029")


def make_emitter(resolvers: dict[str, list[tuple[str, re.Pattern[str]]]], slow_scalar: Callable[[Any], str],
                 slow_flow_scalar: Callable[[Any, bool], str]) -> Callable[[Any], str]:
    """Build ``dump(data) -> str`` for a dumper whose implicit resolvers are ``resolvers``.

    ``slow_scalar(value)`` must return what the PyYAML dumper writes for ``{"k": value}``
    without the leading ``k: `` (continuation lines indented by 2); the result is cached.
    ``FlowList`` and ``FlowDict`` (yamltypes) are written in flow style, as the
    PyYAML dumper writes them (``[a, b]``, ``{k: v}``); ``slow_flow_scalar(value, as_key)`` must
    return what it writes for ``value`` as an item (or, with ``as_key``, a key) inside one."""
    # Local names: the closures below test types on every value.
    styled_type, int_text, float_text, flow_list, flow_dict = StyledStr, IntText, FloatText, FlowList, FlowDict
    by_first: dict[str, tuple[re.Pattern[str], ...]] = {
        ch: tuple(rx for _tag, rx in rs) for ch, rs in resolvers.items() if ch}
    cache: dict[Any, str] = {}
    key_cache: dict[str, str] = {}
    flow_cache: dict[Any, str] = {}
    flow_key_cache: dict[Any, str] = {}

    def plain_ok(s: str) -> bool:
        if not _PLAIN.match(s) or s[-1] in " :" or s.startswith("..."):
            return False
        for bad in _NOT_PLAIN_INSIDE:
            if bad in s:
                return False
        for rx in by_first.get(s[0], ()):
            if rx.match(s):
                return False
        return True

    def scalar(v: Any) -> str:
        """The scalar's text; continuation lines (literal blocks) are indented by 2 relative."""
        t = type(v)
        if t is str:
            if plain_ok(v):
                return v
            key = v
        elif t is bool:
            return "true" if v else "false"
        elif t is int:
            return str(v)
        elif v is None:
            return "null"
        elif t is float:
            return _float(v)
        elif t is styled_type:
            key = (str(v), v.style)
        elif t is int_text or t is float_text:
            return v.text
        elif t is flow_list or t is flow_dict:
            # Not a scalar, but written on the key's or the dash's line like one.
            out = flow(v)
            if len(out) > _FLOW_MAX:
                raise Unsupported("long flow collection")
            return out
        else:
            raise Unsupported(t.__name__)
        out = cache.get(key)
        if out is None:
            out = cache[key] = slow_scalar(v)
        return out

    def flow_scalar(v: Any, as_key: bool) -> str:
        """A scalar inside a flow collection (stricter plain rules, no literal blocks)."""
        t = type(v)
        if t is str:
            if plain_ok(v) and not _FLOW_NOT_PLAIN.search(v):
                return v
            key = v
        elif t is styled_type:
            key = (str(v), v.style)
        elif t is bool or t is int or v is None or t is float or t is int_text or t is float_text:
            return scalar(v)
        else:
            raise Unsupported(t.__name__)
        c = flow_key_cache if as_key else flow_cache
        out = c.get(key)
        if out is None:
            if as_key and (len(v) > 120 or any(ch in v for ch in _BREAKS)):
                raise Unsupported("complex key")  # libyaml writes "? key" for these
            out = c[key] = slow_flow_scalar(v, as_key)
        return out

    def flow(v: Any) -> str:
        """A collection inside (or starting) a flow collection, on one line."""
        t = type(v)
        if t is dict or t is flow_dict:
            if not v:
                return "{}"
            return "{" + ", ".join([flow_key(k) + ": " + flow_item(x) for k, x in v.items()]) + "}"
        if not v:
            return "[]"
        return "[" + ", ".join([flow_item(x) for x in v]) + "]"

    def flow_key(k: Any) -> str:
        out = flow_scalar(k, True)
        if len(out) > 120:
            raise Unsupported("complex key")
        return out

    def flow_item(x: Any) -> str:
        t = type(x)
        if t is dict or t is list or t is flow_dict or t is flow_list:
            return flow(x)
        return flow_scalar(x, False)

    def key_text(k: Any) -> str:
        if type(k) is str:
            out = key_cache.get(k)
            if out is not None:
                return out
        if isinstance(k, str) and (len(k) > 120 or any(c in k for c in _BREAKS)):
            raise Unsupported("complex key")  # libyaml writes "? key" for these
        out = scalar(k)
        if "\n" in out or len(out) > 120:
            raise Unsupported("complex key")
        if type(k) is str:
            key_cache[k] = out
        return out

    def emit_map(d: dict, indent: str, out: list[str], first_prefix: str | None) -> None:
        # first_prefix: the first key goes on the line the caller started ("- "), others indented.
        for k, v in d.items():
            if first_prefix is not None:
                out.append(first_prefix)
                first_prefix = None
            else:
                out.append(indent)
            out.append(key_text(k))
            t = type(v)
            if t is dict:
                if v:
                    out.append(":\n")
                    emit_map(v, indent + "  ", out, None)
                else:
                    out.append(": {}\n")
            elif t is list:
                if v:
                    out.append(":\n")
                    emit_seq(v, indent, out)  # sequences in mappings are not indented
                else:
                    out.append(": []\n")
            else:
                s = scalar(v)
                out.append(": ")
                out.append(s.replace("\n  ", "\n  " + indent) if "\n" in s else s)
                out.append("\n")

    def emit_seq(items: list, indent: str, out: list[str]) -> None:
        for v in items:
            t = type(v)
            if t is dict:
                if v:
                    out.append(indent)
                    emit_map(v, indent + "  ", out, "- ")
                else:
                    out.append(indent + "- {}\n")
            elif t is list:
                if v:
                    out.append(indent + "- ")
                    inner: list[str] = []
                    emit_seq(v, indent + "  ", inner)
                    inner[0] = inner[0][len(indent) + 2:]  # the first item shares the dash's line
                    out.extend(inner)
                else:
                    out.append(indent + "- []\n")
            else:
                s = scalar(v)
                out.append(indent + "- ")
                out.append(s.replace("\n  ", "\n  " + indent) if "\n" in s else s)
                out.append("\n")

    def dump(data: Any) -> str:
        if type(data) is not dict or not data:
            raise Unsupported("document is not a non-empty mapping")
        out: list[str] = []
        emit_map(data, "", out, None)
        return "".join(out)

    return dump


def _float(v: float) -> str:
    # PyYAML's represent_float.
    if v != v:
        return ".nan"
    if v == float("inf"):
        return ".inf"
    if v == -float("inf"):
        return "-.inf"
    text = repr(v).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null inside, and back to where it was after."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def make_ryml_loader(plain_scalar: Callable[[str], Any], max_depth: int) -> Callable[[bytes], Any] | None:
    """Build ``load(data: bytes)`` on rapidyaml (the ``rapidyaml`` package), or None without it.

    Why: libyaml composing PyYAML nodes is slow on large inputs (Cython node objects, a Python
    resolver call per scalar); rapidyaml parses into its arena in C++ many times faster
    (docs/yaml-strategy.md) and keeps each scalar's style, which the style-preserving loader needs (the Rust parsers on
    PyPI, yaml-rs and py-yaml12, are faster still but return plain values: a quoted "x" or a
    0644 cannot be told from x or 644, so they cannot keep our round trip byte-exact).
    ``plain_scalar(text)`` resolves an unquoted scalar exactly as the PyYAML loader does.
    rapidyaml's parser does not recurse, so any nesting parses; a document nested deeper than
    ``max_depth`` collections raises ``Unsupported`` while it is walked (the caller's libyaml path
    then reports it with its line). The caller raises the recursion limit to fit ``max_depth``.
    Non-empty flow collections become ``FlowList`` / ``FlowDict`` (rapidyaml flags their
    container style). Anchors, aliases, tags, several documents, bytes that are not UTF-8 and
    parse errors raise ``Unsupported``: the caller then parses with PyYAML (which reports errors with their line
    and column)."""
    try:
        import ryml  # its import costs a start: only worth it for large inputs (see yamlio.load)
    except ImportError:
        return None
    styled_type, flow_list, flow_dict = StyledStr, FlowList, FlowDict
    NONE, MAP, SEQ, STREAM, DOC = ryml.NONE, ryml.MAP, ryml.SEQ, ryml.STREAM, ryml.DOC
    container = MAP | SEQ
    flow = ryml.CONTAINER_STYLE_FLOW
    val_styled = ryml.VAL_SQUO | ryml.VAL_DQUO | ryml.VAL_LITERAL | ryml.VAL_FOLDED
    key_styled = ryml.KEY_SQUO | ryml.KEY_DQUO | ryml.KEY_LITERAL | ryml.KEY_FOLDED
    unusual = ryml.KEYANCH | ryml.VALANCH | ryml.KEYREF | ryml.VALREF | ryml.KEYTAG | ryml.VALTAG
    styles = ((ryml.VAL_DQUO, ryml.KEY_DQUO, '"'), (ryml.VAL_SQUO, ryml.KEY_SQUO, "'"),
              (ryml.VAL_LITERAL, ryml.KEY_LITERAL, "|"))

    def styled(text: str, flags: int, is_key: bool) -> Any:
        for vflag, kflag, style in styles:
            if flags & (kflag if is_key else vflag):
                return styled_type(text, style)
        return text  # folded: a plain string, as the PyYAML loader gives

    def load(data: bytes) -> Any:
        for brk in _LIBYAML_ONLY_BREAKS:
            if brk in data:
                raise Unsupported("NEL/LS/PS: line breaks to libyaml (YAML 1.1), not to rapidyaml (1.2)")
        # rapidyaml prints its parse errors on fd 2; the PyYAML fallback reports them properly.
        try:
            with _stderr_silenced():
                tree = ryml.parse_in_arena(data)
        except Exception as exc:  # ryml.ExceptionParse and friends
            raise Unsupported(f"rapidyaml: {type(exc).__name__}") from None
        typ, first, nxt, key, val = tree.type, tree.first_child, tree.next_sibling, tree.key, tree.val

        def scalar(node: int, flags: int, is_key: bool) -> Any:
            mv = key(node) if is_key else val(node)
            text = "" if mv is None else str(mv, "utf-8")
            if flags & (key_styled if is_key else val_styled):
                return styled(text, flags, is_key)
            return plain_scalar(text)

        def walk(node: int, flags: int, depth: int) -> Any:
            if flags & unusual:
                raise Unsupported("anchor, alias or tag")
            if depth > max_depth:
                raise Unsupported(f"nested deeper than {max_depth} levels")
            depth += 1
            if flags & MAP:
                child = first(node)
                out = flow_dict() if flags & flow and child != NONE else {}
                while child != NONE:
                    cf = typ(child)
                    if cf & unusual:
                        raise Unsupported("anchor, alias or tag")
                    k = scalar(child, cf, True)
                    out[k] = walk(child, cf, depth) if cf & container else scalar(child, cf, False)
                    child = nxt(child)
                return out
            if flags & SEQ:
                child = first(node)
                items = flow_list() if flags & flow and child != NONE else []
                while child != NONE:
                    cf = typ(child)
                    if cf & unusual:
                        raise Unsupported("anchor, alias or tag")
                    items.append(walk(child, cf, depth) if cf & container else scalar(child, cf, False))
                    child = nxt(child)
                return items
            return scalar(node, flags, False)

        root = tree.root_id()
        flags = typ(root)
        if flags & STREAM:
            docs = []
            child = first(root)
            while child != NONE:
                docs.append(child)
                child = nxt(child)
            if len(docs) != 1:
                raise Unsupported("not exactly one document")
            root, flags = docs[0], typ(docs[0])
        if not flags & container and flags & DOC and not flags & ryml.VAL:
            return None  # an empty document
        try:
            return walk(root, flags, 1)
        except UnicodeDecodeError:
            # rapidyaml does not check the encoding; libyaml reports the bad byte with its line.
            raise Unsupported("not UTF-8") from None

    return load

"""A fast block-style YAML emitter for ResourceLists, byte-identical to ``yamlio``'s PyYAML dumper.

Why: PyYAML's C dumper only emits in C; representing every value is Python (representer,
resolver, event objects). On a 10,000-workload ResourceList (18 MB out of kpt, 41 MB after
the chain) the dump was ~7 s of the function's time (25 s on a loaded machine); building the
string directly is several times faster (numbers in docs/yaml-strategy.md, from
``python -m bench.yaml_strategy``).

How it stays correct: the layout is PyYAML's (indent 2, sequences in mappings not indented,
``{}``/``[]`` for empty containers). Scalars take a fast path only when the choice is obvious
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

import re
from typing import Any, Callable


class Unsupported(Exception):
    """The data holds something the fast emitter does not write; use the PyYAML dumper."""


# Plain ASCII scalars libyaml writes plain in block context: no indicator first, no ': ' or
# ' #', no trailing ':' or space, no control characters, not a document marker.
_PLAIN = re.compile(r"[A-Za-z0-9_/.(^$=+~<;\\][\x20-\x7e]*\Z")
_NOT_PLAIN_INSIDE = (": ", " #", "\t")
_BREAKS = "\n\r\x85\u2028\u2029"


def make_emitter(resolvers: dict[str, list[tuple[str, re.Pattern[str]]]],
                 slow_scalar: Callable[[Any], str], styled_type: type, int_text: type, float_text: type
                 ) -> Callable[[Any], str]:
    """Build ``dump(data) -> str`` for a dumper whose implicit resolvers are ``resolvers``.

    ``slow_scalar(value)`` must return what the PyYAML dumper writes for ``{"k": value}``
    without the leading ``k: `` (continuation lines indented by 2); the result is cached."""
    by_first: dict[str, tuple[re.Pattern[str], ...]] = {
        ch: tuple(rx for _tag, rx in rs) for ch, rs in resolvers.items() if ch}
    cache: dict[Any, str] = {}
    key_cache: dict[str, str] = {}

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
        else:
            raise Unsupported(t.__name__)
        out = cache.get(key)
        if out is None:
            out = cache[key] = slow_scalar(v)
        return out

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

"""Read and minimally rewrite the SPIRE configuration files the packages render.

spire-config writes server.conf / agent.conf as HCL v1 with its own small writer
(``spiffe_kpt.spire_config.hcl``): nested blocks (``plugins { NodeAttestor "k8s_psat" {
... } }``), attributes, and map-valued attributes (``clusters = { "edge-1" = { ... } }``).
This module parses exactly that subset back into the writer's own model
(``hcl.Block`` / ``hcl.Map``), so that

* ``render(parse(text)) == text`` can be asserted: nothing of the rendered file is lost
  or re-spelt when a test rewrites it;
* a test changes single keys by path and gets back the complete list of what differs
  (:func:`rewrite`), computed by comparing every leaf of the two parses, so a test can
  assert that only the deployment-specific keys it names were touched.

Paths read like the file: ``server.bind_port``,
``plugins.NodeAttestor["k8s_psat"].plugin_data.clusters["edge-1"].kube_config_file``
(``["..."]`` is a block label or a key of a map-valued attribute).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from spiffe_kpt.spire_config import hcl

REMOVE = object()  # rewrite value: delete the attribute, map entry or block
ABSENT = "<absent>"


class HclError(ValueError):
    pass


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>(?:\#|//)[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?![\w.]))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-.]*)
  | (?P<punct>[{}\[\]=,])
""", re.X)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise HclError(f"unexpected character {text[pos]!r} at offset {pos}")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str, int] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> tuple[str, str, int]:
        t = self.peek()
        if t is None:
            raise HclError("unexpected end of input")
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        t = self.next()
        if t[1] != text:
            raise HclError(f"expected {text!r}, got {t[1]!r} at offset {t[2]}")

    def body(self, closing: bool) -> list:
        items: list = []
        while True:
            t = self.peek()
            if t is None:
                if closing:
                    raise HclError("unterminated block")
                return items
            if t[1] == "}":
                if not closing:
                    raise HclError(f"unbalanced '}}' at offset {t[2]}")
                self.i += 1
                return items
            kind, name, pos = self.next()
            if kind != "ident":
                raise HclError(f"expected a key or block name, got {name!r} at offset {pos}")
            if self.peek() and self.peek()[1] == "=":
                self.i += 1
                items.append((name, self.value()))
                continue
            labels = []
            while self.peek() and self.peek()[0] == "string":
                labels.append(json.loads(self.next()[1]))
            self.expect("{")
            items.append(hcl.Block(name, tuple(labels), self.body(closing=True)))

    def value(self) -> Any:
        kind, text, pos = self.next()
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return int(text)
        if kind == "ident" and text in ("true", "false"):
            return text == "true"
        if text == "[":
            items = []
            while self.peek() and self.peek()[1] != "]":
                items.append(self.value())
                if self.peek() and self.peek()[1] == ",":
                    self.i += 1
            self.expect("]")
            return items
        if text == "{":
            entries: dict[str, Any] = {}
            quoted: set[bool] = set()
            while self.peek() and self.peek()[1] != "}":
                k_kind, k_text, k_pos = self.next()
                if k_kind not in ("string", "ident"):
                    raise HclError(f"expected a map key, got {k_text!r} at offset {k_pos}")
                key = json.loads(k_text) if k_kind == "string" else k_text
                quoted.add(k_kind == "string")
                if key in entries:
                    raise HclError(f"duplicate map key {key!r} at offset {k_pos}")
                self.expect("=")
                entries[key] = self.value()
                if self.peek() and self.peek()[1] == ",":
                    self.i += 1
            self.expect("}")
            if len(quoted) > 1:
                raise HclError("map mixes quoted and bare keys")
            return hcl.Map(entries, quoted=quoted == {True})
        raise HclError(f"unexpected {text!r} at offset {pos}")


def parse(text: str) -> list:
    """The top-level items of a SPIRE config in spiffe_kpt.spire_config.hcl's model: blocks
    (server.conf, agent.conf) and attributes (the OIDC discovery provider's config)."""
    return _Parser(text).body(closing=False)


def render(blocks: list) -> str:
    return hcl.render(blocks)


# ---------------------------------------------------------------------------
# leaves and paths
# ---------------------------------------------------------------------------

def _lbl(labels) -> str:
    return "".join(f"[{json.dumps(x)}]" for x in labels)


def _leaves_value(path: str, v: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(v, hcl.Map):
        if not v.entries:
            yield path, "{}"
        for k, sub in v.entries.items():
            yield from _leaves_value(f"{path}[{json.dumps(k)}]" if v.quoted else f"{path}.{k}", sub)
    elif isinstance(v, list):
        yield path, tuple(v)
    else:
        yield path, v


def _leaves_block(prefix: str, b: hcl.Block) -> Iterator[tuple[str, Any]]:
    path = f"{prefix}{b.name}{_lbl(b.labels)}"
    if not b.body:
        yield path, "{}"
    for item in b.body:
        if isinstance(item, hcl.Block):
            yield from _leaves_block(path + ".", item)
        else:
            yield from _leaves_value(f"{path}.{item[0]}", item[1])


def leaves(blocks: list) -> dict[str, Any]:
    """Every leaf value by path (lists as tuples; an empty block or map as "{}")."""
    out: dict[str, Any] = {}
    for b in blocks:
        items = _leaves_block("", b) if isinstance(b, hcl.Block) else _leaves_value(b[0], b[1])
        for path, v in items:
            if path in out:
                raise HclError(f"duplicate path {path}")
            out[path] = v
    return out


_SEG = re.compile(r'([A-Za-z_][A-Za-z0-9_\-]*)((?:\["(?:[^"\\]|\\.)*"\])*)(?:\.|$)')
_LABEL = re.compile(r'\["((?:[^"\\]|\\.)*)"\]')


def _segments(path: str) -> list[tuple[str, list[str]]]:
    segs, pos = [], 0
    while pos < len(path):
        m = _SEG.match(path, pos)
        if not m or m.end() == pos:
            raise HclError(f"bad path {path!r} at {pos}")
        segs.append((m.group(1), [json.loads(f'"{x}"') for x in _LABEL.findall(m.group(2))]))
        pos = m.end()
    return segs


def _find_block(body: list, name: str, labels: list[str]) -> hcl.Block | None:
    for item in body:
        if isinstance(item, hcl.Block) and item.name == name and list(item.labels) == labels:
            return item
    return None


def _attr_index(body: list, name: str) -> int | None:
    for i, item in enumerate(body):
        if not isinstance(item, hcl.Block) and item[0] == name:
            return i
    return None


def _step(cur: Any, name: str, labels: list[str]) -> Any:
    if isinstance(cur, hcl.Block):
        blk = _find_block(cur.body, name, labels)
        if blk is not None:
            return blk
        i = _attr_index(cur.body, name)
        if i is None:
            raise KeyError(name)
        v = cur.body[i][1]
    elif isinstance(cur, hcl.Map):
        v = cur.entries[name]
    else:
        raise KeyError(name)
    for lbl in labels:
        if not isinstance(v, hcl.Map):
            raise KeyError(lbl)
        v = v.entries[lbl]
    return v


def _set(root: hcl.Block, path: str, value: Any) -> None:
    segs = _segments(path)
    *parents, (name, labels) = segs
    cur: Any = root
    for n, lbls in parents:
        cur = _step(cur, n, lbls)
    if isinstance(value, hcl.Block):  # add (or replace) a whole block
        if (value.name, list(value.labels)) != (name, labels) or not isinstance(cur, hcl.Block):
            raise HclError(f"{path}: the block given is {value.name}{_lbl(value.labels)}")
        old = _find_block(cur.body, name, labels)
        if old is None:
            cur.body.append(value)
        else:
            cur.body[cur.body.index(old)] = value
        return
    if isinstance(cur, hcl.Block) and _find_block(cur.body, name, labels) is not None:
        if value is not REMOVE:
            raise HclError(f"{path} is a block; only REMOVE or a Block applies to it")
        cur.body.remove(_find_block(cur.body, name, labels))
        return
    if labels:  # a map entry: walk to the map holding the last key
        cur = _step(cur, name, labels[:-1])
        name = labels[-1]
    if isinstance(cur, hcl.Map):
        if value is REMOVE:
            del cur.entries[name]
        else:
            cur.entries[name] = value
        return
    if not isinstance(cur, hcl.Block):
        raise HclError(f"{path}: parent is not a block or map")
    i = _attr_index(cur.body, name)
    if value is REMOVE:
        if i is None:
            raise KeyError(path)
        del cur.body[i]
    elif i is None:
        cur.body.append((name, value))
    else:
        cur.body[i] = (name, value)


def get(text_or_blocks: str | list[hcl.Block], path: str) -> Any:
    blocks = parse(text_or_blocks) if isinstance(text_or_blocks, str) else text_or_blocks
    cur: Any = hcl.Block("", (), blocks)
    for n, lbls in _segments(path):
        cur = _step(cur, n, lbls)
    return cur


def diff(before: str, after: str) -> dict[str, tuple[Any, Any]]:
    """Every leaf that differs between two configs: path -> (before, after)."""
    a, b = leaves(parse(before)), leaves(parse(after))
    return {p: (a.get(p, ABSENT), b.get(p, ABSENT))
            for p in sorted(set(a) | set(b)) if a.get(p, ABSENT) != b.get(p, ABSENT)}


def rewrite(text: str, changes: dict[str, Any]) -> tuple[str, dict[str, tuple[Any, Any]]]:
    """Apply ``changes`` (path -> new value, an ``hcl.Block`` to add, or REMOVE) to the config text.

    Returns the new text and :func:`diff` of old and new. The text is re-emitted with the
    project's own HCL writer; the caller should first check ``render(parse(text)) == text``
    (:func:`check_round_trip`) so that the result differs from the rendered file only in
    the changed keys."""
    check_round_trip(text)
    root = hcl.Block("", (), parse(text))
    for path, value in changes.items():
        _set(root, path, value)
    new = render(root.body)
    return new, diff(text, new)


def check_round_trip(text: str) -> None:
    again = render(parse(text))
    if again != text:
        import difflib
        raise HclError("the config does not survive parse/render unchanged:\n" +
                       "".join(difflib.unified_diff(text.splitlines(True), again.splitlines(True))))


def covered(path: str, change: str) -> bool:
    return path == change or path.startswith(change + ".") or path.startswith(change + "[")


def unexplained(d: dict[str, Any], changes: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(leaves that changed without a listed change, listed changes that changed nothing)."""
    extra = [p for p in d if not any(covered(p, c) for c in changes)]
    noop = [c for c in changes if not any(covered(p, c) for p in d)]
    return extra, noop

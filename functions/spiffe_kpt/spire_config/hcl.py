"""A small HCL writer for SPIRE configuration files.

SPIRE reads server.conf/agent.conf with HCL v1. An operator writes them as nested blocks
(``server { ... }``, ``plugins { NodeAttestor "k8s_psat" { plugin_data { ... } } }``) with
map-valued attributes where SPIRE's docs use ``=`` (``clusters = { "name" = { ... } }``).
The model below keeps that distinction explicit, so the output reads like the SPIRE docs.
Values are str, int, bool, list of str, or a ``Map`` (written ``key = { ... }``); a ``Block``
is written ``name "label" { ... }``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Union

Value = Union[str, int, bool, list, "Map"]


@dataclass
class Map:
    """An attribute whose value is an object: ``name = { "k" = ... }``.

    ``quoted``: write the keys as strings, as SPIRE's docs do for names chosen by the user
    (cluster names may contain characters an HCL identifier cannot)."""
    entries: dict[str, Value] = field(default_factory=dict)
    quoted: bool = False


@dataclass
class Block:
    name: str
    labels: tuple[str, ...] = ()
    body: list[Block | tuple[str, Value]] = field(default_factory=list)

    def attr(self, key: str, value: Value) -> Block:
        self.body.append((key, value))
        return self

    def block(self, name: str, *labels: str) -> Block:
        child = Block(name, labels)
        self.body.append(child)
        return child


def _scalar(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # JSON string escaping is valid HCL string syntax for everything we emit.
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    raise TypeError(f"not an HCL scalar: {v!r}")


def _value(v: Value, indent: int) -> list[str]:
    pad = "    " * indent
    if isinstance(v, Map):
        lines = ["{"]
        for k, sub in v.entries.items():
            inner = _value(sub, indent + 1)
            key = json.dumps(k) if v.quoted else k
            lines.append(f"{pad}    {key} = {inner[0]}")
            lines.extend(inner[1:])
        lines.append(f"{pad}}}")
        return lines
    return [_scalar(v)]


def _block(b: Block, indent: int) -> list[str]:
    pad = "    " * indent
    head = " ".join([b.name, *(json.dumps(lbl) for lbl in b.labels)])
    if not b.body:
        return [f"{pad}{head} {{}}"]
    lines = [f"{pad}{head} {{"]
    for item in b.body:
        if isinstance(item, Block):
            lines.extend(_block(item, indent + 1))
        else:
            key, v = item
            val = _value(v, indent + 1)
            lines.append(f"{pad}    {key} = {val[0]}")
            lines.extend(val[1:])
    lines.append(f"{pad}}}")
    return lines


def render(items: list[Block | tuple[str, Value]]) -> str:
    """A whole file: top-level attributes (the OIDC discovery provider's config has them;
    server.conf and agent.conf only blocks) one per line, blocks separated by a blank line."""
    out: list[str] = []
    prev_block = False
    for i, item in enumerate(items):
        is_block = isinstance(item, Block)
        if i and (is_block or prev_block):
            out.append("")
        if is_block:
            out.extend(_block(item, 0))
        else:
            key, v = item
            val = _value(v, 0)
            out.append(f"{key} = {val[0]}")
            out.extend(val[1:])
        prev_block = is_block
    return "\n".join(out) + "\n"

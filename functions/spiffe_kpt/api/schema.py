"""A small JSON Schema validator for the project's own schemas (``schemas/*.json``).

Why not ``jsonschema``: importing it costs more than the rest of a function's cold start together,
and porch pays start-up on every call (docs/import-costs.md). The schemas use a
documented subset (type (a name or a list of names), const, enum, properties, required, additionalProperties,
propertyNames, items, pattern, minLength, maxLength, minimum, maximum, minItems, $ref to
#/$defs) plus ``x-hint``, a readable name of what a pattern accepts for messages;
``tests/test_schema.py`` checks that this validator and ``jsonschema`` agree on the
shipped schemas. Errors carry kpt-style field paths (``spec.selector.labelKeys[0]``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from ..krm.resourcelist import resource_ref
from ..krm.results import Result, error

# spiffe_kpt/schemas: in the source tree a symlink to <repo>/schemas, in a wheel a copy.
# os.path, not pathlib: pathlib's import would cost every function start (docs/import-costs.md).
SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas")

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float), "null": type(None),
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    with open(os.path.join(SCHEMA_DIR, f"{name}.json"), encoding="utf-8") as f:
        return json.load(f)


@cache
def _pattern(p: str) -> re.Pattern[str]:
    return re.compile(p)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if v is None:
        return "null"
    # isinstance, not type(): the YAML layer hands over str/dict/list subclasses (e.g. a string
    # that remembers its quoting style), which must read as plain JSON types in messages.
    for t, name in ((str, "string"), (dict, "object"), (list, "array")):
        if isinstance(v, t):
            return name
    return type(v).__name__


def _quoted_number(v: str, schema: dict[str, Any]) -> bool:
    """A string that would be valid as the integer the schema also accepts."""
    t = schema.get("type")
    if not (isinstance(t, list) and "integer" in t) or not v.strip().isdigit() or not v.strip().isascii():
        return False
    n = int(v.strip())
    return schema.get("minimum", n) <= n <= schema.get("maximum", n)


def _is_type(v: Any, t: str) -> bool:
    if t in ("integer", "number") and isinstance(v, bool):
        return False
    return isinstance(v, _TYPES[t])


class _Validator:
    def __init__(self, root: dict[str, Any]):
        self.root = root
        self.errors: list[tuple[str, str]] = []

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref}")
            schema = self.root["$defs"][ref[len("#/$defs/"):]]
        return schema

    def check(self, v: Any, schema: dict[str, Any], path: str) -> None:
        schema = self.resolve(schema)
        err = self.errors.append
        if "const" in schema and v != schema["const"]:
            err((path, f"must be {schema['const']!r}, got {v!r}"))
            return
        if "enum" in schema and v not in schema["enum"]:
            err((path, f"must be one of {', '.join(map(str, schema['enum']))}; got {v!r}"))
            return
        t = schema.get("type")
        # A list of types (["integer", "string"]) is JSON Schema's union: any one may match.
        if t is not None and not (any(_is_type(v, x) for x in t) if isinstance(t, list) else _is_type(v, t)):
            want = " or ".join(t) if isinstance(t, list) else t
            quoted = isinstance(v, str) and "integer" in (t if isinstance(t, list) else [t]) and _quoted_number(v, {
                **schema, "type": ["integer"]})
            err((path, f"must be of type {want}, got {_type_name(v)} {v!r}"
                 + (f": remove the quotes ({path.rpartition('.')[2] or 'value'}: {v.strip()})" if quoted else "")))
            return
        if isinstance(v, str):
            if "minLength" in schema and len(v) < schema["minLength"]:
                err((path, "must not be empty" if schema["minLength"] == 1
                     else f"must be at least {schema['minLength']} characters"))
            if "maxLength" in schema and len(v) > schema["maxLength"]:
                err((path, f"is {len(v)} characters long, at most {schema['maxLength']} allowed"))
            if "pattern" in schema and not _pattern(schema["pattern"]).search(v):
                if _quoted_number(v, schema):
                    # YAML reads port: "8443" as a string; the author meant the number.
                    err((path, f"{v!r} is quoted, so YAML reads it as a string, not a number: remove the "
                               f"quotes ({path.rpartition('.')[2] or 'value'}: {v.strip()})"))
                    return
                hint = schema.get("x-hint")
                err((path, f"{v!r} is not {hint}" if hint
                     else f"{v!r} does not match the pattern {schema['pattern']}"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in schema and v < schema["minimum"]:
                err((path, f"must be at least {schema['minimum']}, got {v}"))
            if "maximum" in schema and v > schema["maximum"]:
                err((path, f"must be at most {schema['maximum']}, got {v}"))
        elif isinstance(v, list):
            if "minItems" in schema and len(v) < schema["minItems"]:
                err((path, f"must have at least {schema['minItems']} item(s)"))
            if "items" in schema:
                for i, item in enumerate(v):
                    self.check(item, schema["items"], f"{path}[{i}]")
        elif isinstance(v, dict):
            for key in schema.get("required", []):
                if key not in v:
                    err((_join(path, key), "is required"))
            props = schema.get("properties", {})
            addl = schema.get("additionalProperties", True)
            names = schema.get("propertyNames")
            for key, val in v.items():
                sub = _join(path, str(key))
                if names is not None:
                    before = len(self.errors)
                    self.check(key, names, sub)
                    if len(self.errors) > before:
                        continue
                if key in props:
                    self.check(val, props[key], sub)
                elif addl is False:
                    known = ", ".join(sorted(props)) or "none"
                    err((sub, f"unknown field {key!r}; known fields here: {known}"))
                elif isinstance(addl, dict):
                    self.check(val, addl, sub)


def validate(schema_name: str, obj: Any) -> list[tuple[str, str]]:
    """Validate ``obj`` against ``schemas/<schema_name>.json``: a list of (field path, message)."""
    root = load_schema(schema_name)
    v = _Validator(root)
    v.check(obj, root, "")
    return v.errors


# Inside ``validated_once``: the inputs whose schema has validated, by id, holding the object so
# its id cannot be reused. None: validate each time.
_validated: dict[int, Any] | None = None


@contextmanager
def validated_once() -> Iterator[None]:
    """For one process running several steps over the same objects (spiffe-hydrate): within it,
    ``schema_results(..., once=True)`` does not validate again an object that validated once. The
    steps write only the status the schema already allows, and a step that errs ends the run."""
    global _validated
    outer, _validated = _validated, {}
    try:
        yield
    finally:
        _validated = outer


def schema_results(kind: str, obj: dict[str, Any], once: bool = False) -> list[Result]:
    """Schema errors of one input as results; with ``once``, see ``validated_once``."""
    valid = _validated if once else None
    if valid is not None and valid.get(id(obj)) is obj:
        return []
    ref = resource_ref(obj)
    out = []
    for path, msg in validate(kind, obj):
        out.append(error(f"{kind} {ref.name or '<unnamed>'}: {path} {msg}", ref, path))
    if valid is not None and not out:
        valid[id(obj)] = obj
    return out

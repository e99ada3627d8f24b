"""Nested look-ups in plain KRM dicts without ``(x.get("a") or {}).get("b") or []`` chains."""

from __future__ import annotations

from typing import Any


def get_path(obj: Any, *keys: str, default: Any = None) -> Any:
    """``obj[k1][k2]...``; ``default`` where a key is missing, its value null, or a step on the
    way is not a mapping (the schema reports a malformed input; the callers only read).

    Keys are separate arguments, not a dotted string: label and annotation keys contain dots."""
    for key in keys:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj

"""The YAML value types that remember how the input wrote a value, and the YAML tags.

A render must not rewrite what it does not own: kpt restores comments and field order but not
scalar styles or flow collections, so the loaders (``yamlio``, ``fastyaml``) return these types
where the input's spelling matters and both dumpers write them back the same way. Each is equal
to the plain value it extends; values a function creates are plain and written in block style.
"""

from __future__ import annotations

from typing import Any

STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"


class _Remembering:
    """An immutable builtin value (``_base``) with what it remembers in the attribute ``_kept``."""

    __slots__ = ()
    _base: type
    _kept: str

    def __new__(cls, value: Any, kept: str) -> Any:
        obj = cls._base.__new__(cls, value)  # type: ignore[call-overload]
        setattr(obj, cls._kept, kept)
        return obj

    def __getnewargs__(self) -> tuple[Any, str]:
        return (self._base(self), getattr(self, self._kept))

    def __deepcopy__(self, memo: dict) -> Any:
        return self  # immutable


class StyledStr(_Remembering, str):
    """A string that remembers it was quoted or a literal block, so it is written back the same
    way: a render must not rewrite ``"true"`` as ``'true'`` in files the function does not own."""

    _base, _kept = str, "style"
    style: str


class IntText(_Remembering, int):
    """An int that remembers how it was written (``0644``, ``0x1F``), so it is written back the
    same way: ``defaultMode: 0644`` must not come back as ``644``, which Kubernetes (YAML 1.1,
    octal) would read as a different file mode."""

    _base, _kept = int, "text"
    text: str


class FloatText(_Remembering, float):
    """A float that remembers its spelling (``1e3``, ``1.50``) for the same reason."""

    _base, _kept = float, "text"
    text: str


class FlowList(list):
    """A sequence the input wrote in flow style (``args: ["--a", b]``), written back in flow
    style: kpt keeps the style of the nodes it reads from a function's output, so without this
    a render would rewrite every flow collection of a package as a block, even in resources no
    function touches. Equal to the plain list; lists a function creates stay block style.
    Empty ``[]`` loads as a plain list (it is written ``[]`` either way, and items a function
    adds to it are then written as a block)."""

    __slots__ = ()


class FlowDict(dict):
    """A mapping the input wrote in flow style (``labels: {app: x}``); see ``FlowList``."""

    __slots__ = ()

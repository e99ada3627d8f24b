"""Function results as the KRM Functions Specification defines them.

A result is a value the user can act on: a message that says what is wrong and how to fix
it, the resource it is about, the field path and the file. Severity is always set explicitly
(the spec's default is error, but kpt prints a missing severity as info).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class ResourceRef:
    api_version: str
    kind: str
    name: str
    namespace: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


@dataclass
class Result:
    message: str
    severity: Severity = Severity.ERROR
    resource_ref: ResourceRef | None = None
    field_path: str = ""
    current_value: Any = None
    proposed_value: Any = None
    file_path: str = ""
    file_index: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "severity": self.severity.value}
        if self.resource_ref is not None:
            out["resourceRef"] = self.resource_ref.to_dict()
            # The spec only allows a field together with a resourceRef.
            if self.field_path:
                fld: dict[str, Any] = {"path": self.field_path}
                if self.current_value is not None:
                    fld["currentValue"] = self.current_value
                if self.proposed_value is not None:
                    fld["proposedValue"] = self.proposed_value
                out["field"] = fld
        if self.file_path:
            f: dict[str, Any] = {"path": self.file_path}
            if self.file_index is not None:
                f["index"] = self.file_index
            out["file"] = f
        if self.tags:
            out["tags"] = dict(self.tags)
        return out

    def __str__(self) -> str:
        where = f" [{self.resource_ref}" + (f" {self.field_path}" if self.field_path else "") + "]" \
            if self.resource_ref else ""
        return f"{self.severity.value}: {self.message}{where}"


def error(message: str, ref: ResourceRef | None = None, field_path: str = "", **kw: Any) -> Result:
    return Result(message, Severity.ERROR, ref, field_path, **kw)


def warning(message: str, ref: ResourceRef | None = None, field_path: str = "", **kw: Any) -> Result:
    return Result(message, Severity.WARNING, ref, field_path, **kw)


def info(message: str, ref: ResourceRef | None = None, field_path: str = "", **kw: Any) -> Result:
    return Result(message, Severity.INFO, ref, field_path, **kw)


LIST_AT_MOST = 10


def name_list(names: list[str] | tuple[str, ...], at_most: int = LIST_AT_MOST) -> str:
    """Names for a message, at most ``at_most`` of them: a package with thousands of resources
    must not make one result grow with it (a huge message sends the whole output through the slow
    YAML dumper)."""
    names = list(names)
    if len(names) <= at_most:
        return ", ".join(names)
    return ", ".join(names[:at_most]) + f" and {len(names) - at_most} more"

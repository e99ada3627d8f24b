"""The ResourceList (config.kubernetes.io/v1) and helpers over its items.

Items stay plain dicts: this is the YAML boundary, and functions edit them in place so that
every field, annotation and the order of items that a function does not own survive.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from typing import Any

from .results import ResourceRef, Result, Severity

ANN_PATH = "config.kubernetes.io/path"
ANN_INDEX = "config.kubernetes.io/index"
ANN_INTERNAL_PATH = "internal.config.kubernetes.io/path"
ANN_INTERNAL_INDEX = "internal.config.kubernetes.io/index"
ANN_LOCAL_CONFIG = "config.kubernetes.io/local-config"

KPTFILE_API = "kpt.dev/v1"


class InputError(Exception):
    """The input is not a ResourceList we can work on; the message says how to fix it."""


def resource_ref(obj: dict[str, Any]) -> ResourceRef:
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        meta = {}
    return ResourceRef(str(obj.get("apiVersion", "")), str(obj.get("kind", "")),
                       str(meta.get("name", "")), str(meta.get("namespace", "") or ""))


def annotations(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        ann = meta.get("annotations")
        if isinstance(ann, dict):
            return ann
    return {}


def set_annotation(obj: dict[str, Any], key: str, value: str) -> None:
    meta = obj.setdefault("metadata", {})
    meta.setdefault("annotations", {})[key] = value


def file_path(obj: dict[str, Any]) -> str:
    ann = annotations(obj)
    return str(ann.get(ANN_INTERNAL_PATH) or ann.get(ANN_PATH) or "")


def is_local_config(obj: dict[str, Any]) -> bool:
    return str(annotations(obj).get(ANN_LOCAL_CONFIG, "")).lower() == "true"


def place(obj: dict[str, Any], path: str, index: int = 0) -> None:
    """Give a generated resource a file path (both the legacy and the internal pair agree)."""
    ann = obj.setdefault("metadata", {}).setdefault("annotations", {})
    ann[ANN_PATH] = path
    ann[ANN_INDEX] = str(index)
    ann[ANN_INTERNAL_PATH] = path
    ann[ANN_INTERNAL_INDEX] = str(index)


@dataclass
class ResourceList:
    items: list[dict[str, Any]]
    function_config: dict[str, Any] | None = None
    results: list[Result] = field(default_factory=list)
    # Anything else at the top level of the input is passed back unchanged.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_object(cls, doc: Any) -> ResourceList:
        if not isinstance(doc, dict):
            raise InputError("input is not a ResourceList: expected a YAML mapping with "
                             "'kind: ResourceList' and 'items'; run the function through kpt "
                             "(kpt fn render / kpt fn eval)")
        if doc.get("kind") != "ResourceList":
            raise InputError(f"input kind is {doc.get('kind')!r}, expected 'ResourceList' "
                             "(apiVersion config.kubernetes.io/v1); run the function through kpt")
        items = doc.get("items")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise InputError("ResourceList.items must be a list of resources")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("apiVersion") or not item.get("kind"):
                raise InputError(f"ResourceList.items[{i}] is not a resource: every item needs "
                                 "apiVersion and kind")
            # Every function reads these (and metadata) of every item: their types are checked here once.
            for key in ("apiVersion", "kind"):
                if not isinstance(item[key], str):
                    raise InputError(f"ResourceList.items[{i}].{key} must be a string, not "
                                     f"{type(item[key]).__name__} {item[key]!r:.60}")
            meta = item.get("metadata")
            if meta is not None and not isinstance(meta, dict):
                raise InputError(f"ResourceList.items[{i}].metadata must be a mapping, not "
                                 f"{type(meta).__name__} {meta!r:.60}")
        fc = doc.get("functionConfig")
        if fc is not None and not isinstance(fc, dict):
            raise InputError("ResourceList.functionConfig must be a mapping")
        extra = {k: v for k, v in doc.items()
                 if k not in ("apiVersion", "kind", "items", "functionConfig", "results")}
        return cls(items=items, function_config=fc, extra=extra)

    def to_object(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList"}
        out.update(self.extra)
        out["items"] = self.items
        if self.function_config is not None:
            out["functionConfig"] = self.function_config
        if self.results:
            out["results"] = [r.to_dict() for r in self.results]
        return out

    # -- queries -----------------------------------------------------------------------
    def of_kind(self, kind: str, group: str | None = None) -> Iterator[dict[str, Any]]:
        for item in self.items:
            if item.get("kind") == kind and (group is None or
                                             str(item.get("apiVersion", "")).split("/")[0] == group):
                yield item

    def find(self, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [i for i in self.items if pred(i)]

    def kptfile(self) -> KptfileView | None:
        """The package's own Kptfile: the one at the package root when kpt sends several."""
        candidates = [i for i in self.items
                      if i.get("kind") == "Kptfile" and i.get("apiVersion") == KPTFILE_API]
        if not candidates:
            return None
        root = [c for c in candidates if file_path(c) in ("Kptfile", "")]
        return KptfileView((root or candidates)[0])

    def config_data(self) -> dict[str, str]:
        """functionConfig as string data: a ConfigMap's ``data`` or a typed object's ``spec``/``data``."""
        fc = self.function_config or {}
        data = fc.get("data") if fc.get("kind") == "ConfigMap" else (fc.get("data") or fc.get("spec"))
        if not isinstance(data, dict):
            return {}
        return {str(k): "" if v is None else str(v) for k, v in data.items()}

    # -- results -----------------------------------------------------------------------
    def add(self, result: Result) -> None:
        self.results.append(result)

    def extend(self, results: list[Result]) -> None:
        self.results.extend(results)

    def has_errors(self) -> bool:
        return any(r.severity is Severity.ERROR for r in self.results)

    def attach_files(self) -> None:
        """Fill each result's file from the item it refers to, so kpt can print where it is."""
        by_ref: dict[ResourceRef, dict[str, Any]] = {}
        for item in self.items:
            by_ref.setdefault(resource_ref(item), item)
        for r in self.results:
            if r.resource_ref is None or r.file_path:
                continue
            item = by_ref.get(r.resource_ref)
            if item is None:
                continue
            path = file_path(item)
            if path:
                r.file_path = path
                idx = annotations(item).get(ANN_INTERNAL_INDEX, annotations(item).get(ANN_INDEX))
                if idx is not None and str(idx).isdigit():
                    r.file_index = int(idx)


class KptfileView:
    """Status conditions and readiness gates on the package's Kptfile (Nephio's conventions)."""

    def __init__(self, obj: dict[str, Any]):
        self.obj = obj
        # Position of each condition type and the set of gated types, built on first use and kept
        # up to date by the methods below: a package with thousands of identities would otherwise
        # scan the whole list once per identity (quadratic; 10,000 identities cost seconds).
        self._cond_list: list | None = None
        self._cond_pos: dict[Any, int] = {}
        self._gate_list: list | None = None
        self._gate_types: set[Any] = set()

    def type_errors(self) -> list[tuple[str, str]]:
        """(field path, expected type) for each section this view edits that does not have the type
        kpt's Kptfile schema gives it (kpt itself refuses such a Kptfile). A function checks this
        before editing, so the methods below may trust the types."""
        out: list[tuple[str, str]] = []
        for section, key in (("info", "readinessGates"), ("status", "conditions")):
            value = self.obj.get(section)
            if value is None:
                continue
            if not isinstance(value, dict):
                out.append((section, "a mapping"))
                continue
            entries = value.get(key)
            if entries is None:
                continue
            if not isinstance(entries, list):
                out.append((f"{section}.{key}", "a list"))
                continue
            out.extend((f"{section}.{key}[{i}]", "a mapping") for i, e in enumerate(entries)
                       if not isinstance(e, dict))
        return out

    @property
    def conditions(self) -> list[dict[str, Any]]:
        status = self.obj.get("status")
        if not isinstance(status, dict):
            return []
        conds = status.get("conditions")
        return conds if isinstance(conds, list) else []

    def get_condition(self, ctype: str) -> dict[str, Any] | None:
        for c in self.conditions:
            if isinstance(c, dict) and c.get("type") == ctype:
                return c
        return None

    def set_condition(self, ctype: str, status: bool, reason: str, message: str) -> None:
        """Create or update one condition in place, keeping the position of existing ones."""
        new = {"type": ctype, "status": "True" if status else "False", "reason": reason,
               "message": message}
        st = self.obj.setdefault("status", {})
        if not isinstance(st, dict):
            st = self.obj["status"] = {}
        conds = st.get("conditions")
        if not isinstance(conds, list):
            conds = st["conditions"] = []
        if self._cond_list is not conds:
            self._cond_list = conds
            self._cond_pos = {}
            for i, c in enumerate(conds):
                if isinstance(c, dict):
                    self._cond_pos.setdefault(c.get("type"), i)
        i = self._cond_pos.get(ctype)
        if i is not None and not (i < len(conds) and isinstance(conds[i], dict) and conds[i].get("type") == ctype):
            # the list was changed behind this view's back: find the condition the slow way
            i = next((j for j, c in enumerate(conds) if isinstance(c, dict) and c.get("type") == ctype), None)
        if i is not None:
            conds[i] = {**conds[i], **new}
            self._cond_pos[ctype] = i
            return
        self._cond_pos[ctype] = len(conds)
        conds.append(new)

    def remove_conditions(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        st = self.obj.get("status")
        if isinstance(st, dict) and isinstance(st.get("conditions"), list):
            st["conditions"] = [c for c in st["conditions"] if keep(c)]
            self._cond_list = None
            if not st["conditions"]:
                del st["conditions"]
            if not st:
                del self.obj["status"]

    def remove_stale_conditions(self, prefix: str, live: Container[str], reason_prefix: str = "") -> None:
        """Remove the conditions a function owns (type starting with ``prefix``, reason with
        ``reason_prefix``) whose type is not in ``live``: those of things it no longer produces."""
        self.remove_conditions(lambda c: not (_stale(c, "type", prefix, live)
                                              and str(c.get("reason", "")).startswith(reason_prefix)))

    def remove_stale_readiness_gates(self, prefix: str, live: Container[str]) -> None:
        """Remove the readiness gates whose condition type starts with ``prefix`` and is not in ``live``;
        ``info.readinessGates`` (and ``info``) go when nothing is left in them."""
        info = self.obj.get("info")
        gates = info.get("readinessGates") if isinstance(info, dict) else None
        if not isinstance(gates, list):
            return
        gates[:] = [g for g in gates if not _stale(g, "conditionType", prefix, live)]
        self._gate_list = None
        if not gates:
            del info["readinessGates"]
            if not info:
                del self.obj["info"]

    def ensure_readiness_gate(self, ctype: str) -> None:
        info = self.obj.setdefault("info", {})
        gates = info.setdefault("readinessGates", [])
        if self._gate_list is not gates:
            self._gate_list = gates
            self._gate_types = {g.get("conditionType") for g in gates if isinstance(g, dict)}
        if ctype not in self._gate_types:
            self._gate_types.add(ctype)
            gates.append({"conditionType": ctype})


def _stale(entry: Any, key: str, prefix: str, live: Container[str]) -> bool:
    """A condition or gate whose ``key`` starts with ``prefix`` (it is owned) but is not ``live``."""
    return isinstance(entry, dict) and str(entry.get(key, "")).startswith(prefix) and entry.get(key) not in live

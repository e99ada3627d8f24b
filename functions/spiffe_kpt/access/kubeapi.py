"""What the Kubernetes API serves, for checking grants: groups, resources, subresources, verbs, scope.

Built-in resources come from ``kube-api.json`` beside this module: the discovery documents of
the pinned kube-apiserver, written by ``python -m tests.real.kubeapi_table`` and compared with a
live apiserver by ``tests/real/test_real_access.py`` (never typed by hand). Custom resources
come from the CustomResourceDefinitions in the package (applied or local-config: a package that
grants access to a CRD installed by another package declares it with a local-config copy).
Loaded only when a grant has Kubernetes rules (a few ms; the functions' start-up does not pay it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kube-api.json")
CRD_API = "apiextensions.k8s.io/v1"
# The verbs of every custom resource, and of its status and scale subresources (what the
# apiserver serves for a CRD; its discovery lists the same).
CR_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")
# Verbs RBAC knows that discovery does not list (they are checked by authorizers, not served as
# REST verbs): https://kubernetes.io/docs/reference/access-authn-authz/rbac/ "privilege escalation
# prevention", "impersonation", certificates signers.
SPECIAL_VERBS: dict[tuple[str, str], tuple[str, ...]] = {
    ("rbac.authorization.k8s.io", "roles"): ("bind", "escalate"),
    ("rbac.authorization.k8s.io", "clusterroles"): ("bind", "escalate"),
    ("", "users"): ("impersonate",),
    ("", "groups"): ("impersonate",),
    ("", "serviceaccounts"): ("impersonate",),
    ("authentication.k8s.io", "uids"): ("impersonate",),
    ("authentication.k8s.io", "userextras"): ("impersonate",),
    ("certificates.k8s.io", "signers"): ("approve", "sign", "attest"),
}
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection", "bind", "escalate",
                         "impersonate", "approve", "sign", "attest", "*"})


@dataclass(frozen=True)
class Resource:
    group: str
    name: str  # plural, or resource/subresource
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    source: str  # "Kubernetes v1.34.4" or "CustomResourceDefinition <name>"


@dataclass
class KubeAPI:
    """Resources by group, then name."""

    groups: dict[str, dict[str, Resource]] = field(default_factory=dict)
    version: str = ""

    def resource(self, group: str, name: str) -> Resource | None:
        return self.groups.get(group, {}).get(name)

    def groups_with(self, name: str) -> list[str]:
        """The groups serving a resource of that name (for 'did you mean')."""
        return sorted(g for g, rs in self.groups.items() if name in rs)

    def add(self, r: Resource) -> None:
        self.groups.setdefault(r.group, {})[r.name] = r


@cache
def _builtin() -> tuple[str, tuple[Resource, ...]]:
    with open(TABLE_FILE, encoding="utf-8") as f:
        table = json.load(f)
    version = str(table["kubernetes"])
    out = []
    for group, resources in table["groups"].items():
        for name, e in resources.items():
            verbs = tuple(e["verbs"]) + SPECIAL_VERBS.get((group, name), ())
            out.append(Resource(group, name, e["kind"], e["namespaced"], verbs, f"Kubernetes {version}"))
    # RBAC-only resources: impersonation and signers are authorized, never served.
    for (group, name), verbs in SPECIAL_VERBS.items():
        if not any(r.group == group and r.name == name for r in out):
            out.append(Resource(group, name, "", name == "serviceaccounts", verbs, f"Kubernetes {version} (RBAC only)"))
    return version, tuple(out)


def api_for(items: list[dict[str, Any]]) -> KubeAPI:
    """The built-in API plus the custom resources the package's CRDs define."""
    version, builtin = _builtin()
    api = KubeAPI(version=version)
    for r in builtin:
        api.add(r)
    for obj in items:
        if obj.get("apiVersion") != CRD_API or obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
        group, plural = spec.get("group"), names.get("plural")
        if not isinstance(group, str) or not isinstance(plural, str):
            continue
        source = f"CustomResourceDefinition {(obj.get('metadata') or {}).get('name', '')}"
        namespaced = spec.get("scope") != "Cluster"
        api.add(Resource(group, plural, str(names.get("kind") or ""), namespaced, CR_VERBS, source))
        subresources: set[str] = set()
        for v in spec.get("versions") or []:
            if isinstance(v, dict) and isinstance(v.get("subresources"), dict):
                subresources |= set(v["subresources"]) & {"status", "scale"}
        for sub in sorted(subresources):
            api.add(Resource(group, f"{plural}/{sub}", str(names.get("kind") or ""), namespaced,
                             SUBRESOURCE_VERBS, source))
    return api

"""The authorization generator: zero-trust policy from the identities' ingress and egress rules.

Reads every WorkloadIdentity's ``spec.ingress`` and ``spec.egress`` and the IdentityContext's ``spec.policy``,
builds one policy model (``rules``) and emits, for each enabled backend, Istio
(``istio``), Kubernetes NetworkPolicy (``networkpolicy``), MultiNetworkPolicy
(``multinetworkpolicy``) and Linkerd (``linkerd``) resources, plus a who-may-talk-to-whom
Mermaid diagram in a local-config ConfigMap (``diagram``). A rule a backend cannot express
gets a result naming the rule and the backend; a port no enabled backend enforces gets a
warning. Ownership as everywhere in the project (``api.ownership``): re-render replaces,
removal deletes, hand-written resources of the same kind and name are errors.
See README.md beside this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# The body is function.py; these names load it on first use (see spiffe_kpt.lazy).
__all__ = ["BUILDERS", "Builder", "DIAGRAM_KEY", "DIAGRAM_NAME", "FOLDER", "KINDS", "NAME", "authorize",
           "coverage_warnings", "diagram_configmap", "enforcers", "main"]
__getattr__ = exports(__name__, __all__)

if TYPE_CHECKING:
    from .function import (
        BUILDERS,
        DIAGRAM_KEY,
        DIAGRAM_NAME,
        FOLDER,
        KINDS,
        NAME,
        Builder,
        authorize,
        coverage_warnings,
        diagram_configmap,
        enforcers,
        main,
    )

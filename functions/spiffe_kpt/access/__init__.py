"""spiffe-access: Kubernetes RBAC, the apiserver's JWT authenticators and secrets-manager policy
from the package's AccessGrants.

Reads AccessGrant, IdentityContext (issuers, audiences), WorkloadIdentity and the package's
CRDs; writes Role/ClusterRole + bindings per grant, the kube-apiserver's AuthenticationConfiguration
in a local-config ConfigMap, and (with ``openbao``) the secrets manager's configuration. The model
is ``grants``, the checks ``checks``, the targets ``kubernetes`` and ``openbao``; see README.md
beside this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# The body is function.py; these names load it on first use (see spiffe_kpt.lazy).
__all__ = ["NAME", "access", "main"]
__getattr__ = exports(__name__, __all__)

if TYPE_CHECKING:
    from .function import NAME, access, main

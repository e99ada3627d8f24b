"""The specializer: resolve every WorkloadIdentity and record the result.

Reads WorkloadIdentity, IdentityContext, an optional Nephio WorkloadCluster and the
workloads; writes each WorkloadIdentity's ``status`` (resolved SPIFFE ID, its Go template
and the attestation attributes it came from) and one Kptfile condition per identity,
following Nephio's specializer convention. See README.md beside this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# The body is function.py; these names load it on first use (see spiffe_kpt.lazy).
__all__ = ["CONDITION_PREFIX", "NAME", "REASON_CONTEXT_MISSING", "REASON_RESOLVED", "identity_status", "main",
           "specialize", "update_kptfile"]
__getattr__ = exports(__name__, __all__)

if TYPE_CHECKING:
    from .function import (
        CONDITION_PREFIX,
        NAME,
        REASON_CONTEXT_MISSING,
        REASON_RESOLVED,
        identity_status,
        main,
        specialize,
        update_kptfile,
    )

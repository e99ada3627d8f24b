"""The registration generator: SPIRE registrations for the package's identities.

Emits, for spire-controller-manager to turn into SPIRE registration entries:

- one ``ClusterSPIFFEID`` per resolved WorkloadIdentity (``clusterspiffeid``);
- one ``ClusterFederatedTrustDomain`` per federation peer of the IdentityContext (``federation``);
- one ``ClusterStaticEntry`` per StaticIdentity, for workloads that are not pods (``static``).

Everything generated carries the ownership annotations (``spiffe_kpt.api.ownership``): a
re-render replaces it, an identity's removal deletes it, and a hand-written resource of the
same kind and name is an error, never overwritten. Identities still waiting for context get
nothing (and an info result). See README.md beside this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# The body is function.py; these names load it on first use (see spiffe_kpt.lazy).
__all__ = ["CHILD_CONDITION_PREFIX", "FOLDER", "KINDS", "NAME", "REASON_PREFIX", "child_condition_type",
           "desired_registrations", "main", "register", "update_child_conditions"]
__getattr__ = exports(__name__, __all__)

if TYPE_CHECKING:
    from .function import (
        CHILD_CONDITION_PREFIX,
        FOLDER,
        KINDS,
        NAME,
        REASON_PREFIX,
        child_condition_type,
        desired_registrations,
        main,
        register,
        update_child_conditions,
    )

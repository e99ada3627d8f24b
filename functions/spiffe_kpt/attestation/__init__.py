"""The attestation mutator: make each workload attestable exactly as its WorkloadIdentity declares.

SPIRE's Kubernetes workload attestor identifies a pod by facts the API server vouches for:
its namespace, service account and labels. This function puts those facts on the workloads
(namespace, ``serviceAccountName`` and the identity's selector labels on the pod template),
creates the ServiceAccount when the package lacks it, and mounts the SPIFFE CSI volume where
``spec.workloadAPI.csi`` asks. It refuses to overwrite anything a person wrote that
contradicts the identity, and refuses selectors that would also match another workload's
pods. See README.md beside this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# The body is function.py; these names load it on first use (see spiffe_kpt.lazy).
__all__ = ["Account", "BINDING_KINDS", "BUILTIN_SERVICE_ACCOUNTS", "NAME", "RBAC_API", "SERVICE_ACCOUNT",
           "attest_workload", "check_bound_accounts", "check_external_accounts", "check_selector_overlaps",
           "creates_service_account", "desired_service_accounts", "external_accounts", "final_pod_sets",
           "main", "make_attestable"]
__getattr__ = exports(__name__, __all__)

if TYPE_CHECKING:
    from .function import (
        BINDING_KINDS,
        BUILTIN_SERVICE_ACCOUNTS,
        NAME,
        RBAC_API,
        SERVICE_ACCOUNT,
        Account,
        attest_workload,
        check_bound_accounts,
        check_external_accounts,
        check_selector_overlaps,
        creates_service_account,
        desired_service_accounts,
        external_accounts,
        final_pod_sets,
        main,
        make_attestable,
    )

"""spiffe-kpt: kpt (KRM) functions that make SPIFFE workload identity part of GitOps hydration.

Layers, from the edge inwards:

- ``spiffe_kpt.krm``: the KRM Functions Specification (ResourceList in/out, results, exit
  codes). Knows nothing about SPIFFE.
- ``spiffe_kpt.identity``: pure domain logic (SPIFFE IDs, ID formats, Go templates). Knows
  nothing about YAML or kpt.
- ``spiffe_kpt.api``: the project's input resources (WorkloadIdentity, IdentityContext),
  parsed from plain dicts into typed objects with field-path errors.
- one sub-package per function (``specializer``, ``validator``, ...): the function in its
  ``function.py``, re-exported by its ``__init__`` (``spiffe_kpt.lazy``), run by its ``__main__``.
"""

API_GROUP = "workloadidentity.nephio.org"
API_VERSION = f"{API_GROUP}/v1alpha1"

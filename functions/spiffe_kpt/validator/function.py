"""spiffe-validator: the function itself (``__init__`` re-exports it; its docstring says what it does)."""

from __future__ import annotations

import sys

from ..access.checks import check_access
from ..access.grants import grant_objects, identity_audiences
from ..api.resolve import Resolution, resolve
from ..api.trustbundles import trust_bundles
from ..attestation import check_selector_overlaps
from ..authorization.checks import check_authorization
from ..identity.spiffeid import SpiffeIDError, parse
from ..krm import ResourceList, error, info, run_function, warning
from ..krm.resourcelist import is_local_config, resource_ref
from ..registration.checks import check_registrations
from ..specializer import identity_status

NAME = "spiffe-validator"


def validate_package(rl: ResourceList) -> None:
    res: Resolution = resolve(rl)
    rl.extend(res.results)
    ctx = res.context

    for obj in (res.identity_objects + [o for o in rl.items if ctx.ref and resource_ref(o) == ctx.ref]
                + trust_bundles(rl.items) + grant_objects(rl.items)):
        if not is_local_config(obj):
            ref = resource_ref(obj)
            rl.add(error(f"{ref.kind} {ref.name} lacks the annotation config.kubernetes.io/local-config: \"true\"; "
                         "without it kpt and ConfigSync would apply it to the cluster, which has no such CRD. "
                         "Add the annotation", ref, "metadata.annotations"))

    if ctx.missing and res.identity_objects:
        msg = "; ".join(ctx.missing)
        if ctx.injection_pending:
            rl.add(warning(f"identities are not resolved yet: {msg}. This is expected in a blueprint "
                           "awaiting porch's config injection", ctx.ref))
        else:
            rl.add(error(f"identities cannot be resolved: {msg}. Add an IdentityContext with "
                         "spec.trustDomain (or mark it kpt.dev/config-injection: required for porch to inject)",
                         ctx.ref))

    audiences = identity_audiences(rl, res)
    for ident in res.identities:
        status = ident.obj.get("status") or {}
        recorded = status.get("spiffeID")
        if recorded is not None:
            try:
                parse(recorded)
            except SpiffeIDError as exc:
                rl.add(error(f"WorkloadIdentity {ident.name}: status.spiffeID is not a valid SPIFFE ID: {exc}",
                             ident.ref, "status.spiffeID", current_value=recorded))
                continue
        if status and status != identity_status(ident, ctx, audiences.get(ident.name)):
            rl.add(error(f"WorkloadIdentity {ident.name}: status is stale (it says "
                         f"{recorded or 'nothing'}, the package now resolves to {ident.spiffe_id or 'nothing yet'}); "
                         "run spiffe-specializer before spiffe-validator in the pipeline",
                         ident.ref, "status", current_value=recorded,
                         proposed_value=str(ident.spiffe_id) if ident.spiffe_id else None))
        elif not status and ident.spiffe_id is not None:
            rl.add(warning(f"WorkloadIdentity {ident.name}: status is empty; run spiffe-specializer before "
                           "spiffe-validator so the resolved ID is recorded", ident.ref, "status"))

    # Attestation and registration: selectors that reach a neighbour's pods, SPIRE pitfalls.
    if res.ok:
        rl.extend(check_selector_overlaps(rl.items, res.identities))
    rl.extend(check_registrations(rl, res))
    # Authorization rules: dangling peers, conflicts, unexposed ports, unprotected workloads.
    if res.ok:
        rl.extend(check_authorization(rl.items, res))
    # Access grants: unknown clients, issuers, API groups, resources and verbs, wildcards.
    if res.ok and grant_objects(rl.items):
        rl.extend(check_access(rl, res)[1])

    if not rl.has_errors():
        waiting = sum(1 for i in res.identities if i.spiffe_id is None)
        rl.add(info(f"validated {len(res.identities)} workload identit"
                    f"{'y' if len(res.identities) == 1 else 'ies'}"
                    + (f" ({waiting} waiting for context)" if waiting else "")))


def main() -> None:
    sys.exit(run_function(validate_package, NAME))


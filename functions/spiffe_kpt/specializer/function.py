"""spiffe-specializer: the function itself (``__init__`` re-exports it; its docstring says what it does)."""

from __future__ import annotations

import sys
from typing import Any

from ..access.grants import identity_audiences
from ..api import migration
from ..api.context import Context
from ..api.resolve import Identity, Resolution, condition_type, resolve
from ..krm import ResourceList, info, run_function
from ..krm.results import warning

NAME = "spiffe-specializer"
CONDITION_PREFIX = condition_type("")
REASON_RESOLVED = "Resolved"
REASON_CONTEXT_MISSING = "ContextMissing"


def identity_status(ident: Identity, ctx: Context | None = None, audiences: list[str] | None = None) -> dict[str, Any]:
    """The status a resolved (or pending) identity gets; owned entirely by the specializer.
    ``audiences``: the JWT-SVID audiences the workload must request for the access grants naming
    it (access.grants.identity_audiences)."""
    status: dict[str, Any] = {}
    if ident.spiffe_id is not None:
        status["spiffeID"] = str(ident.spiffe_id)
        status["spiffeIDTemplate"] = ident.go_template
    status["workloadRef"] = {"apiVersion": ident.workload_ref.api_version,
                             "kind": ident.workload_ref.kind, "name": ident.workload_ref.name}
    mig = migration.status_of(ctx, ident.alternate_id) if ctx is not None else None
    if mig is not None:
        status["migration"] = mig
    status["namespace"] = ident.namespace
    status["serviceAccountName"] = ident.service_account
    status["selectorLabels"] = dict(sorted(ident.selector_labels.items()))
    if ident.attributes is not None:
        if "{clusterName}" in ident.template:
            status["clusterName"] = ident.attributes.cluster_name
        if "{opaqueID}" in ident.template:
            from ..identity.formats import opaque_source
            status["opaqueSource"] = opaque_source(ident.attributes)
    if audiences:
        status["jwtAudiences"] = list(audiences)
    return status


def specialize(rl: ResourceList) -> None:
    res: Resolution = resolve(rl)
    rl.extend(res.results)
    if not res.ok:
        return
    audiences = identity_audiences(rl, res)
    for ident in res.identities:
        ident.obj["status"] = identity_status(ident, res.context, audiences.get(ident.name))
    update_kptfile(rl, res)
    resolved = [i for i in res.identities if i.spiffe_id is not None]
    pending = [i for i in res.identities if i.spiffe_id is None]
    if pending:
        rl.add(info(f"{len(pending)} workload identit{'y' if len(pending) == 1 else 'ies'} wait for context: "
                    f"{pending[0].pending}; their Kptfile conditions stay False until it is set"))
    if resolved:
        rl.add(info(f"resolved {len(resolved)} workload identit{'y' if len(resolved) == 1 else 'ies'}"))
    if not res.identities:
        rl.add(info("no WorkloadIdentity in the package; nothing to specialize"))


def update_kptfile(rl: ResourceList, res: Resolution) -> None:
    kf = rl.kptfile()
    if kf is None:
        if res.identities:
            rl.add(warning("the package has no Kptfile, so the per-identity conditions were not written"))
        return
    live = {i.condition_type for i in res.identities}
    # Drop conditions and readiness gates of identities that no longer exist (ours only).
    kf.remove_stale_conditions(CONDITION_PREFIX, live)
    kf.remove_stale_readiness_gates(CONDITION_PREFIX, live)
    for ident in res.identities:
        kf.ensure_readiness_gate(ident.condition_type)
        if ident.spiffe_id is not None:
            kf.set_condition(ident.condition_type, True, REASON_RESOLVED, str(ident.spiffe_id))
        else:
            kf.set_condition(ident.condition_type, False, REASON_CONTEXT_MISSING, ident.pending)
    migration.record_phase(res.context, kf)


def main() -> None:
    sys.exit(run_function(specialize, NAME))


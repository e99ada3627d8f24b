"""The body of spiffe-access: render the package's AccessGrants to every target.

Reads the identities (``api.resolve``), the grants (``grants``), checks them against the
Kubernetes API and the identities (``kubechecks``) and renders each target: the Kubernetes API
(``kubernetes``: RBAC + the apiserver's AuthenticationConfiguration) and the secrets manager
(``openbao``). What is rendered is owned like the registrations
(``api.ownership``): re-render replaces, a removed grant's objects are deleted, a hand-written
object of the same kind and name is an error and nothing is written.
"""

from __future__ import annotations

from .. import API_VERSION
from ..api.context import IDENTITY_CONTEXT
from ..api.ownership import Desired, conflict_results, owner_of, sync
from ..api.resolve import resolve
from ..krm import ResourceList, error, info, run_function
from ..krm.resourcelist import resource_ref
from ..krm.results import name_list
from ..krm.runner import exit_process
from . import kubernetes, openbao
from .checks import check_access
from .grants import ACCESS_GRANT, access_settings, issuers

NAME = "spiffe-access"
# Where grants are rendered: the Kubernetes API and the secrets manager.
TARGETS = (kubernetes, openbao)
# Owners of what this function renders: the grants (RBAC, policies) and the context (the
# authentication configuration, which holds its issuers).
_OURS = (f"{API_VERSION}.{ACCESS_GRANT}.",)


def access(rl: ResourceList) -> None:
    res = resolve(rl)
    rl.extend(res.results)
    if not res.ok:
        return
    ctx = res.context
    gs, results = check_access(rl, res)
    rl.extend(results)
    if rl.has_errors():
        return
    settings = access_settings(ctx)
    if gs.grants and ctx.missing:
        rl.add(info(f"access grants wait for context: {'; '.join(ctx.missing)}"))
        return
    known = issuers(ctx)
    desired: list[Desired] = []
    kinds: set[tuple[str, str]] = set()
    for target in TARGETS:
        desired += target.render(gs.grants, known, ctx, settings, rl.results)
        kinds |= target.KINDS
    if rl.has_errors():
        return
    ctx_owner = f"{API_VERSION}.{IDENTITY_CONTEXT}.{ctx.ref.name}" if ctx.ref else ""
    produced_by_ctx = {(d.obj["kind"], d.obj["metadata"]["name"]) for d in desired
                       if owner_of(d.obj) == ctx_owner}
    # Ours: what the grants own, and the context-owned files of this function (the authentication
    # ConfigMap); the authorization diagram and spire-config's objects are someone else's.
    report = sync(rl, frozenset(kinds), desired, keep=lambda obj: not _is_ours(obj, ctx_owner, produced_by_ctx))
    if report.conflicts:
        rl.extend(conflict_results(report, error))
        return
    for o in report.deleted:
        rl.add(info(f"deleted {resource_ref(o).kind} {resource_ref(o).name}: its grant {owner_of(o)} is gone or no "
                    "longer grants it", resource_ref(o)))
    if gs.waiting:
        rl.add(info(f"access grants {name_list(sorted(gs.waiting))} wait for their identities' SPIFFE IDs"))
    counts: dict[str, int] = {}
    for d in desired:
        counts[d.obj["kind"]] = counts.get(d.obj["kind"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
    n = len(gs.grants)
    rl.add(info(f"access from {n} grant{'s' if n != 1 else ''} (Kubernetes audience "
                f"{settings.kubernetes_audience or 'pending'}): generated {summary}"))


def _is_ours(obj: dict, ctx_owner: str, produced_by_ctx: set[tuple[str, str]]) -> bool:
    owner = owner_of(obj)
    if owner.startswith(_OURS):
        return True
    # The context-owned files this function writes, by kind and name (the authorization
    # function's diagram ConfigMap has the same owner and must survive).
    ref = resource_ref(obj)
    return owner == ctx_owner and ((ref.kind, ref.name) in produced_by_ctx or
                                   (ref.kind, ref.name) == ("ConfigMap", kubernetes.AUTHN_CONFIGMAP) or
                                   any(t.owns(obj) for t in TARGETS if hasattr(t, "owns")))


def main() -> None:
    exit_process(run_function(access, NAME))


if __name__ == "__main__":
    main()

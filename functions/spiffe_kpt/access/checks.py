"""Every check of the package's access grants, for spiffe-access (which renders nothing when one
fails) and spiffe-validator (which re-derives them; it never trusts what a generator wrote).

The model's own (``grants``: unknown identity, a trust domain without issuer or not federated,
namespaces vs clusterScope, colliding audiences, a ``system:`` username prefix), the Kubernetes
API's (``kubechecks``: groups, resources, verbs, scope, wildcards, broad write access) and the
generated names'.
"""

from __future__ import annotations

from ..api.resolve import Resolution
from ..krm.resourcelist import ResourceList
from ..krm.results import Result, error
from . import kubechecks, kubernetes, openbao
from .grants import GrantSet, access_settings, check_context, read_grants
from .kubeapi import api_for


def check_access(rl: ResourceList, res: Resolution) -> tuple[GrantSet, list[Result]]:
    """The package's grants and every finding about them (call only when ``res.ok``)."""
    results: list[Result] = check_context(res.context)
    gs = read_grants(rl, res, results)
    for grant in gs.grants:
        name = kubernetes.rbac_name(grant)
        if grant.kubernetes and not kubernetes.name_ok(name):
            results.append(error(f"AccessGrant {grant.name}: the generated RBAC name {name!r} is longer than 253 "
                                 "characters; shorten metadata.name", grant.ref, "metadata.name"))
    if any(g.kubernetes for g in gs.grants):
        results.extend(kubechecks.check_rules(gs.grants, api_for(rl.items), res.identities))
    if any(g.secrets for g in gs.grants):
        results.extend(openbao.check_grants(gs.grants, res.identities, res.context, access_settings(res.context)))
    return gs, results

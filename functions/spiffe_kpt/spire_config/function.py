"""spiffe-spire-config: the function itself (``__init__`` re-exports it; its docstring says what it does)."""

from __future__ import annotations

import sys
from typing import Any

from .. import API_VERSION
from ..api.kinds import check_kinds
from ..api.schema import validate
from ..api.trustbundles import bundle_for_peer
from ..krm import ResourceList, error, info, run_function, warning
from ..krm.resourcelist import resource_ref
from . import migration
from .agent_conf import render_agent_conf
from .checks import check_issuer_pairing, check_pairing, check_values
from .server_conf import render_server_conf
from .values import AGENT, DOWNSTREAM, KIND, ROOT, Values, read_values

NAME = "spiffe-spire-config"

__all__ = ["configure", "main", "render_agent_conf", "render_server_conf", "read_values", "Values"]



def _values_resources(rl: ResourceList) -> list[dict[str, Any]]:
    return [i for i in rl.items if i.get("kind") == KIND and i.get("apiVersion") == API_VERSION]


def configure(rl: ResourceList) -> None:
    # A misspelled SpireDeployment kind would otherwise read as "nothing to configure".
    rl.extend(check_kinds(rl.items))
    if rl.has_errors():
        return
    found = _values_resources(rl)
    if not found:
        rl.add(info(f"{NAME}: no {KIND} ({API_VERSION}) in the package; nothing to configure"))
        return
    parsed: list[tuple[dict[str, Any], Values]] = []
    for obj in found:
        ref = resource_ref(obj)
        problems = validate(KIND, obj)
        if problems:
            for path, msg in problems:
                rl.add(error(f"{path}: {msg}", ref, path))
            continue
        v = read_values(obj)
        migration.apply_defaults(v, obj.get("spec") or {})
        for prob in check_values(v, obj.get("spec") or {}) + migration.check(v, obj.get("spec") or {}):
            rl.add(error(prob.message, ref, prob.path))
        for i, peer in enumerate(v.peers):
            if peer.trust_bundle:
                text, results = bundle_for_peer(rl.items, peer.trust_bundle, peer.trust_domain, ref,
                                                f"spec.federation.peers[{i}].trustBundle")
                rl.extend(results)
                peer.bundle = text or ""
        parsed.append((obj, v))
    # An agent rendered together with the server it attests to (a cluster's parent
    # package holding both) must agree with it on trust domain and cluster name.
    servers = [(o, v) for o, v in parsed if v.is_server]
    for obj, v in parsed:
        if v.role == AGENT and servers:
            best = [p for s in servers[:1] for p in check_pairing(v, s[1])]
            for prob in best:
                rl.add(error(prob.message, resource_ref(obj), prob.path))
    # A downstream server rendered with its root (one parent package): one JWT issuer.
    roots = [v for _, v in parsed if v.role == ROOT]
    for obj, v in parsed:
        if v.role == DOWNSTREAM:
            for prob in [p for r in roots[:1] for p in check_issuer_pairing(v, r)]:
                rl.add(error(prob.message, resource_ref(obj), prob.path))
    if rl.has_errors():
        return
    from .package import apply, own_items  # only on the success path
    from .socket_dir import problems as socket_dir_problems
    for obj, _ in parsed:
        for ds, path, msg in socket_dir_problems(own_items(rl, obj)):
            rl.add(error(msg, resource_ref(ds), path))
    if rl.has_errors():
        return
    for obj, v in parsed:
        apply(rl, obj, v)
        if v.network_policy.explicitly_off:
            rl.add(warning(f"{NAME}: spec.networkPolicy.enabled is false, so no NetworkPolicy protects the SPIRE "
                           "pods: anything in the cluster can reach the server's agent API, bundle endpoint and "
                           "health ports; remove it (and set the ranges the error messages ask for) to get them",
                           resource_ref(obj), "spec.networkPolicy.enabled"))
        rl.add(info(f"{NAME}: configured {v.role} for cluster {v.cluster_name!r} in trust domain "
                    f"{v.trust_domain!r}", resource_ref(obj)))


def main() -> None:
    sys.exit(run_function(configure, NAME))


"""Checks of the Kubernetes rules of access grants against what the API serves and what the
package's identities are.

Errors: an API group, resource or verb the cluster does not serve (RBAC would accept the rule
and grant nothing, so the client fails at run time with a 403 nobody predicted), a
cluster-scoped resource granted in namespaces (a Role cannot grant it). Warnings: '*' (with the
exact list it stands for today), write access through an ID prefix or trust domain that covers
more than one type of workload, resource names with verbs RBAC cannot restrict by name.
"""

from __future__ import annotations

import difflib

from ..api.resolve import Identity
from ..krm.results import Result, error, name_list, warning
from .grants import ID, TRUST_DOMAIN, Grant, KubernetesRule
from .kubeapi import WRITE_VERBS, KubeAPI, Resource

# RBAC cannot restrict these verbs by resource name: the request carries no name (create,
# deletecollection) or lists many (list, watch: only with a metadata.name field selector).
UNNAMED_VERBS = ("create", "deletecollection", "list", "watch")


def check_rules(grants: list[Grant], api: KubeAPI, identities: list[Identity]) -> list[Result]:
    out: list[Result] = []
    for grant in grants:
        for rule in grant.kubernetes:
            resources = _check_resources(grant, rule, api, out)
            if resources is None:
                continue
            _check_verbs(grant, rule, resources, out)
            _check_scope(grant, rule, resources, out)
            _check_names(grant, rule, out)
        out.extend(_check_broad_writers(grant, identities))
    return out


def _fmt(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{v}"' if v == "" else v for v in values) + "]"


def _check_resources(grant: Grant, rule: KubernetesRule, api: KubeAPI, out: list[Result]) -> list[Resource] | None:
    """The resources the rule names (every one checked), None when any group or resource is unknown."""
    ref, path = grant.ref, rule.source
    ok = True
    groups = list(rule.api_groups)
    if "*" in groups:
        named = [r for r in rule.resources if r != "*"]
        exact = sorted({g for r in named for g in api.groups_with(r)})
        alt = f"apiGroups: {_fmt(exact)} (the groups serving {', '.join(named)})" if exact else \
            "the API groups the clients need by name"
        out.append(warning(
            f"AccessGrant {grant.name}: {path}.apiGroups '*' matches every API group, also ones installed later (a CRD "
            f"added next year is then granted too); use {alt}", ref, f"{path}.apiGroups", proposed_value=exact or None))
        groups = exact
    for j, group in enumerate(rule.api_groups):
        if group == "*" or group in api.groups:
            continue
        ok = False
        close = difflib.get_close_matches(group, list(api.groups), n=1, cutoff=0.75)
        hint = f"did you mean {close[0]!r}? " if close else ""
        out.append(error(
            f"AccessGrant {grant.name}: {path}.apiGroups[{j}] {group!r} is not an API group of Kubernetes "
            f"{api.version} and no CustomResourceDefinition in the package defines it; {hint}a rule for a group the "
            "cluster does not serve grants nothing. Fix the group, or add the CRD to the package (a copy annotated "
            "config.kubernetes.io/local-config: \"true\" when another package installs it)",
            ref, f"{path}.apiGroups[{j}]", current_value=group, proposed_value=close[0] if close else None))
    if not ok:
        return None
    found: list[Resource] = []
    if "*" in rule.resources:
        every = sorted({r.name for g in groups for r in api.groups.get(g, {}).values() if "/" not in r.name})
        out.append(warning(
            f"AccessGrant {grant.name}: {path}.resources '*' matches every resource of {_fmt(groups)} (and its "
            f"subresources), also ones added later; name them: resources: {_fmt(every)} (or fewer)",
            ref, f"{path}.resources", proposed_value=every))
        found += [r for g in groups for r in api.groups.get(g, {}).values()]
    for k, name in enumerate(rule.resources):
        if name == "*":
            continue
        hits = [api.resource(g, name) for g in groups]
        hits_ok = [h for h in hits if h is not None]
        if len(hits_ok) == len(groups):
            found += hits_ok
            continue
        ok = False
        missing_in = [g for g, h in zip(groups, hits) if h is None]
        elsewhere = [g for g in api.groups_with(name) if g not in groups]
        pool = sorted({r for g in missing_in for r in api.groups.get(g, {})})
        close = difflib.get_close_matches(name, pool, n=1, cutoff=0.7)
        if elsewhere:
            hint = f"{name} is served by API group {_fmt(elsewhere)}: put that group in apiGroups (or this resource in a " \
                   "rule of its own)"
        elif close:
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = "resources are lowercase plurals (configmaps, deployments), a subresource is resource/subresource"
        out.append(error(
            f"AccessGrant {grant.name}: {path}.resources[{k}] {name!r} is not a resource of API group "
            f"{_fmt(missing_in)} (Kubernetes {api.version} and the package's CRDs); {hint}. A rule for a resource "
            "the cluster does not serve grants nothing", grant.ref, f"{path}.resources[{k}]", current_value=name,
            proposed_value=close[0] if close and not elsewhere else None))
    return found if ok else None


def _check_verbs(grant: Grant, rule: KubernetesRule, resources: list[Resource], out: list[Result]) -> None:
    path = rule.source
    served = sorted({v for r in resources for v in r.verbs})
    if "*" in rule.verbs:
        out.append(warning(
            f"AccessGrant {grant.name}: {path}.verbs '*' grants every verb, also escalating ones RBAC adds later; "
            f"name them: verbs: {_fmt(served)} (what {', '.join(sorted({r.name for r in resources}))} serve; usually "
            "fewer are needed)", grant.ref, f"{path}.verbs", proposed_value=served))
    for v, verb in enumerate(rule.verbs):
        if verb == "*":
            continue
        lacking = [r.name for r in resources if verb not in r.verbs]
        if not lacking:
            continue
        in_all = sorted(set.intersection(*(set(r.verbs) for r in resources))) if resources else []
        close = difflib.get_close_matches(verb, served, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        out.append(error(
            f"AccessGrant {grant.name}: {path}.verbs[{v}] {verb!r} is not a verb of {', '.join(lacking)} "
            f"(the verbs all the rule's resources serve: {_fmt(in_all)}); {hint}a verb the resource does not serve "
            "grants nothing. Fix the verb, or move the resource to a rule of its own", grant.ref, f"{path}.verbs[{v}]",
            current_value=verb, proposed_value=close[0] if close else None))


def _check_scope(grant: Grant, rule: KubernetesRule, resources: list[Resource], out: list[Result]) -> None:
    if rule.cluster_scope:
        return
    cluster_scoped = sorted({r.name for r in resources if not r.namespaced})
    if cluster_scoped:
        out.append(error(
            f"AccessGrant {grant.name}: {rule.source} grants {', '.join(cluster_scoped)} in namespaces "
            f"{_fmt(rule.namespaces)}, but {'it is' if len(cluster_scoped) == 1 else 'they are'} cluster-scoped: a Role "
            "in a namespace cannot grant it, so the clients would get nothing. Replace namespaces with clusterScope: true",
            grant.ref, f"{rule.source}.namespaces", proposed_value=None))


def _check_names(grant: Grant, rule: KubernetesRule, out: list[Result]) -> None:
    if not rule.resource_names:
        return
    unnamed = [v for v in rule.verbs if v in UNNAMED_VERBS]
    if unnamed:
        out.append(warning(
            f"AccessGrant {grant.name}: {rule.source} restricts {', '.join(unnamed)} to resourceNames "
            f"{_fmt(rule.resource_names)}, which RBAC cannot do for these verbs: a create or deletecollection request "
            "names no object and is then denied, a list or watch is allowed only with a metadata.name field selector. "
            "Move these verbs to a rule without resourceNames (or drop them)", grant.ref, f"{rule.source}.resourceNames"))


def _check_broad_writers(grant: Grant, identities: list[Identity]) -> list[Result]:
    """Write access granted to a prefix or trust domain that covers workloads of more than one type
    (the package's identities with different workloads): every one of them may then write."""
    writes = sorted({v for r in grant.kubernetes for v in r.verbs if v in WRITE_VERBS})
    if not writes:
        return []
    out = []
    for client in grant.clients:
        if client.kind == ID:
            continue
        covered = [i for i in identities if i.spiffe_id is not None and client.covers(str(i.spiffe_id))]
        types = sorted({i.workload_ref.name for i in covered})
        if client.kind == TRUST_DOMAIN:
            what = f"every workload of trust domain {client.value}"
        elif len(types) > 1:
            what = f"the IDs of {len(types)} types of workload in this package ({name_list(types)})"
        else:
            continue
        exact = sorted(str(i.spiffe_id) for i in covered)
        alt = (f"spiffeID: {', '.join(exact)} for the ones that need it, or a spiffeIDPrefix of one type"
               if exact else "a spiffeIDPrefix naming one type of workload (e.g. spiffe://<td>/ns/<namespace>/sa/<account>) "
               "or the exact spiffeIDs")
        out.append(warning(
            f"AccessGrant {grant.name}: {client.source} {client} may {', '.join(writes)}, and it covers {what}: "
            f"all of them get write access. Grant write access by type instead: {alt}", grant.ref, client.field,
            current_value=client.value))
    return out

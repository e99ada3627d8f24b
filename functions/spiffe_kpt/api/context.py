"""The identity context of a package: its IdentityContext, completed by Nephio's WorkloadCluster.

Every identity of a package is formed against this one context (trust domain, cluster, region,
site, default ID format); what is not known yet (awaiting porch's injection) is listed as
missing, not reported as an error.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from .. import API_GROUP
from ..identity import formats
from ..identity.formats import FormatError
from ..identity.spiffeid import SpiffeIDError, validate_trust_domain
from ..krm.resourcelist import ResourceList, annotations, resource_ref
from ..krm.results import ResourceRef, Result, error, name_list
from . import migration
from .conventions import default_class_name
from .schema import schema_results

IDENTITY_CONTEXT = "IdentityContext"
WORKLOAD_CLUSTER_API = "infra.nephio.org/v1alpha1"
CONFIG_INJECTION = "kpt.dev/config-injection"
PLACEHOLDER_CLUSTER_NAMES = frozenset({"", "example"})


@dataclass
class Context:
    """The resolved identity context; ``missing`` lists what is not there yet (not errors)."""

    trust_domain: str = ""
    cluster_name: str = ""
    region: str = ""
    site: str = ""
    id_format: str = formats.DEFAULT_FORMAT
    id_template: str = ""
    class_name: str = ""
    class_name_defaulted: bool = False  # className not set: spire-<clusterName>, as the SPIRE packages
    ref: ResourceRef | None = None
    cluster_ref: ResourceRef | None = None
    injection_pending: bool = False
    missing: list[str] = field(default_factory=list)
    # Set when the context itself is in error: identities are then not formed at all, so one
    # mistake in the context gives one error, not one more per identity.
    invalid: bool = False
    spec: dict[str, Any] = field(default_factory=dict)
    # spec.migration (api.migration.Migration): a staged move to another trust domain, or None.
    migration: Any = None


def is_ours(obj: dict[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).split("/")[0] == API_GROUP


def resolve_context(rl: ResourceList, results: list[Result]) -> Context:
    ctx = Context()
    contexts = [o for o in rl.items if is_ours(o) and o.get("kind") == IDENTITY_CONTEXT]
    clusters = [o for o in rl.items
                if o.get("apiVersion") == WORKLOAD_CLUSTER_API and o.get("kind") == "WorkloadCluster"]
    if len(contexts) > 1:
        for o in contexts[1:]:
            results.append(error(
                f"the package has {len(contexts)} IdentityContext resources "
                f"({', '.join(resource_ref(c).name for c in contexts)}); keep exactly one",
                resource_ref(o), "metadata.name"))
    if len(clusters) > 1:
        for o in clusters[1:]:
            results.append(error(
                f"the package has {len(clusters)} WorkloadCluster resources; keep exactly one so the "
                "cluster name is unambiguous", resource_ref(o), "metadata.name"))

    before = len(results)
    if not contexts:
        ctx.missing.append("the package has no IdentityContext (it sets the trust domain); add one "
                           "or let porch inject it")
    elif not _read_identity_context(ctx, contexts[0], results):
        ctx.invalid = True
        return ctx
    if clusters:
        _read_workload_cluster(ctx, clusters[0], results)
    if ctx.ref is not None and not ctx.class_name and ctx.cluster_name:
        # The SPIRE packages (spire-config) name a cluster's controller manager spire-<clusterName>
        # unless told otherwise; defaulting to the same keeps the two halves in step, also when
        # porch injects only the cluster name.
        ctx.class_name = default_class_name(ctx.cluster_name)
        ctx.class_name_defaulted = True
    if len(results) == before:
        ctx.migration = migration.read(ctx, results)
    ctx.invalid = len(results) > before
    return ctx


def _read_identity_context(ctx: Context, obj: dict[str, Any], results: list[Result]) -> bool:
    """The IdentityContext's fields into ``ctx``; False when it does not even fit its schema
    (then nothing else of the context is read)."""
    ctx.ref = resource_ref(obj)
    schema_errors = schema_results(IDENTITY_CONTEXT, obj)
    results.extend(schema_errors)
    if schema_errors:
        return False
    spec = obj.get("spec") or {}
    ctx.spec = spec
    ctx.injection_pending = annotations(obj).get(CONFIG_INJECTION) == "required"
    ctx.trust_domain = spec.get("trustDomain", "") or ""
    ctx.cluster_name = spec.get("clusterName", "") or ""
    ctx.region = spec.get("region", "") or ""
    ctx.site = spec.get("site", "") or ""
    ctx.id_format = spec.get("idFormat", formats.DEFAULT_FORMAT)
    ctx.id_template = spec.get("idTemplate", "") or ""
    ctx.class_name = spec.get("className", "") or ""
    if ctx.trust_domain:
        try:
            validate_trust_domain(ctx.trust_domain)
        except SpiffeIDError as exc:
            results.append(error(f"IdentityContext {ctx.ref.name}: invalid spec.trustDomain: {exc}",
                                 ctx.ref, "spec.trustDomain", current_value=ctx.trust_domain))
    else:
        ctx.missing.append(f"IdentityContext {ctx.ref.name} has no spec.trustDomain yet")
    if ctx.id_format == "template" and not ctx.id_template:
        results.append(error("IdentityContext spec.idFormat is 'template' but spec.idTemplate is "
                             "empty; set spec.idTemplate, e.g. '/site/{site}/ns/{namespace}/sa/{serviceAccount}'",
                             ctx.ref, "spec.idTemplate"))
    elif ctx.id_template:
        try:
            formats.variables_of(ctx.id_template)
        except FormatError as exc:
            results.append(error(f"IdentityContext spec.idTemplate: {exc}", ctx.ref, "spec.idTemplate",
                                 current_value=ctx.id_template))
    return True


def _read_workload_cluster(ctx: Context, obj: dict[str, Any], results: list[Result]) -> None:
    """Nephio's WorkloadCluster is authoritative for the cluster name; a placeholder name while
    porch has yet to inject it leaves the context pending."""
    ctx.cluster_ref = resource_ref(obj)
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    wc_name = str(spec.get("clusterName") or "")
    if annotations(obj).get(CONFIG_INJECTION) == "required" and wc_name in PLACEHOLDER_CLUSTER_NAMES:
        ctx.injection_pending = True
    if wc_name in PLACEHOLDER_CLUSTER_NAMES:
        return
    if ctx.cluster_name and ctx.cluster_name != wc_name and ctx.ref is not None:
        results.append(error(
            f"IdentityContext spec.clusterName is {ctx.cluster_name!r} but WorkloadCluster "
            f"{ctx.cluster_ref.name} says {wc_name!r}; remove spec.clusterName from the "
            "IdentityContext (the WorkloadCluster is authoritative) or make them equal",
            ctx.ref, "spec.clusterName", current_value=ctx.cluster_name, proposed_value=wc_name))
    ctx.cluster_name = wc_name


def federation_trust_domains(spec: dict[str, Any]) -> list[str]:
    """Trust domains of IdentityContext spec.federation."""
    return [str(p.get("trustDomain")) for p in spec.get("federation") or [] if isinstance(p, dict)]


def federation_peers(ctx: Context) -> list[str] | None:
    """The trust domains the context federates with; None while they cannot be known (no
    context, or one awaiting porch's injection, or one in error)."""
    if ctx.ref is None or ctx.injection_pending or ctx.invalid:
        return None
    return federation_trust_domains(ctx.spec) + migration.extra_federation_peers(ctx)


def check_federates_with(ctx: Context, td: str, owner: str, ref: ResourceRef, path: str) -> list[Result]:
    """A federatesWith entry must name a federation peer of the context. SPIRE refuses to store
    a registration entry federating with a trust domain whose bundle it does not have, so the
    workload would get no SVID at all; the cluster's own trust domain is always in the bundle."""
    peers = federation_peers(ctx)
    if peers is None or td in peers:
        return []
    ctx_name = ctx.ref.name if ctx.ref else ""
    if td == ctx.trust_domain:
        return [error(f"{owner}: {path}: {td!r} is this cluster's own trust domain; federatesWith lists the "
                      "other trust domains whose bundles the workload also gets (its own it always gets): "
                      "remove it", ref, path, current_value=td)]
    close = difflib.get_close_matches(td, peers, n=1, cutoff=0.8)
    if not peers:
        known = f"the IdentityContext {ctx_name} has no federation peers"
    else:
        known = (f"the peers in IdentityContext {ctx_name} spec.federation are {name_list(peers)}"
                 + (f"; did you mean {close[0]}?" if close else ""))
    return [error(f"{owner}: {path}: {td!r} is not a federation peer of this cluster ({known}). SPIRE "
                  "refuses a registration entry that federates with a trust domain whose bundle it does not "
                  "have, so the workload would get no SVID at all. Fix the name, or add "
                  f"{td} to IdentityContext spec.federation (with its bundle endpoint)",
                  ref, path, current_value=td, proposed_value=close[0] if close else None)]

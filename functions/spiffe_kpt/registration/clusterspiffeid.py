"""One ClusterSPIFFEID per resolved identity: the in-cluster twin of the offline SPIFFE ID.

Why one per identity and not one per group of identities: a ClusterSPIFFEID has one pod
selector and one SVID option set (TTL, DNS names, federatesWith, admin). Grouping identities
would need a shared selector (wider than any one workload, so it can match a neighbour's
pods) and shared options (the weakest common denominator), and removing one identity would
rewrite a resource the others depend on. One per identity keeps each blast radius to one
workload and makes ownership and deletion exact. spire-controller-manager's cost is per
matched pod, not per ClusterSPIFFEID, so the count costs nothing in the cluster.
"""

from __future__ import annotations

from typing import Any

from ..api.context import Context
from ..api.ownership import mark
from ..api.resolve import Identity

API_VERSION = "spire.spiffe.io/v1alpha1"
KIND = "ClusterSPIFFEID"
# spire-controller-manager's filterByClassName selects ClusterSPIFFEIDs by this label.
CLASS_NAME_LABEL = "spire.spiffe.io/class-name"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace


def name_for(ident: Identity) -> str:
    """Cluster-scoped, so the namespace is part of the name: namespaces have no dots, so
    '<namespace>.<identity>' is unambiguous and a valid DNS subdomain."""
    return f"{ident.namespace}.{ident.name}"


def build(ident: Identity, ctx: Context) -> dict[str, Any]:
    svid = ident.spec.get("svid") or {}
    spec: dict[str, Any] = {}
    if ctx.class_name:
        spec["className"] = ctx.class_name
    spec["spiffeIDTemplate"] = ident.go_template
    # The namespace by its immutable, API-server-set name label: a namespace selector on
    # hand-set labels could be widened by anyone who may label namespaces.
    spec["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: ident.namespace}}
    spec["podSelector"] = {"matchLabels": dict(sorted(ident.selector_labels.items()))}
    for ours, theirs in (("x509TTL", "ttl"), ("jwtTTL", "jwtTtl")):
        if svid.get(ours):
            spec[theirs] = svid[ours]
    if svid.get("dnsNames"):
        # Literal DNS names are valid Go templates: DNS names cannot contain '{'.
        spec["dnsNameTemplates"] = list(svid["dnsNames"])
    if svid.get("federatesWith"):
        spec["federatesWith"] = list(svid["federatesWith"])
    if svid.get("hint"):
        spec["hint"] = svid["hint"]
    for flag in ("admin", "downstream"):
        if svid.get(flag):
            spec[flag] = True
    meta: dict[str, Any] = {"name": name_for(ident)}
    if ctx.class_name:
        meta["labels"] = {CLASS_NAME_LABEL: ctx.class_name}
    obj = {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}
    return mark(obj, ident.condition_type)

"""Federation peers of the IdentityContext and the ClusterFederatedTrustDomain for each.

The schema already rejects non-https URLs and unknown profile types; this module checks what
a schema cannot say: https_spiffe needs the endpoint's SPIFFE ID and https_web must not have
one, peers are unique and are not the cluster's own trust domain. A peer's bundle (GitOps
federation: a TrustBundle the peer names in ``trustBundle``, or an inline ``trustDomainBundle``)
is checked by ``api.trustbundles`` and rendered as the ClusterFederatedTrustDomain's
``trustDomainBundle``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import API_VERSION as OUR_API
from ..api.context import IDENTITY_CONTEXT, Context
from ..api.ownership import mark
from ..api.trustbundles import bundle_for_peer, inline_bundle
from ..identity.spiffeid import SpiffeIDError, parse, validate_trust_domain
from ..krm.results import Result, error, warning
from .clusterspiffeid import API_VERSION

KIND = "ClusterFederatedTrustDomain"


@dataclass(frozen=True)
class Peer:
    index: int
    spec: dict[str, Any]
    bundle: str = ""  # the checked trustDomainBundle text, "" without one

    @property
    def trust_domain(self) -> str:
        return str(self.spec["trustDomain"])


def context_owner(ctx: Context) -> str:
    return f"{OUR_API}.{IDENTITY_CONTEXT}.{ctx.ref.name if ctx.ref else ''}"


def read_peers(ctx: Context, items: list[dict[str, Any]] | None = None) -> tuple[list[Peer], list[Result]]:
    """The context's federation peers, each checked; schema-level problems were reported by resolve.

    ``items`` (the package) is where a peer's ``trustBundle`` is looked up.
    """
    peers: list[Peer] = []
    out: list[Result] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(ctx.spec.get("federation") or []):
        where = f"spec.federation[{i}]"
        td = spec["trustDomain"]
        bad = len(out)
        try:
            validate_trust_domain(td)
        except SpiffeIDError as exc:
            out.append(error(f"IdentityContext {ctx.ref.name}: {where}.trustDomain: {exc}", ctx.ref,
                             f"{where}.trustDomain", current_value=td))
        if ctx.trust_domain and td == ctx.trust_domain:
            out.append(error(f"IdentityContext {ctx.ref.name}: {where} federates with {td!r}, which is this "
                             "cluster's own trust domain; remove the entry", ctx.ref, f"{where}.trustDomain"))
        if td in seen:
            out.append(error(f"IdentityContext {ctx.ref.name}: {where} repeats trust domain {td!r} of "
                             f"spec.federation[{seen[td]}]; keep one entry per peer", ctx.ref,
                             f"{where}.trustDomain", current_value=td))
        seen.setdefault(td, i)
        profile = spec["bundleEndpointProfile"]
        endpoint_id = profile.get("endpointSPIFFEID")
        if profile["type"] == "https_spiffe":
            if not endpoint_id:
                out.append(error(
                    f"IdentityContext {ctx.ref.name}: {where} uses the https_spiffe profile but has no "
                    "bundleEndpointProfile.endpointSPIFFEID; SPIRE authenticates the peer's bundle endpoint by "
                    f"that ID. Set it (usually spiffe://{td}/spire/server) or use type https_web for an "
                    "endpoint with a Web PKI certificate", ctx.ref, f"{where}.bundleEndpointProfile.endpointSPIFFEID"))
            else:
                try:
                    sid = parse(endpoint_id)
                    if sid.trust_domain != td:
                        out.append(warning(
                            f"IdentityContext {ctx.ref.name}: {where}: the bundle endpoint's ID {endpoint_id} is "
                            f"not in the peer's trust domain {td!r}; SPIRE can only check it if it already has "
                            f"the bundle of {sid.trust_domain!r}", ctx.ref,
                            f"{where}.bundleEndpointProfile.endpointSPIFFEID", current_value=endpoint_id))
                except SpiffeIDError as exc:
                    out.append(error(f"IdentityContext {ctx.ref.name}: {where}.bundleEndpointProfile."
                                     f"endpointSPIFFEID is not a SPIFFE ID: {exc}", ctx.ref,
                                     f"{where}.bundleEndpointProfile.endpointSPIFFEID", current_value=endpoint_id))
        elif endpoint_id:
            out.append(error(f"IdentityContext {ctx.ref.name}: {where} uses the https_web profile, which "
                             "authenticates the endpoint by its Web PKI certificate; endpointSPIFFEID belongs to "
                             "https_spiffe only. Remove it or change the type", ctx.ref,
                             f"{where}.bundleEndpointProfile.endpointSPIFFEID", current_value=endpoint_id))
        bundle = _bundle(ctx, i, spec, items or [], out)
        if len(out) == bad or all(r.severity.value != "error" for r in out[bad:]):
            peers.append(Peer(i, spec, bundle or ""))
    return peers, out


def _bundle(ctx: Context, i: int, spec: dict[str, Any], items: list[dict[str, Any]], out: list[Result]) -> str | None:
    where = f"spec.federation[{i}]"
    named, inline = spec.get("trustBundle"), spec.get("trustDomainBundle")
    if named and inline:
        out.append(error(f"IdentityContext {ctx.ref.name}: {where} has both trustBundle and trustDomainBundle; keep "
                         "trustBundle (the TrustBundle committed to the package) and remove the inline copy",
                         ctx.ref, f"{where}.trustDomainBundle"))
        return None
    if named:
        text, results = bundle_for_peer(items, named, spec["trustDomain"], ctx.ref, f"{where}.trustBundle")
    elif inline:
        text, results = inline_bundle(inline, spec["trustDomain"], ctx.ref, f"{where}.trustDomainBundle")
    else:
        return None
    out.extend(results)
    return text


def name_for(peer: Peer) -> str:
    # Trust domains may hold '_', which Kubernetes names may not.
    return peer.trust_domain.replace("_", "-")


def build(peer: Peer, ctx: Context) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if ctx.class_name:
        spec["className"] = ctx.class_name
    spec["trustDomain"] = peer.trust_domain
    spec["bundleEndpointURL"] = peer.spec["bundleEndpointURL"]
    profile = {"type": peer.spec["bundleEndpointProfile"]["type"]}
    if profile["type"] == "https_spiffe":
        profile["endpointSPIFFEID"] = peer.spec["bundleEndpointProfile"]["endpointSPIFFEID"]
    spec["bundleEndpointProfile"] = profile
    if peer.bundle:
        spec["trustDomainBundle"] = peer.bundle
    obj = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name_for(peer)}, "spec": spec}
    return mark(obj, context_owner(ctx))

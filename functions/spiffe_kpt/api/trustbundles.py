"""TrustBundle: a federation peer's SPIFFE bundle committed to the package (GitOps federation).

kpt functions see only KRM resources, never a package's other files, so the bundle file that
``spire-server bundle show -format spiffe`` prints is committed wrapped in a local-config
resource of our group (``TrustBundle``: ``spec.trustDomain`` and ``spec.bundle``); a federation
peer names it (IdentityContext ``spec.federation[].trustBundle``, SpireDeployment
``spec.federation.peers[].trustBundle``) and the generated ClusterFederatedTrustDomain carries
the checked bundle as ``spec.trustDomainBundle``.

``bundle_for_peer`` is the one entry point: it finds the named TrustBundle, checks it (schema,
trust domain, the bundle itself with ``identity.trustbundle``) and returns the text to render,
or results naming the resource and field to fix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .. import API_VERSION
from ..identity.durations import parse_duration
from ..krm.resourcelist import resource_ref
from ..krm.results import ResourceRef, Result, error, warning
from .schema import schema_results

KIND = "TrustBundle"
DEFAULT_REFRESH_INTERVAL = "720h"


def trust_bundles(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The package's TrustBundle resources."""
    return [o for o in items if o.get("kind") == KIND and o.get("apiVersion") == API_VERSION]


def bundle_for_peer(items: list[dict[str, Any]], name: str, peer_trust_domain: str, referrer: ResourceRef,
                    field: str, now: datetime | None = None) -> tuple[str | None, list[Result]]:
    """The ``trustDomainBundle`` text for a peer from the TrustBundle ``name``, or None and the results.

    ``referrer``/``field`` is the reference (``spec.federation[0].trustBundle``): a missing
    TrustBundle or one for another trust domain is reported there; a bad bundle on the
    TrustBundle's own ``spec.bundle``. Warnings (an authority expiring before the next
    refresh) come with the text.
    """
    who = f"{referrer.kind} {referrer.name}"
    found = [o for o in trust_bundles(items) if (o.get("metadata") or {}).get("name") == name]
    if not found:
        have = sorted(str((o.get("metadata") or {}).get("name")) for o in trust_bundles(items))
        known = f" (the package has: {', '.join(have)})" if have else " (the package has none)"
        return None, [error(f"{who}: {field} names TrustBundle {name!r}, which is not in the package{known}. Commit "
                            f"the peer's bundle as a TrustBundle of that name (README: GitOps federation) or fix "
                            "the name", referrer, field, current_value=name)]
    if len(found) > 1:
        return None, [error(f"{who}: {field} names TrustBundle {name!r}, which the package holds {len(found)} "
                            "times; keep one", referrer, field, current_value=name)]
    obj = found[0]
    ref = resource_ref(obj)
    out = schema_results(KIND, obj)
    if out:
        return None, out
    spec = obj["spec"]
    if spec["trustDomain"] != peer_trust_domain:
        return None, [error(f"{who}: {field} names TrustBundle {name}, which holds the bundle of trust domain "
                            f"{spec['trustDomain']!r}, not of the peer {peer_trust_domain!r}; name the peer's own "
                            "TrustBundle (a wrong bundle would make SPIRE trust another domain's keys for it)",
                            referrer, field, current_value=name)]
    interval = parse_duration(spec.get("refreshInterval", DEFAULT_REFRESH_INTERVAL))
    return _checked(spec["bundle"], peer_trust_domain, ref, "spec.bundle", f"{KIND} {name}",
                    timedelta(seconds=interval), now)


def inline_bundle(text: str, peer_trust_domain: str, referrer: ResourceRef, field: str,
                  now: datetime | None = None) -> tuple[str | None, list[Result]]:
    """The same checks for a bundle written inline (IdentityContext ``spec.federation[].trustDomainBundle``)."""
    return _checked(text, peer_trust_domain, referrer, field, f"{referrer.kind} {referrer.name}",
                    timedelta(seconds=parse_duration(DEFAULT_REFRESH_INTERVAL)), now)


def _checked(source: str | dict[str, Any], trust_domain: str, ref: ResourceRef, field: str, who: str,
             interval: timedelta, now: datetime | None) -> tuple[str | None, list[Result]]:
    from ..identity.trustbundle import check_bundle  # cryptography: only for packages that carry a bundle

    bundle = check_bundle(source, trust_domain, now or datetime.now(UTC), interval)
    out: list[Result] = []
    for f in bundle.findings:
        # A bundle written as a YAML mapping has real field paths inside it; a JSON string does not.
        path = f"{field}.{f.path}" if isinstance(source, dict) and f.path else field
        inner = f" {f.path}" if f.path and path == field else ""
        make = error if f.severity == "error" else warning
        out.append(make(f"{who}: {path}{inner}: {f.message}", ref, path))
    if bundle.errors:
        return None, out
    return bundle.text, out

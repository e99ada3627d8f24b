"""The peer forms shared by ingress/egress rules (WorkloadIdentity spec.ingress[].from) and access
grants (AccessGrant spec.clients): one of identity, spiffeID, spiffeIDPrefix, trustDomain.

Only the part both readers need: which form an entry uses and what SPIFFE ID (or prefix, or
trust domain) it names. What a form means for a network policy or for RBAC stays with the
reader (``authorization.rules``, ``access.grants``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..identity.spiffeid import parse, validate_trust_domain

PEER_KINDS = ("identity", "spiffeID", "spiffeIDPrefix", "trustDomain")


def peer_kinds(entry: dict[str, Any]) -> list[str]:
    """The peer forms an entry sets; a valid entry sets exactly one."""
    return [k for k in PEER_KINDS if k in entry]


@dataclass(frozen=True)
class PeerID:
    """What a spiffeID, spiffeIDPrefix or trustDomain peer names."""

    kind: str  # spiffeID | spiffeIDPrefix | trustDomain
    value: str  # as written
    trust_domain: str
    path: str  # the ID's path, the prefix's path without its trailing '/', '' for a trust domain

    @property
    def principal(self) -> str:
        """Istio's principal: the ID without its scheme, a prefix or trust domain ending in '*'."""
        if self.kind == "spiffeID":
            return f"{self.trust_domain}{self.path}"
        return f"{self.trust_domain}{self.path}/*"

    @property
    def id_prefix(self) -> str:
        """Every SPIFFE ID this peer covers starts with this (the ID itself for a spiffeID)."""
        base = f"spiffe://{self.trust_domain}{self.path}"
        return base if self.kind == "spiffeID" else base + "/"


def parse_peer_id(kind: str, value: str) -> PeerID:
    """Parse a spiffeID, spiffeIDPrefix or trustDomain peer; raises SpiffeIDError."""
    if kind == "spiffeID":
        sid = parse(value)
        return PeerID(kind, value, sid.trust_domain, sid.path)
    if kind == "spiffeIDPrefix":
        sid = parse(value.rstrip("/"))
        return PeerID(kind, value, sid.trust_domain, sid.path)
    return PeerID(kind, value, validate_trust_domain(value), "")

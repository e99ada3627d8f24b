"""SPIFFE bundles (the JWKS of ``spire-server bundle show -format spiffe``), checked before federation.

A ClusterFederatedTrustDomain's ``trustDomainBundle`` is parsed by spire-controller-manager with
go-spiffe (``spiffebundle.Read``); a bundle it rejects makes the controller log "Ignoring invalid
ClusterFederatedTrustDomain" and federation silently never starts. So this module rejects what
go-spiffe and go-jose reject (an x509-svid key without exactly one certificate, a certificate
whose key differs from the JWK's, a jwt-svid key without ``kid``), and adds what a bundle
committed to Git needs on top: the authorities parse, are not expired, belong to the peer's
trust domain, and a warning when one expires before the next expected refresh.

Pure: takes the bundle text and the clock, returns findings; no YAML, no kpt. ``cryptography``
is imported only here and only when a bundle is checked (about 0.2 s of import, paid only by
packages that carry a bundle).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

X509_USE = "x509-svid"
JWT_USE = "jwt-svid"
# The curves go-jose accepts for EC keys, and the byte length of their coordinates.
_EC_CURVES = {"P-256": 32, "P-384": 48, "P-521": 66}


@dataclass(frozen=True)
class Finding:
    """One problem of a bundle: ``path`` is inside the bundle document (``keys[1].x5c[0]``)."""

    severity: str  # "error" | "warning"
    path: str
    message: str


@dataclass(frozen=True)
class Authority:
    """An X.509 authority of the bundle."""

    index: int
    subject: str
    not_before: datetime
    not_after: datetime
    spiffe_trust_domains: tuple[str, ...]  # from spiffe:// URI SANs (SPIRE's CAs carry spiffe://<td>)


@dataclass(frozen=True)
class SpiffeBundle:
    """A checked bundle; ``text`` is what goes into ``trustDomainBundle`` (indented JSON, keys in input order)."""

    text: str
    refresh_hint: int | None
    sequence: int | None
    authorities: tuple[Authority, ...]
    jwt_key_ids: tuple[str, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def check_bundle(source: str | dict[str, Any], trust_domain: str, now: datetime,
                 refresh_interval: timedelta) -> SpiffeBundle:
    """Check a SPIFFE bundle for ``trust_domain`` at time ``now``.

    ``refresh_interval`` is how soon the operator expects to commit the next copy of the
    bundle: an authority that expires before ``now + max(refresh_interval, spiffe_refresh_hint)``
    is a warning. Errors: not JSON, not a JWKS, no keys, an x509-svid key go-spiffe would refuse,
    an authority that does not parse, has expired, or names another trust domain, a malformed
    jwt-svid key.
    """
    findings: list[Finding] = []
    doc = _load(source, findings)
    if doc is None:
        return SpiffeBundle("", None, None, (), (), tuple(findings))
    hint = _non_negative_int(doc, "spiffe_refresh_hint", findings)
    sequence = _non_negative_int(doc, "spiffe_sequence", findings)
    keys = doc.get("keys")
    if not isinstance(keys, list) or not keys:
        findings.append(Finding("error", "keys", "a SPIFFE bundle needs a non-empty 'keys' list (its X.509 "
                                "authorities and JWT keys); copy the whole output of `spire-server bundle show "
                                "-format spiffe` run on the peer"))
        keys = []
    window = max(refresh_interval, timedelta(seconds=hint or 0))
    authorities: list[Authority] = []
    kids: list[str] = []
    for i, key in enumerate(keys):
        where = f"keys[{i}]"
        if not isinstance(key, dict):
            findings.append(Finding("error", where, "each key must be a JSON object (a JWK)"))
            continue
        use = key.get("use")
        if use == X509_USE:
            auth = _x509_authority(i, key, trust_domain, findings)
            if auth is not None:
                _check_validity(auth, now, window, hint, findings)
                authorities.append(auth)
        elif use == JWT_USE:
            kid = _jwt_key(i, key, kids, findings)
            if kid:
                kids.append(kid)
        else:
            findings.append(Finding("warning", f"{where}.use", f"use {use!r} is neither {X509_USE!r} nor "
                                    f"{JWT_USE!r}: SPIRE ignores this key"))
    if keys and not authorities and not kids and not any(f.severity == "error" for f in findings):
        findings.append(Finding("error", "keys", f"no {X509_USE} or {JWT_USE} key: the bundle trusts nothing"))
    try:
        text = json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        # A bundle written as a YAML mapping can hold what JSON cannot (a date, a non-string key).
        findings.append(Finding("error", "", f"cannot be written as the JSON SPIRE reads: {exc}; write the "
                                "bundle as the JSON text `spire-server bundle show -format spiffe` prints"))
        text = ""
    return SpiffeBundle(text, hint, sequence, tuple(authorities), tuple(kids), tuple(findings))


def _load(source: str | dict[str, Any], findings: list[Finding]) -> dict[str, Any] | None:
    if isinstance(source, dict):
        return source
    try:
        doc = json.loads(source)
    except (json.JSONDecodeError, TypeError) as exc:
        why = (f"{exc.msg} at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError)
               else str(exc))
        findings.append(Finding("error", "", f"not JSON ({why}); a SPIFFE bundle is the JSON that "
                                "`spire-server bundle show -format spiffe` prints"))
        return None
    if not isinstance(doc, dict):
        findings.append(Finding("error", "", f"a SPIFFE bundle is a JSON object (a JWK set), not a "
                                f"{type(doc).__name__}"))
        return None
    return doc


def _non_negative_int(doc: dict[str, Any], key: str, findings: list[Finding]) -> int | None:
    v = doc.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        findings.append(Finding("error", key, f"{key} must be a non-negative integer, got {v!r}"))
        return None
    return v


def _b64url_int(value: Any) -> int | None:
    raw = _b64url(value)
    return int.from_bytes(raw, "big") if raw else None


def _b64url(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def _public_key(key: dict[str, Any], where: str, findings: list[Finding]) -> Any:
    """The public key the JWK's own parameters describe, or None (with a finding)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    kty = key.get("kty")
    try:
        if kty == "EC":
            crv = key.get("crv")
            if crv not in _EC_CURVES:
                findings.append(Finding("error", f"{where}.crv", f"EC curve {crv!r} is not one of "
                                        f"{', '.join(_EC_CURVES)}"))
                return None
            x, y = _b64url_int(key.get("x")), _b64url_int(key.get("y"))
            if x is None or y is None:
                findings.append(Finding("error", where, "an EC key needs base64url 'x' and 'y' coordinates"))
                return None
            curve = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}[crv]()
            return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        if kty == "RSA":
            n, e = _b64url_int(key.get("n")), _b64url_int(key.get("e"))
            if n is None or e is None:
                findings.append(Finding("error", where, "an RSA key needs base64url 'n' and 'e'"))
                return None
            return rsa.RSAPublicNumbers(e, n).public_key()
        if kty == "OKP" and key.get("crv") == "Ed25519":
            x = _b64url(key.get("x"))
            if x is None or len(x) != 32:
                findings.append(Finding("error", f"{where}.x", "an Ed25519 key needs a 32-byte base64url 'x'"))
                return None
            return ed25519.Ed25519PublicKey.from_public_bytes(x)
    except ValueError as exc:
        findings.append(Finding("error", where, f"the {kty} key is not valid: {exc}"))
        return None
    findings.append(Finding("error", f"{where}.kty", f"key type {kty!r} is not supported (EC with P-256/P-384/"
                            "P-521, RSA, or OKP with Ed25519)"))
    return None


def _same_key(a: Any, b: Any) -> bool:
    from cryptography.hazmat.primitives import serialization
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


def _x509_authority(i: int, key: dict[str, Any], trust_domain: str, findings: list[Finding]) -> Authority | None:
    from cryptography import x509

    where = f"keys[{i}]"
    x5c = key.get("x5c")
    if not isinstance(x5c, list) or len(x5c) != 1 or not isinstance(x5c[0], str):
        n = len(x5c) if isinstance(x5c, list) else 0
        findings.append(Finding("error", f"{where}.x5c", f"an {X509_USE} key carries exactly one certificate in "
                                f"x5c (the authority), got {n}; SPIRE refuses the whole bundle otherwise"))
        return None
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        der = base64.b64decode(x5c[0], validate=True)
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string() or "<empty subject>"
        cert_key = cert.public_key()
        extensions = cert.extensions
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
        findings.append(Finding("error", f"{where}.x5c[0]", f"not a base64 DER X.509 certificate: {exc}"))
        return None
    jwk_key = _public_key(key, where, findings) if "kty" in key else None
    if "kty" not in key:
        findings.append(Finding("error", f"{where}.kty", "every JWK needs 'kty' (EC or RSA, as the certificate's "
                                "key)"))
    elif jwk_key is not None and not _same_key(jwk_key, cert_key):
        findings.append(Finding("error", where, f"the key parameters do not match the public key of the certificate "
                                f"in x5c ({subject}); go-jose refuses such a JWK"))
    tds: list[str] = []
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    for uri in uris:
        if uri.lower().startswith("spiffe://"):
            tds.append(uri[len("spiffe://"):].split("/", 1)[0].lower())
    wrong = sorted({td for td in tds if td != trust_domain})
    if wrong:
        findings.append(Finding("error", f"{where}.x5c[0]", f"the authority {subject} belongs to trust domain "
                                f"{', '.join(repr(t) for t in wrong)} (its URI SAN), not {trust_domain!r}: this is "
                                "another trust domain's bundle"))
    try:
        ca = extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        findings.append(Finding("warning", f"{where}.x5c[0]", f"the certificate {subject} is not a CA (no "
                                "basicConstraints CA:TRUE); SVIDs cannot chain to it"))
    return Authority(i, subject, cert.not_valid_before_utc, cert.not_valid_after_utc, tuple(tds))


def _check_validity(auth: Authority, now: datetime, window: timedelta, hint: int | None,
                    findings: list[Finding]) -> None:
    where = f"keys[{auth.index}].x5c[0]"
    stamp = auth.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    if auth.not_after <= now:
        findings.append(Finding("error", where, f"the authority {auth.subject} expired at {stamp}: SVIDs it "
                                "signed no longer verify. Commit a fresh copy of the peer's bundle (`spire-server "
                                "bundle show -format spiffe` on the peer)"))
    elif auth.not_before > now:
        findings.append(Finding("warning", where, f"the authority {auth.subject} is not valid before "
                                f"{auth.not_before.strftime('%Y-%m-%dT%H:%M:%SZ')} (a clock ahead of this one?)"))
    elif auth.not_after < now + window:
        left = auth.not_after - now
        why = (f"the peer's spiffe_refresh_hint of {hint}s" if hint and timedelta(seconds=hint) == window
               else f"the refresh interval of {_hours(window)}")
        findings.append(Finding("warning", where, f"the authority {auth.subject} expires at {stamp} (in "
                                f"{_hours(left)}), before the next expected refresh ({why}): commit a fresh copy of "
                                "the peer's bundle before then, or keep the peer's bundle endpoint reachable so "
                                "SPIRE refreshes it itself"))


def _hours(d: timedelta) -> str:
    h = d.total_seconds() / 3600
    return f"{h:.0f}h" if h >= 1 else f"{d.total_seconds() / 60:.0f}m"


def _jwt_key(i: int, key: dict[str, Any], kids: list[str], findings: list[Finding]) -> str:
    where = f"keys[{i}]"
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid:
        findings.append(Finding("error", f"{where}.kid", f"a {JWT_USE} key needs a non-empty 'kid': JWT-SVIDs name "
                                "their signing key by it, and SPIRE refuses the bundle without it"))
        return ""
    if kid in kids:
        findings.append(Finding("error", f"{where}.kid", f"kid {kid!r} is used twice; each JWT key needs its own"))
        return ""
    if _public_key(key, where, findings) is None:
        return ""
    if "x5c" in key:
        findings.append(Finding("warning", f"{where}.x5c", f"a {JWT_USE} key carries no certificate; x5c is ignored"))
    return kid

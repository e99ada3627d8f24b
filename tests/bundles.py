"""Real SPIFFE bundles for tests: CA certificates and JWT keys made with ``cryptography``,
laid out as ``spire-server bundle show -format spiffe`` prints them (tests/real checks that
layout against a running SPIRE server)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from spiffe_kpt import API_VERSION

NOW = datetime.now(UTC)


def _b64url(n: int, length: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(length, "big")).rstrip(b"=").decode()


def ec_jwk(key: ec.EllipticCurvePublicKey) -> dict:
    nums = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    crv = {256: "P-256", 384: "P-384", 521: "P-521"}[key.curve.key_size]
    return {"kty": "EC", "crv": crv, "x": _b64url(nums.x, size), "y": _b64url(nums.y, size)}


def rsa_jwk(key: rsa.RSAPublicKey) -> dict:
    nums = key.public_numbers()
    return {"kty": "RSA", "n": _b64url(nums.n, (nums.n.bit_length() + 7) // 8), "e": _b64url(nums.e, 3)}


def ca_cert(trust_domain: str, not_before: datetime | None = None, not_after: datetime | None = None,
            uri_td: str | None = None, ca: bool = True, key: ec.EllipticCurvePrivateKey | None = None
            ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA like SPIRE's: subject O=SPIFFE, URI SAN spiffe://<td> (``uri_td`` overrides it, '' drops it)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIFFE"),
                      x509.NameAttribute(NameOID.SERIAL_NUMBER, str(x509.random_serial_number()))])
    nb = not_before or NOW - timedelta(hours=1)
    na = not_after or NOW + timedelta(days=365)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    td = trust_domain if uri_td is None else uri_td
    if td:
        b = b.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{td}")]),
                            critical=False)
    return b.sign(key, hashes.SHA256()), key


def x509_key(cert: x509.Certificate) -> dict:
    der = cert.public_bytes(serialization.Encoding.DER)
    pub = cert.public_key()
    jwk = ec_jwk(pub) if isinstance(pub, ec.EllipticCurvePublicKey) else rsa_jwk(pub)
    return {"use": "x509-svid", **jwk, "x5c": [base64.b64encode(der).decode()]}


def jwt_key(kid: str = "k1", key: ec.EllipticCurvePrivateKey | None = None) -> dict:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return {"use": "jwt-svid", **ec_jwk(key.public_key()), "kid": kid}


def bundle_doc(trust_domain: str, certs: list[x509.Certificate] | None = None, jwt: list[dict] | None = None,
               refresh_hint: int | None = 300, sequence: int | None = 1) -> dict:
    if certs is None:
        certs = [ca_cert(trust_domain)[0]]
    doc: dict = {"keys": [x509_key(c) for c in certs] + (jwt if jwt is not None else [jwt_key()])}
    if refresh_hint is not None:
        doc["spiffe_refresh_hint"] = refresh_hint
    if sequence is not None:
        doc["spiffe_sequence"] = sequence
    return doc


def bundle_text(trust_domain: str, **kw) -> str:
    return json.dumps(bundle_doc(trust_domain, **kw), indent=4)


def trust_bundle(name: str, trust_domain: str, bundle: str | dict, **spec) -> dict:
    """A TrustBundle resource as a package commits it."""
    return {"apiVersion": API_VERSION, "kind": "TrustBundle",
            "metadata": {"name": name, "annotations": {"config.kubernetes.io/local-config": "true"}},
            "spec": {"trustDomain": trust_domain, "bundle": bundle, **spec}}

"""jwtverify (the node tier's JWT-SVID check) accepts what the key signed and refuses a
changed claim, another key, an unknown kid and a non-JWT-SVID algorithm."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .jwtverify import JWTInvalid, verify


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _n(i: int, size: int) -> str:
    return _b64(i.to_bytes(size, "big"))


def _ec_token(key, kid: str, claims: dict) -> str:
    signing = f"{_b64(json.dumps({'alg': 'ES256', 'kid': kid, 'typ': 'JWT'}).encode())}." \
              f"{_b64(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _ec_jwk(key, kid: str) -> dict:
    n = key.public_key().public_numbers()
    return {"use": "jwt-svid", "kty": "EC", "kid": kid, "crv": "P-256", "x": _n(n.x, 32), "y": _n(n.y, 32)}


CLAIMS = {"sub": "spiffe://acme.example/ns/a/sa/b", "aud": ["x"], "exp": 2000000300, "iat": 2000000000}


def test_ec_token_verifies_and_tampering_is_refused():
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    bundle = {"keys": [_ec_jwk(key, "k1"), {"use": "x509-svid", "kty": "EC", "kid": "k2"}]}
    tok = _ec_token(key, "k1", CLAIMS)
    header, claims = verify(tok, bundle)
    assert header["kid"] == "k1" and claims == CLAIMS
    h, p, s = tok.split(".")
    forged = _b64(json.dumps({**CLAIMS, "sub": "spiffe://acme.example/other"}).encode())
    with pytest.raises(JWTInvalid, match="does not verify"):
        verify(f"{h}.{forged}.{s}", bundle)
    with pytest.raises(JWTInvalid, match="does not verify"):
        verify(_ec_token(other, "k1", CLAIMS), bundle)
    with pytest.raises(JWTInvalid, match="not a JWT authority"):
        verify(_ec_token(key, "k2", CLAIMS), bundle)  # an X.509 authority's kid
    with pytest.raises(JWTInvalid, match="compact JWS"):
        verify("a.b", bundle)


def test_rsa_token_verifies():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = key.public_key().public_numbers()
    bundle = {"keys": [{"use": "jwt-svid", "kty": "RSA", "kid": "r", "n": _n(n.n, 256), "e": _n(n.e, 3)}]}
    signing = f"{_b64(json.dumps({'alg': 'RS256', 'kid': 'r'}).encode())}.{_b64(json.dumps(CLAIMS).encode())}"
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert verify(f"{signing}.{_b64(sig)}", bundle)[1] == CLAIMS
    none = f"{_b64(json.dumps({'alg': 'none', 'kid': 'r'}).encode())}.{_b64(json.dumps(CLAIMS).encode())}."
    with pytest.raises(JWTInvalid, match="not a JWT-SVID algorithm"):
        verify(none, bundle)

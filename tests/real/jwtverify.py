"""Verify a JWT-SVID against the JWT authorities of a SPIFFE trust bundle (JWKS).

No JWT library is installed here; the checks are the few the JWT-SVID specification
asks of a verifier (header ``alg`` and ``kid``, the signature by the bundle key with
that ``kid``), done with ``cryptography``.  Claims are returned for the caller to
check (``sub``, ``aud``, ``exp``...)."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# JWS algorithms SPIRE signs JWT-SVIDs with (its JWT key types: ec-p256/p384, rsa-2048/4096)
_EC = {"ES256": (ec.SECP256R1(), hashes.SHA256(), 32), "ES384": (ec.SECP384R1(), hashes.SHA384(), 48)}
_RSA = {"RS256": (hashes.SHA256(), False), "RS384": (hashes.SHA384(), False), "RS512": (hashes.SHA512(), False),
        "PS256": (hashes.SHA256(), True), "PS384": (hashes.SHA384(), True), "PS512": (hashes.SHA512(), True)}


class JWTInvalid(ValueError):
    pass


def b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int(s: str) -> int:
    return int.from_bytes(b64url(s), "big")


def jwt_keys(spiffe_bundle: dict) -> dict[str, dict]:
    """kid -> JWK of the bundle's JWT authorities (``use: jwt-svid``)."""
    return {k["kid"]: k for k in spiffe_bundle.get("keys", []) if k.get("use") == "jwt-svid"}


def verify(token: str, spiffe_bundle: dict) -> tuple[dict, dict]:
    """(header, claims) of ``token`` once its signature verifies with the bundle key its
    ``kid`` names; :class:`JWTInvalid` otherwise."""
    try:
        h64, p64, s64 = token.split(".")
        header, claims, sig = json.loads(b64url(h64)), json.loads(b64url(p64)), b64url(s64)
    except ValueError as e:
        raise JWTInvalid(f"not a compact JWS: {e}") from None
    keys = jwt_keys(spiffe_bundle)
    jwk = keys.get(header.get("kid"))
    if jwk is None:
        raise JWTInvalid(f"kid {header.get('kid')!r} is not a JWT authority of the bundle ({sorted(keys)})")
    signed = f"{h64}.{p64}".encode()
    alg = header.get("alg")
    try:
        if alg in _EC and jwk["kty"] == "EC":
            curve, digest, size = _EC[alg]
            pub = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve).public_key()
            if len(sig) != 2 * size:
                raise JWTInvalid(f"{alg} signature of {len(sig)} bytes")
            der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
            pub.verify(der, signed, ec.ECDSA(digest))
        elif alg in _RSA and jwk["kty"] == "RSA":
            digest, pss = _RSA[alg]
            pub = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
            pad = padding.PSS(padding.MGF1(digest), digest.digest_size) if pss else padding.PKCS1v15()
            pub.verify(sig, signed, pad, digest)
        else:
            raise JWTInvalid(f"alg {alg!r} with a {jwk.get('kty')} key is not a JWT-SVID algorithm")
    except JWTInvalid:
        raise
    except Exception as e:  # noqa: BLE001 - cryptography's InvalidSignature and key errors
        raise JWTInvalid(f"signature does not verify with bundle key {header['kid']}: {e!r}") from None
    return header, claims

"""identity.trustbundle: the checks of a SPIFFE bundle committed for GitOps federation, on bundles
made with real keys and certificates (tests/bundles.py). Each finding asserts its path and words."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric import ec

from spiffe_kpt.identity.trustbundle import check_bundle

from .bundles import NOW, bundle_doc, bundle_text, ca_cert, jwt_key, x509_key

TD = "telco.operator"
MONTH = timedelta(days=30)


def findings(source, td: str = TD, now=NOW, interval=MONTH) -> list[tuple[str, str, str]]:
    return [(f.severity, f.path, f.message) for f in check_bundle(source, td, now, interval).findings]


def the(found: list[tuple[str, str, str]], severity: str, path: str, *words: str) -> None:
    hits = [f for f in found if f[0] == severity and f[1] == path and all(w in f[2] for w in words)]
    assert hits, f"no {severity} at {path!r} with {words}; got {found}"


def test_a_good_bundle_has_no_findings_and_renders_as_indented_json() -> None:
    doc = bundle_doc(TD, jwt=[jwt_key("a"), jwt_key("b")], refresh_hint=300, sequence=7)
    b = check_bundle(json.dumps(doc), TD, NOW, MONTH)
    assert b.findings == ()
    assert (b.refresh_hint, b.sequence, b.jwt_key_ids) == (300, 7, ("a", "b"))
    assert [a.spiffe_trust_domains for a in b.authorities] == [(TD,)]
    assert json.loads(b.text) == doc and b.text.startswith('{\n  "keys": [')
    # the same document given as a mapping (a TrustBundle written in YAML) renders the same text
    assert check_bundle(doc, TD, NOW, MONTH).text == b.text


def test_not_json_and_not_a_jwks() -> None:
    the(findings('{"keys": [}'), "error", "", "not JSON", "line 1, column 11")
    the(findings("[1, 2]"), "error", "", "JSON object (a JWK set), not a list")
    the(findings('{"spiffe_sequence": 1}'), "error", "keys", "non-empty 'keys' list")
    the(findings('{"keys": []}'), "error", "keys", "non-empty 'keys' list")
    the(findings('{"keys": ["x"]}'), "error", "keys[0]", "JSON object (a JWK)")


def test_hint_and_sequence_must_be_non_negative_integers() -> None:
    doc = bundle_doc(TD)
    the(findings({**doc, "spiffe_refresh_hint": "5m"}), "error", "spiffe_refresh_hint", "non-negative integer")
    the(findings({**doc, "spiffe_sequence": -1}), "error", "spiffe_sequence", "non-negative integer")


def test_an_x509_key_needs_exactly_one_parseable_certificate() -> None:
    cert, _ = ca_cert(TD)
    good = x509_key(cert)
    the(findings({"keys": [{**good, "x5c": good["x5c"] * 2}]}), "error", "keys[0].x5c", "exactly one", "got 2")
    the(findings({"keys": [{k: v for k, v in good.items() if k != "x5c"}]}), "error", "keys[0].x5c", "got 0")
    the(findings({"keys": [{**good, "x5c": ["bm90IGEgY2VydA=="]}]}), "error", "keys[0].x5c[0]",
        "not a base64 DER X.509 certificate")
    the(findings({"keys": [{**good, "x5c": ["***"]}]}), "error", "keys[0].x5c[0]", "not a base64 DER")


def test_the_jwk_must_describe_the_certificates_key() -> None:
    cert, _ = ca_cert(TD)
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    key = x509_key(cert)
    size = 32
    key["x"] = base64.urlsafe_b64encode(other.x.to_bytes(size, "big")).rstrip(b"=").decode()
    key["y"] = base64.urlsafe_b64encode(other.y.to_bytes(size, "big")).rstrip(b"=").decode()
    the(findings({"keys": [key]}), "error", "keys[0]", "do not match the public key of the certificate")
    the(findings({"keys": [{k: v for k, v in x509_key(cert).items() if k != "kty"}]}), "error", "keys[0].kty",
        "needs 'kty'")


def test_an_authority_of_another_trust_domain_is_an_error() -> None:
    doc = bundle_doc(TD, certs=[ca_cert(TD)[0], ca_cert("telco.example")[0]])
    found = findings(doc)
    the(found, "error", "keys[1].x5c[0]", "'telco.example'", "not 'telco.operator'", "another trust domain")
    assert not [f for f in found if f[1] == "keys[0].x5c[0]"]
    # an upstream root without a SPIFFE URI SAN cannot be checked that way, and is accepted
    assert findings(bundle_doc(TD, certs=[ca_cert(TD, uri_td="")[0]])) == []


def test_expired_not_yet_valid_and_expiring_authorities() -> None:
    expired = ca_cert(TD, not_before=NOW - timedelta(days=10), not_after=NOW - timedelta(hours=1))[0]
    the(findings(bundle_doc(TD, certs=[expired])), "error", "keys[0].x5c[0]", "expired at",
        "spire-server bundle show -format spiffe")
    future = ca_cert(TD, not_before=NOW + timedelta(days=1))[0]
    the(findings(bundle_doc(TD, certs=[future])), "warning", "keys[0].x5c[0]", "not valid before")
    soon = ca_cert(TD, not_after=NOW + timedelta(days=10))[0]
    the(findings(bundle_doc(TD, certs=[soon])), "warning", "keys[0].x5c[0]", "before the next expected refresh",
        "refresh interval of 720h")
    assert findings(bundle_doc(TD, certs=[soon]), interval=timedelta(days=7)) == []
    # the peer's refresh hint widens the window when it is longer than the interval
    the(findings(bundle_doc(TD, certs=[soon], refresh_hint=20 * 86400), interval=timedelta(days=7)), "warning",
        "keys[0].x5c[0]", "spiffe_refresh_hint of 1728000s")


def test_a_non_ca_authority_is_a_warning() -> None:
    leaf = ca_cert(TD, ca=False)[0]
    the(findings(bundle_doc(TD, certs=[leaf])), "warning", "keys[0].x5c[0]", "not a CA")


def test_jwt_keys_need_a_kid_a_known_type_and_valid_parameters() -> None:
    k = jwt_key("k1")
    the(findings(bundle_doc(TD, jwt=[{kk: v for kk, v in k.items() if kk != "kid"}])), "error", "keys[1].kid",
        "non-empty 'kid'")
    the(findings(bundle_doc(TD, jwt=[k, jwt_key("k1")])), "error", "keys[2].kid", "used twice")
    the(findings(bundle_doc(TD, jwt=[{**k, "crv": "P-192"}])), "error", "keys[1].crv", "not one of P-256")
    the(findings(bundle_doc(TD, jwt=[{**k, "x": k["y"]}])), "error", "keys[1]", "EC key is not valid")
    the(findings(bundle_doc(TD, jwt=[{**k, "kty": "oct"}])), "error", "keys[1].kty", "not supported")
    the(findings(bundle_doc(TD, jwt=[{"use": "jwt-svid", "kty": "RSA", "kid": "r", "e": "AQAB"}])), "error",
        "keys[1]", "needs base64url 'n' and 'e'")
    the(findings(bundle_doc(TD, jwt=[{**k, "use": "enc"}])), "warning", "keys[1].use", "SPIRE ignores this key")


def test_a_jwt_only_bundle_is_accepted_and_one_with_nothing_usable_is_not() -> None:
    assert findings(bundle_doc(TD, certs=[])) == []
    the(findings({"keys": [{**jwt_key(), "use": "sig"}]}), "error", "keys", "trusts nothing")


def test_bundle_text_is_what_the_helpers_claim() -> None:
    # the helper's layout is SPIRE's (tests/real checks a running server's): keys, hint, sequence
    doc = json.loads(bundle_text(TD))
    assert list(doc) == ["keys", "spiffe_refresh_hint", "spiffe_sequence"]
    assert [k["use"] for k in doc["keys"]] == ["x509-svid", "jwt-svid"]


def test_a_mapping_json_cannot_hold_is_an_error_not_a_traceback() -> None:
    import datetime as dt
    doc = bundle_doc(TD)
    the(findings({**doc, "comment": dt.date(2026, 1, 1)}), "error", "", "cannot be written as the JSON SPIRE reads")
    the(findings({**doc, "spiffe_refresh_hint": float("nan")}), "error", "spiffe_refresh_hint", "non-negative integer")


def test_random_bytes_as_a_certificate_are_an_error() -> None:
    import os
    cert, _ = ca_cert(TD)
    for _ in range(20):
        key = {**x509_key(cert), "x5c": [base64.b64encode(os.urandom(64)).decode()]}
        the(findings({"keys": [key]}), "error", "keys[0].x5c[0]", "not a base64 DER X.509 certificate")

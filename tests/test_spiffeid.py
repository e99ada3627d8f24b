"""SPIFFE ID parsing and formatting against the SPIFFE-ID standard (and go-spiffe's behaviour)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spiffe_kpt.identity.spiffeid import (
    MAX_ID_BYTES,
    MAX_TRUST_DOMAIN_BYTES,
    SpiffeID,
    SpiffeIDError,
    is_valid,
    parse,
    validate_trust_domain,
)

TD_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.-_"
PATH_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"

trust_domains = st.text(TD_ALPHABET, min_size=1, max_size=40)
segments = st.text(PATH_ALPHABET, min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
paths = st.lists(segments, max_size=6).map(lambda segs: "".join("/" + s for s in segs))


@given(trust_domains, paths)
def test_format_then_parse_round_trips(td: str, path: str) -> None:
    sid = SpiffeID(td, path)
    assert parse(str(sid)) == sid
    assert str(parse(str(sid))) == f"spiffe://{td}{path}"


@given(st.text(max_size=60))
@settings(max_examples=500)
def test_parse_accepts_exactly_what_the_standard_allows(text: str) -> None:
    """An independent statement of the standard's rules, checked on arbitrary text."""
    expected = _standard_allows(text)
    assert is_valid(text) == expected, text


def _standard_allows(text: str) -> bool:
    if not text.startswith("spiffe://") or len(text.encode()) > MAX_ID_BYTES:
        return False
    rest = text[len("spiffe://"):]
    td, sep, path = rest.partition("/")
    if not td or len(td.encode()) > MAX_TRUST_DOMAIN_BYTES or any(c not in TD_ALPHABET for c in td):
        return False
    if not sep:
        return True
    return all(seg and seg not in (".", "..") and all(c in PATH_ALPHABET for c in seg)
               for seg in path.split("/"))


@pytest.mark.parametrize("text, fragment", [
    ("spiffe://td/a\n", "newline"),                 # a $-anchored regex would accept this
    ("spiffe://td\n", "newline"),
    ("spiffe://TD/a", "uppercase"),
    ("SPIFFE://td/a", "scheme must be lowercase"),
    ("http://td/a", "must start with 'spiffe://'"),
    ("spiffe://td:8080/a", "port"),
    ("spiffe://user@td/a", "userinfo"),
    ("spiffe://td/a?x=1", "query"),
    ("spiffe://td/a#f", "fragment"),
    ("spiffe://td/a%20b", "percent-encoding"),
    ("spiffe://td/a/", "must not end with '/'"),
    ("spiffe://td//a", "empty segment"),
    ("spiffe://td/./a", "dot segment"),
    ("spiffe://td/a/..", "dot segment"),
    ("spiffe:///a", "empty trust domain"),
    ("spiffe://", "empty trust domain"),
    ("", "empty"),
    ("spiffe://td/" + "a" * 2040, "at most 2048"),
    ("spiffe://" + "a" * 256, "at most 255"),
])
def test_rejects_with_a_message_that_names_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(SpiffeIDError, match=None) as exc:
        parse(text)
    assert fragment in str(exc.value)


def test_limits_are_inclusive() -> None:
    td = "a" * MAX_TRUST_DOMAIN_BYTES
    assert parse(f"spiffe://{td}").trust_domain == td
    path = "/" + "b" * (MAX_ID_BYTES - len("spiffe://td/"))
    assert len(str(parse(f"spiffe://td{path}"))) == MAX_ID_BYTES


@pytest.mark.parametrize("td, fragment", [
    ("Telco.Net", "use 'telco.net'"),
    ("spiffe://telco.net", "without the 'spiffe://' scheme: use 'telco.net'"),
    ("spiffe://Telco.NET", "use 'telco.net'"),
    ("telco.net:8443", "port"),
    ("a" * 256, "at most 255"),
    ("", "empty"),
])
def test_trust_domain_errors_say_how_to_fix(td: str, fragment: str) -> None:
    with pytest.raises(SpiffeIDError) as exc:
        validate_trust_domain(td)
    assert fragment in str(exc.value)


def test_istio_principal_drops_the_scheme() -> None:
    assert parse("spiffe://telco.net/ns/a/sa/b").istio_principal == "telco.net/ns/a/sa/b"

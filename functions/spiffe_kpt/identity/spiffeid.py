"""SPIFFE IDs and trust domains exactly as the SPIFFE-ID standard and go-spiffe define them.

The standard (spiffe/spiffe, standards/SPIFFE-ID.md): scheme ``spiffe``, a trust domain of
lowercase letters, digits, ``.``, ``-`` and ``_`` (at most 255 bytes), an optional path of
``/``-separated segments of ``[a-zA-Z0-9._-]`` with no empty, ``.`` or ``..`` segment and no
trailing slash; no port, userinfo, query, fragment or percent-encoding; at most 2048 bytes.
Validation walks the characters instead of using a ``$``-anchored regex, which would let a
trailing newline through (go-spiffe rejects it).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEME_PREFIX = "spiffe://"
MAX_ID_BYTES = 2048
MAX_TRUST_DOMAIN_BYTES = 255

_TD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


class SpiffeIDError(ValueError):
    """The text is not a valid SPIFFE ID or trust domain; the message says why and how to fix it."""


def _describe(ch: str) -> str:
    names = {"\n": "a newline", "\t": "a tab", " ": "a space", ":": "':' (a port is not allowed)",
             "@": "'@' (userinfo is not allowed)", "?": "'?' (a query is not allowed)",
             "#": "'#' (a fragment is not allowed)", "%": "'%' (percent-encoding is not allowed)"}
    return names.get(ch, repr(ch))


def validate_trust_domain(td: str) -> str:
    """Return ``td`` if it is a valid trust domain name, else raise SpiffeIDError."""
    if not isinstance(td, str):
        raise SpiffeIDError(f"trust domain must be a string, got {type(td).__name__}")
    if td == "":
        raise SpiffeIDError("trust domain is empty; set it to a DNS-like name such as 'telco.example.net'")
    if td.lower().startswith(SCHEME_PREFIX):
        bare = td[len(SCHEME_PREFIX):].split("/")[0].lower()
        raise SpiffeIDError(f"trust domain {td!r} must be the bare name without the 'spiffe://' "
                            f"scheme: use {bare!r}")
    if len(td.encode()) > MAX_TRUST_DOMAIN_BYTES:
        raise SpiffeIDError(f"trust domain is {len(td.encode())} bytes long; the SPIFFE standard "
                            f"allows at most {MAX_TRUST_DOMAIN_BYTES}")
    for ch in td:
        if ch not in _TD_CHARS:
            if ch.isalpha() and ch.lower() in _TD_CHARS:
                raise SpiffeIDError(f"trust domain {td!r} contains uppercase letters; SPIFFE trust "
                                    f"domains are lowercase: use {td.lower()!r}")
            raise SpiffeIDError(f"trust domain {td!r} contains {_describe(ch)}; only lowercase "
                                "letters, digits, '.', '-' and '_' are allowed")
    return td


def validate_path(path: str) -> str:
    """Return ``path`` if it is a valid SPIFFE ID path ('' or '/seg/...'), else raise."""
    if path == "":
        return path
    if not path.startswith("/"):
        raise SpiffeIDError(f"path {path!r} must start with '/'")
    if path.endswith("/"):
        raise SpiffeIDError(f"path {path!r} must not end with '/'")
    for seg in path[1:].split("/"):
        if seg == "":
            raise SpiffeIDError(f"path {path!r} contains an empty segment ('//')")
        if seg in (".", ".."):
            raise SpiffeIDError(f"path {path!r} contains a dot segment {seg!r}")
        for ch in seg:
            if ch not in _PATH_CHARS:
                raise SpiffeIDError(f"path {path!r} contains {_describe(ch)}; path segments allow "
                                    "only letters, digits, '.', '-' and '_'")
    return path


@dataclass(frozen=True, order=True)
class SpiffeID:
    trust_domain: str
    path: str = ""

    def __post_init__(self) -> None:
        validate_trust_domain(self.trust_domain)
        validate_path(self.path)
        if len(str(self).encode()) > MAX_ID_BYTES:
            raise SpiffeIDError(f"SPIFFE ID is {len(str(self).encode())} bytes long; the SPIFFE "
                                f"standard allows at most {MAX_ID_BYTES}")

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain}{self.path}"

    @property
    def istio_principal(self) -> str:
        """The ID as Istio writes principals: without the scheme."""
        return f"{self.trust_domain}{self.path}"

    def in_trust_domain(self, td: str) -> bool:
        return self.trust_domain == td


def parse(text: str) -> SpiffeID:
    """Parse a SPIFFE ID, rejecting everything that go-spiffe's ``spiffeid.FromString`` rejects."""
    if not isinstance(text, str):
        raise SpiffeIDError(f"SPIFFE ID must be a string, got {type(text).__name__}")
    if text == "":
        raise SpiffeIDError("SPIFFE ID is empty")
    if not text.startswith(SCHEME_PREFIX):
        if text.lower().startswith(SCHEME_PREFIX):
            raise SpiffeIDError(f"{text!r}: the scheme must be lowercase 'spiffe://'")
        raise SpiffeIDError(f"{text!r} is not a SPIFFE ID: it must start with 'spiffe://'")
    if len(text.encode()) > MAX_ID_BYTES:
        raise SpiffeIDError(f"SPIFFE ID is {len(text.encode())} bytes long; the SPIFFE standard "
                            f"allows at most {MAX_ID_BYTES}")
    rest = text[len(SCHEME_PREFIX):]
    slash = rest.find("/")
    td, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if td == "":
        raise SpiffeIDError(f"{text!r} has an empty trust domain")
    try:
        validate_trust_domain(td)
        validate_path(path)
    except SpiffeIDError as exc:
        raise SpiffeIDError(f"{text!r}: {exc}") from None
    return SpiffeID(td, path)


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except SpiffeIDError:
        return False
    return True

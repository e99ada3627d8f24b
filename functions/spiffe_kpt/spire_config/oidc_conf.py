"""oidc-discovery-provider.conf: SPIRE's OIDC discovery provider beside a root server.

Keys of support/oidc-discovery-provider (SPIRE 1.13, its README and config.go): the provider
answers only for ``domains`` (Host header), serves with the operator's certificate
(``serving_cert_file``, reloaded when the Secret changes), reads the trust domain's JWT keys
from the server's API socket in the same pod (``server_api``; GetBundle, every 10s), and
states ``jwt_issuer`` and ``jwks_uri`` explicitly (without ``jwks_uri`` SPIRE derives it from
``jwt_issuer`` and warns that this behaviour will change).
"""

from __future__ import annotations

from . import hcl, paths
from .values import Values, oidc_domains


def jwks_uri(issuer: str) -> str:
    return issuer.rstrip("/") + "/keys"


def render_oidc_conf(v: Values) -> str:
    """The provider's complete HCL configuration (top-level attributes, then blocks)."""
    cert = hcl.Block("serving_cert_file")
    cert.attr("cert_file_path", f"{paths.OIDC_TLS_DIR}/tls.crt")
    cert.attr("key_file_path", f"{paths.OIDC_TLS_DIR}/tls.key")
    cert.attr("addr", f":{paths.OIDC_PORT}")
    api = hcl.Block("server_api")
    api.attr("address", f"unix://{paths.SERVER_SOCKET}")
    health = hcl.Block("health_checks")
    health.attr("bind_port", paths.OIDC_HEALTH_PORT)
    health.attr("ready_path", "/ready")
    health.attr("live_path", "/live")
    return hcl.render([
        ("log_level", v.log_level.lower()),
        ("log_format", "json"),
        ("domains", oidc_domains(v)),
        ("jwt_issuer", v.jwt_issuer),
        ("jwks_uri", jwks_uri(v.jwt_issuer)),
        cert, api, health])

"""The trust domain's JWT issuer, run for real: the rendered spire-server package's OIDC
discovery provider against the real spire-server (tests/real/oidc.py), and a downstream
server's JWT-SVIDs verified with the root's provider.

What is rewritten to run the rendered provider config here is asserted exactly
(oidc.PROVIDER_REWRITES, the rest of the rendered text leaf by leaf).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from cryptography import x509

from . import hclconf
from .oidc import OIDC_CONFIG_KEY, PROVIDER_REWRITES, jwt_parts, start_oidc_issuer, verify_jwt
from .rendered import configmap_data, render_spire, start_psat_agent, start_rendered_server
from .stack import LOOPBACK, wait_until
from .test_real_rendered import DOWNSTREAM_REWRITES, ROOT_SERVER_REWRITES, UID, _downstream_registration

pytestmark = pytest.mark.real

TD = "telco.acme.net"


def _jwt_kids(server) -> set[str]:
    bundle = json.loads(server.cli("bundle", "show", "-output", "json").stdout)
    return {k["key_id"] for k in bundle.get("jwt_authorities") or []}


def test_provider_serves_the_rendered_issuer(oidc_issuer):
    oi = oidc_issuer
    rendered = configmap_data(oi.server_package, "spire-server", "spire-server")
    conf = rendered[OIDC_CONFIG_KEY]
    # exactly the keys this machine forces; every other leaf is the rendered text
    assert set(oi.provider_rewritten.changes) == PROVIDER_REWRITES
    assert hclconf.render(hclconf.parse(conf)) == conf
    kept = {p: v for p, v in hclconf.leaves(hclconf.parse(conf)).items()
            if not any(hclconf.covered(p, c) for c in PROVIDER_REWRITES)}
    assert {p: v for p, v in hclconf.leaves(hclconf.parse(oi.provider_rewritten.text)).items() if p in kept} == kept
    assert set(kept) == {"log_level", "log_format", "domains", "jwt_issuer", "jwks_uri"}
    assert set(oi.server_rewritten.changes) <= ROOT_SERVER_REWRITES

    # one issuer: the server's jwt_issuer, the provider's, the discovery document's
    server_issuer = hclconf.get(rendered["server.conf"], "server.jwt_issuer")
    assert server_issuer == oi.url == hclconf.get(conf, "jwt_issuer")
    doc = oi.discovery()
    assert doc["issuer"] == server_issuer
    assert doc["jwks_uri"] == f"{server_issuer}/keys"
    assert urlsplit(doc["jwks_uri"]).hostname in hclconf.get(conf, "domains")
    assert "ES256" in doc["id_token_signing_alg_values_supported"]

    # over TLS with the operator's certificate: trusted with its CA, refused without it
    with pytest.raises(urllib.error.URLError) as exc:
        urllib.request.urlopen(oi.discovery_url, timeout=5, context=ssl.create_default_context())
    assert isinstance(exc.value.reason, ssl.SSLCertVerificationError)
    with pytest.raises(urllib.error.URLError):  # and never in clear text
        urllib.request.urlopen(oi.discovery_url.replace("https://", "http://"), timeout=5)
    # the provider answers only for its domains (Host header)
    req = urllib.request.Request(oi.discovery_url, headers={"Host": "oidc.elsewhere.example"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5, context=oi.ssl_context())
    assert exc.value.code == 400

    # the JWKS is the server's JWT authorities
    jwks = oi.jwks()
    assert {k["kid"] for k in jwks["keys"]} == _jwt_kids(oi.server)
    assert all(k["kty"] == "EC" and k["crv"] == "P-256" for k in jwks["keys"])

    # a JWT-SVID from the agent's Workload API verifies with those keys
    workload = f"spiffe://{TD}/ns/o2ims/sa/focom"
    token = oi.jwt_svid(workload, "kube-apiserver")
    claims = verify_jwt(token, jwks, issuer=oi.url, audience="kube-apiserver")
    assert claims["sub"] == workload
    assert jwt_parts(token)[0]["kid"] in {k["kid"] for k in jwks["keys"]}
    with pytest.raises(ValueError, match="does not hold"):
        verify_jwt(token, jwks, issuer=oi.url, audience="openbao")
    head, body, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["sub"] = f"spiffe://{TD}/ns/o2ims/sa/admin"
    b = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="bad signature"):
        verify_jwt(f"{head}.{b}.{sig}", jwks, issuer=oi.url, audience="kube-apiserver")
    # and one minted by the server with a short TTL expires
    short = oi.mint_jwt(workload, "kube-apiserver", ttl="10s")
    c = verify_jwt(short, jwks, issuer=oi.url, audience="kube-apiserver")
    with pytest.raises(ValueError, match="expired"):
        verify_jwt(short, jwks, issuer=oi.url, audience="kube-apiserver", now=c["exp"] + 1)


def test_downstream_jwt_svids_verify_against_the_root_issuer(oidc_binaries, kube, real_stack, tmp_path):
    """Nested servers: the downstream server, rendered with the root's issuer, publishes its JWT
    signing key to the root (UpstreamAuthority "spire", PublishJWTKey); the root's provider then
    serves it, and a JWT-SVID minted at the edge verifies with the root's JWKS, iss included."""
    oi = start_oidc_issuer(real_stack, kube, tmp_path, name="root", drop=("federation",))
    root = oi.server
    assert set(oi.server_rewritten.changes) == ROOT_SERVER_REWRITES - {
        "server.federation.bundle_endpoint.address", "server.federation.bundle_endpoint.port"}
    root_kids = {k["kid"] for k in oi.jwks()["keys"]}

    ds_pkg = render_spire("spire-downstream-server", tmp_path / "edge",
                          changes={"svid": {"x509TTL": "1h", "jwtTTL": "5m", "jwtIssuer": oi.url}})
    up = start_psat_agent(real_stack, kube, root, ds_pkg, daemonset="spire-upstream-agent",
                          configmap="spire-upstream-agent", name="upstream-agent", bundle_pem=root.bundle_pem())
    assert up.cluster == "edge-1"
    _, _, ds_id = _downstream_registration(oi.server_package, ds_pkg)
    root.create_entry(ds_id, up.agent.spiffe_id, [f"unix:uid:{UID}"], "-downstream")
    got = x509.load_pem_x509_certificates((up.agent.fetch_x509(tmp_path / "ds-svid") / "svid.0.pem").read_bytes())
    assert got
    rendered = configmap_data(ds_pkg, "spire-server", "spire-server")["server.conf"]
    assert hclconf.get(rendered, "server.jwt_issuer") == oi.url
    ds, rw = start_rendered_server(real_stack, kube, rendered, name="downstream",
                                   upstream=(root.port, str(up.agent.socket_path)))
    assert set(rw.changes) == DOWNSTREAM_REWRITES

    # the downstream's own JWT key, published to the root, reaches the root's provider
    ds_kids = _jwt_kids(ds) - root_kids
    assert ds_kids, "the downstream server has no JWT key of its own"
    assert ds_kids <= _jwt_kids(root)

    def served():
        j = oi.jwks()
        return j if ds_kids <= {k["kid"] for k in j["keys"]} else None
    jwks = wait_until(served, 60, "the downstream's JWT key in the root's JWKS", interval=1, proc=oi.provider)

    workload = f"spiffe://{TD}/ns/edge-apps/sa/upf"
    token = ds.cli("jwt", "mint", "-spiffeID", workload, "-audience", "kube-apiserver").stdout.strip()
    header, _ = jwt_parts(token)
    assert header["kid"] in ds_kids  # signed at the edge, not by the root
    claims = verify_jwt(token, jwks, issuer=oi.url, audience="kube-apiserver")
    assert claims["sub"] == workload and claims["iss"] == oi.url
    assert urlsplit(oi.url).hostname == LOOPBACK

"""A trust domain's JWT issuer, run for real from the rendered `spire-server` package.

:func:`start_oidc_issuer` renders blueprints/spire/spire-server (and spire-agent) with an issuer
on this machine, starts the real spire-server from the rendered server.conf, a real spire-agent
from the rendered agent.conf attested with k8s_psat, and SPIRE's OIDC discovery provider (built
by tests/real/binaries.py at the SPIRE pin) from the rendered ``oidc-discovery-provider.conf``,
rewritten only where this machine forces it (:func:`provider_local_rewrites`):

* ``serving_cert_file.addr`` ``:8444`` -> ``127.0.0.1:<the issuer's port>`` (in the pod: every
  interface, behind the Service's port 443);
* ``serving_cert_file.cert_file_path`` / ``key_file_path`` -> the provider's directory, where a
  certificate of a test CA for 127.0.0.1 stands in for the operator's Secret (in the pod: the
  Secret mounted at /run/spire/oidc-discovery-provider-tls);
* ``server_api.address`` -> this server's API socket (in the pod: the shared emptyDir);
* ``health_checks`` removed: its listener binds every interface (``:<bind_port>``, the provider
  has no address setting for it) and servers here listen on 127.0.0.1 only; readiness is
  taken from ``/keys`` instead (it answers once the keys were read from the server).

Values chosen at render time (not rewritten): ``spec.svid.jwtIssuer`` is
``https://127.0.0.1:<free port>`` (the provider's domains default to its host), so the issuer
URL, the ``iss`` of every JWT-SVID, the discovery document and ``jwks_uri`` are exactly what a
verifier on this machine reaches. The server.conf rewrites are rendered.server_local_rewrites'.

Used by the issuer tests (test_real_oidc.py) and as the issuer for the kube-apiserver's JWT
authenticator and OpenBao's JWT auth in other tests: see :class:`OidcIssuer`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from . import binaries, hclconf
from .rendered import (
    PsatAgent,
    Rewritten,
    configmap_data,
    render_spire,
    rewrite_checked,
    start_psat_agent,
    start_rendered_server,
)
from .stack import LOOPBACK, Kube, Proc, SpireServer, Stack, StackError, free_port, issue, make_ca, run, wait_until

OIDC_CONFIG_KEY = "oidc-discovery-provider.conf"
# The keys of the rendered provider config rewritten to run it here (module docstring).
PROVIDER_REWRITES = {"serving_cert_file.addr", "serving_cert_file.cert_file_path",
                     "serving_cert_file.key_file_path", "server_api.address", "health_checks"}


def provider_local_rewrites(*, port: int, cert: Path, key: Path, server_socket: Path) -> dict[str, Any]:
    return {
        "serving_cert_file.addr": f"{LOOPBACK}:{port}",
        "serving_cert_file.cert_file_path": str(cert),
        "serving_cert_file.key_file_path": str(key),
        "server_api.address": f"unix://{server_socket}",
        "health_checks": hclconf.REMOVE,
    }


@dataclass
class OidcIssuer:
    """A running JWT issuer: spire-server + spire-agent + oidc-discovery-provider, all rendered.

    * ``url``: the issuer (``https://127.0.0.1:<port>``), the rendered ``jwt_issuer``; the
      ``iss`` of every JWT-SVID and the ``issuer`` of the discovery document;
    * ``ca_pem`` / ``ca_path``: the CA of the provider's serving certificate (what a verifier is
      given: AuthenticationConfiguration ``issuer.certificateAuthority``, OpenBao
      ``oidc_discovery_ca_pem``); the certificate names IP 127.0.0.1 and DNS localhost;
    * ``discovery_url`` (``<url>/.well-known/openid-configuration``), ``jwks_url``
      (``<url>/keys``);
    * :meth:`jwt_svid` a JWT-SVID for any SPIFFE ID of the trust domain and an audience, from the
      agent's Workload API (``spire-agent api fetch jwt``); :meth:`mint_jwt` one minted by the
      server (``spire-server jwt mint``, any TTL: short-lived tokens for expiry tests).
    """
    url: str
    trust_domain: str
    ca_pem: str
    ca_path: Path
    server: SpireServer
    agent: PsatAgent
    provider: Proc
    server_package: Path
    agent_package: Path
    server_rewritten: Rewritten
    provider_rewritten: Rewritten
    _registered: set[str] = field(default_factory=set)

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/keys"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem)

    def get_json(self, url: str) -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=5, context=self.ssl_context()) as r:
            return json.loads(r.read())

    def discovery(self) -> dict[str, Any]:
        return self.get_json(self.discovery_url)

    def jwks(self) -> dict[str, Any]:
        return self.get_json(self.jwks_url)

    def register(self, spiffe_id: str, *extra: str) -> None:
        """A registration entry for ``spiffe_id`` on the agent, selecting this test process's uid
        (the agent's unix workload attestor; in a pod the k8s attestor selects the pod)."""
        if spiffe_id in self._registered:
            return
        self.server.create_entry(spiffe_id, self.agent.agent.spiffe_id, [f"unix:uid:{os.getuid()}"], *extra)
        self._registered.add(spiffe_id)

    def jwt_svid(self, spiffe_id: str, audience: str | list[str], timeout: float = 60) -> str:
        """A JWT-SVID for ``spiffe_id`` with ``audience``, fetched from the agent's Workload API
        (registering the ID first, for this process's uid); retried until the entry reached the agent."""
        self.register(spiffe_id)
        aud = ",".join([audience] if isinstance(audience, str) else audience)
        agent = self.agent.agent

        def attempt():
            p = run([agent.bin, "api", "fetch", "jwt", "-audience", aud, "-spiffeID", spiffe_id,
                     "-socketPath", agent.socket_path, "-timeout", "5s"], check=False, timeout=20)
            m = re.search(rf"token\({re.escape(spiffe_id)}\):\s*(\S+)", p.stdout)
            return m.group(1) if p.returncode == 0 and m else None
        return wait_until(attempt, timeout, f"a JWT-SVID for {spiffe_id} from the agent", interval=1,
                          proc=agent.proc)

    def mint_jwt(self, spiffe_id: str, audience: str | list[str], ttl: str = "5m") -> str:
        """A JWT-SVID minted by the server (`spire-server jwt mint`), e.g. with a TTL of seconds."""
        args = ["jwt", "mint", "-spiffeID", spiffe_id, "-ttl", ttl]
        for a in [audience] if isinstance(audience, str) else audience:
            args += ["-audience", a]
        return self.server.cli(*args).stdout.strip()


def start_oidc_issuer(stack: Stack, kube: Kube, dest: Path, *, trust_domain: str = "telco.acme.net",
                      cluster: str = "mgmt", name: str = "oidc", extra_values: dict[str, Any] | None = None,
                      drop: tuple[str, ...] = ("workloadClusters", "federation")) -> OidcIssuer:
    """Render and start a JWT issuer for ``trust_domain`` (see the module docstring). ``kube`` is
    the apiserver the server's k8s_psat attestor and BundlePublisher use (any of the tier's).
    ``extra_values`` / ``drop``: changes to tests/spire/examples.py's root values (by default a
    single-cluster root: no workload clusters, no federation)."""
    binaries.ensure("oidc-discovery-provider")
    port = free_port()
    issuer = f"https://{LOOPBACK}:{port}"
    kube.ensure_namespace("spire-system")  # where the BundlePublisher writes
    values = {"trustDomain": trust_domain, "clusterName": cluster,
              "svid": {"x509TTL": "1h", "jwtTTL": "5m", "jwtIssuer": issuer},
              "oidcDiscoveryProvider": {"cidrs": [f"{LOOPBACK}/32"]}, **(extra_values or {})}
    server_pkg = render_spire("spire-server", dest / f"{name}-server", changes=values,
                              drop=drop)
    agent_pkg = render_spire("spire-agent", dest / f"{name}-agent", changes={
        "trustDomain": trust_domain, "clusterName": cluster,
        "server": {"address": "spire-server.spire-server.svc", "port": 8081}})
    data = configmap_data(server_pkg, "spire-server", "spire-server")
    server, server_rw = start_rendered_server(stack, kube, data["server.conf"], name=f"{name}-server")
    if hclconf.get(server_rw.text, "server.jwt_issuer") != issuer:
        raise StackError(f"the rendered server.conf does not say jwt_issuer = {issuer}")
    agent = start_psat_agent(stack, kube, server, agent_pkg, daemonset="spire-agent", configmap="spire-agent",
                             name=f"{name}-agent", bundle_pem=server.bundle_pem())

    # The operator's Secret: a serving certificate for the issuer's host from a CA of the test.
    d = stack.subdir(f"{name}-provider")
    ca = make_ca(f"{name} issuer test CA")
    ca_path, _ = ca.write(d, "ca")
    cert, key = issue(ca, LOOPBACK, ips=(LOOPBACK,), dns=("localhost",), server=True).write(d, "tls")
    rendered = data[OIDC_CONFIG_KEY]
    rw = rewrite_checked(rendered, provider_local_rewrites(port=port, cert=cert, key=key,
                                                           server_socket=server.socket_path))
    conf = d / OIDC_CONFIG_KEY
    conf.write_text(rw.text)
    proc = stack.spawn(f"{name}-oidc-discovery-provider",
                       [binaries.ensure("oidc-discovery-provider"), "-config", conf])
    oi = OidcIssuer(issuer, trust_domain, ca.cert.public_bytes(Encoding.PEM).decode(), ca_path, server, agent,
                    proc, server_pkg, agent_pkg, server_rw, rw)
    # Ready when /keys serves the server's JWT keys (the provider polls the server API).
    wait_until(lambda: oi.jwks().get("keys"), 60, "the provider's JWKS", interval=0.5, proc=proc)
    return oi


# ---------------------------------------------------------------------------
# JWT verification, independent of SPIRE (for the tests)
# ---------------------------------------------------------------------------

def _b64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int(s: str) -> int:
    return int.from_bytes(_b64(s), "big")


_EC = {"P-256": (ec.SECP256R1(), hashes.SHA256()), "P-384": (ec.SECP384R1(), hashes.SHA384())}
_ALG = {"ES256": "P-256", "ES384": "P-384"}


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims), unverified."""
    h, c, _ = token.split(".")
    return json.loads(_b64(h)), json.loads(_b64(c))


def verify_jwt(token: str, jwks: dict[str, Any], *, issuer: str, audience: str,
               now: float | None = None) -> dict[str, Any]:
    """The claims of ``token`` after checking its signature against the JWK of its ``kid`` in
    ``jwks`` (ES256/ES384/RS256), its ``iss``, ``aud`` and ``exp``; raises ValueError otherwise."""
    h64, c64, s64 = token.split(".")
    header, claims = jwt_parts(token)
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
    if not keys:
        raise ValueError(f"no key {header.get('kid')!r} in the JWKS")
    jwk, alg, msg, sig = keys[0], header.get("alg"), f"{h64}.{c64}".encode(), _b64(s64)
    try:
        if alg in _ALG and jwk.get("kty") == "EC" and jwk.get("crv") == _ALG[alg]:
            curve, digest = _EC[jwk["crv"]]
            pub = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve).public_key()
            half = len(sig) // 2
            pub.verify(encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")),
                       msg, ec.ECDSA(digest))
        elif alg == "RS256" and jwk.get("kty") == "RSA":
            pub = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
            pub.verify(sig, msg, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise ValueError(f"algorithm {alg!r} does not fit key {jwk.get('kty')}/{jwk.get('crv')}")
    except ValueError:
        raise
    except Exception as e:  # cryptography's InvalidSignature
        raise ValueError(f"bad signature: {e!r}") from None
    if claims.get("iss") != issuer:
        raise ValueError(f"iss {claims.get('iss')!r} is not {issuer!r}")
    aud = claims.get("aud")
    if audience not in ([aud] if isinstance(aud, str) else aud or []):
        raise ValueError(f"aud {aud!r} does not hold {audience!r}")
    if float(claims.get("exp", 0)) <= (time.time() if now is None else now):
        raise ValueError("expired")
    return claims

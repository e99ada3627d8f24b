"""A real Vault-compatible secrets manager for the `real` tier.

`SecretsServer` runs the binary built by ``binaries.ensure("vault")`` (Vault 1.14.1, an MPL-2.0
release; OpenBao's module is refused by the proxy reachable here, see binaries.py) on
127.0.0.1 with:

* TLS from a test CA made here (the server certificate names 127.0.0.1 and localhost); the
  listener asks for client certificates without requiring them, so the cert auth method
  can read a client's X.509-SVID;
* ``file`` storage in the stack's directory (not dev mode: the fixture initializes the
  server with one unseal key share and unseals it, as an operator would);
* the root token kept by the fixture, for bootstrapping only (the tests create short-lived
  tokens from it, as the README tells users to).

The process belongs to the Stack, which stops it (SIGTERM, then SIGKILL) when the test ends.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import binaries
from .stack import LOOPBACK, KeyPair, Stack, free_port, issue, make_ca, wait_until


class VaultError(RuntimeError):
    def __init__(self, status: int, body: Any, what: str):
        super().__init__(f"{what}: HTTP {status}: {body}")
        self.status = status
        self.body = body


def _conf(d: Path, port: int, cluster_port: int, cert: Path, key: Path) -> str:
    return f"""storage "file" {{
  path = "{d}/data"
}}

listener "tcp" {{
  address         = "{LOOPBACK}:{port}"
  cluster_address = "{LOOPBACK}:{cluster_port}"
  tls_cert_file   = "{cert}"
  tls_key_file    = "{key}"
  tls_min_version = "tls12"
}}

api_addr      = "https://{LOOPBACK}:{port}"
cluster_addr  = "https://{LOOPBACK}:{cluster_port}"
disable_mlock = true
ui            = false
log_level     = "info"
"""


class SecretsServer:
    """One Vault server process on loopback, initialized and unsealed."""

    def __init__(self, stack: Stack, *, name: str = "vault"):
        self.stack = stack
        self.binary = binaries.ensure("vault")
        self.dir = stack.subdir(name)
        self.port, self.cluster_port = free_port(), free_port()
        self.ca: KeyPair = make_ca("spiffe-kpt test secrets manager CA")
        self.ca_path, _ = self.ca.write(self.dir, "ca")
        tls = issue(self.ca, "vault", dns=("localhost",), ips=(LOOPBACK,), server=True)
        cert, key = tls.write(self.dir, "tls")
        conf = self.dir / "server.hcl"
        conf.write_text(_conf(self.dir, self.port, self.cluster_port, cert, key))
        self.address = f"https://{LOOPBACK}:{self.port}"
        self.proc = stack.spawn(name, [self.binary, "server", f"-config={conf}"],
                                env={"VAULT_LOG_FORMAT": "standard"})
        wait_until(lambda: self._status() in (200, 429, 472, 473, 501, 503), 60,
                   f"{name} listening", proc=self.proc)
        init = self.request("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token=None)
        self.unseal_key = init["keys_base64"][0]
        self.root_token = init["root_token"]
        self.request("PUT", "sys/unseal", {"key": self.unseal_key}, token=None)
        wait_until(lambda: self._status() == 200, 60, f"{name} unsealed and active", proc=self.proc)

    # -- HTTP -----------------------------------------------------------------
    def ssl_context(self, client_cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        if client_cert:
            ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        return ctx

    def _status(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.address}/v1/sys/health", context=self.ssl_context(),
                                        timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def raw(self, method: str, path: str, body: Any = None, *, token: str | None = "root",
            client_cert: tuple[Path, Path] | None = None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body or None) of one API call; never raises on 4xx/5xx."""
        if token == "root":
            token = self.root_token
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.address}/v1/{path.lstrip('/')}", data=data, method=method)
        if token:
            req.add_header("X-Vault-Token", token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(client_cert), timeout=30) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text.strip() else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                return e.code, json.loads(text) if text.strip() else None
            except ValueError:
                return e.code, text

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = "root",
                client_cert: tuple[Path, Path] | None = None) -> Any:
        status, out = self.raw(method, path, body, token=token, client_cert=client_cert)
        if status >= 400:
            raise VaultError(status, out, f"{method} {path}")
        return out

    # -- helpers ------------------------------------------------------------------
    def child_token(self, policies: list[str], ttl: str = "5m") -> str:
        """A short-lived token with exactly ``policies`` (no default policy), from the root."""
        out = self.request("POST", "auth/token/create", {"policies": policies, "ttl": ttl,
                                                         "no_default_policy": True})
        return out["auth"]["client_token"]

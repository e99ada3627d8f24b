"""The secrets manager (issue 17), run for real against Vault 1.14.1 (the last MPL-2.0 Vault the
module proxy lets us build; OpenBao's module is refused, see binaries.py).

The server is the pinned binary (``binaries.ensure("vault")``) on 127.0.0.1 with TLS and file
storage, initialized and unsealed by ``secretsmgr.SecretsServer`` (not dev mode).

* **The rendered access configuration, applied as the README says, used with real SVIDs**
  (module fixture ``env``): a management-cluster package with three AccessGrants (the UPF of
  edge01: read ``secret/upf/edge01/*``; every ID under ``cluster/edge01/``: read
  ``secret/observability/push/edge01/*``; the SMF: read, write, list ``secret/smf/*``) is
  rendered by the real kpt with spiffe-access, server-side applied to the test apiserver, and
  the Job's container is run as the kubelet would run it (its argv, ``python3 -S``, the mounted
  ConfigMaps, a projected service-account token of the Job's audience minted by the apiserver);
  it logs in with Kubernetes auth (TokenReview against that apiserver) under the applier policy
  the package renders. The JWT issuer is the rendered spire-server + spire-agent + OIDC discovery
  provider of tests/real/oidc.py; JWT-SVIDs come from the agent's Workload API, X.509-SVIDs from
  the server.
* **The SPIRE server package's external CA**: the rendered spire-server with the ``vault``
  UpstreamAuthority (a PKI mount of that server, Kubernetes auth with the server's own
  service-account token checked by the test apiserver's TokenReview) starts, and the SVIDs
  it issues chain to the PKI's root (test_spire_server_with_vault_upstream_authority_*).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

import spiffe_kpt

from ..pkgtools import WI_API
from . import binaries, hclconf
from .conftest import _ensure_or_fail
from .oidc import OidcIssuer, start_oidc_issuer
from .rendered import (
    apply_order,
    by_kind,
    cluster_objects,
    configmap_data,
    free_ports,
    mint_chain,
    render_spire,
    rewrite_checked,
    server_local_rewrites,
    to_yaml,
    uri_sans,
)
from .secretsmgr import SecretsServer
from .stack import Kube, Stack, wait_until

pytestmark = pytest.mark.real

ROOT_TD = "telco.acme.net"


@pytest.fixture(scope="session")
def vault_binaries():
    return _ensure_or_fail(["vault"])


@pytest.fixture(scope="module")
def skube(vault_binaries, kube_binaries, spire_binaries):
    """An apiserver of this module's own: the spire-servers started here publish their bundle
    to spire-system/spire-bundle, which the applier Job of ``env`` reads from the session's."""
    with Stack() as st:
        yield st.kube()


@pytest.fixture
def secrets_server(vault_binaries, real_stack) -> SecretsServer:
    return SecretsServer(real_stack)


def _ders(pem: str | None) -> set[bytes]:
    if not pem:
        return set()
    return {c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(pem.encode())}


# ---------------------------------------------------------------------------
# the fixture itself
# ---------------------------------------------------------------------------

def test_secrets_server_is_initialized_unsealed_and_speaks_tls(secrets_server):
    s = secrets_server
    status, health = s.raw("GET", "sys/health", token=None)
    assert status == 200, health
    assert health["initialized"] is True and health["sealed"] is False
    assert health["version"] == binaries.VAULT_VERSION.lstrip("v")
    # storage is the file backend in the fixture's directory (not dev mode's inmem)
    assert (s.dir / "data" / "core").is_dir()
    # TLS with the fixture's CA only: a client that trusts no CA is refused
    with pytest.raises(urllib.error.URLError) as e:
        urllib.request.urlopen(f"{s.address}/v1/sys/health", context=ssl.create_default_context(), timeout=5)
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
    # a token without policies reads nothing
    tok = s.child_token(["default"])
    s.request("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
    s.request("POST", "secret/data/x", {"data": {"k": "v"}})
    assert s.raw("GET", "secret/data/x", token=tok)[0] == 403
    assert s.raw("GET", "secret/data/x")[1]["data"]["data"] == {"k": "v"}


# ---------------------------------------------------------------------------
# the SPIRE external CA: UpstreamAuthority "vault"
# ---------------------------------------------------------------------------

VAULT_UA = 'plugins.UpstreamAuthority["vault"].plugin_data'
VAULT_UA_REWRITES = {f"{VAULT_UA}.vault_addr", f"{VAULT_UA}.ca_cert_path", f"{VAULT_UA}.k8s_auth.token_path"}


def _configure_vault_pki_and_k8s_auth(s: SecretsServer, kube: Kube, *, pki: str, k8s_mount: str, role: str,
                                      namespace: str, service_account: str) -> x509.Certificate:
    """What a Vault operator does once for SPIRE's vault UpstreamAuthority: a PKI mount with
    a root CA, a policy allowing exactly root/sign-intermediate, and Kubernetes auth bound to
    the spire-server service account (TokenReview by a reviewer account of its own)."""
    s.request("POST", f"sys/mounts/{pki}", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
    root = s.request("POST", f"{pki}/root/generate/internal",
                     {"common_name": "ACME Telco external root CA", "ttl": "87600h", "key_type": "ec",
                      "key_bits": 256})
    root_cert = x509.load_pem_x509_certificate(root["data"]["certificate"].encode())
    s.request("PUT", "sys/policies/acl/spire-upstream-authority",
              {"policy": f'path "{pki}/root/sign-intermediate" {{\n  capabilities = ["update"]\n}}\n'})
    s.request("POST", f"sys/auth/{k8s_mount}", {"type": "kubernetes"})
    s.request("POST", f"auth/{k8s_mount}/config", {
        "kubernetes_host": kube.server, "kubernetes_ca_cert": kube.ca_path.read_text(),
        "token_reviewer_jwt": _token_reviewer(kube), "disable_local_ca_jwt": True})
    s.request("POST", f"auth/{k8s_mount}/role/{role}", {
        "bound_service_account_names": [service_account],
        "bound_service_account_namespaces": [namespace],
        "token_policies": ["spire-upstream-authority"], "token_ttl": "10m"})
    return root_cert


def _token_reviewer(kube: Kube) -> str:
    """A service-account token allowed to call TokenReview (system:auth-delegator), as a Vault
    operator gives the Kubernetes auth method."""
    kube.ensure_namespace("vault")
    kube.ensure_service_account("vault", "token-reviewer")
    kube.kubectl("create", "clusterrolebinding", "vault-token-reviewer", "--clusterrole=system:auth-delegator",
                 "--serviceaccount=vault:token-reviewer", check=False)
    return kube.kubectl("create", "token", "token-reviewer", "-n", "vault", "--duration=3600s").stdout.strip()


def test_spire_server_with_vault_upstream_authority_chains_to_the_pki_root(skube, real_stack, secrets_server,
                                                                            tmp_path):
    s, kube = secrets_server, skube
    vault_values = {"address": "https://vault.mgmt.acme.net:8200", "cidrs": ["10.10.2.10/32"],
                    "pkiMountPoint": "pki-spire", "k8sAuthMountPoint": "kubernetes-mgmt",
                    "k8sAuthRole": "spire-server", "caSecretName": "vault-ca"}
    from tests.spire.examples import ROOT_SPEC
    ca = {**ROOT_SPEC["ca"], "upstreamAuthority": {"type": "vault", "vault": vault_values}}
    pkg = render_spire("spire-server", tmp_path / "r", {"ca": ca})
    rendered = configmap_data(pkg, "spire-server", "spire-server")["server.conf"]

    # the rendered plugin, as the docs promise
    assert hclconf.get(rendered, f"{VAULT_UA}.vault_addr") == vault_values["address"]
    assert hclconf.get(rendered, f"{VAULT_UA}.pki_mount_point") == "pki-spire"
    assert hclconf.get(rendered, f"{VAULT_UA}.k8s_auth.k8s_auth_mount_point") == "kubernetes-mgmt"
    assert hclconf.get(rendered, f"{VAULT_UA}.k8s_auth.k8s_auth_role_name") == "spire-server"
    # the pod mounts the CA Secret where ca_cert_path points
    sts = next(o for o in by_kind(cluster_objects(pkg), "StatefulSet") if o["metadata"]["name"] == "spire-server")
    pod = sts["spec"]["template"]["spec"]
    assert {"name": "vault-ca", "secret": {"secretName": "vault-ca"}} in pod["volumes"]
    mounts = next(c for c in pod["containers"] if c["name"] == "spire-server")["volumeMounts"]
    ca_dir = next(m["mountPath"] for m in mounts if m["name"] == "vault-ca")
    assert hclconf.get(rendered, f"{VAULT_UA}.ca_cert_path") == f"{ca_dir}/ca.crt"
    ns, sa = sts["metadata"]["namespace"], pod["serviceAccountName"]

    root_ca = _configure_vault_pki_and_k8s_auth(s, kube, pki="pki-spire", k8s_mount="kubernetes-mgmt",
                                                role="spire-server", namespace=ns, service_account=sa)

    # the service-account token the pod would have at token_path (automountServiceAccountToken),
    # minted by the apiserver and bound to a Pod of the StatefulSet
    suffix = uuid.uuid4().hex[:6]
    node = kube.create_node(f"spire-server-node-{suffix}")
    p = kube.create_running_pod(ns, f"spire-server-{suffix}", node=node.metadata.name, service_account=sa,
                                labels=dict(sts["spec"]["template"]["metadata"]["labels"]))
    token = kube.kubectl("create", "token", sa, "-n", ns, "--duration=3600s", "--bound-object-kind=Pod",
                         f"--bound-object-name={p.metadata.name}", f"--bound-object-uid={p.metadata.uid}"
                         ).stdout.strip()
    token_path = tmp_path / "sa-token"
    token_path.write_text(token)

    # the rendered server.conf, with only the pod-bound keys rewritten (+ the usual listeners/paths)
    port, health = free_ports(2)
    changes = server_local_rewrites(rendered, port=port, health_port=health, kubeconfig=kube.kubeconfig,
                                    bundle_endpoint_port=free_ports(1)[0])
    changes.update({f"{VAULT_UA}.vault_addr": s.address, f"{VAULT_UA}.ca_cert_path": str(s.ca_path),
                    f"{VAULT_UA}.k8s_auth.token_path": str(token_path)})
    rw = rewrite_checked(rendered, changes)
    assert VAULT_UA_REWRITES <= set(rw.changes)
    srv = real_stack.spire_server(rw.text, port=port, flags=False, name="spire-vault-ua")
    wait_until(lambda: srv.health("/ready")[0] == 200, 60, "spire-server /ready", proc=srv.proc)

    # the server's bundle is the PKI's root (the upstream root replaces a self-signed one)
    roots = x509.load_pem_x509_certificates(srv.bundle_pem().encode())
    assert [r.public_bytes(serialization.Encoding.DER) for r in roots] == \
        [root_ca.public_bytes(serialization.Encoding.DER)]

    # an X.509-SVID it issues chains leaf -> SPIRE's intermediate CA (signed by the PKI) -> PKI root
    _, cas = mint_chain(srv, f"spiffe://{ROOT_TD}/ns/core/sa/smf", tmp_path / "mint", [root_ca])
    assert uri_sans(cas[-1]) == [f"spiffe://{ROOT_TD}"]
    # Vault's record of the intermediate it signed: the PKI's own certificate list has it
    serials = s.request("LIST", "pki-spire/certs")["data"]["keys"]
    want = ":".join(f"{b:02x}" for b in cas[-1].serial_number.to_bytes(20, "big").lstrip(b"\0"))
    assert want in serials, (want, serials)


# ---------------------------------------------------------------------------
# the rendered access configuration, applied as the README says, used with real SVIDs
# ---------------------------------------------------------------------------

TD = ROOT_TD
UPF = f"spiffe://{TD}/cluster/edge01/ns/free5gc-upf/sa/upf-edge01"
SMF = f"spiffe://{TD}/cluster/regional/ns/free5gc-cp/sa/smf-regional"
PROBE = f"spiffe://{TD}/cluster/edge01/ns/free5gc-upf/sa/probe"  # under the edge01 prefix, no exact grant
OTHER = f"spiffe://{TD}/cluster/regional/ns/free5gc-cp/sa/amf-regional"  # granted nothing
AUDIENCE = "secrets:mgmt"
JWT_MOUNT = f"spiffe-jwt-{TD}"
CERT_MOUNT = f"spiffe-cert-{TD}"
LOCAL = {"config.kubernetes.io/local-config": "true"}
API = WI_API
AREAS = ("upf/edge01", "upf/edge02", "smf", "observability/push/edge01", "observability/push/edge02")
OWN_POLICIES = {"spiffe-kpt-grant-upf-edge01", "spiffe-kpt-grant-smf-regional",
                "spiffe-kpt-grant-edge01-observability"}


def _grants(with_smf: bool = True) -> list[dict]:
    def grant(name, clients, secrets):
        return {"apiVersion": API, "kind": "AccessGrant", "metadata": {"name": name, "annotations": LOCAL},
                "spec": {"clients": clients, "secrets": secrets}}
    out = [grant("upf-edge01", [{"spiffeID": UPF}], [{"mount": "secret", "path": "upf/edge01/*",
                                                      "capabilities": ["read"]}]),
           grant("edge01-observability", [{"spiffeIDPrefix": f"spiffe://{TD}/cluster/edge01/"}],
                 [{"mount": "secret", "path": "observability/push/edge01/*", "capabilities": ["read"]}])]
    if with_smf:
        out.append(grant("smf-regional", [{"spiffeID": SMF}], [{"mount": "secret", "path": "smf/*",
                                                                "capabilities": ["read", "write", "list"]}]))
    return out


def _write_package(pkg: Path, issuer: OidcIssuer, address: str, with_smf: bool = True) -> None:
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "Kptfile").write_text(yaml.safe_dump({
        "apiVersion": "kpt.dev/v1", "kind": "Kptfile", "metadata": {"name": pkg.name, "annotations": LOCAL},
        "pipeline": {"mutators": [{"name": "grant-access", "image": "ghcr.io/spiffe-kpt/access:v0.1.0"}],
                     "validators": [{"name": "validate", "image": "ghcr.io/spiffe-kpt/validator:v0.1.0"}]}}))
    ctx = {"apiVersion": API, "kind": "IdentityContext", "metadata": {"name": "identity-context", "annotations": LOCAL},
           "spec": {"trustDomain": TD, "clusterName": "mgmt", "idFormat": "cluster",
                    "jwtIssuer": {"url": issuer.url, "certificateAuthority": issuer.ca_pem},
                    "access": {"secrets": {"address": address, "caConfigMap": "openbao-ca", "x509Login": True}}}}
    (pkg / "cluster-context.yaml").write_text(yaml.safe_dump(ctx))
    (pkg / "secrets-access.yaml").write_text(yaml.safe_dump_all(_grants(with_smf)))


def _render(pkg: Path) -> list[dict]:
    from tests.pkgtools import kpt_render
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr
    return cluster_objects(pkg)


def _apply_as_the_readme_says(kube: Kube, objs: list[dict], tmp_path: Path, n: int) -> dict:
    """`kpt live apply` of the rendered objects (here: server-side apply to the test apiserver),
    then the Job's container as the kubelet would run it: the same command and argv, the
    ConfigMap's plan, a projected service-account token of the Job's account (audience and
    lifetime of the Job's projected volume) minted by the apiserver, the CA ConfigMap and the
    spire-bundle ConfigMap mounted where the Job says. There is no kubelet in this tier, so the
    process is started here (``python3 -S``, as the Job: the standard library only)."""
    kube.apply_manifests(to_yaml(apply_order(objs)))
    job = next(o for o in objs if o["kind"] == "Job")
    ns = job["metadata"]["namespace"]
    pod = job["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["command"] == ["python3", "-S", "-m", "spiffe_kpt.access.openbao_apply"]
    root = tmp_path / f"pod-{n}"
    paths = {}
    vols = {v["name"]: v for v in pod["volumes"]}
    for m in c["volumeMounts"]:
        d = root / m["mountPath"].lstrip("/")
        d.mkdir(parents=True)
        paths[m["mountPath"]] = d
        v = vols[m["name"]]
        if "configMap" in v:
            got = json.loads(kube.kubectl("get", "configmap", v["configMap"]["name"], "-n", ns, "-o", "json").stdout)
            items = v["configMap"].get("items") or [{"key": k, "path": k} for k in got["data"]]
            for it in items:
                (d / it["path"]).write_text(got["data"][it["key"]])
        else:
            src = v["projected"]["sources"][0]["serviceAccountToken"]
            tok = kube.kubectl("create", "token", pod["serviceAccountName"], "-n", ns,
                               f"--audience={src['audience']}", f"--duration={src['expirationSeconds']}s").stdout
            (d / src["path"]).write_text(tok.strip())
    args = list(c["args"])
    for mount, d in paths.items():
        args = [a.replace(mount, str(d)) for a in args]
    # `python3 -S` reads no site-packages: the function image finds the project through its
    # ENV PYTHONPATH=/opt/spiffe-kpt (Dockerfile); here, this tree's functions directory.
    env = {**os.environ, "PYTHONPATH": str(Path(spiffe_kpt.__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, *c["command"][1:], *args], capture_output=True, text=True, timeout=120,
                       env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _bootstrap(s: SecretsServer, kube: Kube, applier_policy: str) -> None:
    """The README's one-time bootstrap (an operator with an admin token): KV v2 at secret/, the
    Kubernetes auth method for the management cluster, the applier's policy and role."""
    s.request("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
    s.request("POST", "sys/auth/kubernetes", {"type": "kubernetes"})
    s.request("POST", "auth/kubernetes/config", {"kubernetes_host": kube.server,
                                                 "kubernetes_ca_cert": kube.ca_path.read_text(),
                                                 "token_reviewer_jwt": _token_reviewer(kube),
                                                 "disable_local_ca_jwt": True})
    s.request("PUT", "sys/policies/acl/spiffe-kpt-openbao-applier", {"policy": applier_policy})
    s.request("POST", "auth/kubernetes/role/spiffe-kpt-openbao-applier", {
        "bound_service_account_names": ["spiffe-kpt-openbao-applier"],
        "bound_service_account_namespaces": ["spire-system"], "audience": "openbao-applier",
        "token_policies": ["spiffe-kpt-openbao-applier"], "token_ttl": "5m"})
    # something the applier does not own, which must survive its pruning
    s.request("PUT", "sys/policies/acl/ops-admin", {"policy": 'path "secret/*" { capabilities = ["read"] }'})


def _jwt_login(s: SecretsServer, role: str, jwt: str) -> tuple[int, str]:
    """(status, the client token on 200, else the error body as text)."""
    status, out = s.raw("POST", f"auth/{JWT_MOUNT}/login", {"role": role, "jwt": jwt}, token=None)
    return status, (out or {}).get("auth", {}).get("client_token", "") if status == 200 else str(out)


def _cert_login(s: SecretsServer, role: str, cert: tuple[Path, Path]) -> tuple[int, str]:
    status, out = s.raw("POST", f"auth/{CERT_MOUNT}/login", {"name": role}, token=None, client_cert=cert)
    return status, (out or {}).get("auth", {}).get("client_token", "") if status == 200 else str(out)


def _access(s: SecretsServer, token: str) -> dict[str, int]:
    """HTTP status of read / write / list on each secret area with ``token``."""
    out = {}
    for area in AREAS:
        out[f"read {area}"] = s.raw("GET", f"secret/data/{area}/key", token=token)[0]
        out[f"write {area}"] = s.raw("POST", f"secret/data/{area}/key", {"data": {"v": area}}, token=token)[0]
        out[f"list {area}"] = s.raw("LIST", f"secret/metadata/{area}", token=token)[0]
    return out


def _expect(allowed: set[str]) -> dict[str, int]:
    return {f"{op} {a}": (200 if f"{op} {a}" in allowed else 403) for a in AREAS for op in ("read", "write", "list")}


def _cm_key(kube: Kube, ns: str, name: str, key: str) -> str | None:
    p = kube.kubectl("get", "configmap", name, "-n", ns, "-o", "json", check=False)
    if p.returncode != 0:
        return None
    return (json.loads(p.stdout).get("data") or {}).get(key)


@dataclass
class Env:
    stack: Stack
    kube: Kube
    issuer: OidcIssuer
    server: SecretsServer
    pkg: Path
    objs: list[dict]
    applied: dict
    tmp: Path


@pytest.fixture(scope="module")
def env(vault_binaries, oidc_binaries, kube, tmp_path_factory):
    """The management cluster's secrets package rendered and applied as the README says (module
    docstring), against a fresh server; an operator has written a secret in every area."""
    from spiffe_kpt.access import openbao
    tmp = tmp_path_factory.mktemp("secrets")
    with Stack() as st:
        oi = start_oidc_issuer(st, kube, tmp / "issuer")
        s = SecretsServer(st)
        pkg = tmp / "mgmt-secrets"
        _write_package(pkg, oi, s.address)
        objs = _render(pkg)
        cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == openbao.CONFIGMAP)
        _bootstrap(s, kube, cm["data"]["applier-policy.hcl"])
        for area in AREAS:
            s.request("POST", f"secret/data/{area}/key", {"data": {"v": area}})
        # the ConfigMaps the Job mounts: the server's CA (the operator's) and the trust bundle
        # (SPIRE's BundlePublisher writes spire-bundle: the issuer's server publishes to this apiserver)
        kube.ensure_namespace("spire-system")
        kube.kubectl("create", "configmap", "openbao-ca", "-n", "spire-system", f"--from-file=ca.crt={s.ca_path}",
                     check=False)
        want = _ders(oi.server.bundle_pem())
        wait_until(lambda: _ders(_cm_key(kube, "spire-system", "spire-bundle", "bundle.crt")) == want, 90,
                   "the spire-bundle ConfigMap with the issuer's bundle", proc=oi.server.proc)
        applied = _apply_as_the_readme_says(kube, objs, tmp, 1)
        yield Env(st, kube, oi, s, pkg, objs, applied, tmp)


def test_the_applier_job_puts_exactly_the_rendered_plan_on_the_server(env):
    s, done = env.server, env.applied
    assert set(done["enabled"]) == {JWT_MOUNT, CERT_MOUNT}
    assert set(done["policies"]) == OWN_POLICIES
    assert not done["deletedRoles"] and not done["deletedPolicies"] and not done["disabled"]
    plan = json.loads(next(o for o in env.objs if o["kind"] == "ConfigMap"
                           and "plan.json" in o["data"])["data"]["plan.json"])
    # every policy on the server is the rendered text
    for name, text in plan["policies"].items():
        assert s.request("GET", f"sys/policies/acl/{name}")["data"]["policy"] == text
    # the roles hold the rendered bodies
    role = s.request("GET", f"auth/{JWT_MOUNT}/role/upf-edge01")["data"]
    assert role["bound_subject"] == UPF and role["bound_audiences"] == [AUDIENCE] and role["user_claim"] == "sub"
    assert role["role_type"] == "jwt" and role["token_policies"] == ["spiffe-kpt-grant-upf-edge01"]
    assert role["token_ttl"] == 300 and role["expiration_leeway"] == 5
    glob_role = s.request("GET", f"auth/{JWT_MOUNT}/role/edge01-observability")["data"]
    assert glob_role["bound_claims"] == {"sub": [f"spiffe://{TD}/cluster/edge01/*"]}
    assert glob_role["bound_claims_type"] == "glob"
    config = s.request("GET", f"auth/{JWT_MOUNT}/config")["data"]
    assert config["bound_issuer"] == env.issuer.url and config["oidc_discovery_url"] == env.issuer.url
    cert_role = s.request("GET", f"auth/{CERT_MOUNT}/certs/upf-edge01")["data"]
    assert cert_role["allowed_uri_sans"] == [UPF]
    # the cert roles trust the trust bundle read from the spire-bundle ConfigMap
    assert _ders(cert_role["certificate"]) == _ders(env.issuer.server.bundle_pem())
    # the auth methods are marked as the applier's; what it does not own is there, untouched
    auths = s.request("GET", "sys/auth")["data"]
    assert auths[f"{JWT_MOUNT}/"]["description"].startswith("spiffe-kpt:")
    assert "kubernetes/" in auths
    # the applier logs in as the Job does and may configure auth, but reads no secret
    sa_token = env.kube.kubectl("create", "token", "spiffe-kpt-openbao-applier", "-n", "spire-system",
                                "--audience=openbao-applier", "--duration=600s").stdout.strip()
    out = s.request("POST", "auth/kubernetes/login", {"role": "spiffe-kpt-openbao-applier", "jwt": sa_token},
                    token=None)
    applier = out["auth"]["client_token"]
    assert s.raw("GET", f"auth/{JWT_MOUNT}/role/upf-edge01", token=applier)[0] == 200
    assert s.raw("GET", "secret/data/smf/key", token=applier)[0] == 403
    assert s.raw("PUT", "sys/policies/acl/ops-admin", {"policy": ""}, token=applier)[0] == 403
    # a service-account token for another audience is not the applier
    wrong = env.kube.kubectl("create", "token", "spiffe-kpt-openbao-applier", "-n", "spire-system",
                             "--duration=600s").stdout.strip()
    assert s.raw("POST", "auth/kubernetes/login", {"role": "spiffe-kpt-openbao-applier", "jwt": wrong},
                 token=None)[0] in (400, 403)


def test_each_jwt_svid_reads_exactly_what_its_grant_says(env):
    s, oi = env.server, env.issuer
    st, upf_tok = _jwt_login(s, "upf-edge01", oi.jwt_svid(UPF, AUDIENCE))
    assert st == 200, upf_tok
    assert _access(s, upf_tok) == _expect({"read upf/edge01"})
    # the UPF's token reads the value the operator wrote, no other
    assert s.request("GET", "secret/data/upf/edge01/key", token=upf_tok)["data"]["data"] == {"v": "upf/edge01"}
    st, smf_tok = _jwt_login(s, "smf-regional", oi.jwt_svid(SMF, AUDIENCE))
    assert st == 200, smf_tok
    assert _access(s, smf_tok) == _expect({"read smf", "write smf", "list smf"})
    # the token carries the grant's policy (and Vault's default one: its own token only), no other
    me = s.request("GET", "auth/token/lookup-self", token=smf_tok)["data"]
    assert "spiffe-kpt-grant-smf-regional" in me["policies"], me
    assert set(me["policies"]) <= {"default", "spiffe-kpt-grant-smf-regional"}, me
    assert me["meta"]["role"] == "smf-regional"
    assert me["ttl"] <= 300


def test_a_prefix_grant_admits_every_id_under_the_prefix_and_only_those(env):
    s, oi = env.server, env.issuer
    st, probe_tok = _jwt_login(s, "edge01-observability", oi.jwt_svid(PROBE, AUDIENCE))
    assert st == 200, probe_tok
    assert _access(s, probe_tok) == _expect({"read observability/push/edge01"})
    st, msg = _jwt_login(s, "edge01-observability", oi.jwt_svid(SMF, AUDIENCE))
    assert st in (400, 403) and "claim" in msg, msg


def test_no_login_for_an_ungranted_id_another_grants_role_another_audience_or_an_expired_svid(env):
    s, oi = env.server, env.issuer
    # an ID granted nothing, or a role of another grant
    st, msg = _jwt_login(s, "upf-edge01", oi.jwt_svid(OTHER, AUDIENCE))
    assert st in (400, 403) and "sub" in msg, msg
    st, msg = _jwt_login(s, "smf-regional", oi.jwt_svid(UPF, AUDIENCE))
    assert st in (400, 403) and "sub" in msg, msg
    # a token for another audience (the Kubernetes API's) cannot log in
    st, msg = _jwt_login(s, "upf-edge01", oi.jwt_svid(UPF, "kubernetes:mgmt"))
    assert st in (400, 403) and "aud" in msg.lower(), msg
    # the same SVID for the right audience does: the refusals above are the claims, not the setup
    assert _jwt_login(s, "upf-edge01", oi.jwt_svid(UPF, AUDIENCE))[0] == 200
    # an expired one cannot either (minted with a 1 s TTL; the roles' expiration and clock-skew
    # leeways are 5 s each, so 15 s later it is expired by any reading)
    expired = oi.mint_jwt(UPF, AUDIENCE, ttl="1s")
    time.sleep(15)
    st, msg = _jwt_login(s, "upf-edge01", expired)
    assert st in (400, 403) and "expired" in msg.lower(), msg


def _mint_x509(server, spiffe_id: str, d: Path, dns: str | None = None) -> tuple[Path, Path]:
    """An X.509-SVID from the real server (`spire-server x509 mint`); with ``dns`` SPIRE adds the
    DNS SAN and makes it the subject's CN, as for a registration entry with dnsNames."""
    d.mkdir(parents=True, exist_ok=True)
    server.cli("x509", "mint", "-spiffeID", spiffe_id, *(["-dns", dns] if dns else []), "-write", d)
    return d / "svid.pem", d / "key.pem"


def _cn(cert_path: Path) -> list[str]:
    subject = x509.load_pem_x509_certificate(cert_path.read_bytes()).subject
    return [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def test_x509_svid_login_with_the_cert_auth_method(env):
    s, oi = env.server, env.issuer
    certs = {}
    for sid, role_name, allowed in ((UPF, "upf-edge01", {"read upf/edge01"}),
                                    (SMF, "smf-regional", {"read smf", "write smf", "list smf"}),
                                    (PROBE, "edge01-observability", {"read observability/push/edge01"})):
        certs[role_name] = cert = _mint_x509(oi.server, sid, env.tmp / f"x509-{role_name}",
                                             dns=f"{role_name}.svc.example")
        assert _cn(cert[0]) == [f"{role_name}.svc.example"]
        st, tok = _cert_login(s, role_name, cert)
        assert st == 200, tok
        assert _access(s, tok) == _expect(allowed)
    # a certificate is admitted by its own grant's role only
    assert _cert_login(s, "smf-regional", certs["upf-edge01"])[0] in (400, 403)
    assert _cert_login(s, "upf-edge01", certs["edge01-observability"])[0] in (400, 403)
    # no client certificate, no login
    assert s.raw("POST", f"auth/{CERT_MOUNT}/login", {"name": "upf-edge01"}, token=None)[0] in (400, 403)
    # a certificate of another CA with the UPF's URI SAN is refused (the role trusts the SPIRE bundle only)
    from .stack import make_ca
    rogue_cert = _with_uri_san(make_ca("not the trust domain's CA"), UPF, env.tmp / "rogue")
    assert _cert_login(s, "upf-edge01", rogue_cert)[0] in (400, 403)


def test_vault_1_14_cert_login_needs_an_svid_with_a_dns_name(env):
    """The limit the README states: Vault 1.14's cert auth names the login's entity alias after
    the certificate's subject CN, and an X.509-SVID without DNS names has none (SPIRE sets the CN
    to the first DNS name only), so its login fails inside Vault, after the role matched."""
    s, oi = env.server, env.issuer
    cert = _mint_x509(oi.server, UPF, env.tmp / "x509-no-dns")
    assert _cn(cert[0]) == []
    st, msg = _cert_login(s, "upf-edge01", cert)
    assert st == 500 and "missing name in alias" in msg, (st, msg)


def _with_uri_san(ca, uri: str, d: Path) -> tuple[Path, Path]:
    """A client certificate for ``uri`` (URI SAN) signed by ``ca`` (a stack.KeyPair)."""
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    (d / "svid.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "svid.pem", d / "key.pem"


def test_removing_a_grant_and_reapplying_revokes_it(env):
    s, oi = env.server, env.issuer
    st, smf_tok = _jwt_login(s, "smf-regional", oi.jwt_svid(SMF, AUDIENCE))
    assert st == 200, smf_tok
    st, upf_tok = _jwt_login(s, "upf-edge01", oi.jwt_svid(UPF, AUDIENCE))
    assert st == 200, upf_tok
    assert _access(s, smf_tok) == _expect({"read smf", "write smf", "list smf"})

    # remove the SMF's grant, re-render, re-apply: its roles and policy are gone
    _write_package(env.pkg, oi, s.address, with_smf=False)
    objs2 = _render(env.pkg)
    job1 = next(o["metadata"]["name"] for o in env.objs if o["kind"] == "Job")
    job2 = next(o["metadata"]["name"] for o in objs2 if o["kind"] == "Job")
    assert job1 != job2  # a changed plan is a new Job
    done = _apply_as_the_readme_says(env.kube, objs2, env.tmp, 2)
    assert sorted(done["deletedRoles"]) == sorted([f"{CERT_MOUNT}/smf-regional", f"{JWT_MOUNT}/smf-regional"])
    assert done["deletedPolicies"] == ["spiffe-kpt-grant-smf-regional"]
    assert not done["disabled"]
    # the token issued before is revoked in effect at once (its policy is gone) ...
    assert _access(s, smf_tok) == _expect(set())
    # ... and no new login, by JWT-SVID or X.509-SVID
    assert _jwt_login(s, "smf-regional", oi.jwt_svid(SMF, AUDIENCE))[0] in (400, 403)
    smf_cert = _mint_x509(oi.server, SMF, env.tmp / "x509-smf-after", dns="smf-regional.svc.example")
    assert _cert_login(s, "smf-regional", smf_cert)[0] in (400, 403)
    # the other grants still work, and what the applier does not own is untouched
    assert _access(s, upf_tok) == _expect({"read upf/edge01"})
    policies = set(s.request("LIST", "sys/policies/acl")["data"]["keys"])
    assert {"ops-admin", "spiffe-kpt-openbao-applier"} <= policies
    assert "spiffe-kpt-grant-smf-regional" not in policies
    assert "kubernetes/" in s.request("GET", "sys/auth")["data"]
    # the secret the SMF wrote is still there (revoking access deletes no data)
    assert s.request("GET", "secret/data/smf/key")["data"]["data"] == {"v": "smf"}


def test_a_jwt_svid_of_another_trust_domain_cannot_log_in(env, skube):
    """Its own SPIRE and issuer (attested against this module's other apiserver, so its
    BundlePublisher leaves the session's spire-bundle alone); same SPIFFE ID path, same audience."""
    s = env.server
    other = start_oidc_issuer(env.stack, skube, env.tmp / "partner", trust_domain="partner.operator.net",
                              name="partner")
    foreign = other.mint_jwt("spiffe://partner.operator.net/cluster/edge01/ns/free5gc-upf/sa/upf-edge01",
                             AUDIENCE)
    for role_name in ("upf-edge01", "edge01-observability"):
        st, msg = _jwt_login(s, role_name, foreign)
        assert st in (400, 403), msg
    # a foreign X.509-SVID is not admitted by the cert roles either
    cert = _mint_x509(other.server, "spiffe://partner.operator.net/cluster/edge01/ns/free5gc-upf/sa/upf-edge01",
                      env.tmp / "x509-partner", dns="upf-edge01.svc.example")
    assert _cert_login(s, "edge01-observability", cert)[0] in (400, 403)
    assert _cert_login(s, "upf-edge01", cert)[0] in (400, 403)

"""The secrets manager (issue 17), run for real.

The server is the pinned Vault-compatible binary (``binaries.ensure("vault")``) on 127.0.0.1
with TLS and file storage, initialized and unsealed by ``secretsmgr.SecretsServer``.

* The SPIRE server package's external CA: the rendered spire-server with the ``vault``
  UpstreamAuthority (a PKI mount of that server, Kubernetes auth with the server's own
  service-account token checked by the test apiserver's TokenReview) starts, and the SVIDs
  it issues chain to the PKI's root (test_spire_server_with_vault_upstream_authority_*).
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from .rendered import by_kind, cluster_objects, configmap_data, render_spire
from .secretsmgr import SecretsServer
from .stack import Stack

pytestmark = pytest.mark.real

ROOT_TD = "telco.acme.net"


@pytest.fixture(scope="module")
def skube(kube_binaries, spire_binaries):
    with Stack() as st:
        yield st.kube()


@pytest.fixture
def secrets_server(real_stack) -> SecretsServer:
    return SecretsServer(real_stack)


def _uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


# ---------------------------------------------------------------------------
# the fixture itself
# ---------------------------------------------------------------------------

def test_secrets_server_is_initialized_unsealed_and_speaks_tls(secrets_server):
    s = secrets_server
    status, health = s.raw("GET", "sys/health", token=None)
    assert status == 200, health
    assert health["initialized"] is True and health["sealed"] is False
    assert health["version"] == "1.14.8"
    # storage is the file backend in the fixture's directory (not dev mode's inmem)
    assert (s.dir / "data" / "core").is_dir()
    # TLS with the fixture's CA only: a client that trusts no CA is refused
    import ssl
    import urllib.request
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
# C. the SPIRE external CA: UpstreamAuthority "vault"
# ---------------------------------------------------------------------------

VAULT_UA = 'plugins.UpstreamAuthority["vault"].plugin_data'
VAULT_UA_REWRITES = {f"{VAULT_UA}.vault_addr", f"{VAULT_UA}.ca_cert_path", f"{VAULT_UA}.k8s_auth.token_path"}


def _configure_vault_pki_and_k8s_auth(s: SecretsServer, kube, *, pki: str, k8s_mount: str, role: str,
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

    kube.ensure_namespace("vault")
    kube.ensure_service_account("vault", "token-reviewer")
    kube.kubectl("create", "clusterrolebinding", "vault-token-reviewer", "--clusterrole=system:auth-delegator",
                 "--serviceaccount=vault:token-reviewer", check=False)
    reviewer = kube.kubectl("create", "token", "token-reviewer", "-n", "vault", "--duration=3600s").stdout.strip()
    s.request("POST", f"sys/auth/{k8s_mount}", {"type": "kubernetes"})
    s.request("POST", f"auth/{k8s_mount}/config", {
        "kubernetes_host": kube.server, "kubernetes_ca_cert": kube.ca_path.read_text(),
        "token_reviewer_jwt": reviewer, "disable_local_ca_jwt": True})
    s.request("POST", f"auth/{k8s_mount}/role/{role}", {
        "bound_service_account_names": [service_account],
        "bound_service_account_namespaces": [namespace],
        "token_policies": ["spire-upstream-authority"], "token_ttl": "10m"})
    return root_cert


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
    from . import hclconf
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
    kube.ensure_namespace(ns)
    kube.ensure_service_account(ns, sa)
    node = kube.create_node("spire-server-node")
    p = kube.create_running_pod(ns, "spire-server-0", node=node.metadata.name, service_account=sa,
                                labels=dict(sts["spec"]["template"]["metadata"]["labels"]))
    token = kube.kubectl("create", "token", sa, "-n", ns, "--duration=3600s", "--bound-object-kind=Pod",
                         f"--bound-object-name={p.metadata.name}", f"--bound-object-uid={p.metadata.uid}"
                         ).stdout.strip()
    token_path = tmp_path / "sa-token"
    token_path.write_text(token)

    # the rendered server.conf, with only the pod-bound keys rewritten (+ the usual listeners/paths)
    from .rendered import free_ports, rewrite_checked, server_local_rewrites
    port, health = free_ports(2)
    changes = server_local_rewrites(rendered, port=port, health_port=health, kubeconfig=kube.kubeconfig,
                                    bundle_endpoint_port=free_ports(1)[0])
    changes.update({f"{VAULT_UA}.vault_addr": s.address, f"{VAULT_UA}.ca_cert_path": str(s.ca_path),
                    f"{VAULT_UA}.k8s_auth.token_path": str(token_path)})
    rw = rewrite_checked(rendered, changes)
    assert VAULT_UA_REWRITES <= set(rw.changes)
    srv = real_stack.spire_server(rw.text, port=port, flags=False, name="spire-vault-ua")
    assert srv.health("/ready")[0] == 200

    # the server's bundle is the PKI's root (the upstream root replaces a self-signed one)
    roots = x509.load_pem_x509_certificates(srv.bundle_pem().encode())
    assert [r.public_bytes(serialization.Encoding.DER) for r in roots] == \
        [root_ca.public_bytes(serialization.Encoding.DER)]

    # an X.509-SVID it issues chains leaf -> SPIRE's intermediate CA (signed by the PKI) -> PKI root
    out = tmp_path / "mint"
    out.mkdir()
    workload = f"spiffe://{ROOT_TD}/ns/core/sa/smf"
    srv.cli("x509", "mint", "-spiffeID", workload, "-write", out)
    chain = x509.load_pem_x509_certificates((out / "svid.pem").read_bytes())
    leaf, cas = chain[0], chain[1:]
    assert _uri_sans(leaf) == [workload]
    assert cas, "no intermediate in the minted chain"
    cert = leaf
    for c in cas:
        cert.verify_directly_issued_by(c)
        cert = c
    cert.verify_directly_issued_by(root_ca)
    assert _uri_sans(cas[-1]) == [f"spiffe://{ROOT_TD}"]
    # Vault's record of the intermediate it signed: the PKI's own certificate list has it
    serials = s.request("LIST", "pki-spire/certs")["data"]["keys"]
    want = "-".join(f"{b:02x}" for b in cas[-1].serial_number.to_bytes(20, "big").lstrip(b"\0"))
    assert want in serials, (want, serials)

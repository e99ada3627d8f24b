"""Issue 16 for real: a kube-apiserver started with the AuthenticationConfiguration spiffe-access
rendered authenticates JWT-SVIDs of the real SPIRE issuer, and the rendered RBAC authorizes
exactly what the grants say.

The package is blueprints/examples/oran-focom-ims, rendered with the real kpt after two
changes only this machine forces: the trust domain and issuer are those of the running issuer
(``tests/real/oidc.py``: spire-server, spire-agent and SPIRE's OIDC discovery provider, rendered
from blueprints/spire, TLS on 127.0.0.1), and one more grant, to a SPIFFE ID prefix, proves the
group mapping. The apiserver is one of this test's own (not the session's: its flags differ),
started with ``--authentication-config`` = the rendered ConfigMap's text as it is; the RBAC
objects and the example's CRD are applied server-side. JWT-SVIDs come from the real agent's
Workload API (``spire-agent api fetch jwt``), the expired one is minted by the server with a TTL of
seconds (the Workload API hands out the registration's TTL only).
"""

from __future__ import annotations

import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from ..pkgtools import EXAMPLES, kpt_render
from . import kubeapi_table
from .oidc import start_oidc_issuer
from .stack import Kube, Stack, run, wait_until

TD = "telco.acme.net"
CLUSTER = "smo-mgmt"
FOCOM = f"spiffe://{TD}/cluster/{CLUSTER}/ns/oran-smo/sa/focom"
MONITOR = f"spiffe://{TD}/cluster/{CLUSTER}/ns/monitoring/sa/agent"  # under the prefix grant
AUDIENCE = f"kubernetes:{CLUSTER}"
PR = "/apis/o2ims.provisioning.oran.org/v1alpha1/provisioningrequests"

PREFIX_GRANT = f"""\
apiVersion: workloadidentity.nephio.org/v1alpha1
kind: AccessGrant
metadata:
  name: monitoring-read
  annotations:
    config.kubernetes.io/local-config: "true"
spec:
  clients:
  - spiffeIDPrefix: spiffe://{TD}/cluster/{CLUSTER}/ns/monitoring/
  kubernetes:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list]
    namespaces: [monitoring]
"""


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


class Cluster:
    """The test's apiserver, the issuer and the rendered package."""

    def __init__(self, kube: Kube, issuer, pkg: Path, table_text: str, stack: Stack, session_kube: Kube):
        self.kube, self.issuer, self.pkg, self.table_text = kube, issuer, pkg, table_text
        self.stack, self.session_kube = stack, session_kube
        self.ctx = ssl.create_default_context(cafile=str(kube.ca_path))

    def request(self, method: str, path: str, token: str, body: dict | None = None,
                content_type: str = "application/json") -> int:
        """The HTTP status of one request with the token as bearer (no client certificate)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.kube.server + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def token_kubeconfig(self, token: str, where: Path) -> Path:
        where.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "t",
            "clusters": [{"name": "t", "cluster": {"server": self.kube.server,
                                                    "certificate-authority": str(self.kube.ca_path)}}],
            "users": [{"name": "t", "user": {"token": token}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}))
        return where

    def kubectl_as(self, token: str, tmp: Path, *args: str, check: bool = False):
        cfg = self.token_kubeconfig(token, tmp / "token.kubeconfig")
        return run([shutil.which("kubectl"), f"--kubeconfig={cfg}", *args], check=check, timeout=30)


@pytest.fixture(scope="module")
def access_cluster(kube, oidc_binaries, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("access")
    with Stack() as st:
        issuer = start_oidc_issuer(st, kube, tmp / "issuer", trust_domain=TD, name="oidc")
        pkg = tmp / "oran-focom-ims"
        shutil.copytree(EXAMPLES / "oran-focom-ims", pkg, ignore=shutil.ignore_patterns(".expected"))
        ctx_file = pkg / "identity-context.yaml"
        ctx = yaml.safe_load(ctx_file.read_text())
        ctx["spec"]["trustDomain"] = TD
        ctx["spec"]["jwtIssuer"] = {"url": issuer.url, "certificateAuthority": issuer.ca_pem}
        ctx_file.write_text(yaml.safe_dump(ctx, sort_keys=False))
        (pkg / "monitoring-access.yaml").write_text(PREFIX_GRANT)
        rendered = kpt_render(pkg)
        assert rendered.exit_code == 0, rendered.stderr
        [cm] = _docs(pkg / "access" / "authentication-config.yaml")
        authn = tmp / "authentication-config.yaml"
        authn.write_text(cm["data"]["authentication-config.yaml"])  # exactly the rendered text

        k = Kube(st, extra_args=(f"--authentication-config={authn}",))
        # The API table the functions check grants against is this apiserver's discovery
        # (before the example's CRD is installed: built-in resources only).
        table_text = kubeapi_table.render(kubeapi_table.discover(k))
        k.ensure_namespace("oran-smo")
        k.ensure_namespace("monitoring")
        [crd, _grant] = _docs(pkg / "o2ims-access.yaml")
        del crd["metadata"]["annotations"]  # the local-config declaration, installed as the IMS package would
        k.apply_manifests(yaml.safe_dump(crd))
        k.wait_crds_established(["provisioningrequests.o2ims.provisioning.oran.org"])
        rbac = [p for p in (pkg / "access").rglob("rbac.yaml")]
        assert len(rbac) == 2, rbac  # access/rbac.yaml (cluster-wide), access/monitoring/rbac.yaml
        for p in rbac:
            k.apply_manifests(p.read_text())
        c = Cluster(k, issuer, pkg, table_text, st, kube)
        # The JWT authenticator fetches the issuer's discovery document and keys in the background.
        tok = issuer.jwt_svid(FOCOM, AUDIENCE)
        wait_until(lambda: c.request("GET", PR, tok) == 200, 90, "the apiserver accepting FOCOM's JWT-SVID",
                   interval=1, proc=k.apiserver)
        yield c


def test_api_table_is_the_live_apiservers_discovery(access_cluster):
    assert access_cluster.table_text == kubeapi_table.TABLE.read_text(), (
        "functions/spiffe_kpt/access/kube-api.json differs from the pinned kube-apiserver's discovery; "
        "regenerate it: python -m tests.real.kubeapi_table")


def test_rendered_username_is_what_the_apiserver_reports(access_cluster, tmp_path):
    c = access_cluster
    [cr, crb] = [d for d in _docs(c.pkg / "access" / "rbac.yaml")]
    [subject] = crb["subjects"]
    assert subject == {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"spiffe:{FOCOM}"}
    token = c.issuer.jwt_svid(FOCOM, AUDIENCE)  # from the agent's Workload API
    out = c.kubectl_as(token, tmp_path, "auth", "whoami", "-o", "json", check=True)
    user = json.loads(out.stdout)["status"]["userInfo"]
    assert user["username"] == subject["name"]
    assert "system:authenticated" in user["groups"]
    # FOCOM is under no granted prefix: no spiffe group.
    assert not [g for g in user["groups"] if g.startswith("spiffe:")]


def test_focom_may_create_and_read_provisioning_requests_and_nothing_else(access_cluster, tmp_path):
    c = access_cluster
    token = c.issuer.jwt_svid(FOCOM, AUDIENCE)
    for verb in ("create", "get", "list", "watch"):
        p = c.kubectl_as(token, tmp_path, "auth", "can-i", verb, "provisioningrequests.o2ims.provisioning.oran.org")
        assert p.stdout.strip() == "yes", (verb, p.stdout, p.stderr)
    for args in (("delete", "provisioningrequests.o2ims.provisioning.oran.org"),
                 ("update", "provisioningrequests.o2ims.provisioning.oran.org"),
                 ("patch", "provisioningrequests.o2ims.provisioning.oran.org"),
                 ("get", "configmaps", "-n", "oran-smo"), ("get", "secrets", "-n", "oran-smo"),
                 ("create", "pods", "-n", "oran-smo"), ("list", "namespaces"),
                 ("get", "configmaps", "-n", "monitoring")):
        p = c.kubectl_as(token, tmp_path, "auth", "can-i", *args)
        assert p.stdout.strip() == "no", (args, p.stdout, p.stderr)

    # Real requests: every granted verb succeeds, everything else is 403.
    pr = {"apiVersion": "o2ims.provisioning.oran.org/v1alpha1", "kind": "ProvisioningRequest",
          "metadata": {"name": "edge-site-7"}, "spec": {"templateName": "edge", "templateVersion": "v1"}}
    assert c.request("POST", PR, token, pr) == 201
    assert c.request("GET", f"{PR}/edge-site-7", token) == 200
    assert c.request("GET", PR, token) == 200
    assert c.request("GET", f"{PR}?watch=true&timeoutSeconds=1", token) == 200
    merge = "application/merge-patch+json"
    assert c.request("PATCH", f"{PR}/edge-site-7", token, {"metadata": {"labels": {"a": "b"}}}, merge) == 403
    assert c.request("PUT", f"{PR}/edge-site-7", token, pr) == 403
    assert c.request("DELETE", f"{PR}/edge-site-7", token) == 403
    assert c.request("GET", "/api/v1/namespaces/oran-smo/configmaps", token) == 403
    assert c.request("GET", "/api/v1/namespaces/oran-smo/secrets", token) == 403
    assert c.request("POST", "/api/v1/namespaces/oran-smo/configmaps", token,
                     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}) == 403
    assert c.request("GET", "/api/v1/namespaces", token) == 403
    assert c.request("GET", "/api/v1/namespaces/monitoring/configmaps", token) == 403


def test_prefix_grant_binds_the_group_the_authenticator_maps(access_cluster, tmp_path):
    c = access_cluster
    [role, binding] = _docs(c.pkg / "access" / "monitoring" / "rbac.yaml")
    group = f"spiffe:spiffe://{TD}/cluster/{CLUSTER}/ns/monitoring/"
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]
    token = c.issuer.jwt_svid(MONITOR, AUDIENCE)
    user = json.loads(c.kubectl_as(token, tmp_path, "auth", "whoami", "-o", "json", check=True).stdout)
    assert user["status"]["userInfo"]["username"] == f"spiffe:{MONITOR}"
    assert group in user["status"]["userInfo"]["groups"]
    assert c.request("GET", "/api/v1/namespaces/monitoring/configmaps", token) == 200
    assert c.request("GET", "/api/v1/namespaces/oran-smo/configmaps", token) == 403
    assert c.request("POST", "/api/v1/namespaces/monitoring/configmaps", token,
                     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}) == 403
    assert c.request("GET", PR, token) == 403


def test_wrong_audience_expired_and_other_trust_domain_are_401(access_cluster, tmp_path):
    c = access_cluster
    # The secrets manager's audience (the same client, the same agent): not this apiserver's.
    wrong_aud = c.issuer.jwt_svid(FOCOM, f"secrets:{CLUSTER}")
    assert c.request("GET", PR, wrong_aud) == 401
    p = c.kubectl_as(wrong_aud, tmp_path, "auth", "can-i", "get", "provisioningrequests.o2ims.provisioning.oran.org")
    assert p.returncode != 0 and "Unauthorized" in p.stderr

    # Minted by the real server with a 5 s TTL: accepted while valid, refused once expired.
    short = c.issuer.mint_jwt(FOCOM, AUDIENCE, ttl="5s")
    assert c.request("GET", PR, short) == 200
    time.sleep(6)
    wait_until(lambda: c.request("GET", PR, short) == 401, 60, "the apiserver refusing the expired token",
               interval=1)

    # Another trust domain's issuer (its own SPIRE server, agent and provider): no authenticator.
    other = start_oidc_issuer(c.stack, c.session_kube, tmp_path / "other", trust_domain="partner.operator.net",
                              name="partner")
    foreign = other.jwt_svid("spiffe://partner.operator.net/cluster/smo-mgmt/ns/oran-smo/sa/focom", AUDIENCE)
    assert c.request("GET", PR, foreign) == 401

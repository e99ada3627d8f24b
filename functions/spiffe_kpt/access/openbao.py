"""The secrets-manager target of AccessGrant: OpenBao / Vault configuration from the grants.

From the one grant model (``access.grants``) this renders, for the management cluster that owns
the secrets:

* per trust domain whose clients have secrets rules, a JWT auth method
  (``spiffe-jwt-<trust domain>``) verifying JWT-SVIDs against that trust domain's issuer (the
  SPIRE OIDC discovery provider: ``oidc_discovery_url`` = the issuer, or ``jwks_url`` when the
  context gives a separate discovery address), ``bound_issuer`` = the issuer;
* per grant and trust domain a role named after the grant: ``role_type: jwt``,
  ``bound_audiences`` = the secrets audience (never the Kubernetes API's), ``user_claim: sub``,
  ``bound_subject`` for a single exact SPIFFE ID, else ``bound_claims`` on ``sub`` with glob
  matching (``spiffe://td/prefix/*``), a short ``token_ttl``;
* per grant an ACL policy ``spiffe-kpt-grant-<grant>`` with the KV v2 paths spelled as the KV v2
  API needs them (:func:`kv2_paths`);
* optionally (``spec.access.secrets.x509Login: true``) the cert auth method
  (``spiffe-cert-<own trust domain>``) with one role per grant: ``allowed_uri_sans`` = the
  SPIFFE IDs / ID globs, the trust bundle (filled in at apply time from the spire-bundle
  ConfigMap) as CA.

Everything goes into one ConfigMap (``plan.json``: the exact request bodies) applied by a small
Job (``access.openbao_apply``) named by the plan's hash, so a changed plan is a new Job; the
applier prunes roles, policies and auth methods of ours that the plan no longer has. No secret
value is ever rendered: the Job logs in with its own short-lived service-account token.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from .. import API_VERSION
from ..api.context import IDENTITY_CONTEXT
from ..api.ownership import Desired, mark
from ..api.paths import get_path
from ..krm.results import ResourceRef, Result, error, warning

POLICY_PREFIX = "spiffe-kpt-grant-"
MOUNT_MARKER = "spiffe-kpt:"  # description prefix of the auth methods the applier owns
JWT_MOUNT_PREFIX = "spiffe-jwt-"
CERT_MOUNT_PREFIX = "spiffe-cert-"
PLAN_FORMAT = "spiffe-kpt.openbao/v1"
CONFIGMAP = "spiffe-kpt-openbao"
SERVICE_ACCOUNT = "spiffe-kpt-openbao-applier"
JOB_PREFIX = "spiffe-kpt-openbao-apply-"
DEFAULT_PATH = "access/openbao.yaml"
IMAGE = "ghcr.io/spiffe-kpt/access:v0.1.0"
KINDS = frozenset({("v1", "ConfigMap"), ("v1", "ServiceAccount"), ("batch/v1", "Job")})
CAPABILITIES = ("read", "write", "list", "delete")
WRITE_LIKE = ("write", "delete")

PLAN_DIR = "/run/spiffe-kpt/plan"
CA_DIR = "/run/spiffe-kpt/openbao-ca"
BUNDLE_DIR = "/run/spiffe-kpt/bundle"
TOKEN_DIR = "/run/spiffe-kpt/token"


# ---------------------------------------------------------------------------
# settings: IdentityContext spec.access.secrets
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    audience: str
    address: str
    namespace: str
    kv_mounts: tuple[str, ...]
    token_ttl: str
    x509_login: bool
    ca_configmap: str
    bundle_configmap: str
    bundle_key: str
    applier_mount: str
    applier_role: str
    applier_audience: str
    image: str
    path: str


def settings(spec: dict[str, Any], audience: str) -> Settings:
    """spec.access.secrets with defaults (the schema checks the types)."""
    s = spec or {}
    applier = s.get("applier") or {}
    bundle = s.get("trustBundle") or {}
    return Settings(
        audience=audience,
        address=str(s.get("address") or ""),
        namespace=str(s.get("namespace") or "spire-system"),
        kv_mounts=tuple(s.get("kvMounts") or ("secret",)),
        token_ttl=str(s.get("tokenTTL") or "5m"),
        x509_login=bool(s.get("x509Login")),
        ca_configmap=str(s.get("caConfigMap") or ""),
        bundle_configmap=str(bundle.get("configMap") or "spire-bundle"),
        bundle_key=str(bundle.get("key") or "bundle.crt"),
        applier_mount=str(applier.get("authMount") or "kubernetes"),
        applier_role=str(applier.get("role") or "spiffe-kpt-openbao-applier"),
        applier_audience=str(applier.get("audience") or "openbao-applier"),
        image=str(applier.get("image") or IMAGE),
        path=str(s.get("path") or DEFAULT_PATH),
    )


# ---------------------------------------------------------------------------
# KV v2 paths
# ---------------------------------------------------------------------------

def kv2_paths(mount: str, path: str, capabilities: tuple[str, ...]) -> dict[str, set[str]]:
    """ACL paths and capabilities for a grant's capabilities on ``path`` of KV v2 ``mount``.

    KV v2 serves secret data under ``<mount>/data/``, the version list and key listing under
    ``<mount>/metadata/``, soft deletion of versions under ``<mount>/delete/``:

    * read   -> ``data/<path>``: read
    * write  -> ``data/<path>``: create, update (a new version)
    * list   -> ``metadata/<path>``: list (``kv list``: the keys under a folder)
    * delete -> ``data/<path>``: delete (soft-delete the latest version), ``delete/<path>``:
      update (soft-delete given versions), ``metadata/<path>``: delete (every version and the
      metadata, for good). ``destroy/`` is not granted: that is an operator's act.
    """
    out: dict[str, set[str]] = {}

    def add(kind: str, caps: tuple[str, ...]) -> None:
        out.setdefault(f"{mount}/{kind}/{path}", set()).update(caps)

    for cap in capabilities:
        if cap == "read":
            add("data", ("read",))
        elif cap == "write":
            add("data", ("create", "update"))
        elif cap == "list":
            add("metadata", ("list",))
        elif cap == "delete":
            add("data", ("delete",))
            add("delete", ("update",))
            add("metadata", ("delete",))
    return out


def policy_text(grant: Any) -> str:
    paths: dict[str, set[str]] = {}
    for rule in grant.secrets:
        for p, caps in kv2_paths(rule.mount, rule.path, rule.capabilities).items():
            paths.setdefault(p, set()).update(caps)
    lines = [f"# spiffe-kpt: AccessGrant {grant.name} (generated; edits are overwritten)"]
    for p in sorted(paths):
        caps = ", ".join(f'"{c}"' for c in sorted(paths[p]))
        lines += [f'path "{p}" {{', f"  capabilities = [{caps}]", "}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# checks (grants.read_grants checks identities and issuers)
# ---------------------------------------------------------------------------

_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_path(grant: Any, rule: Any, s: Settings) -> list[Result]:
    ref: ResourceRef = grant.ref
    out: list[Result] = []
    if rule.mount not in s.kv_mounts:
        out.append(error(
            f"AccessGrant {grant.name}: {rule.source}.mount {rule.mount!r} is not a KV v2 mount of the secrets manager "
            f"(spec.access.secrets.kvMounts of the IdentityContext: {', '.join(s.kv_mounts)}); the policy paths are "
            "formed for KV v2 (<mount>/data/..., <mount>/metadata/...). Use one of those mounts, or add this one to "
            "kvMounts if it is a KV v2 mount", ref, f"{rule.source}.mount", current_value=rule.mount))
    segs = rule.path.split("/")
    if segs[0] in ("data", "metadata", "delete", "undelete", "destroy") and len(segs) > 1:
        out.append(error(
            f"AccessGrant {grant.name}: {rule.source}.path {rule.path!r} starts with the KV v2 API prefix "
            f"'{segs[0]}/'; the path is the secret's path under the mount (as `kv get {rule.mount}/<path>` takes it), "
            "and the policy adds data/ or metadata/ by capability. Drop the prefix",
            ref, f"{rule.source}.path", current_value=rule.path, proposed_value="/".join(segs[1:])))
    for seg in segs:
        core = seg[:-1] if seg.endswith("*") and seg is segs[-1] else seg
        if seg in (".", ".."):
            out.append(error(f"AccessGrant {grant.name}: {rule.source}.path {rule.path!r} has a '{seg}' segment; "
                             "secret paths are literal, name the folder itself", ref, f"{rule.source}.path",
                             current_value=rule.path))
            break
        if "+" in seg and seg != "+":
            out.append(error(
                f"AccessGrant {grant.name}: {rule.source}.path {rule.path!r}: '+' matches one whole segment only "
                f"(as in upf/+/config), not part of one ({seg!r}). Write the segment as '+' or spell it out",
                ref, f"{rule.source}.path", current_value=rule.path))
            break
        if core and core != "+" and not _SEGMENT.match(core):
            out.append(error(f"AccessGrant {grant.name}: {rule.source}.path {rule.path!r}: segment {seg!r} is not "
                             "valid ('*' only at the very end)", ref, f"{rule.source}.path", current_value=rule.path))
            break
    return out


def _glob_overlap(a: str, b: str) -> bool:
    """Whether two ACL path globs ('*' only at the end, '+' one segment) match a common path."""
    def parts(p: str) -> tuple[list[str], bool]:
        return (p[:-1], True) if p.endswith("*") else (p, False)
    pa, ga = parts(a)
    pb, gb = parts(b)
    sa, sb = pa.split("/"), pb.split("/")
    n = min(len(sa), len(sb))
    for i in range(n):
        x, y = sa[i], sb[i]
        last_a, last_b = i == len(sa) - 1, i == len(sb) - 1
        if x == "+" or y == "+":
            continue
        if x == y:
            continue
        # a trailing glob on a partial segment: 'edge*' vs 'edge01'
        if last_a and ga and y.startswith(x):
            return True
        if last_b and gb and x.startswith(y):
            return True
        return False
    if len(sa) == len(sb):
        return True
    shorter_glob = ga if len(sa) < len(sb) else gb
    return shorter_glob


def _clients_overlap(c1: Any, c2: Any) -> bool:
    if c1.kind == "id" and c2.kind == "id":
        return c1.value == c2.value
    if c1.kind == "id":
        return c2.covers(c1.value)
    if c2.kind == "id":
        return c1.covers(c2.value)
    return c1.id_prefix.startswith(c2.id_prefix) or c2.id_prefix.startswith(c1.id_prefix)


def check_overlaps(grants: list[Any]) -> list[Result]:
    """Error: a grant gives write/delete on paths where an overlapping client is granted only read/list
    by another grant (the second grant silently widens the first's write access)."""
    out: list[Result] = []
    for g1 in grants:
        for r1 in g1.secrets:
            if any(c in WRITE_LIKE for c in r1.capabilities):
                continue
            for g2 in grants:
                if g2 is g1:
                    continue
                for r2 in g2.secrets:
                    wide = [c for c in r2.capabilities if c in WRITE_LIKE]
                    if not wide or r2.mount != r1.mount or not _glob_overlap(r1.path, r2.path):
                        continue
                    pairs = [(c1, c2) for c1 in g1.clients for c2 in g2.clients if _clients_overlap(c1, c2)]
                    if not pairs:
                        continue
                    c1, c2 = pairs[0]
                    out.append(error(
                        f"AccessGrant {g2.name}: {r2.source} gives {'/'.join(wide)} on {r2.mount}/{r2.path} to {c2}, "
                        f"which also covers {c1}, whom AccessGrant {g1.name} ({r1.source}) grants only "
                        f"{'/'.join(r1.capabilities)} on the overlapping {r1.mount}/{r1.path}: together they widen "
                        f"its write access. Narrow {r2.source}.path or the client, or grant the write in "
                        f"{g1.name} itself if it is meant", g2.ref, f"{r2.source}.capabilities",
                        current_value=list(r2.capabilities)))
    return out


def check_prefix_writes(grants: list[Any], identities: list[Any]) -> list[Result]:
    """Warning: write/delete granted through an ID prefix (or trust domain) that covers more than one
    workload type of the package."""
    out: list[Result] = []
    ids = [(i.name, str(i.spiffe_id)) for i in identities if getattr(i, "spiffe_id", None)]
    for g in grants:
        wide = sorted({c for r in g.secrets for c in r.capabilities if c in WRITE_LIKE})
        if not wide:
            continue
        for c in g.clients:
            if c.kind == "id":
                continue
            covered = sorted({name for name, sid in ids if c.covers(sid)})
            if len(covered) > 1:
                out.append(warning(
                    f"AccessGrant {g.name}: {c.source} is the {'prefix' if c.kind == 'prefix' else 'trust domain'} "
                    f"{c.value}, which covers {len(covered)} workload types of this package ({', '.join(covered)}), "
                    f"and the grant allows {'/'.join(wide)}: every one of them may change these secrets. Name the "
                    "writer by its identity or a narrower spiffeIDPrefix if that is not meant",
                    g.ref, c.source, current_value=c.value))
    return out


def check_x509_names(grants: list[Any], identities: list[Any], s: Settings) -> list[Result]:
    """Warning: X.509 login is on and a grant's client, an identity of this package, gets an SVID
    without a DNS name. Vault 1.14's cert auth names the login's alias after the certificate's
    common name, and SPIRE sets a common name only from the first DNS name: such a login matches
    the role, then fails (HTTP 500 "missing name in alias"). Clients named by spiffeID or prefix
    are not checked: their DNS names are declared in another package."""
    if not s.x509_login:
        return []
    by_name = {i.name: i for i in identities}
    out: list[Result] = []
    for g in grants:
        for c in g.clients:
            ident = by_name.get(c.identity) if c.identity else None
            if ident is None or get_path(ident.spec, "svid", "dnsNames"):
                continue
            out.append(warning(
                f"AccessGrant {g.name}: {c.source} is identity {ident.name}, whose SVIDs have no DNS name, and "
                "spec.access.secrets.x509Login is on: Vault 1.14's cert login names its alias after the "
                "certificate's common name, which SPIRE sets only from a DNS name, so this identity's X.509 "
                "login fails ('missing name in alias'). Add spec.svid.dnsNames to the WorkloadIdentity, or "
                "log in with a JWT-SVID", ident.ref, "spec.svid.dnsNames"))
    return out


def check(grants: list[Any], identities: list[Any], s: Settings, ctx_ref: ResourceRef | None) -> list[Result]:
    secret_grants = [g for g in grants if g.secrets]
    out: list[Result] = []
    if not secret_grants:
        return out
    if not s.address:
        out.append(error(
            f"AccessGrant {secret_grants[0].name} has spec.secrets, but the IdentityContext sets no secrets manager "
            "address; add spec.access.secrets.address (https://<openbao or vault>:8200) so the configuration can "
            "be applied", ctx_ref, "spec.access.secrets.address"))
    elif not s.address.startswith("https://"):
        out.append(error(
            f"spec.access.secrets.address {s.address!r} is not https://: the applier sends a token to it and clients "
            "send their SVIDs; use TLS", ctx_ref, "spec.access.secrets.address", current_value=s.address))
    for g in secret_grants:
        for r in g.secrets:
            out.extend(check_path(g, r, s))
    out.extend(check_overlaps(secret_grants))
    out.extend(check_prefix_writes(secret_grants, identities))
    out.extend(check_x509_names(secret_grants, identities, s))
    return out


# ---------------------------------------------------------------------------
# the plan: exact request bodies
# ---------------------------------------------------------------------------

def mount_name(prefix: str, trust_domain: str) -> str:
    return prefix + trust_domain


def _subjects(clients: list[Any]) -> tuple[list[str], list[str]]:
    ids = sorted({c.value for c in clients if c.kind == "id"})
    globs = sorted({c.id_prefix + "*" for c in clients if c.kind != "id"})
    return ids, globs


def jwt_role(grant: Any, clients: list[Any], s: Settings) -> dict[str, Any]:
    ids, globs = _subjects(clients)
    body: dict[str, Any] = {
        "role_type": "jwt",
        "bound_audiences": [s.audience],
        "user_claim": "sub",
        "token_policies": [POLICY_PREFIX + grant.name],
        "token_ttl": s.token_ttl,
        "token_max_ttl": s.token_ttl,
        # JWT-SVIDs live minutes: no 2.5-minute grace after 'exp' (the plugin's default)
        "expiration_leeway": 5,
        "not_before_leeway": 5,
        "clock_skew_leeway": 5,
    }
    if len(ids) == 1 and not globs:
        body["bound_subject"] = ids[0]
    else:
        body["bound_claims_type"] = "glob"
        body["bound_claims"] = {"sub": ids + globs}
    return body


def cert_role(grant: Any, clients: list[Any], s: Settings) -> dict[str, Any]:
    ids, globs = _subjects(clients)
    return {
        "display_name": grant.name,
        "allowed_uri_sans": ids + globs,
        "token_policies": [POLICY_PREFIX + grant.name],
        "token_ttl": s.token_ttl,
        "token_max_ttl": s.token_ttl,
        # "certificate": the trust bundle, filled in by the applier from the bundle ConfigMap
    }


def plan(grants: list[Any], issuers: dict[str, Any], own_trust_domain: str, s: Settings) -> dict[str, Any]:
    mounts: dict[str, dict[str, Any]] = {}
    policies: dict[str, str] = {}
    for g in sorted((g for g in grants if g.secrets), key=lambda g: g.name):
        policies[POLICY_PREFIX + g.name] = policy_text(g)
        by_td: dict[str, list[Any]] = {}
        for c in g.clients:
            by_td.setdefault(c.trust_domain, []).append(c)
        for td, clients in sorted(by_td.items()):
            iss = issuers[td]
            path = mount_name(JWT_MOUNT_PREFIX, td)
            m = mounts.get(path)
            if m is None:
                config: dict[str, Any] = {"bound_issuer": iss.url}
                if getattr(iss, "discovery_url", ""):
                    config["jwks_url"] = iss.discovery_url.rstrip("/") + "/keys"
                    if iss.certificate_authority:
                        config["jwks_ca_pem"] = iss.certificate_authority
                else:
                    config["oidc_discovery_url"] = iss.url
                    if iss.certificate_authority:
                        config["oidc_discovery_ca_pem"] = iss.certificate_authority
                m = mounts[path] = {
                    "path": path, "type": "jwt", "roleCollection": "role",
                    "enable": {"type": "jwt", "description": f"{MOUNT_MARKER} JWT-SVIDs of trust domain {td}"},
                    "config": config, "roles": {}}
            m["roles"][g.name] = jwt_role(g, clients, s)
            if s.x509_login and td == own_trust_domain:
                cpath = mount_name(CERT_MOUNT_PREFIX, td)
                cm = mounts.setdefault(cpath, {
                    "path": cpath, "type": "cert", "roleCollection": "certs", "certificateFromBundle": True,
                    "enable": {"type": "cert", "description": f"{MOUNT_MARKER} X.509-SVIDs of trust domain {td}"},
                    "roles": {}})
                cm["roles"][g.name] = cert_role(g, clients, s)
    return {"format": PLAN_FORMAT, "policyPrefix": POLICY_PREFIX, "mountMarker": MOUNT_MARKER,
            "authMounts": [mounts[k] for k in sorted(mounts)], "policies": policies}


APPLIER_POLICY = """# The policy of the spiffe-kpt applier Job (write it once, with the Kubernetes auth role that
# gives it to the Job's service account; see the README, "Secrets by SPIFFE identity").
path "sys/auth" {
  capabilities = ["read"]
}
path "sys/auth/spiffe-jwt-*" {
  capabilities = ["create", "update", "delete", "sudo"]
}
path "sys/auth/spiffe-cert-*" {
  capabilities = ["create", "update", "delete", "sudo"]
}
path "auth/spiffe-jwt-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "auth/spiffe-cert-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "sys/policies/acl" {
  capabilities = ["list"]
}
path "sys/policies/acl/spiffe-kpt-grant-*" {
  capabilities = ["create", "read", "update", "delete"]
}
"""


def resources(the_plan: dict[str, Any], s: Settings) -> list[dict[str, Any]]:
    text = json.dumps(the_plan, indent=2, sort_keys=True) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    labels = {"app.kubernetes.io/name": "spiffe-kpt-openbao-applier", "app.kubernetes.io/part-of": "spiffe-kpt"}
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": CONFIGMAP, "namespace": s.namespace, "labels": dict(labels)},
          "data": {"plan.json": text, "applier-policy.hcl": APPLIER_POLICY}}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": SERVICE_ACCOUNT, "namespace": s.namespace, "labels": dict(labels)},
          "automountServiceAccountToken": False}
    args = [f"--plan={PLAN_DIR}/plan.json", f"--address={s.address}",
            f"--kubernetes-login={s.applier_mount}:{s.applier_role}", f"--jwt-file={TOKEN_DIR}/token"]
    volumes: list[dict[str, Any]] = [
        {"name": "plan", "configMap": {"name": CONFIGMAP, "items": [{"key": "plan.json", "path": "plan.json"}]}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": s.applier_audience, "expirationSeconds": 600, "path": "token"}}]}},
    ]
    mounts = [{"name": "plan", "mountPath": PLAN_DIR, "readOnly": True},
              {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True}]
    if s.ca_configmap:
        volumes.append({"name": "openbao-ca", "configMap": {"name": s.ca_configmap}})
        mounts.append({"name": "openbao-ca", "mountPath": CA_DIR, "readOnly": True})
        args.append(f"--ca-cert={CA_DIR}/ca.crt")
    if any(m.get("certificateFromBundle") for m in the_plan["authMounts"]):
        volumes.append({"name": "trust-bundle", "configMap": {"name": s.bundle_configmap}})
        mounts.append({"name": "trust-bundle", "mountPath": BUNDLE_DIR, "readOnly": True})
        args.append(f"--trust-bundle={BUNDLE_DIR}/{s.bundle_key}")
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": JOB_PREFIX + digest, "namespace": s.namespace, "labels": dict(labels),
                        "annotations": {"workloadidentity.nephio.org/plan-sha256": digest}},
           "spec": {"backoffLimit": 4, "activeDeadlineSeconds": 600,
                    "template": {"metadata": {"labels": dict(labels)}, "spec": {
                        "serviceAccountName": SERVICE_ACCOUNT, "automountServiceAccountToken": False,
                        "restartPolicy": "OnFailure",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "apply", "image": s.image,
                            "command": ["python3", "-S", "-m", "spiffe_kpt.access.openbao_apply"], "args": args,
                            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}},
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                          "limits": {"cpu": "200m", "memory": "64Mi"}},
                            "volumeMounts": mounts}],
                        "volumes": volumes}}}}
    return [cm, sa, job]


def owns(obj: dict[str, Any]) -> bool:
    """Whether a context-owned object is one this target renders (the Job's name changes with the plan)."""
    kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name", "")
    return (kind, name) in (("ConfigMap", CONFIGMAP), ("ServiceAccount", SERVICE_ACCOUNT)) or \
        (kind == "Job" and str(name).startswith(JOB_PREFIX))


def target_settings(ctx: Any, access: Any) -> Settings:
    spec = (ctx.spec.get("access") or {}) if ctx is not None else {}
    return settings(spec.get("secrets") or {}, access.secrets_audience)


def check_grants(grants: list[Any], identities: list[Any], ctx: Any, access: Any) -> list[Result]:
    """This target's checks (called by access.checks for spiffe-access and the validator)."""
    found = check(grants, identities, target_settings(ctx, access), getattr(ctx, "ref", None))
    if getattr(ctx, "missing", None):
        # a context awaiting porch's injection may get its secrets manager settings with it
        found = [r for r in found if r.field_path != "spec.access.secrets.address"]
    return found


def render(grants: list[Any], issuers: dict[str, Any], ctx: Any, access: Any,
           results: list[Result]) -> list[Desired]:
    """The secrets-manager objects, owned by the IdentityContext (they aggregate every grant).

    Rendered when a grant has ``spec.secrets`` or the context sets ``spec.access.secrets.address``:
    with an address and no secrets grant left the plan is empty, and its Job prunes what earlier
    plans created. The checks ran before (access.checks)."""
    del results  # the checks (access.checks.check_access) already reported
    s = target_settings(ctx, access)
    secret_grants = [g for g in grants if g.secrets]
    if (not secret_grants and not s.address) or ctx is None or ctx.ref is None:
        return []
    if {c.trust_domain for g in secret_grants for c in g.clients} - set(issuers):
        return []  # grants.read_grants reported the missing issuer with the field to add
    owner = f"{API_VERSION}.{IDENTITY_CONTEXT}.{ctx.ref.name}"
    objs = resources(plan(secret_grants, issuers, ctx.trust_domain, s), s)
    return [Desired(mark(o, owner), s.path) for o in objs]

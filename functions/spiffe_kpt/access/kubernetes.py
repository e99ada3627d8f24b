"""The Kubernetes API target: RBAC for the grants and the apiserver's JWT authenticators.

RBAC (applied to the cluster): per grant a ClusterRole + ClusterRoleBinding for its cluster-wide
rules and a Role + RoleBinding in each namespace its namespaced rules name. The subjects are
what the authenticator makes of a JWT-SVID:

- an exact SPIFFE ID (``spiffeID``, or an ``identity`` of the package): ``kind: User`` named
  ``<prefix><SPIFFE ID>`` (``spiffe:spiffe://td/ns/a/sa/b``), the username from the ``sub``
  claim;
- an ID prefix or a trust domain: RBAC has no wildcard users, so the authenticator maps every
  ID under a prefix some grant names to a group, ``<prefix><ID prefix>``
  (``spiffe:spiffe://td/ns/upf/``; a prefix ends with '/', an ID never does, so a group name
  cannot be a user name), with a CEL ``claimMappings.groups`` expression, and the binding names
  ``kind: Group``.

The AuthenticationConfiguration (``apiserver.config.k8s.io/v1``, GA and the newest version in
kube-apiserver 1.34) is a kube-apiserver flag file (``--authentication-config``), not an API
object, and the apiserver decodes it strictly (no ``metadata``), so the package carries it as
the data of a local-config ConfigMap: the file's exact text, ready to be written to the control
plane's disk (e.g. by Cluster API's KubeadmControlPlane ``files``; see README.md). One JWT
authenticator per trust domain whose identities a grant names: its issuer (URL, discovery URL,
CA), this cluster's audience, ``sub`` as the username with the prefix, a claim validation rule
that ``sub`` is a SPIFFE ID of that trust domain, and a user validation rule that the username
is one of the trust domain's, so no token can become ``system:*`` or another trust domain's user.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import API_VERSION
from ..api.context import IDENTITY_CONTEXT, Context
from ..api.ownership import Desired, mark
from ..krm import yamlio
from ..krm.resourcelist import ANN_LOCAL_CONFIG
from ..krm.results import Result
from .grants import ID, AccessSettings, Client, Grant, Issuer

RBAC_API = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
AUTHN_API = "apiserver.config.k8s.io/v1"
AUTHN_KIND = "AuthenticationConfiguration"
AUTHN_CONFIGMAP = "kube-apiserver-authentication-config"
AUTHN_KEY = "authentication-config.yaml"
FOLDER = "access"
KINDS = frozenset({(RBAC_API, "Role"), (RBAC_API, "RoleBinding"), (RBAC_API, "ClusterRole"),
                   (RBAC_API, "ClusterRoleBinding"), ("v1", "ConfigMap")})
NAME_PREFIX = "spiffe-access-"
# RBAC object names are path segments; keep them to what a DNS subdomain allows so every tool takes them.
_NAME_OK = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def rbac_name(grant: Grant) -> str:
    return NAME_PREFIX + grant.name


def username(settings: AccessSettings, spiffe_id: str) -> str:
    """The Kubernetes user name the authenticator gives a JWT-SVID with this ``sub``."""
    return settings.username_prefix + spiffe_id


def group_name(settings: AccessSettings, client: Client) -> str:
    return settings.username_prefix + client.id_prefix


def subject(settings: AccessSettings, client: Client) -> dict[str, str]:
    if client.kind == ID:
        return {"apiGroup": RBAC_GROUP, "kind": "User", "name": username(settings, client.value)}
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": group_name(settings, client)}


def _rbac_rule(api_groups: tuple[str, ...], resources: tuple[str, ...], verbs: tuple[str, ...],
               names: tuple[str, ...]) -> dict[str, Any]:
    rule: dict[str, Any] = {"apiGroups": list(api_groups), "resources": list(resources), "verbs": list(verbs)}
    if names:
        rule["resourceNames"] = list(names)
    return rule


def render_rbac(grant: Grant, settings: AccessSettings) -> list[dict[str, Any]]:
    if not grant.kubernetes:
        return []
    name = rbac_name(grant)
    subjects: list[dict[str, str]] = []
    for client in grant.clients:
        s = subject(settings, client)
        if s not in subjects:
            subjects.append(s)
    subjects.sort(key=lambda s: (s["kind"], s["name"]))
    labels = {"app.kubernetes.io/managed-by": "spiffe-kpt"}
    cluster_rules = [_rbac_rule(r.api_groups, r.resources, r.verbs, r.resource_names)
                     for r in grant.kubernetes if r.cluster_scope]
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for r in grant.kubernetes:
        for ns in r.namespaces:
            by_ns.setdefault(ns, []).append(_rbac_rule(r.api_groups, r.resources, r.verbs, r.resource_names))
    out: list[dict[str, Any]] = []
    if cluster_rules:
        out.append({"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": {"name": name, "labels": dict(labels)},
                    "rules": cluster_rules})
        out.append({"apiVersion": RBAC_API, "kind": "ClusterRoleBinding",
                    "metadata": {"name": name, "labels": dict(labels)},
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
                    "subjects": [dict(s) for s in subjects]})
    for ns, rules in sorted(by_ns.items()):
        meta = {"name": name, "namespace": ns, "labels": dict(labels)}
        out.append({"apiVersion": RBAC_API, "kind": "Role", "metadata": dict(meta), "rules": rules})
        out.append({"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": {**meta, "labels": dict(labels)},
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": name},
                    "subjects": [dict(s) for s in subjects]})
    return out


def _cel_string(text: str) -> str:
    """A CEL string literal (JSON's escaping is a subset CEL reads the same)."""
    return json.dumps(text)


def authenticator(issuer: Issuer, prefixes: list[str], settings: AccessSettings) -> dict[str, Any]:
    td_prefix = f"spiffe://{issuer.trust_domain}/"
    iss: dict[str, Any] = {"url": issuer.url}
    if issuer.discovery_url:
        iss["discoveryURL"] = issuer.discovery_url
    if issuer.certificate_authority:
        iss["certificateAuthority"] = issuer.certificate_authority
    iss["audiences"] = [settings.kubernetes_audience]
    mappings: dict[str, Any] = {"username": {"claim": "sub", "prefix": settings.username_prefix}}
    if prefixes:
        # One group per ID prefix a grant names that covers the token's sub (RBAC binds the group).
        listed = ", ".join(_cel_string(p) for p in prefixes)
        mappings["groups"] = {"expression": f"[{listed}].filter(p, claims.sub.startsWith(p))"
                                            f".map(p, {_cel_string(settings.username_prefix)} + p)"}
    return {
        "issuer": iss,
        "claimValidationRules": [{
            "expression": f"claims.sub.startsWith({_cel_string(td_prefix)})",
            "message": f"the token's sub must be a SPIFFE ID of trust domain {issuer.trust_domain}"}],
        "claimMappings": mappings,
        "userValidationRules": [{
            "expression": f"user.username.startsWith({_cel_string(settings.username_prefix + td_prefix)})",
            "message": f"users of this issuer are {settings.username_prefix}{td_prefix}... only"}],
    }


def authentication_configuration(grants: list[Grant], issuers: dict[str, Issuer],
                                 settings: AccessSettings) -> dict[str, Any] | None:
    """The AuthenticationConfiguration for the trust domains the grants' Kubernetes rules name;
    None when no grant has Kubernetes rules."""
    tds: dict[str, set[str]] = {}
    for grant in grants:
        if not grant.kubernetes:
            continue
        for client in grant.clients:
            prefixes = tds.setdefault(client.trust_domain, set())
            if client.kind != ID:
                prefixes.add(client.id_prefix)
    if not tds:
        return None
    return {"apiVersion": AUTHN_API, "kind": AUTHN_KIND,
            "jwt": [authenticator(issuers[td], sorted(p), settings) for td, p in sorted(tds.items())]}


def authentication_configmap(config: dict[str, Any]) -> dict[str, Any]:
    text = ("# kube-apiserver --authentication-config file, generated by spiffe-access from the package's\n"
            "# AccessGrants and IdentityContext. Write it to the control plane as it is.\n" + yamlio.dump(config))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": AUTHN_CONFIGMAP, "annotations": {ANN_LOCAL_CONFIG: "true"},
                         "labels": {"app.kubernetes.io/managed-by": "spiffe-kpt"}},
            "data": {AUTHN_KEY: text}}


def render(grants: list[Grant], issuers: dict[str, Issuer], ctx: Context, settings: AccessSettings,
           results: list[Result]) -> list[Desired]:
    """The desired RBAC objects (owned by their grant) and the authentication ConfigMap (owned by
    the IdentityContext, whose issuers it holds)."""
    desired: list[Desired] = []
    for grant in grants:
        for obj in render_rbac(grant, settings):
            ns = obj["metadata"].get("namespace", "")
            where = f"{FOLDER}/{ns}/rbac.yaml" if ns else f"{FOLDER}/rbac.yaml"
            desired.append(Desired(mark(obj, grant.condition_type), where))
    config = authentication_configuration(grants, issuers, settings)
    if config is not None and ctx.ref is not None:
        owner = f"{API_VERSION}.{IDENTITY_CONTEXT}.{ctx.ref.name}"
        desired.append(Desired(mark(authentication_configmap(config), owner), settings.auth_config_path))
    return desired


def name_ok(name: str) -> bool:
    return bool(_NAME_OK.match(name)) and len(name) <= 253

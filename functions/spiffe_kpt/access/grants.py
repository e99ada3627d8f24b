"""Access grants resolved: who (SPIFFE IDs, ID prefixes, trust domains) may do what on a resource
of this cluster, independent of any target.

Read from the package's ``AccessGrant`` resources and its ``IdentityContext`` (the trust
domains' JWT issuers, the audiences). Every target renders from this one model: the Kubernetes
API (``access.kubernetes``: RBAC and the apiserver's JWT authenticators) and the secrets
manager (``access.openbao``). No YAML is written here; every mistake comes back as a result
naming the resource and field.

Clients use the peer forms of ingress rules (``api.peers``): an ``identity`` is a
WorkloadIdentity of this package and stands for its resolved SPIFFE ID (what its
``status.spiffeID`` says), the others name IDs directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import API_VERSION
from ..api.context import Context
from ..api.peers import parse_peer_id, peer_kinds
from ..api.resolve import Identity, Resolution
from ..api.schema import schema_results
from ..identity.spiffeid import SpiffeIDError
from ..krm.resourcelist import ResourceList, resource_ref
from ..krm.results import ResourceRef, Result, error, name_list

ACCESS_GRANT = "AccessGrant"
DEFAULT_USERNAME_PREFIX = "spiffe:"
DEFAULT_AUTH_CONFIG_PATH = "access/authentication-config.yaml"
# Targets and their default audience, formed with the cluster name: a token for one cluster's
# apiserver must open no other cluster's apiserver and not the secrets manager.
KUBERNETES = "kubernetes"
SECRETS = "secrets"
TARGETS = (KUBERNETES, SECRETS)

# {clusterName}, {region}, {site} in a client ID (AccessGrant spec.clients[].spiffeID/spiffeIDPrefix).
PLACEHOLDER = re.compile(r"\{([A-Za-z]+)\}")
# Client kinds of the resolved model.
ID, PREFIX, TRUST_DOMAIN = "id", "prefix", "trustDomain"


@dataclass(frozen=True)
class Client:
    """One client of a grant, by SPIFFE ID.

    ``kind`` is ``id`` (an exact SPIFFE ID, also for an ``identity`` of the package), ``prefix``
    (every ID starting with ``value``, which ends with '/') or ``trustDomain`` (every ID of
    ``value``). ``source`` is the field path of the entry (``spec.clients[0]``) for results."""

    kind: str
    value: str
    trust_domain: str
    source: str
    cluster: str = ""  # the cluster it runs in, when the grant names one
    identity: str = ""  # the WorkloadIdentity of this package it came from, if any
    form: str = ""  # the peer form the entry used: identity | spiffeID | spiffeIDPrefix | trustDomain

    @property
    def field(self) -> str:
        """The field path of the entry's value, for results."""
        return f"{self.source}.{self.form}" if self.form else self.source

    @property
    def id_prefix(self) -> str:
        """The prefix every ID of this client starts with (the ID itself for ``id``)."""
        return f"spiffe://{self.value}/" if self.kind == TRUST_DOMAIN else self.value

    def covers(self, spiffe_id: str) -> bool:
        return spiffe_id == self.value if self.kind == ID else spiffe_id.startswith(self.id_prefix)

    def __str__(self) -> str:
        if self.identity:
            return f"identity {self.identity} ({self.value})"
        return {ID: "", PREFIX: "prefix ", TRUST_DOMAIN: "trust domain "}[self.kind] + self.value


@dataclass(frozen=True)
class KubernetesRule:
    """One RBAC rule of a grant; ``namespaces`` empty exactly when ``cluster_scope``."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...]
    namespaces: tuple[str, ...]
    cluster_scope: bool
    source: str  # spec.kubernetes[i]


@dataclass(frozen=True)
class SecretsRule:
    mount: str
    path: str
    capabilities: tuple[str, ...]
    source: str  # spec.secrets[i]


@dataclass(frozen=True)
class Grant:
    name: str
    ref: ResourceRef
    clients: tuple[Client, ...]
    kubernetes: tuple[KubernetesRule, ...]
    secrets: tuple[SecretsRule, ...]
    description: str = ""

    @property
    def condition_type(self) -> str:
        """The owner of what is rendered from it (Nephio's condition type form)."""
        return f"{API_VERSION}.{ACCESS_GRANT}.{self.name}"


@dataclass(frozen=True)
class Issuer:
    """The JWT-SVID issuer of a trust domain (its SPIRE OIDC discovery provider)."""

    trust_domain: str
    url: str
    certificate_authority: str = ""
    discovery_url: str = ""
    # Where it is declared, for results: spec.jwtIssuer or spec.federation[k].jwtIssuer.
    source: str = ""


@dataclass(frozen=True)
class AccessSettings:
    """IdentityContext spec.access, defaults applied."""

    audiences: dict[str, str]  # target -> audience ('' while the cluster name is not known)
    username_prefix: str
    auth_config_path: str

    @property
    def kubernetes_audience(self) -> str:
        return self.audiences[KUBERNETES]

    @property
    def secrets_audience(self) -> str:
        return self.audiences[SECRETS]


@dataclass
class GrantSet:
    """The package's grants: ``grants`` resolved, ``waiting`` names those whose clients wait for
    context (an identity without a SPIFFE ID yet); ``errors`` the mistakes found on the way."""

    grants: list[Grant] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)  # the AccessGrant resources


def grant_objects(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in items if o.get("apiVersion") == API_VERSION and o.get("kind") == ACCESS_GRANT]


def access_settings(ctx: Context) -> AccessSettings:
    spec = ctx.spec.get("access") or {}
    k8s, secrets = spec.get(KUBERNETES) or {}, spec.get(SECRETS) or {}
    cluster = ctx.cluster_name

    def audience(target: str, given: dict[str, Any]) -> str:
        return str(given.get("audience") or (f"{target}:{cluster}" if cluster else ""))

    return AccessSettings(
        audiences={KUBERNETES: audience(KUBERNETES, k8s), SECRETS: audience(SECRETS, secrets)},
        username_prefix=str(k8s.get("usernamePrefix") or DEFAULT_USERNAME_PREFIX),
        auth_config_path=str(k8s.get("authenticationConfigurationPath") or DEFAULT_AUTH_CONFIG_PATH))


def issuers(ctx: Context) -> dict[str, Issuer]:
    """The JWT issuers the context declares, by trust domain: its own (spec.jwtIssuer) and its
    federation peers' (spec.federation[].jwtIssuer)."""
    out: dict[str, Issuer] = {}
    own = ctx.spec.get("jwtIssuer")
    if ctx.trust_domain and isinstance(own, dict) and own.get("url"):
        out[ctx.trust_domain] = _issuer(ctx.trust_domain, own, "spec.jwtIssuer")
    for k, peer in enumerate(ctx.spec.get("federation") or []):
        if isinstance(peer, dict) and isinstance(peer.get("jwtIssuer"), dict) and peer.get("trustDomain"):
            out.setdefault(str(peer["trustDomain"]),
                           _issuer(str(peer["trustDomain"]), peer["jwtIssuer"], f"spec.federation[{k}].jwtIssuer"))
    return out


def _issuer(td: str, spec: dict[str, Any], source: str) -> Issuer:
    return Issuer(trust_domain=td, url=str(spec["url"]), certificate_authority=str(spec.get("certificateAuthority") or ""),
                  discovery_url=str(spec.get("discoveryURL") or ""), source=source)


def check_context(ctx: Context) -> list[Result]:
    """Mistakes of IdentityContext spec.access / jwtIssuer that no grant has to be read for."""
    out: list[Result] = []
    if ctx.ref is None or ctx.invalid:
        return out
    settings = access_settings(ctx)
    prefix = settings.username_prefix
    if prefix.startswith("system:"):
        out.append(error(
            f"IdentityContext {ctx.ref.name}: spec.access.kubernetes.usernamePrefix {prefix!r} starts with 'system:', "
            "the Kubernetes namespace of built-in users and groups (system:masters, system:nodes...): a SPIFFE "
            "identity would then be named like one. Use a prefix of its own such as 'spiffe:'",
            ctx.ref, "spec.access.kubernetes.usernamePrefix", current_value=prefix, proposed_value=DEFAULT_USERNAME_PREFIX))
    k8s_aud, sec_aud = settings.kubernetes_audience, settings.secrets_audience
    if k8s_aud and k8s_aud == sec_aud:
        out.append(error(
            f"IdentityContext {ctx.ref.name}: the Kubernetes API and the secrets manager have the same JWT audience "
            f"{k8s_aud!r}: a JWT-SVID presented to one could be replayed to the other. Give each target an audience "
            "of its own (spec.access.kubernetes.audience, spec.access.secrets.audience)",
            ctx.ref, "spec.access.secrets.audience", current_value=sec_aud))
    seen: dict[str, Issuer] = {}
    for iss in issuers(ctx).values():
        other = seen.get(iss.url)
        if other is not None:
            out.append(error(
                f"IdentityContext {ctx.ref.name}: {iss.source}.url {iss.url!r} is also the issuer of trust domain "
                f"{other.trust_domain!r} ({other.source}); an issuer signs for one trust domain, and the apiserver "
                "refuses two authenticators with one issuer URL. Fix the URL",
                ctx.ref, f"{iss.source}.url", current_value=iss.url))
        seen.setdefault(iss.url, iss)
    return out


def read_grants(rl: ResourceList, res: Resolution, results: list[Result]) -> GrantSet:
    """The package's AccessGrants resolved against its identities and context.

    A grant in error is left out (its results say why); a grant whose identity clients have no
    SPIFFE ID yet is listed in ``waiting`` (not an error: the context is pending)."""
    out = GrantSet(objects=grant_objects(rl.items))
    ctx = res.context
    by_name = {i.name: i for i in res.identities}
    known_issuers = issuers(ctx) if ctx.ref is not None and not ctx.invalid else {}
    seen: dict[str, ResourceRef] = {}
    for obj in out.objects:
        schema_errors = schema_results(ACCESS_GRANT, obj, once=True)
        if schema_errors:
            results.extend(schema_errors)
            continue
        ref = resource_ref(obj)
        if ref.name in seen:
            results.append(error(f"two AccessGrant resources are named {ref.name!r}; names must be unique in a "
                                 "package (they name the generated RBAC objects)", ref, "metadata.name"))
            continue
        seen[ref.name] = ref
        before = len(results)
        spec = obj["spec"]
        clients: list[Client] = []
        pending = False
        for j, raw in enumerate(spec["clients"]):
            client = _client(ref, raw, f"spec.clients[{j}]", by_name, ctx, results)
            if client is None:
                pending = pending or _is_pending(raw, by_name, ctx)
                continue
            clients.append(client)
        for client in clients:
            results.extend(_check_issuer(ref, client, ctx, known_issuers))
        kube = [_kubernetes_rule(ref, raw, f"spec.kubernetes[{i}]", results)
                for i, raw in enumerate(spec.get("kubernetes") or [])]
        secrets = tuple(SecretsRule(mount=raw["mount"], path=raw["path"], capabilities=tuple(raw["capabilities"]),
                                    source=f"spec.secrets[{i}]") for i, raw in enumerate(spec.get("secrets") or []))
        if not kube and not secrets:
            results.append(error(
                f"AccessGrant {ref.name} grants nothing: it has neither spec.kubernetes nor spec.secrets. Add what the "
                "clients may do, or delete the grant", ref, "spec"))
        if len(results) > before:
            continue
        if pending:
            out.waiting.append(ref.name)
            continue
        out.grants.append(Grant(name=ref.name, ref=ref, clients=tuple(clients),
                                kubernetes=tuple(r for r in kube if r is not None), secrets=secrets,
                                description=str(spec.get("description") or "")))
    return out


def _is_pending(raw: dict[str, Any], by_name: dict[str, Identity], ctx: Context) -> bool:
    """A client that is not in error but waits for context: an identity without its SPIFFE ID yet, or
    an ID whose placeholder the context does not fill yet."""
    if "identity" in raw:
        ident = by_name.get(raw["identity"])
        return ident is not None and ident.spiffe_id is None
    values = [str(raw.get(k, "")) for k in ("spiffeID", "spiffeIDPrefix")]
    known = {"clusterName": ctx.cluster_name, "region": ctx.region, "site": ctx.site}
    return any(n in known and not known[n] for v in values for n in PLACEHOLDER.findall(v))


def _client(ref: ResourceRef, raw: dict[str, Any], path: str, by_name: dict[str, Identity], ctx: Context,
            results: list[Result]) -> Client | None:
    kinds = peer_kinds(raw)
    if len(kinds) != 1:
        results.append(error(
            f"AccessGrant {ref.name}: {path} sets {', '.join(kinds) or 'none'} of identity, spiffeID, spiffeIDPrefix, "
            "trustDomain; each client sets exactly one. Split it into one entry per client", ref, path))
        return None
    kind, value = kinds[0], raw[kinds[0]]
    cluster = str(raw.get("cluster") or "")
    if kind == "identity":
        if cluster:
            results.append(error(
                f"AccessGrant {ref.name}: {path}: 'identity' names a WorkloadIdentity of this package, which runs in "
                "the package's own cluster, so it takes no 'cluster'; for a client in another cluster use its spiffeID "
                "(or spiffeIDPrefix) with 'cluster'", ref, f"{path}.cluster", current_value=cluster))
            return None
        ident = by_name.get(value)
        if ident is None:
            known = name_list(sorted(by_name)) or "none"
            results.append(error(
                f"AccessGrant {ref.name}: {path}.identity {value!r} is not a WorkloadIdentity of this package "
                f"(identities: {known}); fix the name, or name a client outside the package by its spiffeID or "
                "spiffeIDPrefix", ref, f"{path}.identity", current_value=value))
            return None
        if ident.spiffe_id is None:
            return None  # waits for context
        return Client(ID, str(ident.spiffe_id), ident.spiffe_id.trust_domain, path, identity=ident.name, form=kind)
    if "{" in value:
        value = _expand(ref, value, f"{path}.{kind}", ctx, results)
        if not value:
            return None
    try:
        pid = parse_peer_id(kind, value)
    except SpiffeIDError as exc:
        results.append(error(f"AccessGrant {ref.name}: {path}.{kind} {value!r} is not valid: {exc}", ref,
                             f"{path}.{kind}", current_value=value))
        return None
    if kind == "spiffeIDPrefix" and not pid.path:
        # 'spiffe://td/' is the whole trust domain: one form for one meaning.
        return Client(TRUST_DOMAIN, pid.trust_domain, pid.trust_domain, path, cluster=cluster, form=kind)
    client_kind = {"spiffeID": ID, "spiffeIDPrefix": PREFIX, "trustDomain": TRUST_DOMAIN}[kind]
    text = pid.id_prefix if client_kind != TRUST_DOMAIN else pid.trust_domain
    return Client(client_kind, text, pid.trust_domain, path, cluster=cluster, form=kind)


def _expand(ref: ResourceRef, value: str, path: str, ctx: Context, results: list[Result]) -> str:
    """A client ID with the context's {clusterName}, {region} or {site}: one blueprint names the
    right client in every cluster it is deployed to (the management controller of *this* edge
    cluster). '' when in error or while the context lacks the value (the grant then waits)."""
    known = {"clusterName": ctx.cluster_name, "region": ctx.region, "site": ctx.site}
    names = PLACEHOLDER.findall(value)
    unknown = sorted({n for n in names if n not in known})
    if unknown or PLACEHOLDER.sub("", value).count("{") or PLACEHOLDER.sub("", value).count("}"):
        results.append(error(
            f"AccessGrant {ref.name}: {path} {value!r}: a client ID may use the placeholders {{clusterName}}, "
            f"{{region}} and {{site}} (the context's values) and no others{f' (not {unknown[0]!r})' if unknown else ''}; "
            "fix it or write the ID out", ref, path, current_value=value))
        return ""
    if any(not known[n] for n in names):
        return ""  # the context does not say yet: the grant waits
    return PLACEHOLDER.sub(lambda m: known[m.group(1)], value)


def _check_issuer(ref: ResourceRef, client: Client, ctx: Context, known: dict[str, Issuer]) -> list[Result]:
    """A client's trust domain must have a JWT issuer the cluster trusts: this cluster's own
    (spec.jwtIssuer) or a federation peer's (spec.federation[].jwtIssuer)."""
    td = client.trust_domain
    if ctx.ref is None or ctx.invalid or not ctx.trust_domain or td in known:
        return []
    field = client.field
    if td == ctx.trust_domain:
        return [error(
            f"AccessGrant {ref.name}: client {client} is of this cluster's trust domain {td}, but IdentityContext "
            f"{ctx.ref.name} declares no JWT issuer for it, so no verifier can accept its JWT-SVIDs. Add "
            "spec.jwtIssuer (url: the SPIRE OIDC discovery provider, the server's jwt_issuer) to the IdentityContext",
            ref, field, current_value=client.value)]
    peers = [str(p.get("trustDomain")) for p in ctx.spec.get("federation") or [] if isinstance(p, dict)]
    if td not in peers:
        return [error(
            f"AccessGrant {ref.name}: client {client} is of trust domain {td}, which is neither this cluster's "
            f"({ctx.trust_domain}) nor a federation peer (IdentityContext {ctx.ref.name} spec.federation: "
            f"{name_list(peers) or 'none'}), so nothing here can verify its SVIDs. Fix the trust domain, or add {td} "
            "to spec.federation with its bundle endpoint and jwtIssuer", ref, field, current_value=client.value)]
    k = peers.index(td)
    return [error(
        f"AccessGrant {ref.name}: client {client} is of the federated trust domain {td}, but IdentityContext "
        f"{ctx.ref.name} spec.federation[{k}] has no jwtIssuer, so no verifier can accept its JWT-SVIDs. Add "
        f"spec.federation[{k}].jwtIssuer (url: {td}'s SPIRE OIDC discovery provider)", ref, field,
        current_value=client.value)]


def _kubernetes_rule(ref: ResourceRef, raw: dict[str, Any], path: str, results: list[Result]) -> KubernetesRule | None:
    namespaces = tuple(raw.get("namespaces") or ())
    cluster_scope = bool(raw.get("clusterScope"))
    if bool(namespaces) == cluster_scope:
        said = "both" if namespaces else "neither"
        results.append(error(
            f"AccessGrant {ref.name}: {path} sets {said} of namespaces and clusterScope: true; set exactly one "
            "(namespaces: the rule holds in those namespaces; clusterScope: true: cluster-wide, for cluster-scoped "
            "resources)", ref, f"{path}.namespaces" if namespaces else f"{path}.clusterScope"))
        return None
    return KubernetesRule(api_groups=tuple(raw["apiGroups"]), resources=tuple(raw["resources"]),
                          verbs=tuple(raw["verbs"]), resource_names=tuple(raw.get("resourceNames") or ()),
                          namespaces=namespaces, cluster_scope=cluster_scope, source=path)


def client_audiences(grants: GrantSet, settings: AccessSettings) -> dict[str, list[str]]:
    """The JWT-SVID audiences each identity of this package must request, by identity name: one
    per target it is granted access to (what the specializer writes to its status)."""
    out: dict[str, list[str]] = {}
    for grant in grants.grants:
        targets = [t for t, rules in ((KUBERNETES, grant.kubernetes), (SECRETS, grant.secrets)) if rules]
        for client in grant.clients:
            if not client.identity:
                continue
            have = out.setdefault(client.identity, [])
            for t in targets:
                aud = settings.audiences[t]
                if aud and aud not in have:
                    have.append(aud)
    return {k: sorted(v) for k, v in out.items()}


def identity_audiences(rl: ResourceList, res: Resolution) -> dict[str, list[str]]:
    """``client_audiences`` of the package as it stands, for the specializer (which writes them to
    the identities' status.jwtAudiences) and the validator (which re-derives them). Mistakes in the
    grants are spiffe-access's and the validator's to report; here a grant in error counts for
    nothing. Free for a package without AccessGrants."""
    if not res.ok or not any(o.get("kind") == ACCESS_GRANT and o.get("apiVersion") == API_VERSION for o in rl.items):
        return {}
    return client_audiences(read_grants(rl, res, []), access_settings(res.context))

"""Resolve every WorkloadIdentity of a package against its workload and the identity context.

This is the one place that turns the package's inputs into resolved identities; the
specializer writes the result into status, the validator re-derives it (it never trusts a
status it did not compute), and the generators build registrations and policies from it.
All problems come back as results with the resource and field they are about.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from .. import API_GROUP, API_VERSION
from ..identity import formats
from ..identity.formats import Attributes, FormatError
from ..identity.spiffeid import SpiffeID, SpiffeIDError, validate_trust_domain
from ..krm.resourcelist import ResourceList, annotations, resource_ref
from ..krm.results import LIST_AT_MOST, ResourceRef, Result, error, name_list
from . import workloads as wl
from .conventions import default_class_name
from .kinds import check_kinds
from .schema import validate

WORKLOAD_IDENTITY = "WorkloadIdentity"
IDENTITY_CONTEXT = "IdentityContext"
WORKLOAD_CLUSTER_API = "infra.nephio.org/v1alpha1"
CONFIG_INJECTION = "kpt.dev/config-injection"
PLACEHOLDER_CLUSTER_NAMES = frozenset({"", "example"})


@dataclass
class Context:
    """The resolved identity context; ``missing`` lists what is not there yet (not errors)."""

    trust_domain: str = ""
    cluster_name: str = ""
    region: str = ""
    site: str = ""
    id_format: str = formats.DEFAULT_FORMAT
    id_template: str = ""
    class_name: str = ""
    class_name_defaulted: bool = False  # className not set: spire-<clusterName>, as the SPIRE packages
    ref: ResourceRef | None = None
    cluster_ref: ResourceRef | None = None
    injection_pending: bool = False
    missing: list[str] = field(default_factory=list)
    # Set when the context itself is in error: identities are then not formed at all, so one
    # mistake in the context gives one error, not one more per identity.
    invalid: bool = False
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class Identity:
    """One WorkloadIdentity resolved as far as the package allows."""

    name: str
    ref: ResourceRef
    obj: dict[str, Any]
    workload: dict[str, Any]
    workload_ref: ResourceRef
    namespace: str
    service_account: str
    selector_labels: dict[str, str]
    labels_to_add: dict[str, str]
    template: str
    template_field: str
    spiffe_id: SpiffeID | None = None
    go_template: str = ""
    attributes: Attributes | None = None
    pending: str = ""

    @property
    def spec(self) -> dict[str, Any]:
        return self.obj.get("spec") or {}

    @property
    def condition_type(self) -> str:
        return condition_type(self.name)


@dataclass
class Resolution:
    context: Context
    identities: list[Identity]
    results: list[Result]
    identity_objects: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not any(r.severity.value == "error" for r in self.results)


def condition_type(identity_name: str) -> str:
    """Nephio's condition type: <group>/<version>.<Kind>.<name>."""
    return f"{API_VERSION}.{WORKLOAD_IDENTITY}.{identity_name}"


def is_ours(obj: dict[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).split("/")[0] == API_GROUP


def _schema_results(kind: str, obj: dict[str, Any], valid: dict[int, Any] | None = None) -> list[Result]:
    """Schema errors of one input. With ``valid`` (one process running several steps over the
    same objects), an object that validated once is not validated again: the steps write only
    the status the schema already allows, and a step that errs ends the run."""
    if valid is not None and valid.get(id(obj)) is obj:
        return []
    ref = resource_ref(obj)
    out = []
    for path, msg in validate(kind, obj):
        out.append(error(f"{kind} {ref.name or '<unnamed>'}: {path} {msg}", ref, path))
    if valid is not None and not out:
        valid[id(obj)] = obj
    return out


def resolve_context(rl: ResourceList, results: list[Result]) -> Context:
    ctx = Context()
    contexts = [o for o in rl.items if is_ours(o) and o.get("kind") == IDENTITY_CONTEXT]
    clusters = [o for o in rl.items
                if o.get("apiVersion") == WORKLOAD_CLUSTER_API and o.get("kind") == "WorkloadCluster"]
    if len(contexts) > 1:
        for o in contexts[1:]:
            results.append(error(
                f"the package has {len(contexts)} IdentityContext resources "
                f"({', '.join(resource_ref(c).name for c in contexts)}); keep exactly one",
                resource_ref(o), "metadata.name"))
    if len(clusters) > 1:
        for o in clusters[1:]:
            results.append(error(
                f"the package has {len(clusters)} WorkloadCluster resources; keep exactly one so the "
                "cluster name is unambiguous", resource_ref(o), "metadata.name"))

    before = len(results)
    _read_context(ctx, contexts, clusters, results)
    ctx.invalid = len(results) > before
    return ctx


def _read_context(ctx: Context, contexts: list[dict[str, Any]], clusters: list[dict[str, Any]],
                  results: list[Result]) -> None:
    if contexts:
        obj = contexts[0]
        ctx.ref = resource_ref(obj)
        schema_errors = _schema_results(IDENTITY_CONTEXT, obj)
        results.extend(schema_errors)
        if schema_errors:
            return
        spec = obj.get("spec") or {}
        ctx.spec = spec
        ctx.injection_pending = annotations(obj).get(CONFIG_INJECTION) == "required"
        ctx.trust_domain = spec.get("trustDomain", "") or ""
        ctx.cluster_name = spec.get("clusterName", "") or ""
        ctx.region = spec.get("region", "") or ""
        ctx.site = spec.get("site", "") or ""
        ctx.id_format = spec.get("idFormat", formats.DEFAULT_FORMAT)
        ctx.id_template = spec.get("idTemplate", "") or ""
        ctx.class_name = spec.get("className", "") or ""
        if ctx.trust_domain:
            try:
                validate_trust_domain(ctx.trust_domain)
            except SpiffeIDError as exc:
                results.append(error(f"IdentityContext {ctx.ref.name}: invalid spec.trustDomain: {exc}",
                                     ctx.ref, "spec.trustDomain", current_value=ctx.trust_domain))
        else:
            ctx.missing.append(f"IdentityContext {ctx.ref.name} has no spec.trustDomain yet")
        if ctx.id_format == "template" and not ctx.id_template:
            results.append(error("IdentityContext spec.idFormat is 'template' but spec.idTemplate is "
                                 "empty; set spec.idTemplate, e.g. '/site/{site}/ns/{namespace}/sa/{serviceAccount}'",
                                 ctx.ref, "spec.idTemplate"))
        elif ctx.id_template:
            try:
                formats.variables_of(ctx.id_template)
            except FormatError as exc:
                results.append(error(f"IdentityContext spec.idTemplate: {exc}", ctx.ref, "spec.idTemplate",
                                     current_value=ctx.id_template))
    else:
        ctx.missing.append("the package has no IdentityContext (it sets the trust domain); add one "
                           "or let porch inject it")

    if clusters:
        obj = clusters[0]
        ctx.cluster_ref = resource_ref(obj)
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        wc_name = str(spec.get("clusterName") or "")
        if annotations(obj).get(CONFIG_INJECTION) == "required" and wc_name in PLACEHOLDER_CLUSTER_NAMES:
            ctx.injection_pending = True
        if wc_name not in PLACEHOLDER_CLUSTER_NAMES:
            if ctx.cluster_name and ctx.cluster_name != wc_name and ctx.ref is not None:
                results.append(error(
                    f"IdentityContext spec.clusterName is {ctx.cluster_name!r} but WorkloadCluster "
                    f"{ctx.cluster_ref.name} says {wc_name!r}; remove spec.clusterName from the "
                    "IdentityContext (the WorkloadCluster is authoritative) or make them equal",
                    ctx.ref, "spec.clusterName", current_value=ctx.cluster_name, proposed_value=wc_name))
            ctx.cluster_name = wc_name

    if ctx.ref is not None and not ctx.class_name and ctx.cluster_name:
        # The SPIRE packages (spire-config) name a cluster's controller manager spire-<clusterName>
        # unless told otherwise; defaulting to the same keeps the two halves in step, also when
        # porch injects only the cluster name.
        ctx.class_name = default_class_name(ctx.cluster_name)
        ctx.class_name_defaulted = True


def federation_peers(ctx: Context) -> list[str] | None:
    """The trust domains the context federates with; None while they cannot be known (no
    context, or one awaiting porch's injection, or one in error)."""
    if ctx.ref is None or ctx.injection_pending or ctx.invalid:
        return None
    return [str(p.get("trustDomain")) for p in ctx.spec.get("federation") or [] if isinstance(p, dict)]


def check_federates_with(ctx: Context, td: str, owner: str, ref: ResourceRef, path: str) -> list[Result]:
    """A federatesWith entry must name a federation peer of the context. SPIRE refuses to store
    a registration entry federating with a trust domain whose bundle it does not have, so the
    workload would get no SVID at all; the cluster's own trust domain is always in the bundle."""
    peers = federation_peers(ctx)
    if peers is None or td in peers:
        return []
    ctx_name = ctx.ref.name if ctx.ref else ""
    if td == ctx.trust_domain:
        return [error(f"{owner}: {path}: {td!r} is this cluster's own trust domain; federatesWith lists the "
                      "other trust domains whose bundles the workload also gets (its own it always gets): "
                      "remove it", ref, path, current_value=td)]
    close = difflib.get_close_matches(td, peers, n=1, cutoff=0.8)
    if not peers:
        known = f"the IdentityContext {ctx_name} has no federation peers"
    else:
        known = (f"the peers in IdentityContext {ctx_name} spec.federation are {name_list(peers)}"
                 + (f"; did you mean {close[0]}?" if close else ""))
    return [error(f"{owner}: {path}: {td!r} is not a federation peer of this cluster ({known}). SPIRE "
                  "refuses a registration entry that federates with a trust domain whose bundle it does not "
                  "have, so the workload would get no SVID at all. Fix the name, or add "
                  f"{td} to IdentityContext spec.federation (with its bundle endpoint)",
                  ref, path, current_value=td, proposed_value=close[0] if close else None)]


class _WorkloadIndex(dict):
    """(kind, name) -> workloads, plus the per-kind name lists that error hints quote."""
    names: dict[str, str]


def _workload_index(rl: ResourceList) -> _WorkloadIndex:
    index = _WorkloadIndex()
    index.names = {}
    for obj in rl.items:
        if wl.is_workload(obj):
            index.setdefault((obj["kind"], wl.name(obj)), []).append(obj)
    return index


def _names_of_kind(index: _WorkloadIndex, kind: str) -> str:
    """The package's workload names of one kind, computed once per index and kind."""
    cache = index.names
    if kind not in cache:
        cache[kind] = name_list(sorted(n for (k, n) in index if k == kind))
    return cache[kind]


def _find_workload(wi: dict[str, Any], ref: ResourceRef, index: dict, results: list[Result]) -> dict | None:
    spec = wi["spec"]
    wref = spec["workloadRef"]
    kind, name = wref["kind"], wref["name"]
    if wref.get("apiVersion") and wref["apiVersion"] != wl.WORKLOAD_KINDS[kind][0]:
        results.append(error(f"WorkloadIdentity {ref.name}: spec.workloadRef.apiVersion of a {kind} is "
                             f"{wl.WORKLOAD_KINDS[kind][0]}, not {wref['apiVersion']}",
                             ref, "spec.workloadRef.apiVersion", current_value=wref["apiVersion"],
                             proposed_value=wl.WORKLOAD_KINDS[kind][0]))
        return None
    found = index.get((kind, name), [])
    if spec.get("namespace") and len(found) > 1:
        found = [o for o in found if wl.namespace(o) in ("", spec["namespace"])]
    if not found:
        same_kind = _names_of_kind(index, kind)
        hint = f"the package's {kind}s are: {same_kind}" if same_kind \
            else f"the package has no {kind} at all"
        results.append(error(f"WorkloadIdentity {ref.name}: spec.workloadRef names {kind} {name!r}, which "
                             f"is not in the package; {hint}. Fix the name or add the workload",
                             ref, "spec.workloadRef.name", current_value=name))
        return None
    if len(found) > 1:
        results.append(error(f"WorkloadIdentity {ref.name}: {len(found)} {kind}s named {name!r} are in the "
                             "package (namespaces " + ", ".join(repr(wl.namespace(o)) for o in found) +
                             "); set spec.namespace to pick one", ref, "spec.namespace"))
        return None
    wrong = wl.pod_template_type_errors(found[0])
    for path, expected, value in wrong:
        results.append(error(f"{kind} {name}: {path} must be {expected}, not {_type_name(value)} (the "
                             f"Kubernetes type of the field; WorkloadIdentity {ref.name} reads it)",
                             resource_ref(found[0]), path))
    return None if wrong else found[0]


def _at(obj: Any, path: str) -> Any:
    """The value at a path such as 'status.conditions[2]' (for messages)."""
    for part in path.replace("[", ".[").split("."):
        obj = obj[int(part[1:-1])] if part.startswith("[") else obj.get(part)
    return obj


def _type_name(value: Any) -> str:
    for kind, text in ((bool, "a boolean"), (dict, "a mapping"), (list, "a list"), (str, "a string"),
                       (int, "an integer"), (float, "a number")):
        if isinstance(value, kind):
            return text
    return type(value).__name__


def _resolve_identity(wi: dict[str, Any], ctx: Context, index: dict, results: list[Result]) -> Identity | None:
    ref = resource_ref(wi)
    spec = wi["spec"]
    before = len(results)
    workload = _find_workload(wi, ref, index, results)
    if workload is None:
        return None
    wref = resource_ref(workload)
    kind = workload["kind"]

    # Namespace: declared or the workload's own; never silently different.
    ns_decl, ns_wl = spec.get("namespace", ""), wl.namespace(workload)
    if ns_decl and ns_wl and ns_decl != ns_wl:
        results.append(error(f"WorkloadIdentity {ref.name}: spec.namespace is {ns_decl!r} but {wref} is in "
                             f"namespace {ns_wl!r}; make them equal (the identity must describe where the "
                             "workload really runs)", ref, "spec.namespace", current_value=ns_decl,
                             proposed_value=ns_wl))
    namespace = ns_decl or ns_wl
    if not namespace:
        results.append(error(f"WorkloadIdentity {ref.name}: neither spec.namespace nor {wref}'s "
                             "metadata.namespace is set; set one (the namespace is an attestation attribute)",
                             ref, "spec.namespace"))

    # Service account: declared, the pod template's, or a per-workload account.
    sa_decl, sa_wl = spec.get("serviceAccountName", ""), wl.service_account(workload)
    if sa_decl and sa_wl and sa_decl != sa_wl:
        results.append(error(f"WorkloadIdentity {ref.name}: spec.serviceAccountName is {sa_decl!r} but {wref} "
                             f"runs as {sa_wl!r} ({wl.field_prefix(kind) + '.' if kind != 'Pod' else ''}"
                             "spec.serviceAccountName); to run it as the identity's account, change that "
                             f"field to {sa_decl!r} or remove it (spiffe-attestation then sets it); to keep "
                             f"{sa_wl!r}, remove spec.serviceAccountName here",
                             ref, "spec.serviceAccountName", current_value=sa_decl, proposed_value=sa_wl))
    service_account = sa_decl or sa_wl or wref.name

    # Selector labels: keys the pod template carries, labels the mutator will add.
    sel = spec.get("selector") or {}
    labels_to_add = dict(sel.get("labels") or {})
    pod_labels = wl.pod_labels(workload)
    selector: dict[str, str] = {}
    missing_keys = False
    for i, key in enumerate(sel.get("labelKeys") or []):
        if key in pod_labels:
            selector[key] = pod_labels[key]
        elif key not in labels_to_add:
            missing_keys = True
            have = ", ".join(sorted(pod_labels)) or "none"
            results.append(error(f"WorkloadIdentity {ref.name}: selector label key {key!r} is not on the pod "
                                 f"template of {wref} (its labels: {have}); add the label to the pod template "
                                 "or declare it with a value under spec.selector.labels",
                                 ref, f"spec.selector.labelKeys[{i}]", current_value=key))
    for key, value in labels_to_add.items():
        if key in pod_labels and pod_labels[key] != value:
            results.append(error(f"WorkloadIdentity {ref.name}: spec.selector.labels sets {key}={value!r} but "
                                 f"the pod template of {wref} already has {key}={pod_labels[key]!r}; use the "
                                 "existing value or list the key under spec.selector.labelKeys",
                                 ref, f"spec.selector.labels.{key}", current_value=value,
                                 proposed_value=pod_labels[key]))
        selector[key] = value
    if not sel.get("labelKeys") and not labels_to_add:
        default = wl.selector_match_labels(workload)
        selector = default if default else dict(pod_labels)
    # Declared keys that are missing were reported above: the selector is empty because of them.
    if not selector and not missing_keys:
        results.append(error(f"WorkloadIdentity {ref.name}: {wref} has no selector or pod labels to identify "
                             "its pods; declare spec.selector.labels (the mutator adds them to the pod template)",
                             ref, "spec.selector"))

    # ID template: the identity's own format, else the context's default.
    sid = spec.get("spiffeID") or {}
    if sid.get("format") or sid.get("template"):
        fmt = sid.get("format") or ("template" if sid.get("template") else ctx.id_format)
        template_src, tfield = sid.get("template", ""), "spec.spiffeID"
    else:
        fmt, template_src, tfield = ctx.id_format, ctx.id_template, "spec.spiffeID.format"
    template = ""
    try:
        if fmt != "template" and sid.get("template"):
            raise FormatError(f"spec.spiffeID.template is set but format is {fmt!r}; set format: "
                              "template or remove the template")
        template = formats.template_for(fmt, template_src)
        formats.variables_of(template)
    except FormatError as exc:
        results.append(error(f"WorkloadIdentity {ref.name}: {exc}", ref,
                             "spec.spiffeID.template" if sid.get("template") or fmt == "template" else tfield))

    for i, td in enumerate((spec.get("svid") or {}).get("federatesWith") or []):
        try:
            validate_trust_domain(td)
        except SpiffeIDError as exc:
            results.append(error(f"WorkloadIdentity {ref.name}: spec.svid.federatesWith[{i}]: {exc}",
                                 ref, f"spec.svid.federatesWith[{i}]", current_value=td))
            continue
        results.extend(check_federates_with(ctx, td, f"WorkloadIdentity {ref.name}", ref,
                                            f"spec.svid.federatesWith[{i}]"))

    if len(results) > before or ctx.invalid:
        return None
    ident = Identity(name=ref.name, ref=ref, obj=wi, workload=workload, workload_ref=wref,
                     namespace=namespace, service_account=service_account, selector_labels=selector,
                     labels_to_add=labels_to_add, template=template,
                     template_field="spec.spiffeID.template" if sid.get("template") else
                     ("spec.spiffeID.format" if sid.get("format") else "spec.spiffeID"))
    if ctx.missing:
        ident.pending = "; ".join(ctx.missing)
        return ident
    all_labels = {**pod_labels, **labels_to_add}
    ident.attributes = Attributes(
        trust_domain=ctx.trust_domain, namespace=namespace, service_account=service_account,
        cluster_name=ctx.cluster_name, region=ctx.region, site=ctx.site, workload_name=wref.name,
        workload_kind=kind, identity_name=ref.name, labels=all_labels)
    try:
        ident.spiffe_id = formats.render_id(template, ident.attributes)
        ident.go_template = formats.go_template(template, ident.attributes)
    except (FormatError, SpiffeIDError) as exc:
        needs_cluster = "{clusterName}" in template and not ctx.cluster_name
        if needs_cluster:
            ident.pending = ("the ID format uses {clusterName} but no cluster name is known yet; set "
                             "IdentityContext spec.clusterName or let porch inject the WorkloadCluster")
            ident.attributes = None
            return ident
        results.append(error(f"WorkloadIdentity {ref.name}: cannot form the SPIFFE ID: {exc}", ref,
                             ident.template_field))
        return None
    return ident


def resolve(rl: ResourceList) -> Resolution:
    # A misspelled kind or group would make an input vanish from every step below.
    results: list[Result] = check_kinds(rl.items)
    kf = rl.kptfile()
    for path, expected in kf.type_errors() if kf is not None else ():
        # The specializer and registration write conditions and readiness gates there.
        results.append(error(f"Kptfile {resource_ref(kf.obj).name}: {path} must be {expected}, not "
                             f"{_type_name(_at(kf.obj, path))} (kpt's Kptfile schema)", resource_ref(kf.obj), path))
    ctx = resolve_context(rl, results)
    wis = [o for o in rl.items if o.get("apiVersion") == API_VERSION and o.get("kind") == WORKLOAD_IDENTITY]
    index = _workload_index(rl)
    identities: list[Identity] = []
    seen: dict[str, ResourceRef] = {}
    for wi in wis:
        schema_errors = _schema_results(WORKLOAD_IDENTITY, wi, rl.schema_valid)
        if schema_errors:
            results.extend(schema_errors)
            continue
        ref = resource_ref(wi)
        if ref.name in seen:
            results.append(error(f"two WorkloadIdentity resources are named {ref.name!r}; names must be unique "
                                 "in a package (they name the Kptfile condition and the registration)",
                                 ref, "metadata.name"))
            continue
        seen[ref.name] = ref
        ident = _resolve_identity(wi, ctx, index, results)
        if ident is not None:
            identities.append(ident)
    results.extend(check_collisions(identities))
    return Resolution(ctx, identities, results, wis)


def check_collisions(identities: list[Identity]) -> list[Result]:
    """Two identities claiming one workload, or two workloads resolving to one SPIFFE ID: one pass, O(n)."""
    out: list[Result] = []
    by_workload: dict[ResourceRef, list[Identity]] = {}
    for ident in identities:
        by_workload.setdefault(ident.workload_ref, []).append(ident)
    # A workload claimed twice is one mistake: one error, and the ID collision it implies (both
    # identities resolve to the same ID) is not reported again with advice meant for two workloads.
    firsts: list[Identity] = []
    for wref, group in by_workload.items():
        firsts.append(group[0])
        if len(group) > 1:
            extra = group[1]
            out.append(error(
                f"WorkloadIdentity {extra.name}: {wref} is claimed by {len(group)} WorkloadIdentity resources "
                f"({name_list([i.name for i in group])}); one workload, one WorkloadIdentity: keep one (move the "
                "rules and SVID settings of the others into it) and delete the others",
                extra.ref, "spec.workloadRef", current_value=wref.name))
    by_id: dict[str, list[Identity]] = {}
    for ident in firsts:
        if ident.spiffe_id is not None:
            by_id.setdefault(str(ident.spiffe_id), []).append(ident)
    for sid, group in by_id.items():
        if len(group) > 1:
            names = name_list([i.name for i in group])
            for ident in group:
                others = name_list([o.name for o in group[:LIST_AT_MOST + 1] if o is not ident])
                out.append(error(
                    f"WorkloadIdentity {ident.name}: SPIFFE ID {sid} is also the ID of {others} (identities "
                    f"{names}); two workloads must not share an ID: {_tell_apart(ident)}",
                    ident.ref, ident.template_field, current_value=sid))
    return out


def _tell_apart(ident: Identity) -> str:
    """Where the change that gives this identity an ID of its own must go."""
    if "{serviceAccount}" not in ident.template:
        return ("the ID format does not include the service account, so use a format or "
                "spec.spiffeID.template that tells the workloads apart")
    if ident.spec.get("serviceAccountName"):
        return (f"change spec.serviceAccountName of WorkloadIdentity {ident.name} to an account of its own "
                "(the attestation step creates it)")
    pod = wl.pod_spec(ident.workload)
    key = "serviceAccountName" if pod.get("serviceAccountName") else "serviceAccount" if pod.get("serviceAccount") else ""
    if key:
        prefix = wl.field_prefix(ident.workload_ref.kind)
        where = f"{prefix + '.' if prefix else ''}spec.{key}"
        return (f"the account comes from the pod template: change {where} of {ident.workload_ref} (it names "
                f"{ident.service_account!r}) to an account of its own (the attestation step creates it), or remove "
                f"it there and name the account in WorkloadIdentity {ident.name}'s spec.serviceAccountName")
    return (f"name an account of its own in spec.serviceAccountName of WorkloadIdentity {ident.name} "
            "(the attestation step creates it)")

"""Resolve every WorkloadIdentity of a package against its workload and the identity context.

This is the one place that turns the package's inputs into resolved identities; the
specializer writes the result into status, the validator re-derives it (it never trusts a
status it did not compute), and the generators build registrations and policies from it.
All problems come back as results with the resource and field they are about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import API_VERSION
from ..identity import formats
from ..identity.formats import Attributes, FormatError
from ..identity.spiffeid import SpiffeID, SpiffeIDError, validate_trust_domain
from ..krm.resourcelist import ResourceList, resource_ref
from ..krm.results import LIST_AT_MOST, ResourceRef, Result, error, name_list
from . import migration
from . import workloads as wl
from .context import Context, check_federates_with, resolve_context
from .kinds import check_kinds
from .paths import get_path
from .schema import schema_results

WORKLOAD_IDENTITY = "WorkloadIdentity"


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
    # During a trust-domain migration's dual and cutover phases: the ID registered in the other
    # domain (spiffe_id is the one the pods present). See api.migration.
    alternate_id: SpiffeID | None = None

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


@dataclass
class WorkloadIndex:
    """The package's workloads by (kind, name), and the per-kind name lists that error hints quote."""

    by_key: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, rl: ResourceList) -> WorkloadIndex:
        index = cls()
        for obj in rl.items:
            if wl.is_workload(obj):
                index.by_key.setdefault((obj["kind"], wl.name(obj)), []).append(obj)
        return index

    def get(self, kind: str, name: str) -> list[dict[str, Any]]:
        return self.by_key.get((kind, name), [])

    def names_of_kind(self, kind: str) -> str:
        """The package's workload names of one kind, computed once per index and kind."""
        if kind not in self._names:
            self._names[kind] = name_list(sorted(n for (k, n) in self.by_key if k == kind))
        return self._names[kind]


def _find_workload(wi: dict[str, Any], ref: ResourceRef, index: WorkloadIndex,
                   results: list[Result]) -> dict[str, Any] | None:
    spec = wi["spec"]
    wref = spec["workloadRef"]
    kind, name = wref["kind"], wref["name"]
    if wref.get("apiVersion") and wref["apiVersion"] != wl.WORKLOAD_KINDS[kind][0]:
        results.append(error(f"WorkloadIdentity {ref.name}: spec.workloadRef.apiVersion of a {kind} is "
                             f"{wl.WORKLOAD_KINDS[kind][0]}, not {wref['apiVersion']}",
                             ref, "spec.workloadRef.apiVersion", current_value=wref["apiVersion"],
                             proposed_value=wl.WORKLOAD_KINDS[kind][0]))
        return None
    found = index.get(kind, name)
    if spec.get("namespace") and len(found) > 1:
        found = [o for o in found if wl.namespace(o) in ("", spec["namespace"])]
    if not found:
        same_kind = index.names_of_kind(kind)
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


def _resolve_identity(wi: dict[str, Any], ctx: Context, index: WorkloadIndex,
                      results: list[Result]) -> Identity | None:
    ref = resource_ref(wi)
    spec = wi["spec"]
    before = len(results)
    workload = _find_workload(wi, ref, index, results)
    if workload is None:
        return None
    wref = resource_ref(workload)
    namespace = _namespace(spec, ref, workload, wref, results)
    service_account = _service_account(spec, ref, workload, wref, results)
    pod_labels = wl.pod_labels(workload)
    labels_to_add = dict(get_path(spec, "selector", "labels", default={}))
    selector = _selector(spec, ref, workload, wref, pod_labels, labels_to_add, results)
    template = _id_template(spec, ref, ctx, results)
    _check_federates_with(spec, ref, ctx, results)
    if len(results) > before or ctx.invalid:
        return None
    sid = spec.get("spiffeID") or {}
    ident = Identity(name=ref.name, ref=ref, obj=wi, workload=workload, workload_ref=wref,
                     namespace=namespace, service_account=service_account, selector_labels=selector,
                     labels_to_add=labels_to_add, template=template,
                     template_field="spec.spiffeID.template" if sid.get("template") else
                     ("spec.spiffeID.format" if sid.get("format") else "spec.spiffeID"))
    if ctx.missing:
        ident.pending = "; ".join(ctx.missing)
        return ident
    return _form_id(ident, ctx, {**pod_labels, **labels_to_add}, results)


def _namespace(spec: dict[str, Any], ref: ResourceRef, workload: dict[str, Any], wref: ResourceRef,
               results: list[Result]) -> str:
    """Declared or the workload's own; never silently different."""
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
    return namespace


def _service_account(spec: dict[str, Any], ref: ResourceRef, workload: dict[str, Any], wref: ResourceRef,
                     results: list[Result]) -> str:
    """Declared, the pod template's, or a per-workload account."""
    sa_decl, sa_wl = spec.get("serviceAccountName", ""), wl.service_account(workload)
    if sa_decl and sa_wl and sa_decl != sa_wl:
        kind = workload["kind"]
        results.append(error(f"WorkloadIdentity {ref.name}: spec.serviceAccountName is {sa_decl!r} but {wref} "
                             f"runs as {sa_wl!r} ({wl.field_prefix(kind) + '.' if kind != 'Pod' else ''}"
                             "spec.serviceAccountName); to run it as the identity's account, change that "
                             f"field to {sa_decl!r} or remove it (spiffe-attestation then sets it); to keep "
                             f"{sa_wl!r}, remove spec.serviceAccountName here",
                             ref, "spec.serviceAccountName", current_value=sa_decl, proposed_value=sa_wl))
    return sa_decl or sa_wl or wref.name


def _selector(spec: dict[str, Any], ref: ResourceRef, workload: dict[str, Any], wref: ResourceRef,
              pod_labels: dict[str, str], labels_to_add: dict[str, str], results: list[Result]) -> dict[str, str]:
    """The selector labels: keys the pod template carries, labels the mutator will add; without
    either, the workload's own selector (or its pod labels)."""
    label_keys = get_path(spec, "selector", "labelKeys", default=())
    selector: dict[str, str] = {}
    missing_keys = False
    for i, key in enumerate(label_keys):
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
    if not label_keys and not labels_to_add:
        default = wl.selector_match_labels(workload)
        selector = default if default else dict(pod_labels)
    # Declared keys that are missing were reported above: the selector is empty because of them.
    if not selector and not missing_keys:
        results.append(error(f"WorkloadIdentity {ref.name}: {wref} has no selector or pod labels to identify "
                             "its pods; declare spec.selector.labels (the mutator adds them to the pod template)",
                             ref, "spec.selector"))
    return selector


def _id_template(spec: dict[str, Any], ref: ResourceRef, ctx: Context, results: list[Result]) -> str:
    """The identity's own ID format, else the context's default, as a template ("" if in error)."""
    sid = spec.get("spiffeID") or {}
    if sid.get("format") or sid.get("template"):
        fmt = sid.get("format") or ("template" if sid.get("template") else ctx.id_format)
        template_src, tfield = sid.get("template", ""), "spec.spiffeID"
    else:
        fmt, template_src, tfield = ctx.id_format, ctx.id_template, "spec.spiffeID.format"
    try:
        if fmt != "template" and sid.get("template"):
            raise FormatError(f"spec.spiffeID.template is set but format is {fmt!r}; set format: "
                              "template or remove the template")
        template = formats.template_for(fmt, template_src)
        formats.variables_of(template)
    except FormatError as exc:
        results.append(error(f"WorkloadIdentity {ref.name}: {exc}", ref,
                             "spec.spiffeID.template" if sid.get("template") or fmt == "template" else tfield))
        return ""
    return template


def _check_federates_with(spec: dict[str, Any], ref: ResourceRef, ctx: Context, results: list[Result]) -> None:
    for i, td in enumerate(get_path(spec, "svid", "federatesWith", default=())):
        try:
            validate_trust_domain(td)
        except SpiffeIDError as exc:
            results.append(error(f"WorkloadIdentity {ref.name}: spec.svid.federatesWith[{i}]: {exc}",
                                 ref, f"spec.svid.federatesWith[{i}]", current_value=td))
            continue
        results.extend(check_federates_with(ctx, td, f"WorkloadIdentity {ref.name}", ref,
                                            f"spec.svid.federatesWith[{i}]"))


def _form_id(ident: Identity, ctx: Context, labels: dict[str, str], results: list[Result]) -> Identity | None:
    """The SPIFFE ID and its Go template; pending while the ID needs a cluster name not known yet."""
    ident.attributes = Attributes(
        trust_domain=ctx.trust_domain, namespace=ident.namespace, service_account=ident.service_account,
        cluster_name=ctx.cluster_name, region=ctx.region, site=ctx.site, workload_name=ident.workload_ref.name,
        workload_kind=ident.workload["kind"], identity_name=ident.name, labels=labels)
    try:
        ident.spiffe_id = formats.render_id(ident.template, ident.attributes)
        ident.go_template = formats.go_template(ident.template, ident.attributes)
        ident.spiffe_id, ident.alternate_id = migration.primary_and_alternate(ctx, ident.spiffe_id)
    except (FormatError, SpiffeIDError) as exc:
        if "{clusterName}" in ident.template and not ctx.cluster_name:
            ident.pending = ("the ID format uses {clusterName} but no cluster name is known yet; set "
                             "IdentityContext spec.clusterName or let porch inject the WorkloadCluster")
            ident.attributes = None
            return ident
        results.append(error(f"WorkloadIdentity {ident.name}: cannot form the SPIFFE ID: {exc}", ident.ref,
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
    results.extend(migration.check_phase_order(ctx, kf))
    # A complete trust-domain migration: nothing may name the old domain any more (every function
    # refuses, before any other check trips over the old IDs).
    results.extend(migration.check_complete(rl.items, ctx))
    wis = [o for o in rl.items if o.get("apiVersion") == API_VERSION and o.get("kind") == WORKLOAD_IDENTITY]
    index = WorkloadIndex.of(rl)
    identities: list[Identity] = []
    seen: dict[str, ResourceRef] = {}
    for wi in wis:
        schema_errors = schema_results(WORKLOAD_IDENTITY, wi, once=True)
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

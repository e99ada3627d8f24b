"""Checks of a package's SPIRE registrations, for the validator (it trusts nothing generated).

These catch what spire-controller-manager does silently in the cluster:

- a ClusterSPIFFEID, ClusterFederatedTrustDomain or ClusterStaticEntry whose className is
  not the controller's is ignored without any event; a context without className leaves the
  choice to the controller's ``watchClassless``, so we warn;
- an ID rendered outside the controller's trust domain is rejected per pod (a log line only);
- identities in the namespaces the controller ignores by default get no entry at all;
- a hand-written, non-fallback ClusterSPIFFEID that also selects our pods gives them a second
  entry (and SVID), so a workload may present the wrong identity;
- a registration that no longer matches what the generator makes from the inputs is stale.
"""

from __future__ import annotations

from typing import Any

from ..api import migration
from ..api import workloads as wl
from ..api.ownership import owner_of
from ..api.paths import get_path
from ..api.resolve import Resolution
from ..api.schema import validate
from ..krm import yamlio
from ..krm.resourcelist import ResourceList, resource_ref
from ..krm.results import Result, error, warning
from . import clusterspiffeid, federation, static
from .function import desired_registrations  # the generator's own definition of what it makes

SPIRE_KINDS = (clusterspiffeid.KIND, federation.KIND, static.KIND)
# spire-controller-manager's default ignoreNamespaces.
CONTROLLER_IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "spire-system"})
_TD_PREFIX = "spiffe://{{ .TrustDomain }}/"


def _spire_items(rl: ResourceList) -> list[dict[str, Any]]:
    return [o for o in rl.items if o.get("apiVersion") == clusterspiffeid.API_VERSION and o.get("kind") in SPIRE_KINDS]


def check_registrations(rl: ResourceList, res: Resolution) -> list[Result]:
    ctx = res.context
    out: list[Result] = []
    items = _spire_items(rl)
    ours = [o for o in items if owner_of(o)]

    # A context awaiting porch's injection gets its className with the injection.
    if ctx.ref is not None and not ctx.class_name and not ctx.injection_pending and (res.identities or items):
        out.append(warning(
            f"IdentityContext {ctx.ref.name} has no spec.className and no cluster name to default it from "
            "(spire-<clusterName>), so the registrations carry none; a "
            "spire-controller-manager configured with a className ignores them silently unless it also sets "
            "watchClassless: true. Set spec.className to the controller's className", ctx.ref, "spec.className"))

    for ident in res.identities:
        if ident.namespace in CONTROLLER_IGNORED_NAMESPACES:
            out.append(warning(
                f"WorkloadIdentity {ident.name}: namespace {ident.namespace!r} is in spire-controller-manager's "
                "default ignoreNamespaces, so its pods get no registration entry unless the controller's "
                "ignoreNamespaces is changed; run the workload in another namespace", ident.ref, "spec.namespace"))

    for obj in items:
        ref = resource_ref(obj)
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        if owner_of(obj):
            for path, msg in validate(ref.kind, obj):
                out.append(error(f"{ref.kind} {ref.name}: {path} {msg}", ref, path))
        cls = spec.get("className", "") or ""
        if ctx.ref is not None and cls not in migration.class_names(ctx) and (ctx.class_name or owner_of(obj)):
            out.append(error(
                f"{ref.kind} {ref.name} has className {cls or '(none)'!r} but the IdentityContext says "
                f"{ctx.class_name or '(none)'!r}; spire-controller-manager ignores resources of another class "
                "without a word. Make them equal (run spiffe-registration to regenerate owned ones)",
                ref, "spec.className", current_value=cls, proposed_value=ctx.class_name or None))
        if ref.kind == clusterspiffeid.KIND:
            tpl = str(spec.get("spiffeIDTemplate", ""))
            literal_td = tpl[len("spiffe://"):].split("/")[0] if tpl.startswith("spiffe://") else ""
            if ctx.trust_domain and literal_td and "{{" not in literal_td and literal_td != ctx.trust_domain:
                out.append(error(
                    f"ClusterSPIFFEID {ref.name}: spiffeIDTemplate names trust domain {literal_td!r} but the "
                    f"cluster's is {ctx.trust_domain!r}; spire-controller-manager rejects every ID outside its "
                    "own trust domain (one log line per pod, no SVID). Write spiffe://{{ .TrustDomain }}/...",
                    ref, "spec.spiffeIDTemplate", current_value=tpl))

    out.extend(_check_foreign_selectors(items, res))
    out.extend(_check_controller_configs(rl, res))
    if res.ok:
        desired, input_results, _ = desired_registrations(rl, res)
        out.extend(input_results)  # federation peers and static identities
        out.extend(_check_stale(desired, ours))
    return out


def _labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    ml = selector.get("matchLabels") if isinstance(selector, dict) else None
    if selector.get("matchExpressions"):
        return False  # not evaluated: only plain matchLabels selectors are compared
    return all(labels.get(str(k)) == str(v) for k, v in (ml or {}).items())


def _check_foreign_selectors(items: list[dict[str, Any]], res: Resolution) -> list[Result]:
    """Hand-written, non-fallback ClusterSPIFFEIDs that also select our identities' pods.

    Pairwise, but over the few hand-written ClusterSPIFFEIDs a package has, not over all items."""
    foreign = [o for o in items if o.get("kind") == clusterspiffeid.KIND and not owner_of(o)
               and not get_path(o, "spec", "fallback")]
    out: list[Result] = []
    if not foreign:
        return out
    for obj in foreign:
        spec = obj.get("spec") or {}
        ref = resource_ref(obj)
        for ident in res.identities:
            ns_labels = {clusterspiffeid.NAMESPACE_NAME_LABEL: ident.namespace}
            pod_labels = {**wl.pod_labels(ident.workload), **ident.labels_to_add}
            if _labels_match(spec.get("namespaceSelector") or {}, ns_labels) and \
                    _labels_match(spec.get("podSelector") or {}, pod_labels):
                out.append(warning(
                    f"ClusterSPIFFEID {ref.name} (not generated) also selects the pods of {ident.workload_ref}, "
                    f"which WorkloadIdentity {ident.name} registers: its pods get two entries and may present "
                    "either SVID. Narrow its selectors or mark it spec.fallback: true (applied only to pods no "
                    "other ClusterSPIFFEID matches)", ref, "spec.podSelector"))
    return out


def _check_stale(desired: list, ours: list[dict[str, Any]]) -> list[Result]:
    """Owned registrations must equal what the generator makes now."""
    want = {(d.obj["kind"], d.obj["metadata"]["name"]): d.obj for d in desired}
    out: list[Result] = []
    for obj in ours:
        ref = resource_ref(obj)
        expected = want.get((ref.kind, ref.name))
        if expected is None:
            out.append(error(f"{ref.kind} {ref.name} was generated for {owner_of(obj)}, which the package no "
                             "longer has (or which waits for context); run spiffe-registration before "
                             "spiffe-validator to remove it", ref, "metadata.annotations"))
        elif expected.get("spec") != obj.get("spec"):
            out.append(error(f"{ref.kind} {ref.name} is stale: it no longer matches its owner "
                             f"{owner_of(obj)}; run spiffe-registration before spiffe-validator", ref, "spec"))
    return out


def _check_controller_configs(rl: ResourceList, res: Resolution) -> list[Result]:
    """A spire-controller-manager config in the package must agree with the IdentityContext.

    Only ConfigMaps whose data holds a ControllerManagerConfig are parsed (a substring test
    first), so the cost stays with the one or two ConfigMaps that are configs."""
    ctx = res.context
    out: list[Result] = []
    if ctx.ref is None:
        return out
    for obj in rl.items:
        if obj.get("kind") != "ConfigMap" or obj.get("apiVersion") != "v1" or not isinstance(obj.get("data"), dict):
            continue
        for key, text in obj["data"].items():
            if not isinstance(text, str) or "ControllerManagerConfig" not in text:
                continue
            try:
                cfg = yamlio.load(text)
            except yamlio.YAMLError:
                continue
            if not isinstance(cfg, dict) or cfg.get("kind") != "ControllerManagerConfig":
                continue
            ref, where = resource_ref(obj), f"data.{key}"
            if not cfg.get("entryIDPrefix"):
                out.append(warning(
                    f"ConfigMap {ref.name}: the spire-controller-manager config in {key} has no entryIDPrefix, so "
                    "the controller deletes every registration entry on its SPIRE server that it did not create "
                    "(entries made by hand or by another controller sharing the server). Set entryIDPrefix",
                    ref, where))
            for field, want in (("className", ctx.class_name), ("trustDomain", ctx.trust_domain),
                                ("clusterName", ctx.cluster_name)):
                have = str(cfg.get(field) or "")
                if want and have != want:
                    out.append(error(
                        f"ConfigMap {ref.name}: the spire-controller-manager config in {key} has {field} "
                        f"{have or '(none)'!r} but the IdentityContext says {want!r}; "
                        + ("the controller would ignore every registration of the package"
                           if field == "className" else "every rendered ID would differ from the resolved one"
                           if field == "clusterName" else "the controller rejects IDs outside its trust domain"),
                        ref, where, current_value=have, proposed_value=want))
    return out

"""SPIFFE ID formats: how an ID path is formed from a workload's attributes, offline and in-cluster.

A format is a path template over a documented set of variables (``{namespace}``,
``{serviceAccount}``, ...). The same template has two renderings that must agree:

- ``render_path``: offline, from the attributes the specializer resolved from the package;
- ``go_template``: the ``spiffeIDTemplate`` that spire-controller-manager renders in the
  cluster with Go's text/template over ``.TrustDomain``, ``.ClusterName``, ``.PodMeta`` and
  ``.PodSpec`` for each pod it selects.

Variables that are per-pod facts in the cluster (namespace, service account, pod labels, the
controller's cluster name) become template actions; variables that are constant for one
identity (region, site, workload name) become literal text, which is correct because each
registration selects the pods of exactly one workload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from .spiffeid import SpiffeID, SpiffeIDError, validate_path


class FormatError(ValueError):
    """A format or template cannot produce an ID; the message says how to fix it."""


# Named formats. The default is Istio's, so Istio AuthorizationPolicy features that parse
# ns/sa out of the principal keep working.
NAMED_FORMATS: dict[str, str] = {
    "istio": "/ns/{namespace}/sa/{serviceAccount}",
    "cluster": "/cluster/{clusterName}/ns/{namespace}/sa/{serviceAccount}",
    "region": "/region/{region}/cluster/{clusterName}/ns/{namespace}/sa/{serviceAccount}",
    "opaque": "/w/{opaqueID}",
}
DEFAULT_FORMAT = "istio"

# Variable -> (description, Go template action or None when it is rendered as a literal).
VARIABLES: dict[str, tuple[str, str | None]] = {
    "namespace": ("the workload's namespace", "{{ .PodMeta.Namespace }}"),
    "serviceAccount": ("the pod's service account", "{{ .PodSpec.ServiceAccountName }}"),
    "clusterName": ("the cluster name from the context (must equal the controller's clusterName)",
                    "{{ .ClusterName }}"),
    "region": ("the region from the context", None),
    "site": ("the site from the context", None),
    "workloadName": ("the referenced workload's name", None),
    "workloadKind": ("the referenced workload's kind, lowercased", None),
    "identityName": ("the WorkloadIdentity's metadata.name", None),
    "opaqueID": ("a stable 32-hex-digit digest of the attribute set (see opaque_id)", None),
    "label:<key>": ("the value of the pod template label <key>",
                    '{{ index .PodMeta.Labels "<key>" }}'),
}

_VAR_RE = re.compile(r"\{([^{}]*)\}")
_LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Attributes:
    """Everything an ID may be formed from, resolved offline for one workload."""

    trust_domain: str
    namespace: str
    service_account: str
    cluster_name: str = ""
    region: str = ""
    site: str = ""
    workload_name: str = ""
    workload_kind: str = ""
    identity_name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def template_for(format_name: str, custom: str = "") -> str:
    """The path template of a named format, or the custom template for format 'template'."""
    if format_name == "template":
        if not custom:
            raise FormatError("format 'template' needs spiffeID.template, e.g. "
                              "'/site/{site}/ns/{namespace}/sa/{serviceAccount}'")
        return custom
    if format_name not in NAMED_FORMATS:
        raise FormatError(f"unknown ID format {format_name!r}; use one of "
                          f"{', '.join(sorted([*NAMED_FORMATS, 'template']))}")
    return NAMED_FORMATS[format_name]


@lru_cache(maxsize=256)
def _variables_of(template: str) -> tuple[str, ...]:
    return tuple(_check_template(template))


def variables_of(template: str) -> list[str]:
    """The variables a template uses, validated; raises FormatError for unknown ones.

    Cached: a package has a handful of templates but thousands of identities."""
    return list(_variables_of(template))


def _check_template(template: str) -> list[str]:
    """The variables a template uses, validated; raises FormatError for unknown ones."""
    if not template.startswith("/"):
        raise FormatError(f"template {template!r} must start with '/': it forms the ID's path, "
                          "the trust domain comes from the context")
    names = _VAR_RE.findall(template)
    stripped = _VAR_RE.sub("x", template)
    if "{" in stripped or "}" in stripped:
        raise FormatError(f"template {template!r} has an unbalanced '{{' or '}}'")
    known = [k for k in VARIABLES if not k.startswith("label:")]
    for name in names:
        if name.startswith("label:"):
            key = name[len("label:"):]
            if not _LABEL_KEY_RE.match(key):
                raise FormatError(f"template variable {{{name}}}: {key!r} is not a valid label key")
        elif name not in known:
            raise FormatError(f"template {template!r} uses unknown variable {{{name}}}; known "
                              f"variables: {', '.join('{' + k + '}' for k in VARIABLES)}")
    # Literal parts must already be valid path characters, so the ID is valid for any values.
    try:
        validate_path(_VAR_RE.sub("x", template))
    except SpiffeIDError as exc:
        raise FormatError(f"template {template!r} cannot form a valid SPIFFE ID path: {exc}") from None
    return names


def opaque_id(attrs: Attributes) -> str:
    """A stable digest of the attribute set; ``opaque_source`` is its readable preimage."""
    import hashlib  # only the opaque format needs it: keeps its import off every start (docs/import-costs.md)

    return hashlib.sha256(opaque_source(attrs).encode()).hexdigest()[:32]


def opaque_source(attrs: Attributes) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(attrs.labels.items()))
    return (f"cluster={attrs.cluster_name};namespace={attrs.namespace};"
            f"serviceAccount={attrs.service_account};labels={labels}")


def _value(name: str, attrs: Attributes) -> str:
    if name.startswith("label:"):
        key = name[len("label:"):]
        if key not in attrs.labels:
            raise FormatError(f"template variable {{{name}}}: the pod template has no label {key!r}; "
                              "add it to the workload's pod template or to spec.selector.labels")
        return attrs.labels[key]
    value = {
        "namespace": attrs.namespace, "serviceAccount": attrs.service_account,
        "clusterName": attrs.cluster_name, "region": attrs.region, "site": attrs.site,
        "workloadName": attrs.workload_name, "workloadKind": attrs.workload_kind.lower(),
        "identityName": attrs.identity_name,
    }.get(name)
    if name == "opaqueID":
        return opaque_id(attrs)
    if not value:
        where = "IdentityContext spec." + name if name in ("clusterName", "region", "site") else name
        raise FormatError(f"template variable {{{name}}} is empty; set {where}")
    return value


def render_path(template: str, attrs: Attributes) -> str:
    variables_of(template)
    path = _VAR_RE.sub(lambda m: _value(m.group(1), attrs), template)
    try:
        return validate_path(path)
    except SpiffeIDError as exc:
        raise FormatError(f"template {template!r} yields an invalid SPIFFE ID path: {exc}") from None


def render_id(template: str, attrs: Attributes) -> SpiffeID:
    return SpiffeID(attrs.trust_domain, render_path(template, attrs))


def go_template(template: str, attrs: Attributes) -> str:
    """The spire-controller-manager ``spiffeIDTemplate`` equivalent to ``template`` for ``attrs``."""
    variables_of(template)

    def action(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("label:"):
            key = name[len("label:"):]
            return '{{ index .PodMeta.Labels "' + key + '" }}'
        go = VARIABLES[name][1]
        return go if go is not None else _value(name, attrs)

    return "spiffe://{{ .TrustDomain }}" + _VAR_RE.sub(action, template)

"""StaticIdentity: a SPIFFE identity for a workload that is not a pod, as a ClusterStaticEntry.

Edge devices, VMs and bare-metal processes are attested by a SPIRE agent on that machine
(e.g. x509pop or tpm node attestation, then unix or systemd workload selectors), so their
entries name the agent as parent and list the selectors explicitly. IDs may be written as a
path, which gets the context's trust domain, so the same blueprint serves every cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import API_VERSION as OUR_API
from ..api.context import Context, check_federates_with
from ..api.ownership import mark
from ..api.schema import validate
from ..identity.spiffeid import SpiffeIDError, parse, validate_path, validate_trust_domain
from ..krm.resourcelist import ResourceList, resource_ref
from ..krm.results import ResourceRef, Result, error
from .clusterspiffeid import API_VERSION

INPUT_KIND = "StaticIdentity"
KIND = "ClusterStaticEntry"


@dataclass
class Static:
    ref: ResourceRef
    obj: dict[str, Any]
    spiffe_id: str = ""
    parent_id: str = ""
    pending: str = ""

    @property
    def owner(self) -> str:
        return f"{OUR_API}.{INPUT_KIND}.{self.ref.name}"


def _resolve_id(value: str, field: str, ref: ResourceRef, ctx: Context, out: list[Result]) -> str | None:
    """A full ID in the context's trust domain, '' while the trust domain is unknown, None on error."""
    try:
        if value.startswith("spiffe://"):
            sid = parse(value)
            if ctx.trust_domain and sid.trust_domain != ctx.trust_domain:
                out.append(error(f"StaticIdentity {ref.name}: {field} {value} is not in this cluster's trust "
                                 f"domain {ctx.trust_domain!r}; the SPIRE server only issues IDs of its own trust "
                                 "domain. Write it as a path to get the context's trust domain", ref, field,
                                 current_value=value))
                return None
            return str(sid)
        validate_path(value)
    except SpiffeIDError as exc:
        out.append(error(f"StaticIdentity {ref.name}: {field} {value!r} is not a SPIFFE ID or ID path: {exc}",
                         ref, field, current_value=value))
        return None
    if not ctx.trust_domain or ctx.invalid:
        return ""
    return f"spiffe://{ctx.trust_domain}{value}"


def read_statics(rl: ResourceList, ctx: Context) -> tuple[list[Static], list[Result]]:
    out: list[Result] = []
    statics: list[Static] = []
    for obj in rl.items:
        if obj.get("kind") != INPUT_KIND or not str(obj.get("apiVersion", "")).startswith("workloadidentity."):
            continue
        ref = resource_ref(obj)
        before = len(out)
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        # What a static entry cannot go without, said plainly before the schema's generic words.
        if not spec.get("parentID"):
            out.append(error(f"StaticIdentity {ref.name}: spec.parentID is missing; a static entry needs the "
                             "SPIFFE ID of the SPIRE agent (or node entry) on the machine that runs the workload, "
                             "e.g. /spire/agent/x509pop/<certificate fingerprint>, or SPIRE never issues its SVID",
                             ref, "spec.parentID"))
        if not spec.get("selectors"):
            out.append(error(f"StaticIdentity {ref.name}: spec.selectors is missing or empty; without selectors "
                             "any process on the parent's machine could claim the identity. List what the agent "
                             "attests, e.g. ['unix:uid:1000', 'unix:path:/usr/bin/camera']",
                             ref, "spec.selectors"))
        if not spec.get("spiffeID"):
            out.append(error(f"StaticIdentity {ref.name}: spec.spiffeID is missing; set the workload's ID or "
                             "its path, e.g. /edge/site-7/camera", ref, "spec.spiffeID"))
        if len(out) == before:
            for path, msg in validate(INPUT_KIND, obj):
                out.append(error(f"StaticIdentity {ref.name}: {path} {msg}", ref, path))
        if len(out) > before:
            continue
        for i, td in enumerate(spec.get("federatesWith") or []):
            try:
                validate_trust_domain(td)
            except SpiffeIDError as exc:
                out.append(error(f"StaticIdentity {ref.name}: spec.federatesWith[{i}]: {exc}", ref,
                                 f"spec.federatesWith[{i}]", current_value=td))
                continue
            out.extend(check_federates_with(ctx, td, f"StaticIdentity {ref.name}", ref, f"spec.federatesWith[{i}]"))
        sid = _resolve_id(spec["spiffeID"], "spec.spiffeID", ref, ctx, out)
        pid = _resolve_id(spec["parentID"], "spec.parentID", ref, ctx, out)
        if len(out) > before or sid is None or pid is None:
            continue
        st = Static(ref, obj, sid, pid)
        if not sid or not pid:
            st.pending = "; ".join(ctx.missing) or "the context is not valid"
        statics.append(st)
    return statics, out


def build(st: Static, ctx: Context) -> dict[str, Any]:
    spec_in = st.obj["spec"]
    spec: dict[str, Any] = {}
    if ctx.class_name:
        spec["className"] = ctx.class_name
    spec["spiffeID"] = st.spiffe_id
    spec["parentID"] = st.parent_id
    spec["selectors"] = list(spec_in["selectors"])
    for ours, theirs in (("x509TTL", "x509SVIDTTL"), ("jwtTTL", "jwtSVIDTTL")):
        if spec_in.get(ours):
            spec[theirs] = spec_in[ours]
    for key in ("dnsNames", "federatesWith"):
        if spec_in.get(key):
            spec[key] = list(spec_in[key])
    if spec_in.get("hint"):
        spec["hint"] = spec_in["hint"]
    for flag in ("admin", "downstream", "storeSVID"):
        if spec_in.get(flag):
            spec[flag] = True
    obj = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": st.ref.name}, "spec": spec}
    return mark(obj, st.owner)

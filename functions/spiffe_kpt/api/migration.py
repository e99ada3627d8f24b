"""A staged trust-domain migration (IdentityContext ``spec.migration``): A -> B in four phases.

``spec.trustDomain`` stays A, the domain the package started in, for the whole migration;
``spec.migration: {to: B, phase: ...}`` says how far the package is. What each phase renders:

- ``prepare``: exactly what the package renders without a migration. The cluster's SPIRE
  packages run B's deployment beside A's and federate the two (spire-config); workloads see
  nothing.
- ``dual``: every registration exists twice, A's (unchanged, federating with B as well) and
  B's (className of B's controller, the same ID template, so the IDs differ only in the trust
  domain, federating with A). Every rule accepts both IDs of each peer (``twin``). Pods still
  mount A's CSI driver and present A: ``status.spiffeID`` is the A ID.
- ``cutover``: the same registrations and rules; pods mount B's CSI driver, so they present
  B: ``status.spiffeID`` is the B ID. Rules still accept A from packages not cut over yet.
- ``complete``: the package is B's: registrations and federation of B only, rules without
  aliases, and the package must not name A anywhere (``names_of_source``) but in
  ``spec.trustDomain``, which records where it came from.

SPIRE cannot alias a trust domain (one server, one agent, one controller manager each serve
exactly one; spiffe/spire#989), so everything that issues or registers runs twice while the
two coexist; only the policies (Istio principals, Linkerd identities) can accept both names.

The functions call the small hooks below where they emit IDs; everything that knows about
phases lives here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..identity.spiffeid import SCHEME_PREFIX, SpiffeIDError, validate_trust_domain
from ..krm.results import ResourceRef, Result, error, info, warning

if TYPE_CHECKING:
    from ..krm.resourcelist import KptfileView
    from .context import Context

PHASES = ("prepare", "dual", "cutover", "complete")
# What the A->B migration adds to a CSI driver / class name: B with '.' and '_' as '-'.
CSI_DRIVER_A = "csi.spiffe.io"
CLASS_LABEL = "spire.spiffe.io/class-name"
CONDITION_KIND = "workloadidentity.nephio.org/v1alpha1.IdentityContext"


def slug(trust_domain: str) -> str:
    """A trust domain as a Kubernetes name part ('telco.operator' -> 'telco-operator')."""
    return trust_domain.replace(".", "-").replace("_", "-")


def target_class_name(class_name_a: str, target: str) -> str:
    """className of B's spire-controller-manager beside A's (spire-config gives B's SpireDeployment
    the same default)."""
    return f"{class_name_a}-{slug(target)}"


def target_csi_driver(target: str) -> str:
    """The CSI driver name of B's agent package (one driver per agent: an agent serves one trust domain)."""
    return f"{slug(target)}.{CSI_DRIVER_A}"


@dataclass(frozen=True)
class Migration:
    source: str  # A: spec.trustDomain
    target: str  # B: spec.migration.to
    phase: str
    class_a: str
    class_b: str
    csi_driver_b: str
    ref: ResourceRef

    @property
    def index(self) -> int:
        return PHASES.index(self.phase)

    @property
    def twins(self) -> bool:
        """dual and cutover: registered in both domains, every rule accepts both IDs."""
        return self.phase in ("dual", "cutover")

    @property
    def presents_target(self) -> bool:
        """cutover and complete: pods mount B's CSI driver and present B."""
        return self.phase in ("cutover", "complete")

    def twin_domain(self, td: str) -> str | None:
        if not self.twins:
            return None
        return self.target if td == self.source else self.source if td == self.target else None

    def twin_id(self, value: str) -> str | None:
        """The ID (or 'spiffe://td/prefix', or Istio principal 'td/...') in the other domain."""
        scheme = SCHEME_PREFIX if value.startswith(SCHEME_PREFIX) else ""
        rest = value[len(scheme):]
        td, sep, path = rest.partition("/")
        other = self.twin_domain(td)
        return None if other is None else f"{scheme}{other}{sep}{path}"

    def condition_message(self) -> str:
        return f"trust domain migration {self.source} -> {self.target}: phase {self.phase}"


def read(ctx: Context, results: list[Result]) -> Migration | None:
    """``spec.migration`` of a resolved context, checked; in ``complete`` the context becomes B's."""
    spec = ctx.spec.get("migration")
    if not spec or ctx.ref is None or not ctx.trust_domain:
        return None
    name = ctx.ref.name
    target = str(spec["to"])
    before = len(results)
    try:
        validate_trust_domain(target)
    except SpiffeIDError as exc:
        results.append(error(f"IdentityContext {name}: spec.migration.to is not a valid SPIFFE trust domain: {exc}",
                             ctx.ref, "spec.migration.to", current_value=target))
    if target == ctx.trust_domain:
        results.append(error(
            f"IdentityContext {name}: spec.migration.to is {target!r}, the trust domain the package is already in "
            "(spec.trustDomain); a migration goes to another trust domain: set 'to' to the new one, or remove "
            "spec.migration", ctx.ref, "spec.migration.to", current_value=target))
    for i, peer in enumerate(ctx.spec.get("federation") or []):
        if isinstance(peer, dict) and peer.get("trustDomain") == target:
            results.append(error(
                f"IdentityContext {name}: spec.federation[{i}] federates with {target!r}, the trust domain the package "
                "migrates to; A and B are federated by the cluster's SPIRE packages during the migration (spire-config, "
                "SpireDeployment spec.migration), and two packages emitting that ClusterFederatedTrustDomain collide. "
                "Remove the entry", ctx.ref, f"spec.federation[{i}].trustDomain", current_value=target))
    if len(results) > before:
        return None
    class_a = ctx.class_name
    mig = Migration(source=ctx.trust_domain, target=target, phase=str(spec["phase"]), class_a=class_a,
                    class_b=str(spec.get("className") or target_class_name(class_a, target)),
                    csi_driver_b=str(spec.get("csiDriver") or target_csi_driver(target)), ref=ctx.ref)
    if mig.class_b == class_a:
        results.append(error(
            f"IdentityContext {name}: spec.migration.className is {class_a!r}, the className of A's controller "
            "manager; B's controller must have its own, or both would reconcile the same ClusterSPIFFEIDs. Remove it "
            f"(default {target_class_name(class_a, target)})", ctx.ref, "spec.migration.className",
            current_value=class_a))
        return None
    if mig.phase == "complete":
        ctx.trust_domain = target
        ctx.class_name = mig.class_b
    return mig


# ---- the phase the package was rendered in last (Kptfile condition) ----------------------

def condition_type(ctx: Context) -> str:
    return f"{CONDITION_KIND}.{ctx.ref.name if ctx.ref else ''}.migration"


def recorded_phase(ctx: Context, kf: KptfileView | None) -> tuple[str, str] | None:
    """(phase, target) the specializer recorded at the last render, or None."""
    if kf is None or ctx.ref is None:
        return None
    cond = kf.get_condition(condition_type(ctx))
    if cond is None:
        return None
    reason = str(cond.get("reason", ""))
    phase = reason[len("Phase"):].lower() if reason.startswith("Phase") else ""
    target = str(cond.get("message", "")).split(" -> ", 1)[-1].split(":", 1)[0]
    return (phase, target) if phase in PHASES else None


def check_phase_order(ctx: Context, kf: KptfileView | None) -> list[Result]:
    """One phase at a time, forward or one back (a rollback); never a jump, never away in mid-migration."""
    if ctx.ref is None or ctx.invalid or ctx.injection_pending:
        return []
    if kf is None:
        if ctx.migration is None:
            return []
        return [warning(f"IdentityContext {ctx.ref.name}: the package has no Kptfile, so the phase its last render "
                        "was in is not recorded and the order of the migration's phases cannot be checked",
                        ctx.ref, "spec.migration.phase")]
    last = recorded_phase(ctx, kf)
    mig: Migration | None = ctx.migration
    if last is None:
        if mig is not None and mig.phase != "prepare":
            return [error(
                f"IdentityContext {ctx.ref.name}: spec.migration.phase is {mig.phase!r}, but the package was never "
                f"rendered in 'prepare' (its Kptfile records no migration). Phases go prepare, dual, cutover, "
                "complete, one render each, so every package of the fleet passes through each: set phase: prepare",
                ctx.ref, "spec.migration.phase", current_value=mig.phase, proposed_value="prepare")]
        return []
    phase, target = last
    if mig is None:
        if phase == "prepare" or (phase == "complete" and ctx.trust_domain == target):
            return []  # abandoned before anything changed, or finished (spec.trustDomain is now B)
        return [error(
            f"IdentityContext {ctx.ref.name}: spec.migration was removed, but the package was rendered in phase "
            f"{phase!r} of the migration to {target} last: its peers may already present or accept only {target}. "
            f"Step back one phase at a time (set spec.migration back with phase: {PHASES[max(PHASES.index(phase) - 1, 0)]}), "
            f"or, once complete, set spec.trustDomain: {target} when removing spec.migration",
            ctx.ref, "spec.migration")]
    if target != mig.target and phase != "prepare":
        return [error(
            f"IdentityContext {ctx.ref.name}: spec.migration.to is {mig.target!r}, but the package is in phase "
            f"{phase!r} of a migration to {target!r}; finish or step back that migration before changing its target",
            ctx.ref, "spec.migration.to", current_value=mig.target, proposed_value=target)]
    step = mig.index - PHASES.index(phase)
    if step > 1:
        nxt = PHASES[PHASES.index(phase) + 1]
        return [error(
            f"IdentityContext {ctx.ref.name}: spec.migration.phase jumps from {phase!r} (the last render, Kptfile "
            f"condition {condition_type(ctx)}) to {mig.phase!r}, skipping "
            f"{', '.join(PHASES[PHASES.index(phase) + 1:mig.index])}; move one phase at a time: set phase: {nxt}",
            ctx.ref, "spec.migration.phase", current_value=mig.phase, proposed_value=nxt)]
    if step < -1:
        back = PHASES[PHASES.index(phase) - 1]
        return [error(
            f"IdentityContext {ctx.ref.name}: spec.migration.phase goes back from {phase!r} to {mig.phase!r}; step "
            f"back one phase at a time: set phase: {back}", ctx.ref, "spec.migration.phase",
            current_value=mig.phase, proposed_value=back)]
    if step == -1:
        return [info(f"IdentityContext {ctx.ref.name}: the migration steps back from {phase!r} to {mig.phase!r}",
                     ctx.ref, "spec.migration.phase")]
    return []


def record_phase(ctx: Context, kf: KptfileView | None) -> None:
    """The specializer's record of the phase rendered (read back by ``check_phase_order``)."""
    if kf is None or ctx.ref is None:
        return
    ctype = condition_type(ctx)
    mig: Migration | None = ctx.migration
    if mig is None:
        kf.remove_conditions(lambda c: not (isinstance(c, dict) and c.get("type") == ctype))
        return
    kf.set_condition(ctype, True, "Phase" + mig.phase.capitalize(), mig.condition_message())


# ---- hooks where the functions emit IDs -------------------------------------------------

def primary_and_alternate(ctx: Context, spiffe_id: Any) -> tuple[Any, Any]:
    """(the ID the pods present, the other one registered) of an identity; the other is None
    outside dual and cutover. ``spiffe_id`` is the ID formed in the context's trust domain."""
    from ..identity.spiffeid import parse
    mig: Migration | None = ctx.migration
    if mig is None or not mig.twins:
        return spiffe_id, None
    twin = parse(mig.twin_id(str(spiffe_id)) or str(spiffe_id))
    return (twin, spiffe_id) if mig.presents_target else (spiffe_id, twin)


def status_of(ctx: Context, alternate: Any) -> dict[str, Any] | None:
    mig: Migration | None = ctx.migration
    if mig is None:
        return None
    out: dict[str, Any] = {"phase": mig.phase, "to": mig.target}
    if alternate is not None:
        out["alternateSPIFFEID"] = str(alternate)
    return out


def extra_federation_peers(ctx: Context) -> list[str]:
    """Trust domains a registration may federate with because of the migration (dual, cutover: the twin)."""
    mig: Migration | None = ctx.migration
    if mig is None or not mig.twins:
        return []
    return [mig.target]


def accepts_domain(ctx: Context, td: str) -> bool:
    """Whether a workload of the package holds the bundle of ``td`` because of the migration."""
    mig: Migration | None = ctx.migration
    return mig is not None and mig.twin_domain(td) is not None


def twin_id(ctx: Context, value: str) -> str | None:
    mig: Migration | None = ctx.migration
    return None if mig is None else mig.twin_id(value)


def twin_name(name: str, mig: Migration) -> str:
    return f"{name}.{slug(mig.target)}"


def _set_class(obj: dict[str, Any], class_name: str) -> None:
    obj["spec"]["className"] = class_name
    labels = obj["metadata"].get("labels")
    if isinstance(labels, dict) and CLASS_LABEL in labels:
        labels[CLASS_LABEL] = class_name


def _federates(obj: dict[str, Any], add: str, drop: str) -> None:
    fw = [t for t in obj["spec"].get("federatesWith") or [] if t != drop]
    if add not in fw:
        fw.append(add)
    obj["spec"]["federatesWith"] = fw


def registrations(obj: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """A generated ClusterSPIFFEID or ClusterStaticEntry as the phase wants it: in dual and cutover A's
    (also federating with B) and B's twin (B's className, federating with A); in complete B's only,
    under the twin's name so the object B's controller reconciles is the same one from dual on."""
    mig: Migration | None = ctx.migration
    if mig is None or mig.phase == "prepare":
        return [obj]
    if mig.phase == "complete":
        done = copy.deepcopy(obj)
        done["metadata"]["name"] = twin_name(obj["metadata"]["name"], mig)
        return [done]
    a, b = copy.deepcopy(obj), copy.deepcopy(obj)
    _federates(a, mig.target, "")
    b["metadata"]["name"] = twin_name(obj["metadata"]["name"], mig)
    _set_class(b, mig.class_b)
    _federates(b, mig.source, mig.target)
    for key in ("spiffeID", "parentID"):  # a ClusterStaticEntry names its IDs (a ClusterSPIFFEID has a template)
        if key in b["spec"]:
            b["spec"][key] = mig.twin_id(str(b["spec"][key])) or b["spec"][key]
    return [a, b]


def federations(obj: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """A ClusterFederatedTrustDomain of the context's peers: in dual and cutover A's controller and
    B's each need it (B's under the twin name), in complete B's only."""
    mig: Migration | None = ctx.migration
    if mig is None or mig.phase == "prepare":
        return [obj]
    b = copy.deepcopy(obj)
    b["metadata"]["name"] = twin_name(obj["metadata"]["name"], mig)
    _set_class(b, mig.class_b)
    return [b] if mig.phase == "complete" else [obj, b]


def class_names(ctx: Context) -> tuple[str, ...]:
    """The classNames the package's registrations may carry: the context's, and B's in dual and cutover."""
    mig: Migration | None = ctx.migration
    own = ctx.class_name or ""
    return (own, mig.class_b) if mig is not None and mig.twins else (own,)


def csi_driver(ctx: Context) -> tuple[str, tuple[str, ...]]:
    """(the CSI driver pods mount, every driver a volume of ours may name)."""
    mig: Migration | None = ctx.migration
    if mig is None:
        return CSI_DRIVER_A, (CSI_DRIVER_A,)
    return (mig.csi_driver_b if mig.presents_target else CSI_DRIVER_A), (CSI_DRIVER_A, mig.csi_driver_b)


# ---- where the package still names A -------------------------------------------------------

@dataclass(frozen=True)
class Mention:
    ref: ResourceRef
    path: str
    value: str


def _names(value: str, td: str) -> bool:
    return value == td or value.startswith((f"{SCHEME_PREFIX}{td}/", f"{td}/")) or value == f"{SCHEME_PREFIX}{td}"


def mentions(items: list[dict[str, Any]], td: str, context_ref: ResourceRef | None = None) -> list[Mention]:
    """Every string naming trust domain ``td`` (the domain, an ID or prefix in it, an Istio principal) in the
    package's inputs: WorkloadIdentity and StaticIdentity specs, the IdentityContext's spec but for
    spec.trustDomain (the migration's origin) and spec.migration."""
    from .. import API_GROUP
    from ..krm.resourcelist import resource_ref
    out: list[Mention] = []

    def walk(node: Any, path: str, ref: ResourceRef) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}", ref)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]", ref)
        elif isinstance(node, str) and _names(node, td):
            out.append(Mention(ref, path, node))

    for obj in items:
        if str(obj.get("apiVersion", "")).split("/")[0] != API_GROUP or not isinstance(obj.get("spec"), dict):
            continue
        ref = resource_ref(obj)
        spec = obj["spec"]
        if obj.get("kind") == "IdentityContext":
            spec = {k: v for k, v in spec.items() if k not in ("trustDomain", "migration")}
        elif obj.get("kind") not in ("WorkloadIdentity", "StaticIdentity"):
            continue
        walk(spec, "spec", ref)
    return out


def check_complete(items: list[dict[str, Any]], ctx: Context) -> list[Result]:
    """The validator refuses ``complete`` while the package still names A anywhere."""
    mig: Migration | None = ctx.migration
    if mig is None or mig.phase != "complete":
        return []
    return [error(
        f"{m.ref.kind} {m.ref.name}: {m.path} names {m.value!r} in trust domain {mig.source}, but the package's "
        f"migration is complete: only {mig.target} exists for it now, so this would admit or federate with nothing. "
        f"Write it in {mig.target} (spiffe-kpt-migrate --rename does it for the whole package), or set "
        "spec.migration.phase back to cutover", m.ref, m.path, current_value=m.value,
        proposed_value=_rename(m.value, mig.source, mig.target))
        for m in mentions(items, mig.source, ctx.ref)]


def _rename(value: str, a: str, b: str) -> str:
    if value == a:
        return b
    for prefix in (SCHEME_PREFIX, ""):
        if value.startswith(f"{prefix}{a}/") or value == f"{prefix}{a}":
            return f"{prefix}{b}{value[len(prefix) + len(a):]}"
    return value


def rename(value: str, a: str, b: str) -> str:
    """``value`` written in B where it names A (the fleet tool's --rename)."""
    return _rename(value, a, b)


"""The policy model: who may reach whom, on which ports, independent of any backend.

Built once from the package's WorkloadIdentity ingress and egress rules (``rules.resolve_rules``) and
read by every backend (``istio``, ``networkpolicy``, ``multinetworkpolicy``, ``linkerd``) and
by the diagram, so they cannot disagree about what the rules mean. No YAML here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..krm.results import ResourceRef

BACKENDS = ("istio", "networkpolicy", "multinetworkpolicy", "linkerd")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
# The longest port range Istio gets listed port by port (its AuthorizationPolicy has no ranges).
MESH_RANGE_LIMIT = 64


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str  # TCP | UDP | SCTP
    name: str = ""  # the container port name the rule used, if any
    end: int = 0  # last port of a range (rulePort endPort), 0 for a single port

    def __str__(self) -> str:
        return f"{self.protocol} {self.number}" + (f"-{self.end}" if self.end else "")

    @property
    def numbers(self) -> range:
        return range(self.number, (self.end or self.number) + 1)

    @property
    def meshable(self) -> bool:
        """Whether Istio can enforce it: its sidecar carries TCP only, and its policies name single
        ports, so a range is listed port by port up to MESH_RANGE_LIMIT ports."""
        return self.protocol == "TCP" and len(self.numbers) <= MESH_RANGE_LIMIT


@dataclass(frozen=True)
class Endpoint:
    """A workload of the package with a resolved identity: what policies select it by."""

    identity: str
    namespace: str
    selector: tuple[tuple[str, str], ...]
    spiffe_id: str
    ref: ResourceRef

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.selector)

    @property
    def principal(self) -> str:
        """Istio's principal: the SPIFFE ID without its scheme."""
        return self.spiffe_id[len("spiffe://"):]


@dataclass(frozen=True)
class Peer:
    """One entry of a rule's ``from``.

    ``endpoint`` is set for identities of this package (selectable by labels); the others are
    known only by SPIFFE ID (``principal`` for Istio, which matches a trailing ``*`` as a
    prefix), plus CIDRs when they run in another cluster the context describes, or a namespace
    when their ID is Istio-shaped and in this cluster."""

    kind: str  # identity | spiffeID | spiffeIDPrefix | trustDomain
    value: str
    field_path: str
    principal: str
    endpoint: Endpoint | None = None
    cluster: str = ""
    cidrs: tuple[str, ...] = ()
    namespace: str = ""  # namespace of an out-of-package peer in this cluster, from an ID (or prefix) naming it
    # The peer's pod labels (peer 'podLabels'), with ``namespace``: the network backends then select
    # exactly its pods, not every pod of its namespace.
    pod_labels: tuple[tuple[str, str], ...] = ()
    # Why the network backends cannot select this peer and what would let them (when no
    # endpoint, CIDRs or namespace is known): the advice of their warning.
    advice: str = ""

    def __str__(self) -> str:
        return self.value + (f" (cluster {self.cluster})" if self.cluster else "")


@dataclass(frozen=True)
class Network:
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        """The value of k8s.v1.cni.cncf.io/policy-for and of pod network annotations."""
        return f"{self.namespace}/{self.name}"


@dataclass
class Rule:
    name: str
    target: Endpoint
    peers: list[Peer]
    ports: list[Port]
    network: Network | None
    allow_all: bool
    field_path: str  # spec.ingress[i] or spec.egress[i]
    description: str = ""
    # 'ingress': target is the server, peers its clients (spec.ingress[].from). 'egress': target
    # is the client that declared the rule, peers the servers it may reach (spec.egress[].to).
    direction: str = "ingress"

    @property
    def label(self) -> str:
        """How results name the rule: '<identity>/<rule>'."""
        return f"{self.target.identity}/{self.name}"

    @property
    def what(self) -> str:
        """'rule' or 'egress rule', for messages."""
        return "rule" if self.direction == "ingress" else "egress rule"


@dataclass(frozen=True)
class DnsEgress:
    allow: bool = True
    namespace: str = "kube-system"
    pod_labels: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)
    port: int = 53


@dataclass(frozen=True)
class IstiodEgress:
    """What a sidecar must reach under default deny when the istio backend is on: istiod's xDS
    and certificate port. Without it the proxies never get configuration or certificates, and
    every policy this function emits for Istio is moot."""
    allow: bool = True
    namespace: str = "istio-system"
    pod_labels: tuple[tuple[str, str], ...] = (("app", "istiod"),)
    port: int = 15012


@dataclass
class PolicyModel:
    backends: tuple[str, ...]
    default_deny: bool
    dns: DnsEgress
    istiod: IstiodEgress = field(default_factory=IstiodEgress)
    rules: list[Rule] = field(default_factory=list)  # ingress rules (enforced at the server)
    # Declared egress rules (spec.egress): enforced at the client by the network backends only.
    egress_rules: list[Rule] = field(default_factory=list)
    # Resolved identities by name, and the namespaces they live in (sorted): the scope of the
    # per-namespace baselines. Other namespaces are never touched.
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    _first_identity: dict[str, str] | None = field(default=None, repr=False, compare=False)
    # Identity names whose SPIFFE ID does not follow Istio's ns/<ns>/sa/<sa> shape.
    non_istio_ids: list[str] = field(default_factory=list)
    # Multus networks the pods of the package's workloads in ``namespaces`` are attached to
    # (``attachments.pod_attachments``): under default deny each gets a baseline, named by a rule or not.
    attachments: list[Network] = field(default_factory=list)
    # A trust-domain migration in dual or cutover (api.migration.Migration): every ID or principal a
    # mesh rule names is accepted in both domains.
    migration: Any = None

    def also(self, value: str) -> list[str]:
        """An ID or Istio principal, and its twin in the other domain while a migration is in dual or cutover."""
        twin = self.migration.twin_id(value) if self.migration is not None else None
        return [value] if twin is None else [value, twin]

    def enabled(self, backend: str) -> bool:
        return backend in self.backends

    def egress_enforcement(self, rule: Rule) -> str:
        """For the meshes' infos on an egress rule: which enabled backend enforces it at the
        client (only a network backend can), named only when the context enables it."""
        need = "multinetworkpolicy" if rule.network is not None else "networkpolicy"
        if self.enabled(need) and self.default_deny:
            return f"is enforced by {need} only"
        why = "it is not enabled" if not self.enabled(need) else "defaultDeny is off"
        return f"could be enforced by {need} only, and is not ({why})"

    def baseline_name(self, base: str, namespace: str) -> str:
        """Name of a namespace baseline (default deny) this package emits: '<base>-<identity>',
        after the package's first identity (alphabetically) in that namespace. Packages sharing a
        namespace (the 5G core's SMF and AMF in free5gc-cp) then each bring their own, never the
        same object twice (ConfigSync rejects duplicates); identical deny-alls add up to one."""
        if self._first_identity is None:  # once: with a namespace per identity, a scan per call is quadratic
            self._first_identity = {}
            for e in self.endpoints.values():
                if e.namespace not in self._first_identity or e.identity < self._first_identity[e.namespace]:
                    self._first_identity[e.namespace] = e.identity
        return f"{base}-{self._first_identity[namespace]}"

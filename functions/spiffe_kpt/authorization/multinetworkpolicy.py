"""MultiNetworkPolicy backend (k8s.cni.cncf.io/v1beta1) for rules bound to a Multus network.

Telco interfaces (N2, N3, N4) usually live on secondary interfaces that Multus attaches from a
NetworkAttachmentDefinition; Kubernetes NetworkPolicy and the mesh never see that traffic.
multi-networkpolicy applies NetworkPolicy's spec and semantics per network, choosing the
network by the annotation ``k8s.v1.cni.cncf.io/policy-for: <namespace>/<net-attach-def>``.
So the shape is NetworkPolicy's, per network: a ``default-deny-<network>-<identity>`` (as
NetworkPolicy's baseline, named after the package's first identity there) in every namespace of
the package's identities, for every network a rule names and every network a pod of the
package is attached to (``k8s.v1.cni.cncf.io/networks``; an attachment no rule names is then
closed, not left open), ``<identity>-<network>-ingress`` at servers and
``<identity>-<network>-egress`` at clients (from the package's ingress rules and the client's own
``spec.egress`` rules bound to that network, merged). The network of an egress rule is the
client's attachment.
"""

from __future__ import annotations

from typing import Any

from ..krm.results import Result
from .model import Network, PolicyModel
from .networkpolicy import add_declared_egress, add_egress, ingress_entry, peers_of, policies

API_VERSION = "k8s.cni.cncf.io/v1beta1"
KIND = "MultiNetworkPolicy"
KINDS = frozenset({(API_VERSION, KIND)})
POLICY_FOR = "k8s.v1.cni.cncf.io/policy-for"


def build(model: PolicyModel) -> tuple[list[tuple[str, dict[str, Any]]], list[Result]]:
    objs: list[tuple[str, dict[str, Any]]] = []
    results: list[Result] = []
    by_net: dict[Network, list] = {}
    if model.default_deny:
        # Every attachment of the package's pods, not only those a rule names: an attachment
        # without a baseline accepts anything, from any pod or host on that network.
        for net in model.attachments:
            by_net[net] = []
    for rule in model.rules + (model.egress_rules if model.default_deny else []):
        if rule.network is not None:
            by_net.setdefault(rule.network, []).append(rule)
    # Names carry the network's name; two networks of one name (in different namespaces) would
    # give two objects one name, so those carry '<namespace>-<name>'.
    names = [n.name for n in by_net]
    label = {n: n.name if names.count(n.name) == 1 else f"{n.namespace}-{n.name}" for n in by_net}
    for net in sorted(by_net, key=lambda n: n.ref):
        rules = by_net[net]
        ingress: dict[str, list[dict[str, Any]]] = {}
        egress: dict[str, list[dict[str, Any]]] = {}
        for rule in rules:
            if rule.direction == "egress":
                continue  # after the derived egress, so a repeated one merges into it
            entries = ingress.setdefault(rule.target.identity, [])
            entry = ingress_entry(rule, peers_of(rule, "multinetworkpolicy", results, model))
            if entry is not None:
                entries.append(entry)
            if model.default_deny:
                add_egress(rule, egress)
        for rule in rules:
            if rule.direction == "egress":
                add_declared_egress(rule, egress, "multinetworkpolicy", results, model)
        ann = {POLICY_FOR: net.ref}
        if model.default_deny:
            # Every namespace of the package's identities, not only those of this network's rules:
            # any pod there may be attached to the network, and zero trust covers it too.
            for ns in model.namespaces:
                objs.append(("", {"apiVersion": API_VERSION, "kind": KIND, "metadata": {
                    "name": model.baseline_name(f"default-deny-{label[net]}", ns), "namespace": ns, "annotations": dict(ann)},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}))
        objs.extend(policies(model, ingress, egress,
                              lambda ident, direction, n=label[net]: f"{ident}-{n}-{direction}", ann,
                              API_VERSION, KIND))
    return objs, results

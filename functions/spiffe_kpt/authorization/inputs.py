"""Checks of the authorization input that the schemas cannot express, each a mistake that would
otherwise render without a word: a rule bound to a Multus network the workload is not on, an
address range of IdentityContext spec.policy.peerClusters that is not a network, and a
mesh-enforced rule admitting a trust domain whose SVIDs the workload can never verify.

Called from ``rules.resolve_rules``, so the generator and the validator report the same.
"""

from __future__ import annotations

import difflib
import ipaddress

from ..api import migration
from ..api.context import Context, federation_trust_domains
from ..api.paths import get_path
from ..api.resolve import Identity
from ..krm.results import Result, error, name_list, warning
from . import attachments
from .model import Network, Peer, Port

MESHES = ("istio", "linkerd")


def check_network(ident: Identity, rname: str, direction: str, network: Network, value: str, fpath: str,
                  nads: frozenset[str], requested: attachments.Requested) -> Result | None:
    """A rule's network must be an attachment the package defines or the workload's pods request:
    otherwise the MultiNetworkPolicy guards a network nobody is on (and the real one stays open)."""
    if network.ref in requested.refs or attachments.exists(network.ref, nads):
        return None  # defined here but not requested by the pods: the advisory unattached_network
    known = sorted({n.replace(f"{attachments.ANY_NAMESPACE}/", "<any namespace>/") for n in nads} | requested.refs)
    listed = name_list([f"{n} ({_origin(n, nads, requested, ident)})" for n in known]) or "none"
    guess = _closest(network.ref, known)
    mean = ""
    proposed = None
    if guess:
        ns, _, name = guess.rpartition("/")
        proposed = name if ns == ident.namespace else guess
        mean = f" Did you mean {proposed!r}?"
    unread = f" ({requested.problem})" if requested.problem else ""
    return error(
        f"WorkloadIdentity {ident.name}: {direction} rule {rname!r} is bound to network {network.ref}, but no "
        f"{attachments.NAD_KIND} of the package is {network.ref} and the pods of {ident.workload_ref} do not "
        f"request it in their {attachments.NETWORKS_ANNOTATION} annotation{unread}, so the MultiNetworkPolicy would "
        f"guard a network the workload is not on. Attachments that exist: {listed}.{mean} Name one of them "
        "('name' for the workload's namespace, or 'namespace/name'), or attach the pods to the network in the pod "
        f"template's {attachments.NETWORKS_ANNOTATION} annotation", ident.ref, fpath,
        current_value=value, proposed_value=proposed)


def unattached_network(ident: Identity, rname: str, direction: str, network: Network, value: str, fpath: str,
                       nads: frozenset[str], requested: attachments.Requested) -> Result | None:
    """Advisory: the package defines the network but the workload's pods do not request it, so
    (unless something outside the package attaches them) the rule's policy selects no pod."""
    if network.ref in requested.refs or not attachments.exists(network.ref, nads):
        return None
    return warning(
        f"WorkloadIdentity {ident.name}: {direction} rule {rname!r} is bound to network {network.ref}, which the "
        f"package defines, but the pods of {ident.workload_ref} do not request it in their "
        f"{attachments.NETWORKS_ANNOTATION} annotation, so the rule's MultiNetworkPolicy selects none of them; add "
        f"{network.ref} to that annotation (or bind the rule to a network the pods are on)", ident.ref, fpath,
        current_value=value)


def _origin(ref: str, nads: frozenset[str], requested: attachments.Requested, ident: Identity) -> str:
    where = []
    if ref.startswith("<any namespace>/") or attachments.exists(ref, nads):
        where.append(attachments.NAD_KIND)
    if ref in requested.refs:
        where.append(f"requested by {ident.workload_ref}")
    return ", ".join(where)


def _closest(ref: str, known: list[str]) -> str:
    name = ref.rpartition("/")[2]
    same_name = [k for k in known if k.rpartition("/")[2] == name and not k.startswith("<")]
    if same_name:
        return same_name[0]  # the namespace is what is wrong ('n4' for 'core-up/n4')
    close = difflib.get_close_matches(ref, [k for k in known if not k.startswith("<")], n=1, cutoff=0.6)
    return close[0] if close else ""


def check_peer_clusters(ctx: Context) -> list[Result]:
    """Every spec.policy.peerClusters[].cidrs[] is a network as ipaddress reads it, and cluster names
    are unique (a repeated name silently replaced the earlier entry's ranges)."""
    out: list[Result] = []
    ctx_name = ctx.ref.name if ctx.ref else ""
    seen: dict[str, int] = {}
    for i, cluster in enumerate(get_path(ctx.spec, "policy", "peerClusters", default=())):
        base = f"spec.policy.peerClusters[{i}]"
        name = cluster.get("name", "")
        if name in seen:
            out.append(error(
                f"IdentityContext {ctx_name}: {base} repeats cluster {name!r} of spec.policy.peerClusters[{seen[name]}]; "
                "only one entry would count. Put all of the cluster's ranges in one entry's cidrs", ctx.ref,
                f"{base}.name", current_value=name))
        seen.setdefault(name, i)
        for j, value in enumerate(cluster.get("cidrs") or []):
            found = cidr_problem(str(value))
            if found is None:
                continue
            problem, corrected, severe = found
            fix = f"write {corrected}" if corrected else "write a network such as 10.60.0.0/16 or fd00:10:60::/48"
            make = error if severe else warning
            out.append(make(
                f"IdentityContext {ctx_name}: {base}.cidrs[{j}] ({name}) {value!r} {problem}; {fix}", ctx.ref,
                f"{base}.cidrs[{j}]", current_value=value, proposed_value=corrected))
    return out


def cidr_problem(value: str) -> tuple[str, str | None, bool] | None:
    """(what is wrong, the corrected network if there is one, whether it is an error), or None
    when ``value`` is a network to put in an ipBlock as it is."""
    try:
        net = ipaddress.ip_network(value)  # strict: host bits must be zero
    except ValueError:
        return _invalid(value)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.network_address.ipv4_mapped:
        v4 = ipaddress.ip_network((net.network_address.ipv4_mapped, net.prefixlen - 96))
        return ("is an IPv4-mapped IPv6 range: a policy compares it with IPv6 addresses only, so it never matches "
                "the IPv4 peers it names", str(v4), True)
    if net.prefixlen == 0:
        return (f"is every IPv{net.version} address: the peer cluster would be anyone, including the internet",
                None, False)
    return None


def _invalid(value: str) -> tuple[str, str | None, bool]:
    addr, _, plen = value.partition("/")
    try:
        loose = ipaddress.ip_network(value, strict=False)
        return (f"has host bits set ({addr} is inside the /{plen} network {loose.network_address}, not its "
                "start); policy engines read it as that whole network, or reject it", str(loose), True)
    except ValueError:
        pass
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError as exc:
        octets = addr.split(".")
        if len(octets) == 4 and all(o.isdigit() for o in octets):
            fixed = ".".join(str(int(o)) for o in octets)
            try:
                corrected = str(ipaddress.ip_network(f"{fixed}/{plen}", strict=False))
            except ValueError:
                corrected = None
            return (f"has leading zeros, which some parsers read as octal ({exc})", corrected, True)
        return f"is not an IP network: {addr!r} is not an IPv4 or IPv6 address", None, True
    if not plen.isdigit() or int(plen) > ip.max_prefixlen:
        hint = " (that is an IPv6 prefix length: is the address meant to be IPv6?)" \
            if ip.version == 4 and plen.isdigit() and int(plen) <= 128 else ""
        return f"has prefix length /{plen}, but an IPv{ip.version} prefix is /0 to /{ip.max_prefixlen}{hint}", None, True
    return "is not an IP network", None, True


def check_mesh_trust(ident: Identity, rname: str, peers: list[Peer], ports: list[Port], network: Network | None,
                     backends: tuple[str, ...], ctx: Context) -> list[Result]:
    """An ingress rule a mesh enforces may only admit trust domains whose bundle the workload holds:
    SPIRE hands a workload the bundles of its own trust domain and of those its registration
    federates with (spec.svid.federatesWith, which must be federation peers of the context).
    Any other trust domain's SVIDs fail the mTLS handshake, so the rule admits none of them."""
    meshes = [b for b in MESHES if b in backends]
    if not meshes or network is not None or not ctx.trust_domain or not any(p.protocol == "TCP" for p in ports):
        return []
    svid = ident.spec.get("svid") or {}
    federates = {str(t) for t in svid.get("federatesWith") or []}
    peers_of_ctx = federation_trust_domains(ctx.spec)
    ctx_name = ctx.ref.name if ctx.ref else ""
    out: list[Result] = []
    for peer in peers:
        td = peer.principal.split("/", 1)[0]
        if peer.endpoint is not None or td == ctx.trust_domain or td in federates or migration.accepts_domain(ctx, td):
            continue
        mesh = " and ".join(meshes)
        what = f"{peer.kind} {peer.value}" + ("" if peer.kind == "trustDomain" else f" (trust domain {td})")
        if td in peers_of_ctx:
            why = (f"the IdentityContext federates with {td}, but this identity's spec.svid.federatesWith does not "
                   f"list it, so SPIRE never hands the workload that trust domain's bundle")
            fix = f"add {td} to spec.svid.federatesWith"
        else:
            known = ", ".join(peers_of_ctx) or "none"
            why = (f"{td} is not federated: IdentityContext {ctx_name} has no spec.federation entry for it "
                   f"(federation peers: {known}) and spec.svid.federatesWith does not list it")
            fix = (f"fix the trust domain if it is a typo, or federate: add {td} to the IdentityContext's "
                   "spec.federation and to this identity's spec.svid.federatesWith")
        out.append(error(
            f"WorkloadIdentity {ident.name}: ingress rule {rname!r} admits {what}, which {mesh} enforces by mTLS; "
            f"{why}, so the mesh can never verify those SVIDs and the rule admits none of them. To admit it, {fix}",
            ident.ref, f"{peer.field_path}.{peer.kind}", current_value=peer.value))
    return out


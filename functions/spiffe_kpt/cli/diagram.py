"""``spiffe-kpt-diagram``: who may talk to whom, as a picture.

    spiffe-kpt-diagram PKG                   # writes PKG/flows.svg
    spiffe-kpt-diagram PKG -o flows.png      # .svg, .png (Graphviz's dot), .dot, or .md (Mermaid)

PKG is a package or a directory of packages (the 5G core's upf, smf and amf): identities of all
of them are drawn together, grouped by cluster and namespace, so a peer one package names by
SPIFFE ID becomes the identity of its sibling. Peers outside the packages are drawn apart, by
trust domain. An edge goes from client to server, labelled with its ports, protocols, network
and the backends that enforce it; under default deny a flow without an edge is denied. A flow
no enabled backend enforces is drawn red and dashed; a flow between two drawn identities that
one end does not declare (the server admits it, the client declares no egress, or the reverse)
is drawn grey and dotted: default deny drops it.

The flows come from the authorization function's policy model (``authorization.rules``), the
same one every backend reads, and its public helpers (``enforcers``, ``coverage_warnings``);
nothing here re-reads the rules. Graphviz's ``dot`` lays out SVG and PNG (Debian: ``apt-get
install graphviz``); ``.dot`` and ``.md`` need nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..api.resolve import resolve
from ..authorization import coverage_warnings, enforcers
from ..authorization.model import Endpoint, Peer, PolicyModel, Port, Rule
from ..authorization.packagefiles import read_items
from ..authorization.rules import resolve_rules
from ..krm.resourcelist import ResourceList
from ..local_render import packages_under

FORMATS = ("svg", "png", "dot", "md")


class DiagramError(Exception):
    pass


@dataclass
class Package:
    path: Path
    cluster: str
    trust_domain: str
    model: PolicyModel
    # The pipeline runs spiffe-authorization: without it the rules are drawn but nothing enforces them.
    authorizes: bool = True


@dataclass
class Node:
    key: str
    title: str
    detail: str
    # ("cluster", <cluster>, <trust domain>, <namespace>) for an identity of the packages,
    # ("outside", <trust domain>) for a peer known only by ID, ("any",) for "any peer".
    group: tuple[str, ...]


@dataclass
class Flow:
    """Client -> server, per port (protocol, number, end of a range or 0): the server's ingress rule admitting it and
    the client's egress rule allowing it, each with its package. Each end names its own network
    (a Multus attachment of its pod), so the two rules of one flow can name different ones."""
    client: str
    server: str
    ingress: dict[tuple[str, int, int], tuple[Rule, Package]] = field(default_factory=dict)
    egress: dict[tuple[str, int, int], tuple[Rule, Package]] = field(default_factory=dict)


@dataclass
class Edge:
    client: str
    server: str
    label: str
    style: str  # enforced | unenforced | one-sided


@dataclass
class Graph:
    nodes: dict[str, Node]
    edges: list[Edge]
    notes: list[str]


def load_packages(root: Path) -> list[Package]:
    pkgs = packages_under(root)
    if not pkgs:
        raise DiagramError(f"{root} is not a kpt package (it has no Kptfile, nor has any directory below it)")
    out: list[Package] = []
    problems: list[str] = []
    for pkg in pkgs:
        try:
            items = read_items(str(pkg))
        except (OSError, ValueError) as exc:
            raise DiagramError(f"cannot read package {pkg}: {exc}") from exc
        res = resolve(ResourceList(items))
        rr = resolve_rules(res.identities, res.context, items)
        errs = [r for r in res.results + rr.errors if r.severity.value == "error"]
        problems += [f"{pkg}: {r}" for r in errs]
        out.append(Package(pkg, res.context.cluster_name, res.context.trust_domain, rr.model,
                           _runs_authorization(items)))
    if problems:
        raise DiagramError("the packages do not resolve; fix these first (spiffe-kpt-render shows them too):\n"
                           + "\n".join(problems))
    return out


def _runs_authorization(items: list[dict]) -> bool:
    for item in items:
        if item.get("kind") == "Kptfile":
            pipeline = item.get("pipeline") or {}
            for fn in (pipeline.get("mutators") or []) + (pipeline.get("validators") or []):
                ref = str(fn.get("image") or fn.get("exec") or "")
                if ref.endswith("spiffe-authorization") or "spiffe-kpt/authorization:" in ref:
                    return True
    return False


def _trust_domain(peer: Peer) -> str:
    if peer.kind == "trustDomain":
        return peer.value
    return peer.value.removeprefix("spiffe://").split("/", 1)[0]


def build_graph(pkgs: list[Package]) -> Graph:
    nodes: dict[str, Node] = {}
    for pkg in pkgs:
        for ep in pkg.model.endpoints.values():
            nodes[ep.spiffe_id] = Node(ep.spiffe_id, ep.identity, ep.spiffe_id,
                                       ("cluster", pkg.cluster, pkg.trust_domain, ep.namespace))
    ours = {ep.spiffe_id: (ep, pkg) for pkg in pkgs for ep in pkg.model.endpoints.values()}

    def peer_node(peer: Peer) -> str:
        if peer.endpoint is not None:
            return peer.endpoint.spiffe_id
        if peer.kind == "spiffeID" and peer.value in ours:
            return peer.value  # a sibling package's identity
        key = f"peer:{peer}"
        if key not in nodes:
            what = {"spiffeID": "", "spiffeIDPrefix": "IDs under ", "trustDomain": "any ID of "}[peer.kind]
            where = f"cluster {peer.cluster}" if peer.cluster else "outside these packages"
            nodes[key] = Node(key, f"{what}{peer.value}", where, ("outside", _trust_domain(peer)))
        return key

    flows: dict[tuple[str, str], Flow] = {}
    for pkg in pkgs:
        for rule in pkg.model.rules + pkg.model.egress_rules:
            own = rule.target.spiffe_id
            others = [peer_node(p) for p in rule.peers]
            if rule.allow_all:
                nodes.setdefault("any", Node("any", "any peer", "every client", ("any",)))
                others.append("any")
            for other in others:
                client, server = (other, own) if rule.direction == "ingress" else (own, other)
                flow = flows.setdefault((client, server), Flow(client, server))
                side = flow.ingress if rule.direction == "ingress" else flow.egress
                for port in rule.ports:
                    side[(port.protocol, port.number, port.end)] = (rule, pkg)

    warned = _warned(pkgs)
    index = {id(pkg): i for i, pkg in enumerate(pkgs)}

    def egress_unenforced(rule: Rule, pkg: Package) -> bool:
        return (index[id(pkg)], rule.target.ref.name, rule.field_path) in warned

    edges: list[Edge] = []
    for flow in flows.values():
        edges += _edges(flow, ours, egress_unenforced)
    return Graph(nodes, edges, _notes(pkgs))


def _warned(pkgs: list[Package]) -> set[tuple[int, str, str]]:
    """(package, identity, rule path) of every rule the authorization function warns that no
    enabled backend enforces (``coverage_warnings``: an egress rule whose backend is off)."""
    out: set[tuple[int, str, str]] = set()
    for i, pkg in enumerate(pkgs):
        for r in coverage_warnings(pkg.model):
            if r.severity.value == "warning" and r.resource_ref is not None:
                out.add((i, r.resource_ref.name, r.field_path.removesuffix(".ports")))
    return out


def _denies(pkg: Package) -> bool:
    """The package isolates its workloads: what its rules do not open is dropped."""
    return pkg.authorizes and pkg.model.default_deny


def _edges(flow: Flow, ours: dict[str, tuple[Endpoint, Package]],
           egress_unenforced: Callable[[Rule, Package], bool]) -> list[Edge]:
    """One edge per group of ports that share a status and label."""
    groups: dict[tuple[str, str], list[str]] = {}
    for port in sorted(set(flow.ingress) | set(flow.egress)):
        protocol, number, end = port
        ported = Port(number, protocol, end=end)
        ing, eg = flow.ingress.get(port), flow.egress.get(port)
        names = sorted({r.name for r, _ in (x for x in (ing, eg) if x)})
        backends: list[str] = []
        bare: list[str] = []  # the ends whose rule no enabled backend enforces
        if ing:
            b = enforcers(ing[1].model, ing[0].network is not None, ported) if ing[1].authorizes else []
            backends += b
            if not b:
                bare.append(f"ingress at {ing[0].target.identity}")
        if eg:
            if not eg[1].authorizes or egress_unenforced(*eg):
                bare.append(f"egress at {eg[0].target.identity}")
            elif eg[1].model.default_deny:
                # Egress is the network backends' (the meshes enforce at the server only).
                backends.append("multinetworkpolicy egress" if eg[0].network is not None else "networkpolicy egress")
        unenforced = bool(bare)
        status = "unenforced" if unenforced else "enforced"
        missing = ""
        # Both ends drawn as identities of these packages: a half declared flow is dropped by
        # the other end's default deny, so it must not read as allowed.
        if not ing and flow.server in ours and _denies(ours[flow.server][1]):
            status, missing = "one-sided", f"denied: {ours[flow.server][0].identity} declares no ingress for it"
        # A client in the server's own package needs no egress rule: the function derives its
        # egress from the server's ingress. A client in a sibling package must declare it.
        derived = ing is not None and flow.client in ours and ours[flow.client][1] is ing[1]
        if not eg and not derived and flow.client in ours and _denies(ours[flow.client][1]):
            status, missing = "one-sided", f"denied: {ours[flow.client][0].identity} declares no egress for it"
        head = "/".join(names)
        desc = next((r.description for r, _ in (x for x in (ing, eg) if x) if r.description), "")
        label = f"{head} ({desc})" if desc else head
        tail = [f"[{', '.join(dict.fromkeys(backends))}]"] if backends else []
        if bare:
            tail.append(f"not enforced: {', '.join(bare)}")
        if missing:
            tail = [f"({missing})"]
        nets = []
        if eg and eg[0].network is not None:
            nets.append(f"from {eg[0].network.ref}")
        if ing and ing[0].network is not None:
            nets.append(f"to {ing[0].network.ref}")
        key = (status, f"{label}|{' '.join(tail)}|{' '.join(nets)}")
        groups.setdefault(key, []).append(str(ported))
    out = []
    for (status, text), ports in groups.items():
        label, tail, nets = text.split("|", 2)
        line2 = ", ".join(ports) + (f" {nets}" if nets else "")
        out.append(Edge(flow.client, flow.server, f"{label}\n{line2}\n{tail}", status))
    return out


def _notes(pkgs: list[Package]) -> list[str]:
    notes = []
    bare = [p for p in pkgs if not p.authorizes]
    if bare:
        notes.append("no spiffe-authorization in the pipeline of " + ", ".join(p.path.name for p in bare)
                     + ": nothing restricts their flows (the edges are only what their rules declare)")
    pkgs = [p for p in pkgs if p.authorizes]
    deny = [p for p in pkgs if p.model.default_deny]
    if deny:
        notes.append("default deny on (" + ", ".join(p.path.name for p in deny)
                     + "): a flow without an edge is denied")
    allow = [p for p in pkgs if not p.model.default_deny]
    if allow:
        notes.append("default deny off (" + ", ".join(p.path.name for p in allow)
                     + "): flows without an edge are not restricted")
    return notes


# ---- Graphviz ------------------------------------------------------------------------------

def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


EDGE_STYLE = {
    "enforced": 'color="#1f5f99", fontcolor="#1f5f99"',
    "unenforced": 'color="#c62828", fontcolor="#c62828", style=dashed, penwidth=2',
    "one-sided": 'color="#9e9e9e", fontcolor="#757575", style=dotted',
}


LEGEND = ("blue: allowed, by the backends in brackets; red dashed: no enabled backend enforces it; "
          "grey dotted: one end does not declare it, so default deny drops it")


def to_dot(graph: Graph) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(graph.nodes)}
    lines = ["digraph flows {", "  rankdir=TB; compound=true; newrank=true;",
             '  graph [fontname="Helvetica", fontsize=11, labelloc=t, label=' + _dq("\n".join(graph.notes + [LEGEND]))
             + "];",
             '  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled", fillcolor="#e8f1fb"];',
             '  edge [fontname="Helvetica", fontsize=9];']
    clusters: dict[tuple[str, str], dict[str, list[Node]]] = {}
    outside: dict[str, list[Node]] = {}
    for node in graph.nodes.values():
        if node.group[0] == "cluster":
            clusters.setdefault((node.group[1], node.group[2]), {}).setdefault(node.group[3], []).append(node)
        elif node.group[0] == "outside":
            outside.setdefault(node.group[1], []).append(node)
    ours_td = {td for _, td in clusters}
    n = 0
    for (cluster, td), namespaces in sorted(clusters.items()):
        lines.append(f"  subgraph cluster_{n} {{ label={_dq(f'cluster {cluster} ({td})')}; style=rounded; "
                     'color="#1f5f99";')
        n += 1
        for ns, members in sorted(namespaces.items()):
            lines.append(f"    subgraph cluster_{n} {{ label={_dq(f'namespace {ns}')}; style=dashed; "
                         'color="#7a9cc6";')
            n += 1
            for node in sorted(members, key=lambda x: x.title):
                lines.append(f"      {ids[node.key]} [id={_dq(node.key)}, label={_dq(node.title + chr(10) + node.detail)}];")
            lines.append("    }")
        lines.append("  }")
    for td, members in sorted(outside.items()):
        title = f"outside these packages ({td})" if td in ours_td else f"other trust domain {td}"
        lines.append(f"  subgraph cluster_{n} {{ label={_dq(title)}; style=\"rounded,dashed\"; color=\"#8d6e63\";")
        n += 1
        for node in sorted(members, key=lambda x: x.title):
            lines.append(f"    {ids[node.key]} [id={_dq(node.key)}, label={_dq(node.title + chr(10) + node.detail)}, "
                         'fillcolor="#f5efe6", shape=box, style="rounded,filled,dashed"];')
        lines.append("  }")
    if "any" in graph.nodes:
        lines.append(f"  {ids['any']} [id=\"any\", label={_dq('any peer')}, shape=ellipse, fillcolor=\"#fff3cd\"];")
    for e in graph.edges:
        # The SVG element ids name both ends and the status, for tests and for scripts reading the SVG.
        eid = _dq(f"flow {e.style}: {e.client} -> {e.server}: {e.label.splitlines()[1]}")
        lines.append(f"  {ids[e.client]} -> {ids[e.server]} [id={eid}, label={_dq(e.label)}, {EDGE_STYLE[e.style]}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_with_dot(dot_text: str, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError("Graphviz's `dot` is not on PATH, and it draws SVG and PNG: install it "
                           "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), "
                           "or write -o flows.dot or -o flows.md, which need nothing")
    p = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True)
    if p.returncode != 0:
        raise DiagramError(f"dot -T{fmt} failed: {p.stderr.decode(errors='replace').strip()}")
    return p.stdout


# ---- Mermaid -------------------------------------------------------------------------------

def _mq(text: str) -> str:
    # Mermaid labels are quoted; a double quote inside would end them.
    return '"' + text.replace('"', "'").replace("\n", "<br/>") + '"'


def to_mermaid(graph: Graph) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    groups: dict[tuple[str, ...], list[Node]] = {}
    for node in graph.nodes.values():
        groups.setdefault(node.group[:3] if node.group[0] == "cluster" else node.group, []).append(node)
    ours_td = {g[2] for g in groups if g[0] == "cluster"}
    n = 0
    for group, _ in sorted(groups.items()):
        if group[0] == "cluster":
            lines.append(f"  subgraph g{n}[{_mq(f'cluster {group[1]} ({group[2]})')}]")
            n += 1
            by_ns: dict[str, list[Node]] = {}
            for node in graph.nodes.values():
                if node.group[:3] == group:
                    by_ns.setdefault(node.group[3], []).append(node)
            for ns, members in sorted(by_ns.items()):
                lines.append(f"    subgraph g{n}[{_mq(f'namespace {ns}')}]")
                n += 1
                lines += [f"      {ids[m.key]}[{_mq(m.title + chr(10) + m.detail)}]"
                          for m in sorted(members, key=lambda x: x.title)]
                lines.append("    end")
            lines.append("  end")
        elif group[0] == "outside":
            title = f"outside these packages ({group[1]})" if group[1] in ours_td else f"other trust domain {group[1]}"
            lines.append(f"  subgraph g{n}[{_mq(title)}]")
            n += 1
            lines += [f"    {ids[m.key]}([{_mq(m.title + chr(10) + m.detail)}])"
                      for m in sorted(groups[group], key=lambda x: x.title)]
            lines.append("  end")
        else:
            lines.append(f"  {ids['any']}(({_mq('any peer')}))")
    styles = []
    for i, e in enumerate(graph.edges):
        arrow = {"enforced": "-->", "unenforced": "-.->", "one-sided": "-.->"}[e.style]
        lines.append(f"  {ids[e.client]} {arrow}|{_mq(e.label)}| {ids[e.server]}")
        if e.style != "enforced":
            styles.append(f"  linkStyle {i} stroke:{'#c62828' if e.style == 'unenforced' else '#9e9e9e'}")
    return "\n".join(lines + styles) + "\n"


def to_markdown(graph: Graph, title: str) -> str:
    legend = ("Edges go from client to server: ports, network and the backends that enforce them. "
              "Dashed red: no enabled backend enforces the flow. Dotted grey: only one end declares it, "
              "so default deny drops it.")
    return (f"# Flows of {title}\n\n" + "".join(f"- {n}\n" for n in graph.notes) + f"\n{legend}\n\n"
            "```mermaid\n" + to_mermaid(graph) + "```\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="spiffe-kpt-diagram",
                                 description="Draw who may talk to whom in a package (or a directory of packages).")
    ap.add_argument("package", type=Path)
    ap.add_argument("-o", "--output", type=Path,
                    help="file to write; its suffix picks the format: .svg (default PACKAGE/flows.svg), .png, "
                         ".dot (Graphviz source) or .md (Markdown with a Mermaid block)")
    args = ap.parse_args(argv)
    out = args.output or args.package / "flows.svg"
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        print(f"spiffe-kpt-diagram: cannot write {out}: the suffix must be one of "
              f"{', '.join('.' + f for f in FORMATS)}", file=sys.stderr)
        return 2
    if not args.package.is_dir():
        print(f"spiffe-kpt-diagram: {args.package} is not a directory", file=sys.stderr)
        return 2
    try:
        graph = build_graph(load_packages(args.package))
        if fmt == "md":
            data = to_markdown(graph, args.package.resolve().name).encode()
        elif fmt == "dot":
            data = to_dot(graph).encode()
        else:
            data = render_with_dot(to_dot(graph), fmt)
    except DiagramError as exc:
        print(f"spiffe-kpt-diagram: {exc}", file=sys.stderr)
        return 1
    out.write_bytes(data)
    print(f"wrote {out}: {sum(1 for n in graph.nodes.values() if n.group[0] == 'cluster')} identities, "
          f"{len(graph.edges)} flows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

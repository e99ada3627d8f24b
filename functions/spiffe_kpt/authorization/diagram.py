"""Who may talk to whom, drawn from the same policy model the backends use (Mermaid).

``mermaid(model)`` is pure; ``python -m spiffe_kpt.authorization.diagram PKG [OUT]`` reads a
package directory, resolves it and writes ``OUT`` (default ``PKG/authorization.mmd``). The
kpt function also keeps the text in a local-config ConfigMap of the package, so a rendered
package carries its own picture.
"""

from __future__ import annotations

import os
import sys

from .model import PolicyModel, Rule


def _q(text: str) -> str:
    # Mermaid labels are quoted; a double quote inside would end them.
    return text.replace('"', "'")


def _edge_label(rule: Rule) -> str:
    ports = ", ".join(str(p) for p in rule.ports)
    name = rule.name if rule.direction == "ingress" else f"egress {rule.name}"
    label = f"{name} ({rule.description}): {ports}" if rule.description else f"{name}: {ports}"
    if rule.network is not None:
        label += f" on {rule.network.ref}"
    return label


def mermaid(model: PolicyModel) -> str:
    lines = ["flowchart LR"]
    ids: dict[str, str] = {}

    def node(key: str, text: str, shape: str = "box") -> str:
        if key not in ids:
            ids[key] = f"n{len(ids)}"
            open_, close = {"box": ('["', '"]'), "ext": ('(["', '"])'), "any": ('(("', '"))')}[shape]
            lines.append(f"  {ids[key]}{open_}{_q(text)}{close}")
        return ids[key]

    for ns in model.namespaces:
        lines.append(f"  subgraph ns_{ns.replace('-', '_').replace('.', '_')}[\"namespace {ns}\"]")
        for ep in sorted(model.endpoints.values(), key=lambda e: e.identity):
            if ep.namespace == ns:
                node(f"id:{ep.identity}", f"{ep.identity}<br/>{ep.spiffe_id}")  # declared inside the subgraph
        lines.append("  end")
    for rule in model.rules + model.egress_rules:
        own = ids[f"id:{rule.target.identity}"]
        others = [node("any", "any peer", "any")] if rule.allow_all else []
        for peer in rule.peers:
            if peer.endpoint is not None:
                others.append(ids[f"id:{peer.endpoint.identity}"])
            else:
                others.append(node(f"ext:{peer}", str(peer), "ext"))
        for other in others:
            # Edges point from client to server: into the target for ingress, out of it for egress.
            src, dst = (other, own) if rule.direction == "ingress" else (own, other)
            lines.append(f'  {src} -->|"{_q(_edge_label(rule))}"| {dst}')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or len(args) > 2:
        print("usage: python -m spiffe_kpt.authorization.diagram PACKAGE_DIR [OUT.mmd]", file=sys.stderr)
        return 2
    pkg = args[0]
    out = args[1] if len(args) > 1 else os.path.join(pkg, "authorization.mmd")
    from ..api.resolve import resolve
    from ..krm.resourcelist import ResourceList
    from .packagefiles import read_items
    from .rules import resolve_rules
    try:
        items = read_items(pkg)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read package {pkg}: {exc}", file=sys.stderr)
        return 1
    res = resolve(ResourceList(items))
    rr = resolve_rules(res.identities, res.context, items)
    problems = [r for r in res.results + rr.errors if r.severity.value == "error"]
    for r in problems:
        print(str(r), file=sys.stderr)
    if problems:
        return 1
    with open(out, "w", encoding="utf-8") as f:
        f.write(mermaid(rr.model))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

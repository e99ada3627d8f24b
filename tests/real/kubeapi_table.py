"""The Kubernetes API table spiffe-access checks grants against, read from a real kube-apiserver.

    python -m tests.real.kubeapi_table          # start etcd + kube-apiserver, rewrite the table
    python -m tests.real.kubeapi_table --check  # compare only; exit 1 when the shipped table differs

The functions have no Kubernetes client and must not start one: they check API groups,
resources, subresources, verbs and scope against ``functions/spiffe_kpt/access/kube-api.json``.
That file is not typed by hand: it is what the pinned kube-apiserver (``binaries.KUBERNETES_VERSION``)
serves in its discovery documents (every served version of every group, merged: RBAC rules name
groups and resources, not versions), and ``tests/real/test_real_access.py`` fails when the two differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import binaries
from .stack import Kube, Stack

TABLE = Path(__file__).resolve().parents[2] / "functions" / "spiffe_kpt" / "access" / "kube-api.json"


def discover(kube: Kube) -> dict:
    """{group: {resource[/subresource]: {"kind", "namespaced", "verbs"}}} from the live discovery."""
    def get(path: str) -> dict:
        return json.loads(kube.kubectl("get", f"--raw={path}").stdout)

    versions = [("", "/api/v1")]
    for g in get("/apis")["groups"]:
        versions += [(g["name"], f"/apis/{gv['groupVersion']}") for gv in g["versions"]]
    groups: dict[str, dict[str, dict]] = {}
    for group, path in versions:
        for r in get(path)["resources"]:
            entry = groups.setdefault(group, {}).setdefault(r["name"], {
                "kind": r["kind"], "namespaced": r["namespaced"], "verbs": []})
            entry["verbs"] = sorted(set(entry["verbs"]) | set(r.get("verbs") or []))
    return {"kubernetes": binaries.KUBERNETES_VERSION,
            "groups": {g: dict(sorted(rs.items())) for g, rs in sorted(groups.items())}}


def render(table: dict) -> str:
    # One resource per line: a diff of the table reads as the API change it is.
    lines = ["{", f'  "kubernetes": {json.dumps(table["kubernetes"])},', '  "groups": {']
    groups = list(table["groups"].items())
    for gi, (group, resources) in enumerate(groups):
        lines.append(f"    {json.dumps(group)}: {{")
        items = list(resources.items())
        for ri, (name, entry) in enumerate(items):
            comma = "," if ri < len(items) - 1 else ""
            lines.append(f"      {json.dumps(name)}: {json.dumps(entry, sort_keys=True)}{comma}")
        lines.append("    }" + ("," if gi < len(groups) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    with Stack() as st:
        text = render(discover(st.kube()))
    if "--check" in argv:
        same = TABLE.exists() and TABLE.read_text() == text
        print("the shipped table matches the live apiserver" if same else f"{TABLE} differs from the live apiserver")
        return 0 if same else 1
    TABLE.write_text(text)
    print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

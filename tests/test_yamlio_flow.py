"""Flow collections (``args: ["--a", b]``, ``labels: {app: x}``) survive a render.

kpt writes each node of a function's output in the style the output gives it, so a function
that reads ``[a, b]`` and writes a block sequence rewrites the user's file. The loader marks
non-empty flow collections (``FlowList``, ``FlowDict``) in all three load paths and the dumper
writes them back in flow style; containers a function creates stay block style. The last tests
render a package with the real kpt and compare the files with what kpt writes when the
function passes its input through unchanged (``cat``).
"""

from __future__ import annotations

import copy
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest

from spiffe_kpt.krm import yamlio
from spiffe_kpt.krm.yamlio import FlowDict, FlowList, StyledStr

from .pkgtools import EXAMPLES, copy_package, git_diff, git_snapshot, kpt_render

DOC = """\
kind: X
labels: {app: web, tier: "front"}
args: ["--a", b, 'c d', 1, true, null]
block:
- [x, y]
- {k: v}
- {}
- []
nested: {a: [1, 2], b: {c: d}, e: [], f: {}}
empty: []
emptyMap: {}
"""


def _has_ryml() -> bool:
    try:
        import ryml  # noqa: F401
        return True
    except ImportError:
        return False


LOADERS = {
    "libyaml+build": yamlio.load_libyaml,
    "pyyaml-constructors": yamlio.load_pyyaml,
    "rapidyaml": lambda t: yamlio._load_ryml(t.encode()),
}


@pytest.mark.parametrize("name", [n for n in LOADERS if n != "rapidyaml" or _has_ryml()])
def test_loaders_mark_non_empty_flow_collections(name: str) -> None:
    doc = LOADERS[name](DOC)
    assert type(doc) is dict
    assert type(doc["labels"]) is FlowDict and doc["labels"] == {"app": "web", "tier": "front"}
    assert type(doc["labels"]["tier"]) is StyledStr
    assert type(doc["args"]) is FlowList and doc["args"] == ["--a", "b", "c d", 1, True, None]
    assert type(doc["block"]) is list
    assert [type(x) for x in doc["block"]] == [FlowList, FlowDict, dict, list]
    nested = doc["nested"]
    assert type(nested) is FlowDict and type(nested["a"]) is FlowList and type(nested["b"]) is FlowDict
    # Empty collections are plain: written [] / {} either way, and block once a function fills them.
    assert type(nested["e"]) is list and type(nested["f"]) is dict
    assert type(doc["empty"]) is list and type(doc["emptyMap"]) is dict


def test_dump_writes_flow_back_and_new_containers_as_blocks() -> None:
    doc = yamlio.load(DOC)
    assert yamlio.dump(doc) == yamlio.dump_pyyaml(doc) == DOC
    doc["args"].append("new")              # a function edits the user's flow list: still flow
    doc["labels"] = {**doc["labels"], "x": "y"}  # or replaces it with a dict of its own: block
    doc["made"] = {"list": [1, 2]}
    out = yamlio.dump(doc)
    assert out == yamlio.dump_pyyaml(doc)
    assert "args: [\"--a\", b, 'c d', 1, true, null, new]\n" in out
    assert "labels:\n  app: web\n  tier: \"front\"\n  x: y\n" in out
    assert out.endswith("made:\n  list:\n  - 1\n  - 2\n")


def test_flow_types_are_equal_to_plain_and_survive_copy_and_pickle() -> None:
    doc = yamlio.load(DOC)
    assert FlowList([1]) == [1] and FlowDict(a=1) == {"a": 1} and [1] == FlowList([1])
    for clone in [copy.deepcopy(doc)] + [pickle.loads(pickle.dumps(doc, protocol=p))
                                         for p in range(pickle.HIGHEST_PROTOCOL + 1)]:
        assert clone == doc
        assert yamlio.dump(clone) == yamlio.dump(doc)
        assert type(clone["nested"]["a"]) is FlowList and type(clone["labels"]) is FlowDict
    deep = copy.deepcopy(doc)
    deep["nested"]["a"].append(3)
    assert doc["nested"]["a"] == [1, 2]  # a real copy


def test_unusual_flow_content_falls_back_to_pyyaml() -> None:
    cases = [
        {"k": FlowList(["x" * 1000] * 70)},          # libyaml would break the line
        {"k": FlowDict({"k" * 130: 1})},              # "? key" in flow
        {"k": FlowList([StyledStr("a\nb", "'")])},   # multi-line single-quoted
        {"k": FlowList([StyledStr("a\nb", "|")]), "m": FlowDict({"x:y": "a\u2028b"})},
    ]
    for doc in cases:
        assert yamlio.dump(doc) == yamlio.dump_pyyaml(doc)
        assert yamlio.load(yamlio.dump(doc)) == doc


# ---- with the real kpt ---------------------------------------------------------------------

FLOW_FILE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: oran-smo
  labels: {app: web, tier: "front"}
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
        args: ["--port=8080", --config=/etc/web.yaml, 'single quoted', --addr=0.0.0.0:80, 1, true, null]
        command: [ sh,   -c ]  # spacing: kpt normalizes it
        env: [{name: A, value: "1"}, {name: B, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: []
        resources: {}
        volumeMounts: [
          {name: cfg, mountPath: /etc/web}, # inside a flow list
          {name: tmp, mountPath: /tmp}
        ]
      volumes:
      - {name: cfg, configMap: {name: web, items: [{key: a, path: a}]}}
      - name: tmp
        emptyDir: {}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  namespace: oran-smo
data:
  urls: '[http://a:80/x]'
  nested: "{a: [1, 2]}"
"""
BLOCK_IN_IMS = ("    metadata:\n      labels:\n        app.kubernetes.io/name: ims\n"
                "        app.kubernetes.io/part-of: oran-smo\n")
FLOW_IN_IMS = "    metadata:\n      labels: {app.kubernetes.io/name: ims, app.kubernetes.io/part-of: oran-smo}\n"
BLOCK_PORTS = "        ports:\n        - name: o2ims\n          containerPort: 8443\n          protocol: TCP\n"
FLOW_PORTS = "        ports: [{name: o2ims, containerPort: 8443, protocol: TCP}]\n        args: [--listen, ':8443']\n"


def _package(tmp_path: Path, name: str, big: bool) -> Path:
    pkg = copy_package(EXAMPLES / "oran-focom-ims", tmp_path / name)
    (pkg / "flow.yaml").write_text(FLOW_FILE)
    # Flow style inside a workload the functions change (they add serviceAccountName to the
    # ims StatefulSet's pod template).
    ims = pkg / "ims.yaml"
    text = ims.read_text()
    assert BLOCK_IN_IMS in text and BLOCK_PORTS in text
    ims.write_text(text.replace(BLOCK_IN_IMS, FLOW_IN_IMS).replace(BLOCK_PORTS, FLOW_PORTS))
    if big:  # a ResourceList above RYML_MIN_BYTES: the functions load it with rapidyaml
        lines = "".join(f"    line {i}: [{i}, {{k: v}}]\n" for i in range(yamlio.RYML_MIN_BYTES // 24))
        (pkg / "big.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n"
                                      f"data:\n  big.yaml: |\n{lines}  flow: '[a, b]'\n")
    return pkg


def _passthrough(tmp_path: Path, pkg: Path) -> Path:
    """The same package rendered by a function that echoes its input: what kpt itself writes."""
    cat = tmp_path / "cat.sh"
    cat.write_text("#!/bin/sh\nexec cat\n")
    cat.chmod(0o755)
    out = shutil.copytree(pkg, tmp_path / f"{pkg.name}-passthrough")
    kptfile = out / "Kptfile"
    head = kptfile.read_text().split("pipeline:")[0]
    kptfile.write_text(head + f"pipeline:\n  mutators:\n  - exec: {cat}\n")
    subprocess.run(["kpt", "fn", "render", "--allow-exec", str(out)], check=True, capture_output=True)
    return out


@pytest.mark.kpt
@pytest.mark.parametrize("big", [False, True], ids=["libyaml", "rapidyaml"])
def test_render_writes_flow_collections_as_kpt_passthrough_does(tmp_path: Path, big: bool) -> None:
    if shutil.which("kpt") is None:
        pytest.fail("kpt is not on PATH: install it (https://kpt.dev/installation/); .ci/run requires it")
    if big and not _has_ryml():
        pytest.fail("rapidyaml is not installed: it is a dependency (pip install -e .)")
    pkg = _package(tmp_path, "pkg", big)
    floor = _passthrough(tmp_path, pkg)
    written = (floor / "flow.yaml").read_text()
    assert "command: [sh, -c] # spacing: kpt normalizes it\n" in written
    assert "'--addr=0.0.0.0:80'" in written and "# inside a flow list" in written

    git_snapshot(pkg)
    first = kpt_render(pkg)
    assert first.exit_code == 0, first.stderr
    # Resources no function changes: byte-identical to kpt's own passthrough.
    assert (pkg / "flow.yaml").read_text() == (floor / "flow.yaml").read_text()
    if big:
        assert (pkg / "big.yaml").read_text() == (floor / "big.yaml").read_text()
    # A workload the functions change keeps the flow fields they do not own: the StatefulSet is
    # the passthrough's but for the line the attestation function adds.
    sa = "      serviceAccountName: o2ims\n"
    ours = (pkg / "ims.yaml").read_text().split("\n---\n")[0] + "\n"
    assert sa in ours and FLOW_IN_IMS in ours and FLOW_PORTS in ours
    assert ours.replace(sa, "", 1) == (floor / "ims.yaml").read_text().split("\n---\n")[0] + "\n"

    # Idempotent: rendering the rendered package changes nothing.
    git_snapshot(pkg)
    second = kpt_render(pkg)
    assert second.exit_code == 0, second.stderr
    assert git_diff(pkg) == ""

"""spiffe-kpt-diagram: the flows of a package (or of several) drawn by Graphviz and as Mermaid."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from spiffe_kpt.krm import yamlio

from .pkgtools import EXAMPLES

SVG = "{http://www.w3.org/2000/svg}"
CORE = "spiffe://core.telco-operator.net/cluster"
UPF, SMF, AMF = f"{CORE}/edge01/ns/free5gc-upf/sa/upf-edge01", f"{CORE}/regional/ns/free5gc-cp/sa/smf-regional", \
    f"{CORE}/regional/ns/free5gc-cp/sa/amf-regional"
NRF = f"peer:{CORE}/regional/ns/free5gc-cp/sa/nrf"
METRICS = "peer:spiffe://mgmt.telco-operator.net/cluster/mgmt/ns/observability/sa/observability/app/metrics-gateway " \
          "(cluster mgmt)"
GNBS = "peer:ran.telco-operator.net (cluster ran-cell-sites)"


def _diagram(pkg: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # As python -m: the console script spiffe-kpt-diagram is the same main, but exists only once the
    # package is (re)installed.
    return subprocess.run([sys.executable, "-m", "spiffe_kpt.cli.diagram", str(pkg), "-o", str(out)],
                          capture_output=True, text=True)


def _svg(path: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Nodes (id -> text) and edges (id -> text, stroke style) of a Graphviz SVG."""
    root = ET.parse(path).getroot()
    nodes, edges = {}, {}
    for g in root.iter(f"{SVG}g"):
        text = "\n".join(t.text or "" for t in g.iter(f"{SVG}text"))
        if g.get("class") == "node":
            nodes[g.get("id", "")] = text
        elif g.get("class") == "edge":
            path = next(g.iter(f"{SVG}path"))
            edges[g.get("id", "")] = {"text": text, "stroke": path.get("stroke"),
                                      "dashed": path.get("stroke-dasharray") is not None}
    return nodes, edges


def test_5g_core_svg_has_every_identity_peer_and_allowed_flow(tmp_path: Path) -> None:
    proc = _diagram(EXAMPLES / "5g-core", tmp_path / "flows.svg")
    assert proc.returncode == 0, proc.stderr
    nodes, edges = _svg(tmp_path / "flows.svg")
    assert set(nodes) == {UPF, SMF, AMF, NRF, METRICS, GNBS, "any"}
    assert nodes[UPF].startswith("upf-edge01\n") and UPF in nodes[UPF]
    # Exactly the flows the 5G core README lists as allowed, each enforced, none other.
    assert set(edges) == {
        f"flow enforced: {UPF} -> {SMF}: UDP 8805 from free5gc-upf/upf-edge01-n4 to free5gc-cp/smf-regional-n4",
        f"flow enforced: {SMF} -> {UPF}: UDP 8805 from free5gc-cp/smf-regional-n4 to free5gc-upf/upf-edge01-n4",
        f"flow enforced: {SMF} -> {AMF}: TCP 80",
        f"flow enforced: {AMF} -> {SMF}: TCP 80",
        f"flow enforced: {SMF} -> {NRF}: TCP 8000",
        f"flow enforced: {AMF} -> {NRF}: TCP 8000",
        f"flow enforced: {GNBS} -> {AMF}: SCTP 38412 to free5gc-cp/amf-regional-n2",
        f"flow enforced: {UPF} -> {METRICS}: TCP 4317",
        f"flow enforced: {GNBS} -> {UPF}: UDP 2152 to free5gc-upf/upf-edge01-n3",
        f"flow enforced: {UPF} -> {GNBS}: UDP 2152 from free5gc-upf/upf-edge01-n3",
        f"flow enforced: {UPF} -> any: TCP 1-65535, UDP 1-65535 from free5gc-upf/upf-edge01-n6",
    }
    sbi = edges[f"flow enforced: {SMF} -> {AMF}: TCP 80"]["text"]
    assert sbi == "sbi/sbi-amf (SBI HTTP/2)\nTCP 80\n[istio, networkpolicy, networkpolicy egress]"
    assert "[multinetworkpolicy]" in edges[f"flow enforced: {GNBS} -> {AMF}: SCTP 38412 to free5gc-cp/amf-regional-n2"]["text"]
    assert not any(e["dashed"] for e in edges.values())
    # Clusters, namespaces and what lies outside are labelled groups.
    text = (tmp_path / "flows.svg").read_text()
    for label in ("cluster edge01 (core.telco&#45;operator.net)", "cluster regional (core.telco&#45;operator.net)",
                  "namespace free5gc&#45;cp", "outside these packages (core.telco&#45;operator.net)",
                  "other trust domain ran.telco&#45;operator.net", "other trust domain mgmt.telco&#45;operator.net",
                  "a flow without an edge is denied"):
        assert label in text, label

    png = _diagram(EXAMPLES / "5g-core", tmp_path / "flows.png")
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "flows.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "flows.png").stat().st_size > 20_000


def test_oran_svg_and_png_show_both_identities_and_say_nothing_enforces_flows(tmp_path: Path) -> None:
    assert _diagram(EXAMPLES / "oran-focom-ims", tmp_path / "oran.svg").returncode == 0
    nodes, edges = _svg(tmp_path / "oran.svg")
    smo = "spiffe://smo.telco-operator.net/cluster/smo-mgmt/ns/oran-smo/sa"
    assert set(nodes) == {f"{smo}/focom", f"{smo}/o2ims"}
    assert nodes[f"{smo}/o2ims"].startswith("ims\n")
    assert edges == {}
    assert "no spiffe&#45;authorization in the pipeline of oran&#45;focom&#45;ims" in (tmp_path / "oran.svg").read_text()
    assert _diagram(EXAMPLES / "oran-focom-ims", tmp_path / "oran.png").returncode == 0
    assert (tmp_path / "oran.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _edit_docs(path: Path, edit: Any) -> None:
    docs = [d for d in yaml.load_all(path.read_text(), Loader=yamlio.Loader) if d is not None]  # noqa: S506
    for d in docs:
        edit(d)
    path.write_text("---\n".join(yamlio.dump(d) for d in docs))


def test_unenforced_and_one_sided_flows_are_marked(tmp_path: Path) -> None:
    core = shutil.copytree(EXAMPLES / "5g-core", tmp_path / "5g-core")

    def istio_only(d: dict[str, Any]) -> None:
        if d.get("kind") == "IdentityContext":
            d["spec"]["policy"]["backends"] = ["istio"]

    def no_n4_egress(d: dict[str, Any]) -> None:
        if d.get("kind") == "WorkloadIdentity":
            d["spec"]["egress"] = [r for r in d["spec"]["egress"] if r["name"] != "n4"]

    _edit_docs(core / "upf" / "cluster-context.yaml", istio_only)
    _edit_docs(core / "smf" / "deployment.yaml", no_n4_egress)
    proc = _diagram(core, tmp_path / "flows.svg")
    assert proc.returncode == 0, proc.stderr
    _, edges = _svg(tmp_path / "flows.svg")
    # Istio sees neither UDP nor Multus: the UPF's N4 ingress and its egress are enforced by nothing
    # (the SMF's N4 ingress still is, by the regional cluster's multinetworkpolicy).
    red = edges[f"flow unenforced: {UPF} -> {SMF}: UDP 8805 from free5gc-upf/upf-edge01-n4 to free5gc-cp/smf-regional-n4"]
    assert red["dashed"] and red["stroke"] == "#c62828"
    assert red["text"].endswith("\n[multinetworkpolicy] not enforced: egress at upf-edge01")
    # The SMF no longer declares N4 egress: the UPF admits it, but the SMF's default deny drops it.
    grey = edges[f"flow one-sided: {SMF} -> {UPF}: UDP 8805 to free5gc-upf/upf-edge01-n4"]
    assert grey["dashed"] and grey["text"].endswith("(denied: smf-regional declares no egress for it)")
    assert f"flow enforced: {SMF} -> {AMF}: TCP 80" in edges


def test_markdown_holds_a_mermaid_block_with_the_same_flows(tmp_path: Path) -> None:
    assert _diagram(EXAMPLES / "5g-core", tmp_path / "flows.md").returncode == 0
    text = (tmp_path / "flows.md").read_text()
    assert text.startswith("# Flows of 5g-core\n") and "\n```mermaid\nflowchart LR\n" in text
    assert text.rstrip().endswith("```")
    assert text.count("-->|") == 11
    assert 'subgraph g0["cluster edge01 (core.telco-operator.net)"]' in text
    assert '"sbi/sbi-amf (SBI HTTP/2)<br/>TCP 80<br/>[istio, networkpolicy, networkpolicy egress]"' in text
    dot = tmp_path / "flows.dot"
    assert _diagram(EXAMPLES / "5g-core", dot).returncode == 0
    assert dot.read_text().startswith("digraph flows {")


def test_bad_output_and_bad_package_say_what_to_do(tmp_path: Path) -> None:
    bad = _diagram(EXAMPLES / "5g-core", tmp_path / "flows.jpg")
    assert bad.returncode == 2 and "must be one of .svg, .png, .dot, .md" in bad.stderr
    broken = _diagram(EXAMPLES / "errors" / "invalid-trust-domain", tmp_path / "x.svg")
    assert broken.returncode == 1 and "fix these first" in broken.stderr and "spiffe://SMO" in broken.stderr
    assert "Traceback" not in bad.stderr + broken.stderr and not (tmp_path / "x.svg").exists()


def test_a_client_in_the_servers_own_package_needs_no_egress_rule(tmp_path: Path) -> None:
    # authz-5g-like declares ingress only: the function derives each client's egress from it.
    assert _diagram(EXAMPLES / "authz-5g-like", tmp_path / "flows.svg").returncode == 0
    _, edges = _svg(tmp_path / "flows.svg")
    core = "spiffe://core.telco-operator.net/ns"
    assert set(edges) == {
        f"flow enforced: peer:ran.telco-operator.net (cluster ran-edge-01) -> {core}/core-cp/sa/amf: SCTP 38412 to core-cp/n2",
        f"flow enforced: {core}/core-cp/sa/smf -> {core}/core-cp/sa/amf: TCP 8000",
        f"flow enforced: {core}/core-cp/sa/amf -> {core}/core-cp/sa/smf: TCP 8000",
        f"flow enforced: {core}/core-up/sa/upf -> {core}/core-cp/sa/smf: UDP 8805 to core-up/n4",
        f"flow enforced: {core}/core-cp/sa/smf -> {core}/core-up/sa/upf: UDP 8805 to core-up/n4",
    }

"""The KRM Functions Specification layer: the contract kpt and porch rely on."""

from __future__ import annotations

import subprocess
import sys

from spiffe_kpt.krm import ResourceList, error, info, yamlio
from spiffe_kpt.krm.runner import process

ITEMS = """\
apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: a
    annotations:
      config.kubernetes.io/path: a.yaml
      config.kubernetes.io/index: '0'
      internal.config.kubernetes.io/path: a.yaml
      internal.config.kubernetes.io/index: '0'
      internal.config.kubernetes.io/id: '7'
      internal.config.kubernetes.io/seqindent: compact
      config.k8s.io/id: '7'
  data: {mode: "0644", flag: "yes", when: 2024-01-01, n: 0644}
- apiVersion: v1
  kind: Service
  metadata: {name: b}
  spec: {ports: [{port: 80}]}
functionConfig:
  apiVersion: v1
  kind: ConfigMap
  metadata: {name: function-input}
  data: {key: value}
"""


def _run(text, fn):
    out, code = process(text, fn, "test-fn")
    return yamlio.load(out), code


def test_passthrough_keeps_every_annotation_order_and_scalar() -> None:
    doc, code = _run(ITEMS, lambda rl: None)
    assert code == 0
    src = yamlio.load(ITEMS)
    assert doc["items"] == src["items"]
    assert [i["kind"] for i in doc["items"]] == ["ConfigMap", "Service"]
    out, _ = process(ITEMS, lambda rl: None, "t")
    # YAML 1.1 look-alikes stay strings, and octal-looking ints keep their spelling.
    # YAML 1.1 look-alikes stay strings (quoted, so every reader agrees) and octal-looking
    # ints keep their spelling: defaultMode 0644 must not become 644.
    assert 'flag: "yes"' in out and 'when: "2024-01-01"' in out and "n: 0644" in out


def test_function_config_configmap_data() -> None:
    seen = {}
    _run(ITEMS, lambda rl: seen.update(rl.config_data()))
    assert seen == {"key": "value"}


def test_error_result_exits_1_and_writes_items_back_untouched() -> None:
    def fn(rl: ResourceList) -> None:
        rl.items[0]["data"]["mode"] = "changed"
        rl.items.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "half-written"}})
        rl.add(error("bad input", field_path="spec.x"))
    doc, code = _run(ITEMS, fn)
    assert code == 1
    assert doc["items"] == yamlio.load(ITEMS)["items"]
    assert doc["results"] == [{"message": "bad input", "severity": "error"}]


def test_warning_and_info_do_not_fail() -> None:
    doc, code = _run(ITEMS, lambda rl: rl.add(info("fine")))
    assert code == 0 and doc["results"][0]["severity"] == "info"


def test_exception_becomes_one_error_result_not_a_traceback() -> None:
    def boom(rl):
        raise KeyError("spec")
    doc, code = _run(ITEMS, boom)
    assert code == 1
    assert len(doc["results"]) == 1
    r = doc["results"][0]
    assert r["severity"] == "error" and "internal error (KeyError" in r["message"]
    assert doc["items"] == yamlio.load(ITEMS)["items"]


def test_results_get_the_file_of_the_resource_they_name() -> None:
    from spiffe_kpt.krm.resourcelist import resource_ref

    def fn(rl):
        rl.add(error("x", resource_ref(rl.items[0]), "data.mode"))
    doc, _ = _run(ITEMS, fn)
    r = doc["results"][0]
    assert r["resourceRef"] == {"apiVersion": "v1", "kind": "ConfigMap", "name": "a"}
    assert r["field"] == {"path": "data.mode"}
    assert r["file"] == {"path": "a.yaml", "index": 0}


def test_malformed_yaml_gets_an_error_result_with_the_line() -> None:
    doc, code = _run("apiVersion: v1\nitems:\n  - a: [unclosed\n", lambda rl: None)
    assert code == 1
    assert doc["kind"] == "ResourceList" and doc["items"] == []
    assert "not valid YAML at line" in doc["results"][0]["message"]


def test_non_resourcelist_input_is_rejected_with_a_fix() -> None:
    doc, code = _run("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", lambda rl: None)
    assert code == 1 and "expected 'ResourceList'" in doc["results"][0]["message"]
    doc, code = _run("- just\n- a list\n", lambda rl: None)
    assert code == 1 and "not a ResourceList" in doc["results"][0]["message"]
    doc, code = _run("kind: ResourceList\nitems:\n- {metadata: {name: x}}\n", lambda rl: None)
    assert code == 1 and "items[0] is not a resource" in doc["results"][0]["message"]


def test_console_script_never_prints_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "spiffe_kpt.specializer"], input="{{{ not yaml",
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert yamlio.load(proc.stdout)["results"][0]["severity"] == "error"


def test_empty_input_still_yields_a_complete_resourcelist() -> None:
    proc = subprocess.run([sys.executable, "-m", "spiffe_kpt.validator"], input="", capture_output=True, text=True)
    assert proc.returncode == 1 and yamlio.load(proc.stdout)["kind"] == "ResourceList"


def test_shared_objects_are_written_as_copies_not_yaml_aliases() -> None:
    def fn(rl):
        labels = {"app": "x"}
        rl.items[1]["metadata"]["labels"] = labels
        rl.items[1]["spec"]["selector"] = labels
    out, code = process(ITEMS, fn, "t")
    assert code == 0 and "&id" not in out and "*id" not in out
    svc = yamlio.load(out)["items"][1]
    assert svc["spec"]["selector"] == svc["metadata"]["labels"] == {"app": "x"}


def test_kptfile_conditions_and_gates_keep_position_and_never_duplicate() -> None:
    from spiffe_kpt.krm.resourcelist import KptfileView
    kf = {"apiVersion": "kpt.dev/v1", "kind": "Kptfile", "metadata": {"name": "p"},
          "status": {"conditions": [{"type": "other", "status": "True", "reason": "Mine"}]},
          "info": {"readinessGates": [{"conditionType": "other"}]}}
    v = KptfileView(kf)
    for i in range(5):
        v.set_condition(f"c{i}", False, "Waiting", "m")
        v.ensure_readiness_gate(f"c{i}")
    v.set_condition("c2", True, "Resolved", "done")
    v.ensure_readiness_gate("c2")
    v.ensure_readiness_gate("other")
    types = [c["type"] for c in kf["status"]["conditions"]]
    assert types == ["other", "c0", "c1", "c2", "c3", "c4"]
    assert kf["status"]["conditions"][3] == {"type": "c2", "status": "True", "reason": "Resolved", "message": "done"}
    assert [g["conditionType"] for g in kf["info"]["readinessGates"]] == ["other", "c0", "c1", "c2", "c3", "c4"]
    # someone else reorders the list behind the view: updates still land on the right entry
    kf["status"]["conditions"].insert(0, kf["status"]["conditions"].pop(3))
    v.set_condition("c2", False, "ContextMissing", "again")
    assert [c["type"] for c in kf["status"]["conditions"]].count("c2") == 1
    assert kf["status"]["conditions"][0]["reason"] == "ContextMissing"
    # after removal the index is rebuilt
    v.remove_conditions(lambda c: c["type"] != "c0")
    v.set_condition("c0", True, "Resolved", "back")
    assert [c["type"] for c in kf["status"]["conditions"]][-1] == "c0"
    assert [c["type"] for c in kf["status"]["conditions"]].count("c0") == 1


def test_kptfile_view_is_linear_in_identities() -> None:
    """10,000 conditions and gates: the old list scan per identity took seconds; the index is
    measured against the same loop over plain dict inserts so machine speed cancels out."""
    import time

    from spiffe_kpt.krm.resourcelist import KptfileView
    n = 10_000

    def view_loop() -> float:
        v = KptfileView({"kind": "Kptfile"})
        t = time.perf_counter()
        for i in range(n):
            v.ensure_readiness_gate(f"t{i}")
            v.set_condition(f"t{i}", True, "Resolved", "x")
        return time.perf_counter() - t

    def floor_loop() -> float:
        d: dict = {}
        t = time.perf_counter()
        for i in range(n):
            d[f"t{i}"] = {"type": f"t{i}", "status": "True", "reason": "Resolved", "message": "x"}
            d.setdefault(f"g{i}", {"conditionType": f"t{i}"})
        return time.perf_counter() - t

    ratio = min(view_loop() for _ in range(3)) / min(floor_loop() for _ in range(3))
    # quadratic scanning is ~1000x the floor at this size; linear code stays within a small factor
    assert ratio < 40, ratio


def test_load_accepts_a_loaded_block_string() -> None:
    """A ConfigMap value loaded from a literal block is a str subclass that remembers its style;
    parsing it again (an embedded config file) must work like parsing a plain str."""
    outer = yamlio.load("data:\n  cfg.yaml: |\n    className: spiffe-kpt\n    n: 1\n  q: \"a: b\"\n")
    assert type(outer["data"]["cfg.yaml"]) is not str
    assert yamlio.load(outer["data"]["cfg.yaml"]) == {"className": "spiffe-kpt", "n": 1}
    assert yamlio.load(outer["data"]["q"]) == {"a": "b"}


def test_long_strings_stay_on_the_fast_emitter() -> None:
    """A 100 KB message or embedded file is written on one line by both dumpers; before, libyaml
    folded it and the whole ResourceList fell back to the slow dumper (3x the time at 8,000
    workloads)."""
    from spiffe_kpt.krm import fastyaml
    long_plain = "identities: " + ", ".join(f"nf-{i}" for i in range(12000))
    doc = {"items": [{"message": long_plain, "quoted": yamlio.StyledStr(long_plain, '"'),
                      "data": {"cfg": yamlio.StyledStr("a: 1\n" * 20000, "|")},
                      "args": yamlio.FlowList([f"--arg-{i}=x" for i in range(20000)]),
                      "labels": yamlio.FlowDict({f"k{i}": "v" for i in range(8000)})}]}
    try:
        fast = yamlio._fast_dump(doc)
    except fastyaml.Unsupported as exc:  # pragma: no cover - the failure this test is for
        raise AssertionError(f"fell back to the slow dumper: {exc}") from exc
    assert fast == yamlio.dump_pyyaml(doc)
    assert yamlio.load(fast) == doc

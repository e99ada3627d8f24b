"""The agent's socket directory: the ``socket-dir-owner`` init container chowns the hostPath
the kubelet creates as root to the agent's user, with the ids spire-config reads from the
agent container's securityContext (the node tier runs it: tests/real/test_real_node_spire.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ..pkgtools import kpt_render
from .examples import SPECS, copy_package, files, set_values

pytestmark = pytest.mark.kpt

POD_IDS = "        runAsUser: 10001\n        runAsGroup: 10001\n"
AGENTS = {"spire-agent": ("daemonsets.yaml", "spire-agent"),
          "spire-downstream-server": ("upstream-agent.yaml", "spire-upstream-agent")}


def _daemonset(pkg: Path, file: str, name: str) -> dict:
    return next(d for d in yaml.safe_load_all((pkg / file).read_text())
                if d and d["kind"] == "DaemonSet" and d["metadata"]["name"] == name)


def _init(ds: dict) -> dict:
    return next(c for c in ds["spec"]["template"]["spec"]["initContainers"] if c["name"] == "socket-dir-owner")


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_init_container_chowns_to_the_agents_user(tmp_path: Path, name: str) -> None:
    """Other ids in the pod's securityContext: the chown follows them (no second literal)."""
    file, ds_name = AGENTS[name]
    pkg = copy_package(name, tmp_path)
    set_values(pkg, SPECS[name])
    f = pkg / file
    assert f.read_text().count(POD_IDS) == 1
    f.write_text(f.read_text().replace(POD_IDS, "        runAsUser: 20002\n        runAsGroup: 20003\n"))
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr
    init = _init(_daemonset(pkg, file, ds_name))
    assert init["command"] == ["/bin/chown"]
    assert init["args"] == ["20002:20003", "/run/spire/agent-sockets"]
    # a container-level id wins over the pod's, as in Kubernetes
    text = f.read_text()
    f.write_text(text.replace("          runAsNonRoot: true\n          capabilities:\n",
                              "          runAsNonRoot: true\n          runAsUser: 30004\n          capabilities:\n", 1))
    assert f.read_text() != text
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.stderr
    assert _init(_daemonset(pkg, file, ds_name))["args"] == ["30004:20003", "/run/spire/agent-sockets"]


def test_agent_without_a_user_is_rejected(tmp_path: Path) -> None:
    """Without runAsUser nobody knows whom the directory belongs to: an error, nothing written."""
    pkg = copy_package("spire-agent", tmp_path)
    set_values(pkg, SPECS["spire-agent"])
    f = pkg / "daemonsets.yaml"
    f.write_text(f.read_text().replace(POD_IDS, "        runAsGroup: 10001\n"))
    before = files(pkg)
    r = kpt_render(pkg)
    assert r.exit_code == 1, r.stderr
    errors = [x for x in r.results if x.get("severity") == "error"]
    assert len(errors) == 1, errors
    e = errors[0]
    assert e["resourceRef"] == {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "spire-agent",
                                "namespace": "spire-system"}, e
    assert e["field"]["path"] == "spec.template.spec.initContainers[name=socket-dir-owner]"
    assert "container 'spire-agent'" in e["message"] and "set both" in e["message"], e["message"]
    assert files(pkg) == before
    assert "Traceback" not in r.stderr

"""Error results through porch's pod evaluator format (tests.real.porch, ``function_pod_image``).

In a Nephio cluster porch's function runner runs each function as a pod: the function's own
image, with porch's ``wrapper-server`` (built here from porch v1.5.8) as the container's
command in front of the image's entrypoint. When the function exits non-zero the
wrapper-server answers with a gRPC error that embeds the structured results it parsed from
the function's stdout, then the function's stderr; porch returns that to the user.

The full pod path cannot run on these machines (see tests/real/README.md: the function runner
needs a registry for the image's metadata, cluster DNS for ``<service>.porch-fn-system.svc``,
and pod networking, none of which the node tier has). What runs here is everything after the
pod is scheduled: this project's image, built from this tree, run by podman exactly as the
pod's function container (same command, arguments, environment, user), with porch-server's
function-runner address pointing at its wrapper-server (the function runner's pod evaluator
forwards the same request to the same service and wraps the error it gets:
``unable to evaluate <image> with pod evaluator: <error>``). Not exercised: the function
runner process itself in pod mode (pod and Service creation, image metadata lookup).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ..pkgtools import EXAMPLES, REPO, copy_package, kpt_render
from . import test_real_porch as flow
from .porch import Porch
from .stack import Stack

HYDRATE = "ghcr.io/spiffe-kpt/hydrate:v0.1.0"
# This tree's hydrate image under a tag of the test's own (the shared ghcr.io/spiffe-kpt/* tags
# are tests/test_images.py's); the Kptfile still names HYDRATE, as a blueprint does.
POD_IMAGE_PREFIX = "localhost/spiffe-kpt-porch-pod"


@pytest.fixture(scope="module")
def function_image() -> str:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: apt-get install -y podman runc debootstrap "
                    "(.ci/run does this), then rerun", pytrace=False)
    env = {**os.environ, "LOCAL_BASE": "1", "FUNCTIONS": "hydrate", "IMAGE_PREFIX": POD_IMAGE_PREFIX,
           "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / ".ci" / "containers.conf"))}
    proc = subprocess.run(["bash", str(REPO / "functions" / "build-images.sh")], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return f"{POD_IMAGE_PREFIX}/hydrate:{HYDRATE.rsplit(':', 1)[1]}"


@pytest.fixture(scope="module")
def pod_porch(function_image: str) -> Porch:
    with Stack() as st:
        p = Porch(st, None, function_pod_image=function_image)
        p.register_repository("deployments", p.bare_repo("deployments"), deployment=True)
        yield p


def one_step_hydrate(pkg: Path) -> Path:
    kf = yaml.safe_load((pkg / "Kptfile").read_text())
    kf["pipeline"] = {"mutators": [{"name": "hydrate", "image": HYDRATE}]}
    (pkg / "Kptfile").write_text(yaml.safe_dump(kf, sort_keys=False))
    return pkg


def sdk_string(r: dict) -> str:
    """A result as the KRM functions SDK the wrapper-server parses with prints it
    (fn.Result.String in kptdev/krm-functions-sdk/go/fn v1.0.2, porch v1.5.8's dependency)."""
    ref = r.get("resourceRef") or {}
    ident = "/".join(v for v in (ref.get("apiVersion"), ref.get("kind"), ref.get("namespace"), ref.get("name")) if v)
    out = f"[{r.get('severity') or 'info'}]"
    if ident:
        out += f" {ident}"
    if r.get("field"):
        out += f" {r['field']['path']}"
    return f"{out}: {r['message']}"


def test_good_package_renders_through_the_function_pod(pod_porch: Porch, tmp_path: Path) -> None:
    pkg = one_step_hydrate(copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "good"))
    want = flow.exec_render(one_step_hydrate(copy_package(EXAMPLES / "oran-focom-ims", tmp_path / "exec" / "good")))
    name = flow.new_draft(pod_porch, "deployments", "good", "v1")
    prr = flow.push_files(pod_porch, name, pkg)
    assert "error" not in prr, prr
    assert flow.render_status(prr)["result"]["exitCode"] == 0
    got = prr["spec"]["resources"]
    for path in set(want) - flow.PORCH_OWN_FILES - {".krmignore"}:
        assert got[path] == want[path], path


def test_error_results_reach_the_porch_user_in_the_pod_evaluators_format(pod_porch: Porch, tmp_path: Path) -> None:
    pkg = one_step_hydrate(copy_package(EXAMPLES / "errors" / "invalid-trust-domain", tmp_path / "bad"))
    results = kpt_render(copy_package(pkg, tmp_path / "exec" / "bad")).results
    errors = [r for r in results if r["severity"] == "error"]
    assert errors and all(r.get("resourceRef") and r.get("field") for r in errors)

    name = flow.new_draft(pod_porch, "deployments", "bad-trust-domain", "v1")
    out = flow.push_files(pod_porch, name, pkg)
    assert "error" in out, "porch accepted a package whose render fails"
    message = out["error"]
    # The wrapper-server's format for a function that exits non-zero: the structured results it
    # parsed from the function's stdout, then the function's stderr.
    head = f'failed to evaluate function "{HYDRATE}" with structured results: '
    assert head in message, message
    structured, sep, stderr = message.split(head, 1)[1].partition(" and stderr: ")
    assert sep, message
    for r in results:  # every result, in the SDK's words: severity, resource, field, message (the fix)
        assert sdk_string(r) in structured, (sdk_string(r), structured)
    assert "use 'smo.telco-operator.net'" in structured
    # and the concise stderr lines (the exec runner's only channel) follow, one per error result
    for r in errors:
        ref = r["resourceRef"]
        assert f"error: {ref['kind']} {ref['name']} {r['field']['path']}: " in stderr, stderr
    assert "see the results above" not in message

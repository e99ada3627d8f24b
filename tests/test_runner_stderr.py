"""A failing function says on stderr, on its own, what is wrong and how to fix it.

Porch's exec function runner (v1.5.8) drops a function's stdout when it exits non-zero and
shows only stderr, so the error results must be readable there: one line per error result
with the resource, the field and the message. kpt's own output is unchanged apart from that
text (it still reads the structured results from stdout).
"""

from __future__ import annotations

import subprocess
import sys

from spiffe_kpt.krm import Result, yamlio
from spiffe_kpt.krm.results import ResourceRef, Severity, error, warning
from spiffe_kpt.krm.runner import STDERR_AT_MOST, errors_for_stderr

from .pkgtools import EXAMPLES, WI_API, copy_package, kpt_render, read_package

BAD_TRUST_DOMAIN = EXAMPLES / "errors" / "invalid-trust-domain"
CONTEXT = ResourceRef(WI_API, "IdentityContext", "identity-context")


def _resource_list_of(pkg) -> str:
    return yamlio.dump({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList",
                        "items": read_package(pkg)})


def test_console_script_prints_every_error_result_on_stderr() -> None:
    proc = subprocess.run([sys.executable, "-m", "spiffe_kpt.specializer"],
                          input=_resource_list_of(BAD_TRUST_DOMAIN), capture_output=True, text=True)
    assert proc.returncode == 1
    errors = [r for r in yamlio.load(proc.stdout)["results"] if r["severity"] == "error"]
    lines = proc.stderr.splitlines()
    assert len(lines) == len(errors) >= 1
    assert lines[0].startswith("error: IdentityContext identity-context spec.trustDomain: invalid spec.trustDomain: ")
    assert "use 'smo.telco-operator.net'" in lines[0]
    assert "see the results above" not in proc.stderr


def test_success_writes_nothing_on_stderr() -> None:
    pkg = EXAMPLES / "oran-focom-ims"
    proc = subprocess.run([sys.executable, "-m", "spiffe_kpt.specializer"],
                          input=_resource_list_of(pkg), capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""


def test_stderr_lines_name_resource_field_and_fix_and_skip_non_errors() -> None:
    text = errors_for_stderr([
        error("bad\n  trust domain; use 'a.b'", CONTEXT, "spec.trustDomain"),
        error("IdentityContext identity-context: named once", CONTEXT),
        warning("only a warning", CONTEXT),
        Result("no resource at all", Severity.ERROR),
        Result("in a file", Severity.ERROR, file_path="focom.yaml"),
    ])
    assert text.splitlines() == [
        "error: IdentityContext identity-context spec.trustDomain: bad trust domain; use 'a.b'",
        "error: IdentityContext identity-context: named once",
        "error: no resource at all",
        "error: focom.yaml: in a file",
    ]


def test_stderr_stays_bounded_with_thousands_of_errors() -> None:
    text = errors_for_stderr([error(f"e{i}", CONTEXT) for i in range(3000)])
    lines = text.splitlines()
    assert len(lines) == STDERR_AT_MOST + 1
    assert lines[-1].startswith(f"... and {3000 - STDERR_AT_MOST} more errors")


def test_kpt_shows_the_error_lines_and_still_reads_the_structured_results(tmp_path) -> None:
    pkg = copy_package(BAD_TRUST_DOMAIN, tmp_path / BAD_TRUST_DOMAIN.name)
    render = kpt_render(pkg)
    assert render.exit_code == 1
    assert "error: IdentityContext identity-context spec.trustDomain: " in render.stderr
    assert "see the results above" not in render.stderr
    assert any(r.get("field", {}).get("path") == "spec.trustDomain" for r in render.results)

"""Process entry point: stdin ResourceList -> function -> stdout ResourceList, exit code.

kpt decides failure by the exit code alone and deletes the whole package when a function
exits 0 with empty output, so this module guarantees: a complete ResourceList is always
written; the exit code is 1 whenever any result has severity error; when the function
reports an error, the items are written back exactly as they came in (nothing half-written);
an unexpected exception becomes one error result, never a traceback on the user's terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from . import yamlio
from .resourcelist import InputError, ResourceList
from .results import Result, Severity

Function = Callable[[ResourceList], None]


def process(text: str | bytes, fn: Function, name: str) -> tuple[str, int]:
    """Run ``fn`` over a serialized ResourceList; return the serialized output and exit code."""
    out, code, _ = process_with_results(text, fn, name)
    return out, code


def process_with_results(text: str | bytes, fn: Function, name: str) -> tuple[str, int, list[Result]]:
    """As :func:`process`, and also the results the output carries (for the stderr summary)."""
    try:
        doc = yamlio.load(text)
    except yamlio.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return _failure(f"{name}: input is not valid YAML{where}: {problem}; "
                        "fix the YAML syntax of the package files")
    try:
        rl = ResourceList.from_object(doc)
    except InputError as exc:
        # The items go back as they came (kpt deletes what a function's output leaves out).
        items = doc.get("items") if isinstance(doc, dict) else None
        return _failure(f"{name}: {exc}", items if isinstance(items, list) else [])

    try:
        fn(rl)
    except Exception as exc:  # noqa: BLE001 - the user must never see a traceback
        if os.environ.get("SPIFFE_KPT_DEBUG"):
            import traceback
            traceback.print_exc(file=sys.stderr)
        rl.results.append(Result(
            f"{name}: internal error ({type(exc).__name__}: {exc}); this is a bug in the "
            "function, please report it with the package that triggers it "
            "(set SPIFFE_KPT_DEBUG=1 to print the stack trace on stderr)", Severity.ERROR))
    failed = rl.has_errors()
    if failed:
        # Nothing half-written: give back the items exactly as they came in. Parsing the input
        # again costs only on this path; a deepcopy up front cost every successful run ~5%.
        rl.items = ResourceList.from_object(yamlio.load(text)).items
    rl.attach_files()
    return yamlio.dump(rl.to_object()), 1 if failed else 0, rl.results


def _failure(message: str, items: list | None = None) -> tuple[str, int, list[Result]]:
    rl = ResourceList(items=items or [], results=[Result(message, Severity.ERROR)])
    return yamlio.dump(rl.to_object()), 1, rl.results


def run_function(fn: Function, name: str) -> int:
    """Console-script entry point: read stdin, write stdout, return the exit code."""
    data = sys.stdin.buffer.read()
    out, code, results = process_with_results(data, fn, name)
    sys.stdout.write(out)
    sys.stdout.flush()
    if code:
        sys.stderr.write(errors_for_stderr(results))
        sys.stderr.flush()
    return code


def exit_process(code: int) -> None:
    """End the console script with ``code`` now: flush stdout and stderr, then ``os._exit``.

    A function process is started for one ResourceList and ends right after writing it; the
    interpreter's normal exit would first tear down every module and object it made (a few
    percent of the whole call, measured in docs/import-costs.md), for nothing. Only for console
    scripts: in-process callers use ``process``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# A package with thousands of broken resources must not make stderr grow with it: porch keeps
# the whole text in the PackageRevisionResources status and in the API error.
STDERR_AT_MOST = 50


def errors_for_stderr(results: list[Result]) -> str:
    """The error results, one line each: resource, field, message.

    kpt prints the structured results from stdout itself, but porch's exec function runner drops
    stdout when a function exits non-zero and shows only stderr (porch v1.5.8), so stderr must say
    on its own what is wrong and how to fix it.
    """
    errors = [r for r in results if r.severity is Severity.ERROR]
    lines = [_stderr_line(r) for r in errors[:STDERR_AT_MOST]]
    if len(errors) > STDERR_AT_MOST:
        lines.append(f"... and {len(errors) - STDERR_AT_MOST} more errors (all of them are in the "
                     "function's results)")
    return "".join(line + "\n" for line in lines)


def _stderr_line(r: Result) -> str:
    # One line per result: a message never spans lines on stderr.
    message = " ".join(r.message.split())
    where = ""
    if r.resource_ref is not None:
        where = str(r.resource_ref) + (f" {r.field_path}" if r.field_path else "")
        # Many messages start by naming their resource; the line names it once.
        message = message.removeprefix(f"{r.resource_ref}: ")
    elif r.file_path:
        where = r.file_path
    return f"error: {where}: {message}" if where else f"error: {message}"

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
from typing import Callable

from . import yamlio
from .resourcelist import InputError, ResourceList
from .results import Result, Severity

Function = Callable[[ResourceList], None]


def process(text: str | bytes, fn: Function, name: str) -> tuple[str, int]:
    """Run ``fn`` over a serialized ResourceList; return the serialized output and exit code."""
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
    return yamlio.dump(rl.to_object()), 1 if failed else 0


def _failure(message: str, items: list | None = None) -> tuple[str, int]:
    rl = ResourceList(items=items or [], results=[Result(message, Severity.ERROR)])
    return yamlio.dump(rl.to_object()), 1


def run_function(fn: Function, name: str) -> int:
    """Console-script entry point: read stdin, write stdout, return the exit code."""
    data = sys.stdin.buffer.read()
    out, code = process(data, fn, name)
    sys.stdout.write(out)
    sys.stdout.flush()
    for r in _errors_for_stderr(out) if code else []:
        print(r, file=sys.stderr)
    return code


def _errors_for_stderr(out: str) -> list[str]:
    # kpt prints results itself; stderr gets a one-line summary for `kpt fn eval --exec` users.
    return ["see the results above for what to fix"] if out else []

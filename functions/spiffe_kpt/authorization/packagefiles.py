"""Read a package directory into KRM items, for the diagram command (kpt does this for functions).

Honours what kpt skips: hidden paths and files listed in the package's .krmignore (by
top-level name), and non-YAML files.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from ..krm import yamlio


def read_items(pkg: str) -> list[dict[str, Any]]:
    ignore: set[str] = set()
    krmignore = os.path.join(pkg, ".krmignore")
    if os.path.isfile(krmignore):
        with open(krmignore, encoding="utf-8") as f:
            ignore = {line.strip().strip("/") for line in f if line.strip() and not line.startswith("#")}
    items: list[dict[str, Any]] = []
    for root, dirs, files in os.walk(pkg):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ignore)
        for name in sorted(files):
            if name.startswith(".") or not (name.endswith((".yaml", ".yml")) or name == "Kptfile"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                docs = yaml.load_all(f.read(), Loader=yamlio.Loader)  # noqa: S506 - the project's safe loader
                items.extend(d for d in docs if isinstance(d, dict))
    return items

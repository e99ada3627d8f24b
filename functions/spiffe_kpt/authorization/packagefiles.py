"""Read a package directory into KRM items, for the diagram command (kpt does this for functions).

Honours what kpt skips: hidden paths and files listed in the package's .krmignore (by
top-level name), and non-YAML files.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from ..krm import yamlio
from ..krm.resourcelist import ANN_PATH


def read_items(pkg: str, annotate_path: bool = False) -> list[dict[str, Any]]:
    """The package's resources in kpt's order; with ``annotate_path`` each carries its file
    (``config.kubernetes.io/path``, relative to the package) as kpt hands it to functions."""
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
                docs = [d for d in yaml.load_all(f.read(), Loader=yamlio.Loader)  # noqa: S506 - the safe loader
                        if isinstance(d, dict)]
            if annotate_path:
                rel = os.path.relpath(path, pkg).replace(os.sep, "/")
                for d in docs:
                    meta = d.setdefault("metadata", {}) if isinstance(d.get("metadata", {}), dict) else {}
                    ann = meta.setdefault("annotations", {}) if isinstance(meta.get("annotations", {}), dict) else {}
                    ann[ANN_PATH] = rel
            items.extend(docs)
    return items

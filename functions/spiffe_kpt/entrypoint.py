"""Container entry point: run the function this image was built for.

The Dockerfile writes the function's name to FUNCTION next to the package; one image per
function, all sharing the same layers but this one file.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module

FUNCTION_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "FUNCTION")


def main() -> None:
    try:
        with open(FUNCTION_FILE, encoding="utf-8") as f:
            name = f.read().strip()
        module = import_module(f"spiffe_kpt.{name.replace('-', '_')}")
    except (OSError, ImportError) as exc:
        sys.stderr.write(f"spiffe-kpt: this image names no known function ({exc}); rebuild it with "
                         "--build-arg FUNCTION=<name>\n")
        sys.exit(2)
    module.main()


if __name__ == "__main__":
    main()

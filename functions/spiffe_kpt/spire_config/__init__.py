"""spire-config: validate a SPIRE deployment package's values and write them into its resources.

Reads the package's ``SpireDeployment`` (workloadidentity.nephio.org/v1alpha1, local config),
checks it against ``schemas/SpireDeployment.json`` and the rules in ``values`` (placeholders,
trust domain, TTLs against the CA TTL, offline window of an edge server, class names,
agent/server pairing), then writes server.conf / agent.conf / controller-manager configs
into the package's ConfigMaps and sets namespaces, sidecars and generated resources
(``package``). Any error: an error result with resourceRef and field path, exit 1, nothing
written. See README.md beside this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

# The body is function.py; these names load it on first use (see spiffe_kpt.lazy).
__all__ = ["NAME", "Values", "configure", "main", "read_values", "render_agent_conf", "render_server_conf"]
__getattr__ = exports(__name__, __all__)

if TYPE_CHECKING:
    from .function import NAME, Values, configure, main, read_values, render_agent_conf, render_server_conf

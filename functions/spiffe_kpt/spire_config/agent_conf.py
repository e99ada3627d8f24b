"""agent.conf for a SPIRE agent (and the upstream agent of a downstream server).

Only keys SPIRE 1.13 knows (cmd/spire-agent/cli/run/run.go, plugin docs for k8s_psat and
the k8s workload attestor).
"""

from __future__ import annotations

from . import hcl, paths
from .values import Values


def render_agent_conf(v: Values, *, upstream: bool = False) -> str:
    """agent.conf for the cluster's agents; ``upstream``: the agent a downstream server uses
    to reach the root (it attests to the root and serves only the downstream server)."""
    agent = hcl.Block("agent")
    agent.attr("data_dir", paths.AGENT_DATA_DIR)
    agent.attr("log_level", v.log_level)
    agent.attr("log_format", "json")
    if upstream:
        agent.attr("server_address", v.upstream_address)
        agent.attr("server_port", v.upstream_port)
    else:
        agent.attr("server_address", v.server_address)
        agent.attr("server_port", v.server_port)
    agent.attr("socket_path", paths.AGENT_SOCKET)
    agent.attr("trust_bundle_path", f"{paths.BUNDLE_DIR}/{paths.BUNDLE_KEY}")
    agent.attr("trust_bundle_format", "pem")
    agent.attr("trust_domain", v.trust_domain)

    plugins = hcl.Block("plugins")
    psat = plugins.block("NodeAttestor", "k8s_psat").block("plugin_data")
    psat.attr("cluster", v.cluster_name)
    psat.attr("token_path", paths.PSAT_TOKEN)
    # Memory: an agent re-attests with a fresh projected token after a restart, so it needs
    # no writable host path for its keys.
    plugins.block("KeyManager", "memory").block("plugin_data")
    k8s = plugins.block("WorkloadAttestor", "k8s").block("plugin_data")
    k8s.attr("node_name_env", "MY_NODE_NAME")
    if v.kubelet_verification == "skip":
        k8s.attr("skip_kubelet_verification", True)
    else:
        k8s.attr("kubelet_ca_path", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")

    health = hcl.Block("health_checks")
    health.attr("listener_enabled", True)
    health.attr("bind_address", "0.0.0.0")
    health.attr("bind_port", str(paths.AGENT_HEALTH_PORT))
    health.attr("live_path", "/live")
    health.attr("ready_path", "/ready")
    return hcl.render([agent, plugins, health])

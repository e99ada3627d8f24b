"""Where things live inside the containers: shared by the config renderers and the pod specs,
so a path in server.conf and the volume mount that provides it cannot drift apart."""

CONFIG_DIR = "/run/spire/config"
DATA_DIR = "/run/spire/data"
# The server's admin API socket, shared with the controller-manager sidecars via an emptyDir.
SERVER_SOCKET_DIR = "/tmp/spire-server/private"
SERVER_SOCKET = f"{SERVER_SOCKET_DIR}/api.sock"
KUBECONFIG_DIR = "/run/spire/kubeconfigs"
UPSTREAM_CA_DIR = "/run/spire/upstream-ca"
VAULT_CA_DIR = "/run/spire/vault-ca"
BUNDLE_ENDPOINT_CERT_DIR = "/run/spire/bundle-endpoint-tls"
# SPIRE's OIDC discovery provider (a container of the root server's pod): its config beside
# server.conf in the spire-server ConfigMap, its serving certificate from the operator's Secret.
OIDC_CONFIG_KEY = "oidc-discovery-provider.conf"
OIDC_TLS_DIR = "/run/spire/oidc-discovery-provider-tls"
OIDC_CONTAINER = "spire-oidc-discovery-provider"
OIDC_IMAGE = "ghcr.io/spiffe/oidc-discovery-provider:1.13.3"
OIDC_SERVICE = "spire-oidc-discovery-provider"
# The upstream agent's Workload API, mounted into the downstream server by the upstream CSI driver.
UPSTREAM_AGENT_SOCKET_DIR = "/run/spire/upstream-agent"
UPSTREAM_AGENT_SOCKET = f"{UPSTREAM_AGENT_SOCKET_DIR}/spire-agent.sock"

AGENT_DATA_DIR = "/var/lib/spire"
AGENT_SOCKET_DIR = "/run/spire/agent-sockets"
AGENT_SOCKET = f"{AGENT_SOCKET_DIR}/spire-agent.sock"
AGENT_ADMIN_DIR = "/tmp/spire-agent/private"
BUNDLE_DIR = "/run/spire/bundle"
PSAT_TOKEN_DIR = "/var/run/secrets/tokens"
PSAT_TOKEN = f"{PSAT_TOKEN_DIR}/spire-agent"
PSAT_AUDIENCE = "spire-server"

SERVER_PORT = 8081
SERVER_HEALTH_PORT = 8080
AGENT_HEALTH_PORT = 9982
OIDC_PORT = 8444  # not 8443: the federation bundle endpoint's default, in the same pod
OIDC_HEALTH_PORT = 8008  # the provider's default health port
OIDC_SERVICE_PORT = 443
# One health port per controller-manager sidecar (they share the pod's network namespace).
CONTROLLER_HEALTH_BASE_PORT = 8083

BUNDLE_CONFIGMAP = "spire-bundle"
BUNDLE_KEY = "bundle.crt"
UPSTREAM_BUNDLE_CONFIGMAP = "spire-upstream-bundle"


def kubeconfig_path(cluster: str) -> str:
    return f"{KUBECONFIG_DIR}/{cluster}/kubeconfig"

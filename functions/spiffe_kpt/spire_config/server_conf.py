"""server.conf for a root or downstream SPIRE server, as an operator would write it by hand.

Only keys SPIRE 1.13 knows are written (unknown keys are fatal to spire-server): see
cmd/spire-server/cli/run/run.go and the plugin docs for each key used here.
"""

from __future__ import annotations

from . import hcl, paths
from .values import DOWNSTREAM, ROOT, Values


def _psat_clusters(v: Values) -> hcl.Map:
    agent_sa = f"{v.agent_namespace}:spire-agent"
    clusters: dict[str, hcl.Value] = {v.cluster_name: hcl.Map({"service_account_allow_list": [agent_sa]})}
    if v.role == ROOT:
        for wc in v.workload_clusters:
            # Nested clusters: only the upstream agent that serves the downstream server attests here.
            sa = f"{v.agent_namespace}:spire-upstream-agent" if wc.mode == "nested" else agent_sa
            clusters[wc.name] = hcl.Map({"service_account_allow_list": [sa],
                                         "kube_config_file": paths.kubeconfig_path(wc.name)})
    return hcl.Map(clusters, quoted=True)


def _bundle_clusters(v: Values) -> hcl.Map:
    def target(kubeconfig: str | None, name: str = paths.BUNDLE_CONFIGMAP) -> hcl.Map:
        entries: dict[str, hcl.Value] = {"configmap_name": name,
                                         "configmap_key": paths.BUNDLE_KEY,
                                         "namespace": v.agent_namespace, "format": "pem"}
        if kubeconfig:
            entries["kubeconfig_path"] = kubeconfig
        return hcl.Map(entries)
    clusters: dict[str, hcl.Value] = {v.cluster_name: target(None)}
    if v.role == ROOT:
        # Central workload clusters' agents bootstrap from the root's bundle. In a nested
        # cluster only the upstream agent talks to the root; its agents trust the downstream
        # server, which publishes spire-bundle there itself.
        for wc in v.workload_clusters:
            name = paths.BUNDLE_CONFIGMAP if wc.mode == "central" else paths.UPSTREAM_BUNDLE_CONFIGMAP
            clusters[wc.name] = target(paths.kubeconfig_path(wc.name), name)
    return hcl.Map(clusters, quoted=True)


def _upstream_authority(v: Values, plugins: hcl.Block) -> None:
    if v.role == DOWNSTREAM:
        data = plugins.block("UpstreamAuthority", "spire").block("plugin_data")
        data.attr("server_address", v.upstream_address)
        data.attr("server_port", str(v.upstream_port))
        data.attr("workload_api_socket", paths.UPSTREAM_AGENT_SOCKET)
        return
    ua = v.ca.upstream_authority
    if ua is None:
        return  # self-signed root: the default
    if ua.type == "disk":
        data = plugins.block("UpstreamAuthority", "disk").block("plugin_data")
        data.attr("cert_file_path", f"{paths.UPSTREAM_CA_DIR}/tls.crt")
        data.attr("key_file_path", f"{paths.UPSTREAM_CA_DIR}/tls.key")
        if ua.options["disk"].get("withBundle"):
            data.attr("bundle_file_path", f"{paths.UPSTREAM_CA_DIR}/ca.crt")
    elif ua.type == "cert-manager":
        cm = ua.options["certManager"]
        data = plugins.block("UpstreamAuthority", "cert-manager").block("plugin_data")
        data.attr("issuer_name", cm["issuerName"])
        data.attr("issuer_kind", cm.get("issuerKind", "Issuer"))
        data.attr("issuer_group", cm.get("issuerGroup", "cert-manager.io"))
        data.attr("namespace", cm.get("namespace", v.server_namespace))
    elif ua.type == "vault":
        vo = ua.options["vault"]
        data = plugins.block("UpstreamAuthority", "vault").block("plugin_data")
        data.attr("vault_addr", vo["address"])
        data.attr("pki_mount_point", vo.get("pkiMountPoint", "pki"))
        if vo.get("caSecretName"):
            data.attr("ca_cert_path", f"{paths.VAULT_CA_DIR}/ca.crt")
        if vo.get("namespace"):
            data.attr("namespace", vo["namespace"])
        # Kubernetes auth: the server proves itself to Vault with its own service account
        # token, so no Vault token or AppRole secret has to be stored in the cluster.
        k8s = data.block("k8s_auth")
        k8s.attr("k8s_auth_mount_point", vo.get("k8sAuthMountPoint", "kubernetes"))
        k8s.attr("k8s_auth_role_name", vo["k8sAuthRole"])
        k8s.attr("token_path", "/var/run/secrets/kubernetes.io/serviceaccount/token")


def _federation(v: Values, server: hcl.Block) -> None:
    be = v.bundle_endpoint
    if be is None:
        return
    endpoint = server.block("federation").block("bundle_endpoint")
    endpoint.attr("address", "0.0.0.0")
    endpoint.attr("port", be.port)
    if be.refresh_hint:
        endpoint.attr("refresh_hint", be.refresh_hint)
    profile = endpoint.block("profile", be.profile)
    if be.profile == "https_web":
        if be.acme:
            acme = profile.block("acme")
            acme.attr("domain_name", be.acme["domainName"])
            acme.attr("email", be.acme["email"])
            acme.attr("tos_accepted", bool(be.acme.get("tosAccepted")))
            if be.acme.get("directoryURL"):
                acme.attr("directory_url", be.acme["directoryURL"])
        else:
            cert = profile.block("serving_cert_file")
            cert.attr("cert_file_path", f"{paths.BUNDLE_ENDPOINT_CERT_DIR}/tls.crt")
            cert.attr("key_file_path", f"{paths.BUNDLE_ENDPOINT_CERT_DIR}/tls.key")
    # Peers are not written as static federates_with: spire-controller-manager manages them
    # from ClusterFederatedTrustDomain resources (static relationships would override those).


def render_server_conf(v: Values) -> str:
    """The complete server.conf (HCL) for a root or downstream SPIRE server."""
    server = hcl.Block("server")
    server.attr("bind_address", "0.0.0.0")
    server.attr("bind_port", paths.SERVER_PORT)
    server.attr("socket_path", paths.SERVER_SOCKET)
    server.attr("trust_domain", v.trust_domain)
    server.attr("data_dir", paths.DATA_DIR)
    server.attr("log_level", v.log_level)
    server.attr("log_format", "json")
    server.attr("ca_key_type", v.ca.key_type)
    server.attr("ca_ttl", v.ca.ttl)
    server.attr("default_x509_svid_ttl", v.x509_ttl)
    server.attr("default_jwt_svid_ttl", v.jwt_ttl)
    if v.jwt_issuer:
        # The iss claim of every JWT-SVID this server mints (pkg/server/credtemplate); the same
        # in the root and its downstream servers, served by the root's OIDC discovery provider.
        server.attr("jwt_issuer", v.jwt_issuer)
    if v.ca.country or v.ca.organization or v.ca.common_name:
        subject = server.block("ca_subject")
        if v.ca.country:
            subject.attr("country", v.ca.country)
        if v.ca.organization:
            subject.attr("organization", v.ca.organization)
        if v.ca.common_name:
            subject.attr("common_name", v.ca.common_name)
    _federation(v, server)

    plugins = hcl.Block("plugins")
    ds = plugins.block("DataStore", "sql").block("plugin_data")
    ds.attr("database_type", "sqlite3")
    ds.attr("connection_string", f"{paths.DATA_DIR}/datastore.sqlite3")
    # Disk, not memory: a restarted server keeps its CA keys, so agents and the trust
    # bundle do not have to roll over on every pod restart.
    plugins.block("KeyManager", "disk").block("plugin_data").attr("keys_path", f"{paths.DATA_DIR}/keys.json")
    plugins.block("NodeAttestor", "k8s_psat").block("plugin_data").attr("clusters", _psat_clusters(v))
    _upstream_authority(v, plugins)
    plugins.block("BundlePublisher", "k8s_configmap").block("plugin_data").attr("clusters", _bundle_clusters(v))

    health = hcl.Block("health_checks")
    health.attr("listener_enabled", True)
    health.attr("bind_address", "0.0.0.0")
    health.attr("bind_port", str(paths.SERVER_HEALTH_PORT))
    health.attr("live_path", "/live")
    health.attr("ready_path", "/ready")
    return hcl.render([server, plugins, health])

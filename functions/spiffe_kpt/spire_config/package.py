"""Apply validated values to the package's resources (plain dicts at the YAML boundary).

What the function owns, and nothing else:
- the ``data`` keys it writes into the config ConfigMaps (server.conf, agent.conf, one
  controller-manager config per cluster);
- the namespace of every resource of the package, the Namespace objects' names and the
  ServiceAccount subjects of bindings (the values' serverNamespace/agentNamespace);
- in a server StatefulSet: the server container's ports, the controller-manager sidecars
  cloned from the ``spire-controller-manager`` container (one per remote cluster), the
  ``spire-oidc-discovery-provider`` container (present exactly when spec.oidcDiscoveryProvider
  is; its image survives a re-render, so kpt set-image can point it at a mirror), and the
  volumes/mounts named in ``OWNED_VOLUMES`` or ``kubeconfig-*``;
- the ``oidc-discovery-provider.conf`` key of the spire-server ConfigMap (removed with the provider);
- the ``args`` of an agent DaemonSet's ``socket-dir-owner`` init container (``socket_dir``);
- the Service type of the server Service, the downstream ClusterSPIFFEID's class and selector;
- the resources it generates (ownership annotation): ClusterFederatedTrustDomains, the
  federation bundle endpoint Service, the OIDC discovery provider's Service, cert-manager RBAC.
Every other field, annotation and comment is left as the package author wrote it.
"""

from __future__ import annotations

import copy
from typing import Any

from ..api.ownership import Desired, mark, owner_of, sync
from ..api.paths import get_path
from ..krm.resourcelist import ResourceList, is_local_config
from . import migration, paths, socket_dir
from .agent_conf import render_agent_conf
from .controller_manager import config_key, render_controller_manager_config
from .network_policy import network_policies
from .oidc_conf import render_oidc_conf
from .server_conf import render_server_conf
from .values import AGENT, DOWNSTREAM, ROOT, Values

OWNER = "workloadidentity.nephio.org/v1alpha1.SpireDeployment"
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "CSIDriver", "ClusterSPIFFEID",
                            "ClusterFederatedTrustDomain", "ClusterStaticEntry", "CustomResourceDefinition"})
OIDC_TLS_VOLUME = "oidc-discovery-provider-tls"
OWNED_VOLUMES = frozenset({"upstream-ca", "vault-ca", "bundle-endpoint-tls", "upstream-agent-socket", OIDC_TLS_VOLUME})
CM_TEMPLATE = "spire-controller-manager"
GENERATED_KINDS = frozenset({("spire.spiffe.io/v1alpha1", "ClusterFederatedTrustDomain"), ("v1", "Service"),
                             ("rbac.authorization.k8s.io/v1", "Role"),
                             ("rbac.authorization.k8s.io/v1", "RoleBinding"),
                             ("networking.k8s.io/v1", "NetworkPolicy")})
# Which namespace a resource lives in: agents (and the upstream agent) in the agent
# namespace, servers in the server namespace. Decided by the component label.
AGENT_COMPONENTS = frozenset({"agent", "upstream-agent", "csi-driver", "upstream-csi-driver", "bundle", "remote-access"})


def _component(obj: dict[str, Any]) -> str:
    return str(get_path(obj, "metadata", "labels", "app.kubernetes.io/component", default=""))


def _ns_for(obj: dict[str, Any], v: Values) -> str:
    return v.agent_namespace if _component(obj) in AGENT_COMPONENTS else v.server_namespace


def set_namespaces(items: list[dict[str, Any]], v: Values) -> None:
    for obj in items:
        if owner_of(obj):
            continue  # generated: regenerated below with the namespace it belongs in
        kind = obj.get("kind")
        meta = obj.setdefault("metadata", {})
        if kind == "Namespace":
            meta["name"] = _ns_for(obj, v)
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        elif kind not in CLUSTER_SCOPED and "namespace" in meta:
            meta["namespace"] = _ns_for(obj, v)
        if kind in ("ClusterRoleBinding", "RoleBinding"):
            for subj in obj.get("subjects") or []:
                if isinstance(subj, dict) and subj.get("kind") == "ServiceAccount":
                    name = str(subj.get("name", ""))
                    subj["namespace"] = v.agent_namespace if name in ("spire-agent", "spire-upstream-agent",
                                                                      "spire-server-remote") else v.server_namespace


def _find(items: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    for obj in items:
        if obj.get("kind") == kind and (obj.get("metadata") or {}).get("name") == name:
            return obj
    return None


def _set_data(cm: dict[str, Any] | None, key: str, text: str) -> None:
    if cm is not None:
        data = cm.get("data")
        if not isinstance(data, dict):
            data = cm["data"] = {}
        data[key] = text


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})


def _replace_named(items: list[dict[str, Any]], drop: Any, add: list[dict[str, Any]],
                   after: str | None = None) -> list[dict[str, Any]]:
    kept = [i for i in items if not drop(str(i.get("name", "")))]
    if after is None:
        return kept + add
    pos = next((n + 1 for n, i in enumerate(kept) if i.get("name") == after), len(kept))
    return kept[:pos] + add + kept[pos:]


def configure_server_pod(sts: dict[str, Any], v: Values) -> None:
    spec = _pod_spec(sts)
    containers: list[dict[str, Any]] = spec.setdefault("containers", [])
    server = next((c for c in containers if c.get("name") == "spire-server"), None)
    template = next((c for c in containers if c.get("name") == CM_TEMPLATE), None)
    volumes: list[dict[str, Any]] = spec.setdefault("volumes", [])

    def owned_volume(name: str) -> bool:
        return name in OWNED_VOLUMES or name.startswith("kubeconfig-")

    new_volumes: list[dict[str, Any]] = []
    server_mounts: list[dict[str, Any]] = []
    ua = v.ca.upstream_authority
    if ua is not None and ua.type == "disk":
        new_volumes.append({"name": "upstream-ca", "secret": {"secretName": ua.options["disk"]["secretName"]}})
        server_mounts.append({"name": "upstream-ca", "mountPath": paths.UPSTREAM_CA_DIR, "readOnly": True})
    if ua is not None and ua.type == "vault" and ua.options["vault"].get("caSecretName"):
        new_volumes.append({"name": "vault-ca", "secret": {"secretName": ua.options["vault"]["caSecretName"]}})
        server_mounts.append({"name": "vault-ca", "mountPath": paths.VAULT_CA_DIR, "readOnly": True})
    if v.bundle_endpoint is not None and v.bundle_endpoint.serving_cert_secret:
        new_volumes.append({"name": "bundle-endpoint-tls",
                            "secret": {"secretName": v.bundle_endpoint.serving_cert_secret}})
        server_mounts.append({"name": "bundle-endpoint-tls", "mountPath": paths.BUNDLE_ENDPOINT_CERT_DIR,
                              "readOnly": True})
    if v.role == DOWNSTREAM:
        # The upstream agent's Workload API reaches the server through the upstream CSI
        # driver: an ephemeral CSI volume, allowed under the "restricted" Pod Security
        # Standard where a hostPath would not be.
        new_volumes.append({"name": "upstream-agent-socket",
                            "csi": {"driver": v.upstream_csi_driver, "readOnly": True}})
        server_mounts.append({"name": "upstream-agent-socket", "mountPath": paths.UPSTREAM_AGENT_SOCKET_DIR,
                              "readOnly": True})
    remote = [cm for cm in v.controller_managers() if cm.remote]
    for cm in remote:
        new_volumes.append({"name": f"kubeconfig-{cm.cluster.replace('.', '-')}",
                            "secret": {"secretName": cm.kubeconfig_secret}})
        server_mounts.append({"name": f"kubeconfig-{cm.cluster.replace('.', '-')}",
                              "mountPath": f"{paths.KUBECONFIG_DIR}/{cm.cluster}", "readOnly": True})
    oidc = v.oidc is not None and v.role == ROOT
    if oidc:
        new_volumes.append({"name": OIDC_TLS_VOLUME, "secret": {"secretName": v.oidc.tls_secret}})
    spec["volumes"] = _replace_named(volumes, owned_volume, new_volumes)
    old = next((c for c in containers if c.get("name") == paths.OIDC_CONTAINER), None)
    provider = [oidc_container(old)] if oidc else []
    containers[:] = _replace_named(containers, lambda n: n == paths.OIDC_CONTAINER, provider)

    if server is not None:
        server["volumeMounts"] = _replace_named(server.get("volumeMounts") or [], owned_volume, server_mounts)
        ports = [{"name": "grpc", "containerPort": paths.SERVER_PORT, "protocol": "TCP"},
                 {"name": "healthz", "containerPort": paths.SERVER_HEALTH_PORT, "protocol": "TCP"}]
        if v.bundle_endpoint is not None:
            ports.append({"name": "federation", "containerPort": v.bundle_endpoint.port, "protocol": "TCP"})
        server["ports"] = ports

    if template is not None:
        managers = v.controller_managers()
        _configure_controller(template, managers[0].cluster, 0, None)
        clones = []
        for i, cm in enumerate(managers[1:], start=1):
            clone = copy.deepcopy(template)
            clone["name"] = f"{CM_TEMPLATE}-{cm.cluster.replace('.', '-')}"
            _configure_controller(clone, cm.cluster, i, cm.cluster.replace(".", "-"))
            clones.append(clone)
        spec["containers"] = _replace_named(containers, lambda n: n.startswith(CM_TEMPLATE + "-"), clones,
                                            after=CM_TEMPLATE)


def oidc_container(old: dict[str, Any] | None) -> dict[str, Any]:
    """SPIRE's OIDC discovery provider beside the server: the server's API socket (read-only
    mount of the shared emptyDir) for the keys, the operator's Secret for TLS. Hardened like
    the server container (the pod runs as 10001; no privilege escalation, read-only root,
    no capabilities, requests and limits)."""
    image = (old or {}).get("image") or paths.OIDC_IMAGE
    cfg = f"{paths.CONFIG_DIR}/{paths.OIDC_CONFIG_KEY}"
    return {
        "name": paths.OIDC_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-config", cfg],
        "ports": [{"name": "oidc", "containerPort": paths.OIDC_PORT, "protocol": "TCP"},
                  {"name": "oidc-healthz", "containerPort": paths.OIDC_HEALTH_PORT, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/live", "port": "oidc-healthz"},
                          "initialDelaySeconds": 15, "periodSeconds": 60, "timeoutSeconds": 3, "failureThreshold": 2},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "oidc-healthz"},
                           "initialDelaySeconds": 5, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi", "ephemeral-storage": "16Mi"},
                      "limits": {"cpu": "200m", "memory": "128Mi", "ephemeral-storage": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "spire-config", "mountPath": paths.CONFIG_DIR, "readOnly": True},
                         {"name": "spire-server-socket", "mountPath": paths.SERVER_SOCKET_DIR, "readOnly": True},
                         {"name": OIDC_TLS_VOLUME, "mountPath": paths.OIDC_TLS_DIR, "readOnly": True}],
    }


def _configure_controller(c: dict[str, Any], cluster: str, index: int, volume: str | None) -> None:
    port = paths.CONTROLLER_HEALTH_BASE_PORT + index
    c["args"] = [f"--config={paths.CONFIG_DIR}/{cluster}.yaml"]
    env = [e for e in c.get("env") or [] if e.get("name") not in ("KUBECONFIG", "ENABLE_WEBHOOKS")]
    # No validating webhook: it needs cluster-wide admissionregistration rights and cannot
    # serve a remote cluster; ClusterSPIFFEIDs are validated offline by spiffe-validator.
    env.append({"name": "ENABLE_WEBHOOKS", "value": "false"})
    if volume is not None:
        env.append({"name": "KUBECONFIG", "value": paths.kubeconfig_path(cluster)})
    c["env"] = env
    # Port names are unique per pod (the apiserver warns on duplicates) and at most 15 characters.
    c["ports"] = [{"name": f"cm-healthz-{index}", "containerPort": port, "protocol": "TCP"}]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        p = c.get(probe)
        if isinstance(p, dict):
            p["httpGet"] = {"path": path, "port": port}
    mounts = [m for m in c.get("volumeMounts") or [] if not str(m.get("name", "")).startswith("kubeconfig-")]
    if volume is not None:
        mounts.append({"name": f"kubeconfig-{volume}", "mountPath": f"{paths.KUBECONFIG_DIR}/{cluster}",
                       "readOnly": True})
    c["volumeMounts"] = mounts


def _meta(name: str, ns: str | None, component: str) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": "spire-server",
                                                  "app.kubernetes.io/component": component,
                                                  "app.kubernetes.io/part-of": "spire"}}
    if ns is not None:
        m["namespace"] = ns
    return m


def generated(v: Values, pkg_dir: str = "", package: list[dict[str, Any]] | None = None) -> list[Desired]:
    out: list[Desired] = []
    items = package or []
    workloads = [i for i in items if i.get("kind") in ("StatefulSet", "DaemonSet", "Deployment")]
    namespaces = [str((i.get("metadata") or {}).get("name")) for i in items if i.get("kind") == "Namespace"]
    for np in network_policies(v, workloads, namespaces):
        out.append(Desired(mark(np, OWNER), pkg_dir + "network-policies.yaml"))
    if not v.is_server:
        return out
    be = v.bundle_endpoint
    if be is not None:
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": _meta("spire-server-bundle-endpoint", v.server_namespace, "server"),
               "spec": {}}
        _set_service_type(svc["spec"], v)
        svc["spec"]["selector"] = {"app.kubernetes.io/name": "spire-server", "app.kubernetes.io/instance": "spire-server"}
        svc["spec"]["ports"] = [{"name": "federation", "port": be.port, "targetPort": "federation", "protocol": "TCP"}]
        out.append(Desired(mark(svc, OWNER), pkg_dir + "federation/bundle-endpoint-service.yaml"))
    if v.oidc is not None and v.role == ROOT:
        odp = {"apiVersion": "v1", "kind": "Service",
               "metadata": _meta(paths.OIDC_SERVICE, v.server_namespace, "server"),
               "spec": {"type": v.oidc.service_type}}
        if v.network_policy.enabled and v.oidc.service_type != "ClusterIP":
            odp["spec"]["externalTrafficPolicy"] = "Local"  # keep the verifier's address for the policy
        odp["spec"]["selector"] = {"app.kubernetes.io/name": "spire-server", "app.kubernetes.io/instance": "spire-server"}
        odp["spec"]["ports"] = [{"name": "https", "port": paths.OIDC_SERVICE_PORT, "targetPort": "oidc",
                                 "protocol": "TCP"}]
        out.append(Desired(mark(odp, OWNER), pkg_dir + "oidc-discovery-provider/service.yaml"))
    for peer in v.peers:
        name = peer.trust_domain.replace("_", "-")
        profile: dict[str, Any] = {"type": peer.profile}
        if peer.profile == "https_spiffe":
            profile["endpointSPIFFEID"] = peer.endpoint_spiffe_id
        ftd = {"apiVersion": "spire.spiffe.io/v1alpha1", "kind": "ClusterFederatedTrustDomain",
               "metadata": _meta(name, None, "federation"),
               "spec": {"className": v.class_name, "trustDomain": peer.trust_domain,
                        "bundleEndpointURL": peer.bundle_endpoint_url, "bundleEndpointProfile": profile}}
        if peer.bundle:
            ftd["spec"]["trustDomainBundle"] = peer.bundle
        out.append(Desired(mark(ftd, OWNER), pkg_dir + f"federation/{name}.yaml"))
    ua = v.ca.upstream_authority
    if ua is not None and ua.type == "cert-manager":
        ns = ua.options["certManager"].get("namespace", v.server_namespace)
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": _meta("spire-server-cert-manager", ns, "server"),
                "rules": [{"apiGroups": ["cert-manager.io"], "resources": ["certificaterequests"],
                           "verbs": ["create", "get", "list", "delete"]}]}
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": _meta("spire-server-cert-manager", ns, "server"),
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                               "name": "spire-server-cert-manager"},
                   "subjects": [{"kind": "ServiceAccount", "name": "spire-server",
                                 "namespace": v.server_namespace}]}
        out.append(Desired(mark(role, OWNER), pkg_dir + "upstream-authority/cert-manager-rbac.yaml"))
        out.append(Desired(mark(binding, OWNER), pkg_dir + "upstream-authority/cert-manager-rbac.yaml"))
    return out


def own_items(rl: ResourceList, values_obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources this values resource configures: only its own (sub)package's (with
    several SpireDeployments rendered together, a parent package, each configures the
    resources beside it)."""
    pkg_dir = _dir(values_obj)
    return [i for i in rl.items if not is_local_config(i) and _dir(i).startswith(pkg_dir)]


def apply(rl: ResourceList, values_obj: dict[str, Any], v: Values) -> list[dict[str, Any]]:
    """Write the values into the package; returns the resources it created or changed."""
    pkg_dir = _dir(values_obj)
    mine = own_items(rl, values_obj)
    set_namespaces(mine, v)
    migration.rename(mine, v, values_obj.get("spec") or {})
    for ds in mine:
        if ds.get("kind") == "DaemonSet":
            socket_dir.configure(ds)
    if v.role == AGENT:
        _set_data(_find(mine, "ConfigMap", "spire-agent"), "agent.conf", render_agent_conf(v))
        return _sync(rl, v, pkg_dir, mine)
    server_cm = _find(mine, "ConfigMap", "spire-server")
    _set_data(server_cm, "server.conf", render_server_conf(v))
    if v.oidc is not None and v.role == ROOT:
        _set_data(server_cm, paths.OIDC_CONFIG_KEY, render_oidc_conf(v))
    elif server_cm is not None and isinstance(server_cm.get("data"), dict):
        server_cm["data"].pop(paths.OIDC_CONFIG_KEY, None)
    cm_map = _find(mine, "ConfigMap", "spire-controller-manager")
    if cm_map is not None:
        cm_map["data"] = {config_key(cm): render_controller_manager_config(v, cm, i)
                          for i, cm in enumerate(v.controller_managers())}
    sts = _find(mine, "StatefulSet", "spire-server")
    if sts is not None:
        configure_server_pod(sts, v)
    svc = _find(mine, "Service", "spire-server")
    if svc is not None:
        _set_service_type(svc.setdefault("spec", {}), v)
    if v.role == DOWNSTREAM:
        _set_data(_find(mine, "ConfigMap", "spire-upstream-agent"), "agent.conf",
                  render_agent_conf(v, upstream=True))
        ident = _find(mine, "ClusterSPIFFEID", v.downstream_registration)
        if ident is not None:
            s = ident.setdefault("spec", {})
            s["className"] = v.upstream_class_name
            s["downstream"] = True
            s["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": v.server_namespace}}
    return _sync(rl, v, pkg_dir, mine)


def _sync(rl: ResourceList, v: Values, pkg_dir: str, mine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Spared: what another (sub)package's values generated, and what another spiffe-kpt
    # function generated when both run over one package (spiffe-authorization's
    # NetworkPolicies, for one).
    report = sync(rl, GENERATED_KINDS, generated(v, pkg_dir, mine),
                  keep=lambda obj: not _dir(obj).startswith(pkg_dir) or owner_of(obj) != OWNER)
    return report.created + report.updated


def _set_service_type(spec: dict[str, Any], v: Values) -> None:
    spec["type"] = v.service_type
    # A LoadBalancer or NodePort Service with the default externalTrafficPolicy (Cluster) may
    # SNAT a remote agent's connection to a node address, and the server's NetworkPolicy could
    # then no longer tell a workload cluster's agent from anything else: keep the client address.
    if v.network_policy.enabled and v.service_type != "ClusterIP":
        spec["externalTrafficPolicy"] = "Local"
    else:
        spec.pop("externalTrafficPolicy", None)


def _dir(obj: dict[str, Any]) -> str:
    ann = get_path(obj, "metadata", "annotations", default={})
    path = str(ann.get("internal.config.kubernetes.io/path") or ann.get("config.kubernetes.io/path") or "")
    return path.rsplit("/", 1)[0] + "/" if "/" in path else ""

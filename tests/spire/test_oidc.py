"""The JWT issuer and SPIRE's OIDC discovery provider in the rendered spire-server package:
the provider's config, container, Secret and Service agree with each other and with server.conf,
the downstream server says the same issuer, and the provider goes away with its value (what
spire-config owns is removed, what the user changed survives)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ..pkgtools import kpt_render
from ..real import hclconf
from .examples import SPECS, files, render_example, resources, set_values

pytestmark = pytest.mark.kpt

ISSUER = "https://oidc.telco.acme.net"


def _find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _conf(objs: list[dict[str, Any]], key: str) -> str:
    return _find(objs, "ConfigMap", "spire-server")["data"][key]


def test_provider_is_wired_to_the_server_and_the_secret(tmp_path: Path) -> None:
    pkg, r = render_example("spire-server", tmp_path)
    assert r.exit_code == 0, r.results
    objs = resources(pkg)
    server_conf, oidc_conf = _conf(objs, "server.conf"), _conf(objs, "oidc-discovery-provider.conf")
    assert hclconf.get(server_conf, "server.jwt_issuer") == ISSUER == hclconf.get(oidc_conf, "jwt_issuer")
    assert hclconf.get(oidc_conf, "jwks_uri") == ISSUER + "/keys"
    assert hclconf.get(oidc_conf, "domains") == ["oidc.telco.acme.net"]
    # keys from the server's own API socket, as the server container is told to open it
    assert hclconf.get(oidc_conf, "server_api.address") == "unix://" + hclconf.get(server_conf, "server.socket_path")

    pod = _find(objs, "StatefulSet", "spire-server")["spec"]["template"]["spec"]
    c = next(c for c in pod["containers"] if c["name"] == "spire-oidc-discovery-provider")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # its config file is the ConfigMap key, through the volume it mounts
    cfg = c["args"][c["args"].index("-config") + 1]
    cfg_dir, cfg_key = cfg.rsplit("/", 1)
    vol = next(n for n, m in mounts.items() if m["mountPath"] == cfg_dir)
    assert volumes[vol]["configMap"]["name"] == "spire-server" and cfg_key == "oidc-discovery-provider.conf"
    # the socket directory is the one the server container writes to (shared emptyDir), read-only here
    sock_dir = hclconf.get(server_conf, "server.socket_path").rsplit("/", 1)[0]
    sock = next(n for n, m in mounts.items() if m["mountPath"] == sock_dir)
    server_c = next(x for x in pod["containers"] if x["name"] == "spire-server")
    assert any(m["name"] == sock and m["mountPath"] == sock_dir for m in server_c["volumeMounts"])
    assert "emptyDir" in volumes[sock] and mounts[sock]["readOnly"] is True
    # the serving certificate is the operator's Secret
    cert_dir = hclconf.get(oidc_conf, "serving_cert_file.cert_file_path").rsplit("/", 1)[0]
    tls = next(n for n, m in mounts.items() if m["mountPath"] == cert_dir)
    assert volumes[tls] == {"name": tls, "secret": {"secretName": "spire-oidc-discovery-provider-tls"}}
    assert hclconf.get(oidc_conf, "serving_cert_file.key_file_path") == cert_dir + "/tls.key"
    # the listener, the probes and the Service agree on the ports
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert hclconf.get(oidc_conf, "serving_cert_file.addr") == f":{ports['oidc']}"
    assert hclconf.get(oidc_conf, "health_checks.bind_port") == ports[c["readinessProbe"]["httpGet"]["port"]]
    assert c["livenessProbe"]["httpGet"]["path"] == hclconf.get(oidc_conf, "health_checks.live_path")
    svc = _find(objs, "Service", "spire-oidc-discovery-provider")
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "oidc", "protocol": "TCP"}]
    assert svc["spec"]["selector"].items() <= _find(objs, "StatefulSet", "spire-server")["spec"]["template"][
        "metadata"]["labels"].items()
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["externalTrafficPolicy"] == "Local"
    # hardened like the other SPIRE containers
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(c["resources"])

    # the downstream server mints with the same issuer and runs no provider
    ds, r = render_example("spire-downstream-server", tmp_path)
    assert r.exit_code == 0, r.results
    ds_objs = resources(ds)
    assert hclconf.get(_conf(ds_objs, "server.conf"), "server.jwt_issuer") == ISSUER
    assert "oidc-discovery-provider.conf" not in _find(ds_objs, "ConfigMap", "spire-server")["data"]
    ds_pod = _find(ds_objs, "StatefulSet", "spire-server")["spec"]["template"]["spec"]
    assert "spire-oidc-discovery-provider" not in [x["name"] for x in ds_pod["containers"]]


def test_provider_goes_with_its_value_and_keeps_the_users_image(tmp_path: Path) -> None:
    pkg, r = render_example("spire-server", tmp_path)
    assert r.exit_code == 0, r.results
    # the operator points the provider at a mirror (kpt fn eval set-image, or by hand)
    sts_file = pkg / "statefulset.yaml"
    mirrored = sts_file.read_text().replace("ghcr.io/spiffe/oidc-discovery-provider:1.13.3",
                                            "registry.acme.net/spiffe/oidc-discovery-provider:1.13.3")
    assert mirrored != sts_file.read_text()
    sts_file.write_text(mirrored)
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.results
    assert "registry.acme.net/spiffe/oidc-discovery-provider:1.13.3" in sts_file.read_text()

    # without spec.oidcDiscoveryProvider: no container, volume, config key or Service; the issuer stays
    set_values(pkg, SPECS["spire-server"], drop=("oidcDiscoveryProvider",))
    r = kpt_render(pkg)
    assert r.exit_code == 0, r.results
    for rel, text in files(pkg).items():
        for gone in ("oidc-discovery-provider", "8444"):
            assert gone not in text and gone not in rel, (rel, gone)
    cm = yaml.safe_load((pkg / "configmaps.yaml").read_text().split("\n---\n")[0])
    assert 'jwt_issuer = "https://oidc.telco.acme.net"' in cm["data"]["server.conf"]
    # rendering again changes nothing
    before = files(pkg)
    assert kpt_render(pkg).exit_code == 0
    assert files(pkg) == before

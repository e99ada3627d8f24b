"""Every generated resource is valid for the real peer: Istio against the upstream CRDs,
NetworkPolicy against the Kubernetes OpenAPI schema (kubernetes-validate), MultiNetworkPolicy
against the project's schema written from the upstream Go types."""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest
import yaml

from spiffe_kpt.api.schema import load_schema, validate

from ..pkgtools import UPSTREAM_CRDS, WI_API
from .helpers import AUTHZ_5G, generated, render

K8S_VERSION = "1.32"


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    items, results, code = render(AUTHZ_5G)
    assert code == 0, results
    out = []
    for o in generated(items):
        o = json.loads(json.dumps(o))  # plain str/dict copies (the loader keeps styled str subclasses)
        o["metadata"]["annotations"] = {k: v for k, v in o["metadata"]["annotations"].items()
                                        if not k.startswith(("config.kubernetes.io/path", "config.kubernetes.io/index",
                                                             "internal.config"))}
        out.append(o)
    return out


def _crd_schemas() -> dict[tuple[str, str], dict]:
    out = {}
    for doc in yaml.safe_load_all((UPSTREAM_CRDS / "security.istio.io_crds.yaml").read_text()):
        if not doc:
            continue
        for v in doc["spec"]["versions"]:
            out[(f"{doc['spec']['group']}/{v['name']}", doc["spec"]["names"]["kind"])] = v["schema"]["openAPIV3Schema"]
    return out


def test_istio_resources_match_the_upstream_crds(objects: list[dict]) -> None:
    schemas = _crd_schemas()
    istio = [o for o in objects if o["apiVersion"].startswith("security.istio.io/")]
    assert {o["kind"] for o in istio} == {"AuthorizationPolicy", "PeerAuthentication"}
    for o in istio:
        schema = schemas[(o["apiVersion"], o["kind"])]
        # The CRD schema describes spec/status; structural checks on spec, closed objects as
        # the API server prunes them: an unknown field would be silently dropped there.
        _closed(schema)
        jsonschema.validate(o["spec"], schema["properties"]["spec"])


def _closed(schema: dict) -> None:
    """Make every object with declared properties reject unknown fields (pruning made loud)."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        for v in schema.values():
            _closed(v)
    elif isinstance(schema, list):
        for v in schema:
            _closed(v)


def test_networkpolicies_match_the_kubernetes_openapi_schema(objects: list[dict]) -> None:
    nps = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert nps
    for o in nps:
        kubernetes_validate.validate(o, K8S_VERSION, strict=True)


def test_multinetworkpolicies_match_our_schema(objects: list[dict]) -> None:
    mnps = [o for o in objects if o["kind"] == "MultiNetworkPolicy"]
    assert mnps
    schema = load_schema("MultiNetworkPolicy")
    for o in mnps:
        assert validate("MultiNetworkPolicy", o) == []
        jsonschema.Draft202012Validator(schema).validate(o)


def test_diagram_configmap_is_local_config(objects: list[dict]) -> None:
    cm = [o for o in objects if o["kind"] == "ConfigMap"]
    assert len(cm) == 1 and cm[0]["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    text = cm[0]["data"]["diagram.mmd"]
    assert text.startswith("flowchart LR") and "n4 (N4 PFCP): UDP 8805 on core-up/n4" in text


@pytest.mark.parametrize("bad,ok", [({"port": 0}, False), ({"port": 65536}, False), ({"port": 8805}, True),
                                    ({"port": "pfcp"}, True), ({"port": "Bad_Name"}, False),
                                    ({"port": "8805"}, False), ({"port": 1, "protocol": "ICMP"}, False),
                                    ({"port": 1, "protocol": "SCTP"}, True), ({"port": True}, False)])
def test_port_schema_agrees_with_jsonschema(bad: dict, ok: bool) -> None:
    wi = {"apiVersion": WI_API, "kind": "WorkloadIdentity", "metadata": {"name": "a"},
          "spec": {"workloadRef": {"kind": "Deployment", "name": "a"},
                   "ingress": [{"name": "r", "allowAll": True, "ports": [bad]}]}}
    assert (validate("WorkloadIdentity", wi) == []) is ok
    assert jsonschema.Draft202012Validator(load_schema("WorkloadIdentity")).is_valid(wi) is ok

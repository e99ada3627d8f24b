"""The fast schema validator agrees with jsonschema on every schema the project ships."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spiffe_kpt.api.schema import load_schema, validate

from .pkgtools import WI_API

SCHEMAS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "schemas").glob("*.json"))

# Values drawn from what the schemas mention (enum members, patterns' typical inputs) plus junk.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=8),
                    st.sampled_from(["Deployment", "Pod", "istio", "template", "1h", "a.b", "UPPER", "x/y",
                                     WI_API, "WorkloadIdentity", "TCP", "UDP",
                                     "SCTP", "https://x", "-bad", "ok-name", ""]))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=3),
    st.dictionaries(st.sampled_from(["name", "kind", "spec", "metadata", "workloadRef", "selector",
                                     "labelKeys", "labels", "svid", "x509TTL", "trustDomain", "idFormat",
                                     "apiVersion", "namespace", "format", "template", "unknown"]),
                    children, max_size=4)), max_leaves=12)


def _jsonschema_ok(schema: dict, obj) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(obj)


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema(name))


@pytest.mark.parametrize("name", SCHEMAS)
@given(obj=values)
@settings(max_examples=300, deadline=None)
def test_fast_validator_agrees_with_jsonschema(name: str, obj) -> None:
    schema = load_schema(name)
    assert (validate(name, obj) == []) == _jsonschema_ok(schema, obj), json.dumps(obj)


def test_errors_carry_kpt_field_paths() -> None:
    obj = {"apiVersion": WI_API, "kind": "WorkloadIdentity",
           "metadata": {"name": "a"},
           "spec": {"workloadRef": {"kind": "Deployment", "name": "a"},
                    "selector": {"labelKeys": ["ok", "not ok"]}, "svid": {"x509TTL": 3600}, "bogus": 1}}
    errors = dict(validate("WorkloadIdentity", obj))
    assert set(errors) == {"spec.selector.labelKeys[1]", "spec.svid.x509TTL", "spec.bogus"}
    assert "not a valid label key" in errors["spec.selector.labelKeys[1]"]
    assert "must be of type string, got integer 3600" in errors["spec.svid.x509TTL"]
    assert "unknown field 'bogus'" in errors["spec.bogus"]

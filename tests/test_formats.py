"""ID formats: offline rendering, Go-template equivalents, and their agreement."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spiffe_kpt.identity import formats
from spiffe_kpt.identity.formats import Attributes, FormatError

DNS = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?\Z")
LABEL = st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?\Z")


def render_go_template(template: str, td: str, cluster: str, namespace: str, sa: str, labels: dict) -> str:
    """The subset of text/template the Go templates use, evaluated independently of formats.py.

    tests/gotemplate runs the real Go text/template; this keeps the unit tests self-contained."""
    def action(m: re.Match) -> str:
        expr = m.group(1).strip()
        if expr == ".TrustDomain":
            return td
        if expr == ".ClusterName":
            return cluster
        if expr == ".PodMeta.Namespace":
            return namespace
        if expr == ".PodSpec.ServiceAccountName":
            return sa
        im = re.fullmatch(r'index \.PodMeta\.Labels "([^"]+)"', expr)
        if im:
            return labels.get(im.group(1), "")
        raise AssertionError(f"unexpected template action {expr}")
    return re.sub(r"\{\{(.*?)\}\}", action, template)


@given(DNS, DNS, DNS, LABEL, st.sampled_from(sorted(formats.NAMED_FORMATS)))
def test_named_formats_agree_with_their_go_template(namespace, sa, cluster, app, fmt) -> None:
    attrs = Attributes("telco.net", namespace, sa, cluster_name=cluster, region="eu-1", labels={"app": app})
    tpl = formats.template_for(fmt)
    offline = str(formats.render_id(tpl, attrs))
    in_cluster = render_go_template(formats.go_template(tpl, attrs), "telco.net", cluster, namespace, sa,
                                    {"app": app})
    assert offline == in_cluster


@given(DNS, DNS, LABEL)
def test_custom_template_with_labels_agrees(namespace, sa, app) -> None:
    attrs = Attributes("telco.net", namespace, sa, site="site-7", workload_name="upf", labels={"app": app})
    tpl = "/site/{site}/app/{label:app}/w/{workloadName}/ns/{namespace}"
    offline = str(formats.render_id(tpl, attrs))
    assert offline == f"spiffe://telco.net/site/site-7/app/{app}/w/upf/ns/{namespace}"
    assert render_go_template(formats.go_template(tpl, attrs), "telco.net", "", namespace, sa,
                              {"app": app}) == offline


def test_istio_is_the_default_and_matches_istio_layout() -> None:
    attrs = Attributes("telco.net", "free5gc", "smf")
    assert str(formats.render_id(formats.template_for(formats.DEFAULT_FORMAT), attrs)) == \
        "spiffe://telco.net/ns/free5gc/sa/smf"


def test_opaque_is_stable_and_depends_on_every_attribute() -> None:
    a = Attributes("td", "ns", "sa", cluster_name="c1", labels={"app": "x"})
    ids = {formats.opaque_id(a)}
    for changed in (Attributes("td", "ns2", "sa", "c1", labels={"app": "x"}),
                    Attributes("td", "ns", "sa2", "c1", labels={"app": "x"}),
                    Attributes("td", "ns", "sa", "c2", labels={"app": "x"}),
                    Attributes("td", "ns", "sa", "c1", labels={"app": "y"})):
        ids.add(formats.opaque_id(changed))
    assert len(ids) == 5
    assert formats.opaque_id(a) == formats.opaque_id(Attributes("td", "ns", "sa", "c1", labels={"app": "x"}))
    assert re.fullmatch(r"[0-9a-f]{32}", formats.opaque_id(a))
    assert "namespace=ns" in formats.opaque_source(a)


@pytest.mark.parametrize("template, fragment", [
    ("/ns/{nmespace}", "unknown variable {nmespace}"),
    ("ns/{namespace}", "must start with '/'"),
    ("/ns/{namespace", "unbalanced"),
    ("/ns/{namespace}/", "must not end with '/'"),
    ("/a b/{namespace}", "a space"),
    ("/x/{label:Bad Key}", "not a valid label key"),
])
def test_bad_templates_are_rejected(template: str, fragment: str) -> None:
    with pytest.raises(FormatError) as exc:
        formats.variables_of(template)
    assert fragment in str(exc.value)


def test_empty_variable_names_the_context_field() -> None:
    attrs = Attributes("td", "ns", "sa")
    with pytest.raises(FormatError, match="set IdentityContext spec.region"):
        formats.render_id(formats.template_for("region"), attrs)


def test_missing_label_is_reported() -> None:
    with pytest.raises(FormatError, match="no label 'tier'"):
        formats.render_id("/t/{label:tier}", Attributes("td", "ns", "sa", labels={"app": "x"}))

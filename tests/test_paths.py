"""api.paths.get_path: the nested look-up that replaces ``(x.get("a") or {}).get("b") or []`` chains."""

from __future__ import annotations

from spiffe_kpt.api.paths import get_path


def test_found_values_come_back_as_they_are() -> None:
    obj = {"spec": {"selector": {"labels": {"app.kubernetes.io/name": "upf"}, "labelKeys": []}}}
    assert get_path(obj, "spec", "selector", "labels") == {"app.kubernetes.io/name": "upf"}
    assert get_path(obj, "spec", "selector", "labels", "app.kubernetes.io/name") == "upf"
    assert get_path(obj, "spec", "selector", "labelKeys", default=("x",)) == []  # empty, not missing
    assert get_path(obj) is obj


def test_missing_null_or_not_a_mapping_gives_the_default() -> None:
    obj = {"spec": {"svid": None, "policy": "oops", "n": 0}}
    assert get_path(obj, "metadata", "name") is None
    assert get_path(obj, "spec", "svid", "federatesWith", default=()) == ()
    assert get_path(obj, "spec", "svid", default={}) == {}
    assert get_path(obj, "spec", "policy", "istiod", default={}) == {}
    assert get_path(obj, "spec", "n", default=5) == 0
    assert get_path(None, "spec", default="d") == "d"

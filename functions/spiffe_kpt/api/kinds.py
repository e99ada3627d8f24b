"""The kinds of the project's API group, and the check that every resource claiming it has one.

Every function selects its inputs by apiVersion and kind, so a resource with a misspelled kind
(``WorkloadIdentitiy``) or a misspelled group matches nothing and is skipped: the identity's
registration and policies would vanish without a word. Every function that reads the inputs
calls ``check_kinds`` first (``resolve`` does it for the identity functions), one pass over
the items.
"""

from __future__ import annotations

import difflib
from typing import Any

from .. import API_GROUP, API_VERSION
from ..krm.resourcelist import resource_ref
from ..krm.results import Result, error

# Sorted: listed in this order in messages.
KINDS = ("AccessGrant", "IdentityContext", "SpireDeployment", "StaticIdentity", "TrustBundle", "WorkloadIdentity")
_KIND_SET = frozenset(KINDS)
_BY_LOWER = {k.lower(): k for k in KINDS}
# How alike a group must be to ours to be taken for a misspelling of it (difflib ratio):
# 'workloadidentity.nephio.io' is 0.94, an unrelated group with a WorkloadIdentity kind of its
# own ('iam.cloud.example.com') is far below.
_GROUP_LIKENESS = 0.8


def closest_kind(kind: str) -> str | None:
    """The known kind ``kind`` most likely misspells, or None."""
    if kind.lower() in _BY_LOWER:
        return _BY_LOWER[kind.lower()]
    match = difflib.get_close_matches(kind.lower(), list(_BY_LOWER), n=1, cutoff=0.6)
    return _BY_LOWER[match[0]] if match else None


def check_kinds(items: list[dict[str, Any]]) -> list[Result]:
    """Errors for resources of our API group with an unknown kind or version, and for our kinds
    under a group that misspells ours."""
    out: list[Result] = []
    for obj in items:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            continue  # the ResourceList layer reports items without a string apiVersion or kind
        if kind in _KIND_SET:
            if api_version == API_VERSION:
                continue  # the common cases first: one of ours as it should be,
        elif not api_version.startswith(API_GROUP):
            continue  # or any other resource
        group, slash, _ = api_version.rpartition("/")
        if not slash:
            # No version ('workloadidentity.nephio.org'), or no group ('v1alpha1'): the core group
            # has none of our kinds, so one of them here is ours, misspelled.
            group = api_version if "." in api_version else ""
            if kind in KINDS:
                out.append(_wrong_api_version(obj, kind, api_version))
                continue
        if group == API_GROUP:
            if kind not in KINDS:
                out.append(_unknown_kind(obj, kind))
            elif api_version != API_VERSION:
                out.append(_wrong_api_version(obj, kind, api_version))
        elif kind in KINDS and difflib.SequenceMatcher(None, group, API_GROUP).ratio() >= _GROUP_LIKENESS:
            out.append(_wrong_api_version(obj, kind, api_version))
    return out


def _unknown_kind(obj: dict[str, Any], kind: str) -> Result:
    ref = resource_ref(obj)
    closest = closest_kind(kind)
    guess = f"did you mean {closest}? " if closest else ""
    return error(
        f"{kind} {ref.name or '<unnamed>'}: {API_GROUP} has no kind {kind!r}; {guess}A resource of an unknown "
        "kind is ignored by every function, so what it declares (an identity's registration and policies, "
        f"the context) would silently be missing. Fix the kind (the known kinds: {', '.join(KINDS)})",
        ref, "kind", current_value=kind, proposed_value=closest)


def _wrong_api_version(obj: dict[str, Any], kind: str, api_version: str) -> Result:
    ref = resource_ref(obj)
    return error(
        f"{kind} {ref.name or '<unnamed>'}: apiVersion must be {API_VERSION}, got {api_version!r}; under "
        "any other apiVersion the functions ignore it, so what it declares would silently be missing",
        ref, "apiVersion", current_value=api_version, proposed_value=API_VERSION)

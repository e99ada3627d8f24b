"""Names that the functions and the SPIRE packages must agree on."""

from __future__ import annotations


def default_class_name(cluster_name: str) -> str:
    """The spire-controller-manager className of a cluster's controller in the SPIRE packages, and
    the className an IdentityContext without one gets: the two halves agree unless told otherwise."""
    return f"spire-{cluster_name}"

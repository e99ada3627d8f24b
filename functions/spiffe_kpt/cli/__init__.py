"""Command-line tools around the functions: the pieces of spiffe-kpt-render, spiffe-kpt-diagram, the pinned kpt."""

"""``spiffe-kpt-trustbundle``: commit a federation peer's bundle to a package (GitOps federation).

    # on the peer's side (or from its bundle endpoint):
    spire-server bundle show -format spiffe > telco.operator.json
    # in the package:
    spiffe-kpt-trustbundle --trust-domain telco.operator telco.operator.json -o bundles/telco-operator.yaml

Reads a bundle in SPIFFE format (a file, or ``-`` for stdin), checks it exactly as the functions
will (``api.trustbundles``: parseable JWKS, X.509 authorities not expired and of that trust
domain, JWT keys well formed; an authority expiring within the refresh interval is a warning)
and writes a ``TrustBundle`` (local config) that a federation peer names in ``trustBundle``.
Refreshing the bundle is the same command over the same file. Nothing is written on an error
(exit 1); warnings go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import API_VERSION
from ..api.trustbundles import DEFAULT_REFRESH_INTERVAL, KIND, bundle_for_peer
from ..identity.durations import DurationError, parse_duration
from ..identity.spiffeid import SpiffeIDError, validate_trust_domain
from ..krm import yamlio
from ..krm.results import ResourceRef, Severity

PROG = "spiffe-kpt-trustbundle"


def trust_bundle(name: str, trust_domain: str, bundle_text: str, refresh_interval: str = "") -> dict:
    """The TrustBundle resource for a checked bundle text."""
    spec: dict = {"trustDomain": trust_domain}
    if refresh_interval:
        spec["refreshInterval"] = refresh_interval
    spec["bundle"] = bundle_text
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name, "annotations": {"config.kubernetes.io/local-config": "true"}},
            "spec": spec}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description="Wrap a peer's SPIFFE bundle (spire-server bundle show "
                                 "-format spiffe) into a TrustBundle for a package, after checking it.")
    ap.add_argument("bundle", help="the bundle file in SPIFFE format, or - for stdin")
    ap.add_argument("--trust-domain", required=True, help="the peer's trust domain")
    ap.add_argument("--name", help="metadata.name of the TrustBundle (default: the trust domain, '_' as '-')")
    ap.add_argument("--refresh-interval", default="",
                    help=f"how often a fresh copy is committed (Go duration; default {DEFAULT_REFRESH_INTERVAL})")
    ap.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    args = ap.parse_args(argv)
    try:
        validate_trust_domain(args.trust_domain)
        if args.refresh_interval:
            parse_duration(args.refresh_interval)
    except (SpiffeIDError, DurationError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args.bundle == "-" else Path(args.bundle).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{PROG}: cannot read {args.bundle}: {exc}", file=sys.stderr)
        return 2
    name = args.name or args.trust_domain.replace("_", "-")
    obj = trust_bundle(name, args.trust_domain, text, args.refresh_interval)
    # The same check the functions run, through the same entry point.
    checked, results = bundle_for_peer([obj], name, args.trust_domain, ResourceRef(API_VERSION, KIND, name),
                                       "spec.bundle")
    for r in results:
        print(f"{PROG}: {r.severity.value}: {r.message}", file=sys.stderr)
    if checked is None or any(r.severity == Severity.ERROR for r in results):
        return 1
    obj["spec"]["bundle"] = checked
    out = yamlio.dump(obj)
    if args.output is None:
        sys.stdout.write(out)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(out, encoding="utf-8")
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

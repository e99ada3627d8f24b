"""Apply a spiffe-kpt OpenBao/Vault plan (``plan.json`` of the rendered ConfigMap); prune what it dropped.

Run by the rendered Job (``python3 -S -m spiffe_kpt.access.openbao_apply``), or by hand::

    python3 -m spiffe_kpt.access.openbao_apply --plan plan.json --address https://openbao:8200 \\
        --ca-cert ca.crt --token-file token            # or --kubernetes-login kubernetes:ROLE --jwt-file F

Standard library only (the Job runs the access function's image, which has nothing else).
What it owns, and so creates, changes and deletes: auth methods whose description starts with
the plan's ``mountMarker`` (``spiffe-kpt:``), every role of those auth methods, and ACL policies
named with the plan's ``policyPrefix`` (``spiffe-kpt-grant-``). Anything else on the server is
never touched. Order: policies, auth methods (enable if missing, then config), roles; then prune
roles, auth methods and policies no longer in the plan. Deleting a grant's policy takes effect
at once for tokens already issued under it (tokens name their policies).

Exit 0 on success (a JSON summary on stdout), 1 with a message on any refusal.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any


class ApplyError(RuntimeError):
    pass


class Client:
    def __init__(self, address: str, ca_cert: str | None, token: str = ""):
        self.address = address.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
        self.token = token

    def call(self, method: str, path: str, body: Any = None, *, ok404: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        if self.token:
            req.add_header("X-Vault-Token", self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                text = r.read().decode()
                return json.loads(text) if text.strip() else None
        except urllib.error.HTTPError as e:
            if e.code == 404 and ok404:
                return None
            detail = e.read().decode(errors="replace").strip()
            raise ApplyError(f"{method} {path}: HTTP {e.code}: {detail}") from None
        except urllib.error.URLError as e:
            raise ApplyError(f"{method} {path}: {e.reason}") from None

    def list(self, path: str) -> list[str]:
        out = self.call("LIST", path, ok404=True)
        return list(((out or {}).get("data") or {}).get("keys") or [])


def login(c: Client, args: argparse.Namespace) -> None:
    if args.token_file:
        with open(args.token_file) as f:
            c.token = f.read().strip()
        return
    mount, _, role = (args.kubernetes_login or args.jwt_login or "").partition(":")
    if not mount or not role or not args.jwt_file:
        raise ApplyError("no credentials: give --token-file, or --kubernetes-login MOUNT:ROLE (or --jwt-login "
                         "MOUNT:ROLE) with --jwt-file")
    with open(args.jwt_file) as f:
        jwt = f.read().strip()
    out = c.call("POST", f"auth/{mount}/login", {"role": role, "jwt": jwt})
    c.token = out["auth"]["client_token"]


def apply(c: Client, plan: dict[str, Any], trust_bundle: str | None, dry_run: bool = False) -> dict[str, list[str]]:
    if plan.get("format") != "spiffe-kpt.openbao/v1":
        raise ApplyError(f"unknown plan format {plan.get('format')!r}")
    prefix, marker = plan["policyPrefix"], plan["mountMarker"]
    done: dict[str, list[str]] = {"policies": [], "enabled": [], "configured": [], "roles": [],
                                  "deletedRoles": [], "disabled": [], "deletedPolicies": []}

    def do(method: str, path: str, body: Any = None) -> None:
        if not dry_run:
            c.call(method, path, body)

    for name, text in sorted(plan["policies"].items()):
        if not name.startswith(prefix):
            raise ApplyError(f"policy {name!r} does not start with {prefix!r}")
        do("PUT", f"sys/policies/acl/{name}", {"policy": text})
        done["policies"].append(name)

    existing = (c.call("GET", "sys/auth") or {})
    existing = existing.get("data", existing)
    wanted_mounts = set()
    for m in plan["authMounts"]:
        path = m["path"]
        wanted_mounts.add(path)
        have = existing.get(path + "/")
        if have is None:
            do("POST", f"sys/auth/{path}", m["enable"])
            done["enabled"].append(path)
        elif have.get("type") != m["type"] or not str(have.get("description", "")).startswith(marker):
            raise ApplyError(f"auth method {path}/ exists but is not one of ours (type {have.get('type')!r}, "
                             f"description {have.get('description')!r}); remove or rename it")
        if m.get("config"):
            do("POST", f"auth/{path}/config", m["config"])
            done["configured"].append(path)
        coll = m["roleCollection"]
        for role, body in sorted(m["roles"].items()):
            body = dict(body)
            if m.get("certificateFromBundle"):
                if not trust_bundle:
                    raise ApplyError(f"auth method {path} needs the trust bundle (--trust-bundle)")
                body["certificate"] = trust_bundle
            do("POST", f"auth/{path}/{coll}/{role}", body)
            done["roles"].append(f"{path}/{role}")
        if have is not None:
            for role in c.list(f"auth/{path}/{coll}"):
                if role not in m["roles"]:
                    do("DELETE", f"auth/{path}/{coll}/{role}")
                    done["deletedRoles"].append(f"{path}/{role}")

    for path_slash, have in sorted(existing.items()):
        path = path_slash.rstrip("/")
        if isinstance(have, dict) and str(have.get("description", "")).startswith(marker) \
                and path not in wanted_mounts:
            do("DELETE", f"sys/auth/{path}")
            done["disabled"].append(path)

    for name in c.list("sys/policies/acl"):
        if name.startswith(prefix) and name not in plan["policies"]:
            do("DELETE", f"sys/policies/acl/{name}")
            done["deletedPolicies"].append(name)
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="spiffe_kpt.access.openbao_apply", description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", required=True)
    p.add_argument("--address", default=os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR"))
    p.add_argument("--ca-cert", default=os.environ.get("VAULT_CACERT") or os.environ.get("BAO_CACERT"))
    p.add_argument("--token-file")
    p.add_argument("--kubernetes-login", help="MOUNT:ROLE of a Kubernetes auth method; --jwt-file is the "
                                              "service-account token")
    p.add_argument("--jwt-login", help="MOUNT:ROLE of a JWT auth method; --jwt-file is the JWT")
    p.add_argument("--jwt-file")
    p.add_argument("--trust-bundle", help="PEM bundle for the cert auth roles (the spire-bundle ConfigMap)")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    try:
        if not args.address:
            raise ApplyError("no server address: --address or VAULT_ADDR")
        with open(args.plan) as f:
            the_plan = json.load(f)
        bundle = None
        if args.trust_bundle:
            with open(args.trust_bundle) as f:
                bundle = f.read()
        c = Client(args.address, args.ca_cert)
        login(c, args)
        done = apply(c, the_plan, bundle, args.dry_run)
    except (ApplyError, OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(done, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

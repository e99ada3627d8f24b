"""Porch (v1.5.8) end to end on one machine, inside a network namespace the test creates.

Components, all real (built by :mod:`tests.real.binaries`), no kubelet:

* etcd + kube-apiserver with the aggregation layer (front-proxy certificates), so porch's
  aggregated API ``porch.kpt.dev`` is served through the apiserver as in a cluster;
* porch-server (``cmd/porch``, default CR cache, delegated authentication and authorization
  against the apiserver) behind an APIService and an ExternalName Service to localhost;
* porch's function runner (``func/server``) with only its exec runtime: the images the
  blueprints name are mapped to this project's console scripts by
  :mod:`spiffe_kpt.porch_exec` (generated, not hand-written);
* porch's controllers binary with the PackageVariant and PackageVariantSet reconcilers;
* ``git daemon`` serving bare repositories (``git://127.0.0.1/<name>.git``, receive-pack on).

The function runner and the controllers listen on all interfaces (no host flag), so every
process runs in a fresh network namespace (``unshare -n``, entered with ``nsenter``): nothing
is reachable from outside it, and fixed ports cannot collide with anything else on the machine.
kubectl runs in the namespace too. Every process is owned by a :class:`~tests.real.stack.Stack`
and stopped with it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization

from . import binaries
from .stack import LOOPBACK, Proc, Stack, StackError, issue, make_ca, run, wait_until

PORCH_NAMESPACE = "porch-system"
ETCD_PORT, ETCD_PEER_PORT = 2379, 2380
APISERVER_PORT = 6443
PORCH_PORT = 4443
FUNCTION_RUNNER_PORT = 9445
CONTROLLERS_METRICS_PORT = 9465  # not 9464: the function pod's exporter takes the default
WRAPPER_SERVER_PORT = 9446  # porch's pod evaluator: the wrapper-server's port in a function pod
MAX_GRPC_MESSAGE = 6 * 1024 * 1024  # the function runner's --max-request-body-size default
GIT_PORT = 9418

# The management cluster's own kinds porch injects from (minimal CRDs: the real ones belong to
# Nephio's infra API and to this project's IdentityContext, whose schema the functions check).
INJECTABLE_CRDS = [
    ("infra.nephio.org", "WorkloadCluster", "workloadclusters"),
    ("workloadidentity.nephio.org", "IdentityContext", "identitycontexts"),
]


def _crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                           "listKind": kind + "List"},
                 "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


class NetNS:
    """A network namespace held open by a sleeping process of the stack; loopback up."""

    def __init__(self, stack: Stack):
        self.holder = stack.spawn("netns", ["unshare", "--net", "sleep", "infinity"])
        path = Path(f"/proc/{self.holder.popen.pid}/ns/net")
        ours = run(["readlink", "/proc/self/ns/net"]).stdout
        # unshare may still be between fork and exec: wait until it is in a namespace of its own
        wait_until(lambda: run(["readlink", path], check=False).stdout not in ("", ours),
                   10, "unshare to enter its network namespace", proc=self.holder)
        self.prefix = ["nsenter", f"--net={path}", "--"]
        run([*self.prefix, "ip", "link", "set", "lo", "up"])

    def argv(self, argv: list) -> list[str]:
        return [*self.prefix, *[str(a) for a in argv]]


class Porch:
    """The whole porch stack; see the module docstring."""

    def __init__(self, stack: Stack, functions_dir: Path | None, env: dict[str, str] | None = None,
                 repo_sync_frequency: str = "5s", function_pod_image: str | None = None):
        """``functions_dir``: the exec function runner's functions and config (porch_exec).
        ``function_pod_image``: instead of the function runner, porch talks to that image's
        function as porch's pod evaluator runs it (see :meth:`_function_pod`)."""
        self.stack = stack
        self.repo_sync_frequency = repo_sync_frequency
        self.dir = stack.subdir("porch")
        # porch's processes export OpenTelemetry metrics to localhost:4318 by default
        self.env = {"OTEL_SDK_DISABLED": "true", "OTEL_METRICS_EXPORTER": "none",
                    "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **(env or {})}
        bins = binaries.ensure_all(["etcd", "kube-apiserver", "porch-server", "porch-function-runner",
                                    "porch-controllers",
                                    *([binaries.PORCH_WRAPPER_SERVER] if function_pod_image else [])])
        self.ns = NetNS(stack)
        self._kube(bins["etcd"], bins["kube-apiserver"])
        self.source = binaries.porch_source()
        self.apply_objects(self._crds())
        if function_pod_image:
            self.runner_port = WRAPPER_SERVER_PORT
            self._function_pod(bins[binaries.PORCH_WRAPPER_SERVER], function_pod_image)
        else:
            self.runner_port = FUNCTION_RUNNER_PORT
            self._function_runner(bins["porch-function-runner"], functions_dir)
        self._porch_server(bins["porch-server"])
        self.controllers = self._spawn("porch-controllers", [
            bins["porch-controllers"], "--reconcilers=packagevariants,packagevariantsets"],
            env={"KUBECONFIG": str(self.kubeconfig), "ENABLE_PACKAGEVARIANTS": "true",
                 "ENABLE_PACKAGEVARIANTSETS": "true",
                 # controller-runtime's metrics (reconciles, work queue) through porch's
                 # OpenTelemetry Prometheus exporter, inside the namespace only
                 "OTEL_SDK_DISABLED": "false", "OTEL_METRICS_EXPORTER": "prometheus",
                 "OTEL_EXPORTER_PROMETHEUS_HOST": LOOPBACK,
                 "OTEL_EXPORTER_PROMETHEUS_PORT": str(CONTROLLERS_METRICS_PORT)})
        self.git_root = self.dir / "git"
        self.git_root.mkdir()
        self.git = self._spawn("git-daemon", [
            "git", "daemon", "--reuseaddr", f"--listen={LOOPBACK}", f"--port={GIT_PORT}",
            f"--base-path={self.git_root}", "--export-all", "--enable=receive-pack", str(self.git_root)])

    # --- processes
    def _spawn(self, name: str, argv: list, env: dict | None = None) -> Proc:
        return self.stack.spawn(name, self.ns.argv(argv), env={**self.env, **(env or {})})

    def _kube(self, etcd_bin: Path, apiserver_bin: Path) -> None:
        d = self.dir
        etcd_url = f"http://{LOOPBACK}:{ETCD_PORT}"
        self.etcd = self._spawn("etcd", [
            etcd_bin, "--name=porch", f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://{LOOPBACK}:{ETCD_PEER_PORT}",
            f"--initial-advertise-peer-urls=http://{LOOPBACK}:{ETCD_PEER_PORT}",
            f"--initial-cluster=porch=http://{LOOPBACK}:{ETCD_PEER_PORT}",
            "--unsafe-no-fsync", "--log-level=warn"])
        ca = make_ca("spiffe-kpt-porch-ca")
        ca_crt, _ = ca.write(d, "ca")
        srv_crt, srv_key = issue(ca, "kube-apiserver", server=True, ips=(LOOPBACK,),
                                 dns=("localhost", "kubernetes.default.svc")).write(d, "apiserver")
        adm_crt, adm_key = issue(ca, "porch-test-admin", orgs=("system:masters",), client=True).write(d, "admin")
        # The aggregation layer: the apiserver proxies porch.kpt.dev requests with a front-proxy
        # client certificate; porch trusts the user headers it signs.
        fp = make_ca("spiffe-kpt-porch-front-proxy-ca")
        fp_crt, _ = fp.write(d, "front-proxy-ca")
        fpc_crt, fpc_key = issue(fp, "front-proxy-client", client=True).write(d, "front-proxy-client")
        sa = make_ca("sa")  # any key pair signs service-account tokens; none are used here
        _, sa_key = sa.write(d, "sa")
        sa_pub = d / "sa.pub"
        sa_pub.write_bytes(sa.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.apiserver = self._spawn("kube-apiserver", [
            apiserver_bin, f"--etcd-servers={etcd_url}", f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}", f"--secure-port={APISERVER_PORT}",
            f"--cert-dir={d / 'certs'}", f"--tls-cert-file={srv_crt}", f"--tls-private-key-file={srv_key}",
            f"--client-ca-file={ca_crt}", "--authorization-mode=RBAC",
            f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/24", "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false", "--profiling=false",
            f"--requestheader-client-ca-file={fp_crt}", "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={fpc_crt}", f"--proxy-client-key-file={fpc_key}"])
        self.kubeconfig = d / "admin.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "porch",
            "clusters": [{"name": "porch", "cluster": {"server": f"https://{LOOPBACK}:{APISERVER_PORT}",
                                                        "certificate-authority": str(ca_crt)}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(adm_crt),
                                                  "client-key": str(adm_key)}}],
            "contexts": [{"name": "porch", "context": {"cluster": "porch", "user": "admin"}}]}))
        wait_until(lambda: self.kubectl("get", "--raw=/readyz", check=False, timeout=10).stdout.strip() == "ok",
                   120, "kube-apiserver /readyz", proc=self.apiserver, interval=0.5)

    def _crds(self) -> list[dict[str, Any]]:
        files = [self.source / "api/porchconfig/v1alpha1/config.porch.kpt.dev_repositories.yaml",
                 self.source / "internal/api/porchinternal/v1alpha1/config.porch.kpt.dev_packagerevs.yaml",
                 *sorted((self.source / "controllers/config/crd/bases").glob("*.yaml"))]
        docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
        return docs + [_crd(*c) for c in INJECTABLE_CRDS]

    def _function_runner(self, runner_bin: Path, functions_dir: Path) -> None:
        self.function_runner = self._spawn("porch-function-runner", [
            runner_bin, f"--port={FUNCTION_RUNNER_PORT}", "--disable-runtimes=pod",
            f"--functions={functions_dir}", f"--config={functions_dir / 'config.yaml'}"])
        wait_until(lambda: run(self.ns.argv(["bash", "-c", f"exec 3<>/dev/tcp/{LOOPBACK}/{FUNCTION_RUNNER_PORT}"]),
                               check=False).returncode == 0,
                   60, "the function runner's port", proc=self.function_runner)

    def _wait_port(self, port: int, what: str, proc: Proc) -> None:
        wait_until(lambda: run(self.ns.argv(["bash", "-c", f"exec 3<>/dev/tcp/{LOOPBACK}/{port}"]),
                               check=False).returncode == 0, 120, what, proc=proc)

    def _function_pod(self, wrapper_bin: Path, image: str) -> None:
        """The function container of a porch function pod, run by podman in the namespace.

        Porch v1.5.8's pod evaluator (func/internal/podmanager.go) builds the pod as: an init
        container copies ``wrapper-server`` from porch's wrapper-server image into an emptyDir at
        /wrapper-server-tools; the function container runs the function's own image with command
        /wrapper-server-tools/wrapper-server and args ``--port 9446 --max-request-body-size N --``
        followed by the image's entrypoint (from its config), with the OTEL environment below.
        Here the same binary, built from porch v1.5.8, is mounted at that path read-only (the
        emptyDir's content) and the container shares the test's network namespace (the pod's
        network); porch-server's function-runner address points at it.
        """
        entry = json.loads(run(["podman", "image", "inspect", image, "--format",
                                "{{json .Config.Entrypoint}}"]).stdout) or []
        if not entry:
            entry = json.loads(run(["podman", "image", "inspect", image, "--format",
                                    "{{json .Config.Cmd}}"]).stdout) or []
        if not entry:
            raise StackError(f"image {image} has neither an entrypoint nor a command")
        name = f"spiffe-kpt-porch-fn-{self.stack.base.name}"
        self.stack.cleanups.append(lambda: run(["podman", "rm", "--force", "--time=0", name], check=False))
        self.function_runner = self._spawn("porch-function-pod", [
            "podman", "run", "--rm", f"--name={name}", "--network=host", "--pull=never",
            f"--volume={wrapper_bin}:/wrapper-server-tools/wrapper-server:ro",
            "--env=OTEL_METRICS_EXPORTER=prometheus", "--env=OTEL_TRACES_EXPORTER=none",
            "--env=OTEL_EXPORTER_PROMETHEUS_HOST=0.0.0.0",
            "--entrypoint=/wrapper-server-tools/wrapper-server", image,
            "--port", str(WRAPPER_SERVER_PORT), "--max-request-body-size", str(MAX_GRPC_MESSAGE), "--", *entry])
        self._wait_port(WRAPPER_SERVER_PORT, "the function pod's wrapper-server", self.function_runner)

    def _porch_server(self, porch_bin: Path) -> None:
        self.porch_server = self._spawn("porch-server", [
            porch_bin, f"--kubeconfig={self.kubeconfig}",
            f"--function-runner={LOOPBACK}:{self.runner_port}",
            f"--cache-directory={self.dir / 'porch-cache'}", f"--cert-dir={self.dir / 'porch-certs'}",
            f"--secure-port={PORCH_PORT}", f"--bind-address={LOOPBACK}",
            f"--repo-sync-frequency={self.repo_sync_frequency}"])
        self.apply_objects([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PORCH_NAMESPACE}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": PORCH_NAMESPACE},
             "spec": {"type": "ExternalName", "externalName": "localhost",
                      "ports": [{"name": "api", "port": PORCH_PORT, "protocol": "TCP"}]}},
            {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
             "metadata": {"name": "v1alpha1.porch.kpt.dev"},
             "spec": {"group": "porch.kpt.dev", "version": "v1alpha1", "insecureSkipTLSVerify": True,
                      "groupPriorityMinimum": 1000, "versionPriority": 15,
                      "service": {"name": "api", "namespace": PORCH_NAMESPACE, "port": PORCH_PORT}}},
        ])
        wait_until(lambda: self.kubectl("get", "packagerevisions", "-A", check=False, timeout=15).returncode == 0,
                   120, "porch's aggregated API", proc=self.porch_server, interval=0.5)

    # --- access
    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        kubectl = shutil.which("kubectl")
        if not kubectl:
            raise StackError("kubectl is not on PATH")
        # A discovery cache of its own: every stack's apiserver is 127.0.0.1:6443 in its namespace.
        return run(self.ns.argv([kubectl, f"--kubeconfig={self.kubeconfig}",
                                 f"--cache-dir={self.dir / 'kubectl-cache'}", *args]), check=check,
                   input=input, timeout=timeout)

    def apply_objects(self, objs: list[dict[str, Any]]) -> None:
        text = "\n---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objs)
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=spiffe-kpt-tests",
                     "-f", "-", input=text)

    def get(self, kind: str, name: str = "", namespace: str = "default") -> dict[str, Any]:
        args = ["get", kind, *([name] if name else []), "-n", namespace, "-o", "json"]
        return json.loads(self.kubectl(*args).stdout)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return json.loads(self.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj)).stdout)

    def replace(self, obj: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess:
        return self.kubectl("replace", "-o", "json", "-f", "-", input=json.dumps(obj), check=check, timeout=300)

    # --- git
    def bare_repo(self, name: str, files: dict[str, Path] | None = None, tags: list[str] = ()) -> str:
        """A bare repository on branch main (one commit: ``files`` as path -> source directory,
        or empty), tagged with ``tags``; returns porch's URL for it."""
        bare = self.git_root / f"{name}.git"
        run(["git", "init", "-q", "--bare", "-b", "main", bare])
        self.push_tree(name, files or {}, tags, message="initial")
        return f"git://{LOOPBACK}:{GIT_PORT}/{name}.git"

    def push_tree(self, name: str, files: dict[str, Path], tags: list[str] = (), message: str = "update") -> None:
        """Commit ``files`` (repo path -> package directory, copied with links followed) on main."""
        bare = self.git_root / f"{name}.git"
        work = self.dir / f"work-{name}-{time.monotonic_ns()}"
        g = ["git", "-c", "user.email=test@spiffe-kpt", "-c", "user.name=test", "-c", "commit.gpgsign=false"]
        run(["git", "clone", "-q", bare, work])
        run([*g, "-C", work, "checkout", "-q", "-B", "main"])
        for path, src in files.items():
            dst = work / path
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".expected", ".results-*"))
        run([*g, "-C", work, "add", "-A"])
        run([*g, "-C", work, "commit", "-q", "--allow-empty", "-m", message])
        for t in tags:
            run([*g, "-C", work, "tag", t])
        run([*g, "-C", work, "push", "-q", "origin", "main", *tags])
        shutil.rmtree(work)

    def tags(self, name: str) -> list[str]:
        return run(["git", "-C", self.git_root / f"{name}.git", "tag"]).stdout.split()

    def show(self, name: str, ref: str, path: str) -> str:
        return run(["git", "-C", self.git_root / f"{name}.git", "show", f"{ref}:{path}"]).stdout

    def register_repository(self, name: str, url: str, deployment: bool = False,
                            namespace: str = "default") -> None:
        self.apply_objects([{
            "apiVersion": "config.porch.kpt.dev/v1alpha1", "kind": "Repository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "git", "deployment": deployment,
                     "git": {"repo": url, "branch": "main", "directory": "/"}}}])
        wait_until(lambda: any(c.get("type") == "Ready" and c.get("status") == "True" for c in
                               self.get("repositories.config.porch.kpt.dev", name, namespace)
                               .get("status", {}).get("conditions", [])),
                   120, f"Repository {name} Ready", proc=self.porch_server, interval=0.5)

    # --- porch's own processes (for the benchmark)
    def controller_metrics(self, controller: str = "packagevariant") -> dict[str, float]:
        """controller-runtime's reconcile count and time for one controller, summed over results."""
        text = run(self.ns.argv(["curl", "-sf", "-m", "10",
                                 f"http://{LOOPBACK}:{CONTROLLERS_METRICS_PORT}/metrics"]), check=False).stdout
        out: dict[str, float] = {}
        for line in text.splitlines():
            if f'controller="{controller}"' not in line or line.startswith("#"):
                continue
            name = line.split("{", 1)[0]
            if name in ("controller_runtime_reconcile_total", "controller_runtime_reconcile_time_seconds_sum",
                        "controller_runtime_reconcile_errors_total"):
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    def rss_kib(self) -> dict[str, int]:
        out = {}
        for p in (self.porch_server, self.function_runner, self.controllers):
            try:
                status = Path(f"/proc/{p.popen.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):  # peak resident set
                    out[p.name] = int(line.split()[1])
        return out

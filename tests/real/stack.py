"""A real SPIRE + Kubernetes control plane on loopback, for tests.

Components (all built by :mod:`tests.real.binaries`, nothing mocked):

* etcd + kube-apiserver (client-certificate auth, RBAC, a generated
  service-account signing key and serving certificate; no controller-manager,
  scheduler or kubelet: the tests create Nodes and Pods as those would have
  left them);
* spire-server with the sqlite3 datastore;
* spire-agent (join-token attestation, unix workload attestor);
* spire-controller-manager connected to both.

Every process runs in its own process group and is stopped (SIGTERM, then
SIGKILL of the whole group) when the :class:`Stack` closes, whatever happened
in the test.  Everything listens on 127.0.0.1 or on unix sockets in a private
temporary directory.

The entry points take configuration text, so tests can pass configurations
rendered from the project's packages::

    with Stack() as st:
        kube = st.kube()                       # etcd + kube-apiserver
        kube.apply_manifests(yaml_text)        # kubectl apply --server-side
        srv = st.spire_server(conf_text)       # None: a minimal default conf
        scm = st.controller_manager(srv, cmc_yaml_text)
        srv.entries()                          # `entry show -output json`
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from . import binaries

LOOPBACK = "127.0.0.1"


class StackError(RuntimeError):
    pass


class EntryRefused(StackError):
    """spire-server refused a registration entry (status message in args[0], result in .result)."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float, what: str,
               interval: float = 0.25, proc: Proc | None = None):
    """Poll ``check`` until it returns a truthy value; raise with context otherwise."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{proc.name} exited with {proc.poll()} while waiting for {what}\n"
                             f"{proc.log_tail()}")
        try:
            v = check()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - report the last one
            last_exc = e
        time.sleep(interval)
    msg = f"timed out after {timeout}s waiting for {what}"
    if last_exc:
        msg += f" (last error: {last_exc!r})"
    if proc is not None:
        msg += "\n" + proc.log_tail()
    raise StackError(msg)


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------

class Proc:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], logdir: Path, env: dict | None = None,
                 cwd: str | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(logdir) / f"{name}.log"
        self._log = open(self.log_path, "ab")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.popen = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                      start_new_session=True)

    def poll(self):
        return self.popen.poll()

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return f"--- last {len(lines)} lines of {self.log_path} ---\n" + "\n".join(lines)

    def stop(self, timeout: float = 10.0) -> None:
        pgid = self.popen.pid  # == pgid: start_new_session
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left in the group (the leader or its children) dies now
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._log.close()


def run(argv: list, *, check: bool = True, timeout: float = 60, env: dict | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                       env=full_env, input=input)
    if check and p.returncode != 0:
        raise StackError(f"command failed ({p.returncode}): {' '.join(map(str, argv))}\n"
                         f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


# ---------------------------------------------------------------------------
# PKI for the apiserver (cryptography)
# ---------------------------------------------------------------------------

@dataclass
class KeyPair:
    cert: x509.Certificate
    key: object

    def write(self, d: Path, stem: str) -> tuple[Path, Path]:
        c, k = d / f"{stem}.crt", d / f"{stem}.key"
        c.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(self.key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        k.chmod(0o600)
        return c, k


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert, key)


def issue(ca: KeyPair, cn: str, *, orgs: tuple[str, ...] = (), dns: tuple[str, ...] = (),
          ips: tuple[str, ...] = (), server: bool = False, client: bool = False) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    eku = ([x509.ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
          ([x509.ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    b = (x509.CertificateBuilder().subject_name(_name(cn, orgs)).issuer_name(ca.cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage(eku), critical=False))
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(b.sign(ca.key, hashes.SHA256()), key)


# ---------------------------------------------------------------------------
# etcd + kube-apiserver
# ---------------------------------------------------------------------------

class Kube:
    """etcd + kube-apiserver on loopback; an admin kubeconfig (system:masters)."""

    def __init__(self, stack: Stack, extra_args: tuple[str, ...] = ()):
        """``extra_args`` are appended to kube-apiserver's command line (the node
        tier adds the Node authorizer and the kubelet client settings); ``{dir}`` in
        them is this apiserver's directory (admin.crt/admin.key: the admin client
        certificate)."""
        self.stack = stack
        self.dir = stack.subdir("kube")
        etcd_bin = binaries.ensure("etcd")
        apiserver_bin = binaries.ensure("kube-apiserver")

        # --- etcd
        ep, pp = free_port(), free_port()
        self.etcd_url = f"http://{LOOPBACK}:{ep}"
        self.etcd = stack.spawn("etcd", [
            etcd_bin, "--name=test", f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://{LOOPBACK}:{pp}",
            f"--initial-advertise-peer-urls=http://{LOOPBACK}:{pp}",
            f"--initial-cluster=test=http://{LOOPBACK}:{pp}",
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        wait_until(lambda: json.load(urllib.request.urlopen(self.etcd_url + "/health", timeout=2))
                   .get("health") == "true", 60, "etcd /health", proc=self.etcd)

        # --- PKI
        ca = make_ca("spiffe-kpt-test-kube-ca")
        self.ca = ca  # the node tier issues the kubelet's client certificate with it
        self.ca_path, _ = ca.write(self.dir, "ca")
        serving = issue(ca, "kube-apiserver", server=True, ips=(LOOPBACK, "10.96.0.1"),
                        dns=("localhost", "kubernetes", "kubernetes.default",
                             "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))
        srv_crt, srv_key = serving.write(self.dir, "apiserver")
        admin = issue(ca, "spiffe-kpt-test-admin", orgs=("system:masters",), client=True)
        self.admin_crt, self.admin_key = admin.write(self.dir, "admin")
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_key_path = self.sa_key_path = self.dir / "sa.key"
        sa_key_path.write_bytes(sa_key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
        sa_pub_path = self.dir / "sa.pub"
        sa_pub_path.write_bytes(sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

        # --- kube-apiserver
        port = free_port()
        self.server = f"https://{LOOPBACK}:{port}"
        extra = [a.replace("{dir}", str(self.dir)) for a in extra_args]
        # a flag in extra_args replaces the default one (list flags would append)
        overridden = {a.split("=", 1)[0] for a in extra}

        def default(flag: str) -> list[str]:
            return [] if flag.split("=", 1)[0] in overridden else [flag]
        self.apiserver = stack.spawn("kube-apiserver", [
            apiserver_bin,
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={LOOPBACK}", f"--advertise-address={LOOPBACK}", f"--secure-port={port}",
            f"--cert-dir={self.dir / 'certs'}",
            f"--tls-cert-file={srv_crt}", f"--tls-private-key-file={srv_key}",
            f"--client-ca-file={self.ca_path}",
            *default("--authorization-mode=RBAC"),
            f"--service-account-key-file={sa_pub_path}",
            f"--service-account-signing-key-file={sa_key_path}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/24",
            # a loopback advertise address may not be put into the `kubernetes`
            # Endpoints object, and there are no other apiservers to reconcile with
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--allow-privileged=true",
            "--profiling=false",
            *extra,
        ])
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.server,
                                                       "certificate-authority": str(self.ca_path)}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(self.admin_crt),
                                                  "client-key": str(self.admin_key)}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        }))
        wait_until(self._ready, 120, "kube-apiserver /readyz", proc=self.apiserver, interval=0.5)
        self._api_client = None

    def _ready(self) -> bool:
        p = self.kubectl("get", "--raw=/readyz", check=False, timeout=10)
        return p.returncode == 0 and p.stdout.strip() == "ok"

    # --- operator-style access
    @property
    def env(self) -> dict:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        kubectl = shutil.which("kubectl")
        if not kubectl:
            raise StackError("kubectl is not on PATH")
        return run([kubectl, f"--kubeconfig={self.kubeconfig}", *args], check=check,
                   input=input, timeout=timeout)

    def apply_manifests(self, yaml_text: str, *, field_manager: str = "spiffe-kpt-tests") -> str:
        """`kubectl apply --server-side` (schema validation on) of a multi-document YAML."""
        return self.kubectl("apply", "--server-side", f"--field-manager={field_manager}",
                            "-f", "-", input=yaml_text).stdout

    def apply_file(self, path: str | Path) -> str:
        return self.kubectl("apply", "--server-side", "--field-manager=spiffe-kpt-tests",
                            "-f", str(path)).stdout

    def wait_crds_established(self, names: list[str], timeout: float = 60) -> None:
        self.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s",
                     *[f"crd/{n}" for n in names], timeout=timeout + 10)

    @property
    def api_client(self):
        """A `kubernetes` Python client ApiClient authenticated as admin."""
        if self._api_client is None:
            from kubernetes import config as kconfig
            self._api_client = kconfig.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api_client

    def core(self):
        from kubernetes import client
        return client.CoreV1Api(self.api_client)

    def custom(self):
        from kubernetes import client
        return client.CustomObjectsApi(self.api_client)

    # --- objects as the scheduler and kubelet would have left them
    def create_node(self, name: str, *, ip: str = "10.0.0.10") -> object:
        from kubernetes import client
        core = self.core()
        core.create_node(client.V1Node(metadata=client.V1ObjectMeta(
            name=name, labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"})))
        now = datetime.datetime.now(datetime.UTC)
        core.patch_node_status(name, {"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": now.isoformat(), "lastTransitionTime": now.isoformat()}],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        }})
        return core.read_node(name)

    def ensure_namespace(self, name: str, labels: dict | None = None) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        try:
            self.core().create_namespace(client.V1Namespace(
                metadata=client.V1ObjectMeta(name=name, labels=labels or {})))
        except ApiException as e:
            if e.status != 409:
                raise

    def ensure_service_account(self, namespace: str, name: str) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        try:
            self.core().create_namespaced_service_account(namespace, client.V1ServiceAccount(
                metadata=client.V1ObjectMeta(name=name)))
        except ApiException as e:
            if e.status != 409:
                raise

    def create_running_pod(self, namespace: str, name: str, *, node: str, service_account: str,
                           labels: dict | None = None, pod_ip: str = "10.244.0.10",
                           image: str = "registry.invalid/workload:1") -> object:
        """A Pod bound to ``node`` (as the scheduler would) and Running/Ready (as the kubelet would)."""
        from kubernetes import client
        core = self.core()
        self.ensure_namespace(namespace)
        self.ensure_service_account(namespace, service_account)
        # PodSecurity "restricted"-compliant, so it may be created in any namespace a
        # package labels with pod-security.kubernetes.io/enforce
        core.create_namespaced_pod(namespace, client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
            spec=client.V1PodSpec(
                node_name=node, service_account_name=service_account,
                security_context=client.V1PodSecurityContext(
                    run_as_non_root=True, run_as_user=10001,
                    seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")),
                containers=[client.V1Container(
                    name="main", image=image, security_context=client.V1SecurityContext(
                        allow_privilege_escalation=False,
                        capabilities=client.V1Capabilities(drop=["ALL"])))])))
        now = datetime.datetime.now(datetime.UTC).isoformat()
        conds = [{"type": t, "status": "True", "lastTransitionTime": now}
                 for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        core.patch_namespaced_pod_status(name, namespace, {"status": {
            "phase": "Running", "conditions": conds, "hostIP": "10.0.0.10",
            "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": now,
            "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0, "started": True,
                                   "image": image, "imageID": "", "containerID": "containerd://0",
                                   "state": {"running": {"startedAt": now}}}],
        }})
        return core.read_namespaced_pod(name, namespace)


# ---------------------------------------------------------------------------
# SPIRE
# ---------------------------------------------------------------------------

DEFAULT_SERVER_CONF = """\
server {{
    bind_address = "{bind_address}"
    bind_port = "{bind_port}"
    socket_path = "{socket_path}"
    trust_domain = "{trust_domain}"
    data_dir = "{data_dir}"
    log_level = "DEBUG"
    ca_ttl = "24h"
    default_x509_svid_ttl = "1h"
    ca_subject {{
        country = ["US"]
        organization = ["spiffe-kpt tests"]
        common_name = "spiffe-kpt test server CA"
    }}
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{data_dir}/datastore.sqlite3"
        }}
    }}
    KeyManager "disk" {{
        plugin_data {{
            keys_path = "{data_dir}/keys.json"
        }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}

health_checks {{
    listener_enabled = true
    bind_address = "{health_address}"
    bind_port = "{health_port}"
    live_path = "/live"
    ready_path = "/ready"
}}
"""

DEFAULT_AGENT_CONF = """\
agent {{
    data_dir = "{data_dir}"
    log_level = "DEBUG"
    server_address = "{server_address}"
    server_port = "{server_port}"
    socket_path = "{socket_path}"
    trust_bundle_path = "{trust_bundle_path}"
    trust_domain = "{trust_domain}"
}}

plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}
}}
"""


def _health_port(conf_text: str) -> int | None:
    m = re.search(r"health_checks\s*\{[^}]*?bind_port\s*=\s*\"?(\d+)", conf_text, re.S)
    return int(m.group(1)) if m else None


def _validate(binary: Path, conf_path: str | Path) -> subprocess.CompletedProcess:
    return run([binary, "validate", "-config", conf_path], check=False)


def spire_server_validate(conf_path: str | Path) -> subprocess.CompletedProcess:
    """`spire-server validate -config PATH` (returncode 0 when SPIRE accepts it)."""
    return _validate(binaries.ensure("spire-server"), conf_path)


def spire_agent_validate(conf_path: str | Path) -> subprocess.CompletedProcess:
    """`spire-agent validate -config PATH` (returncode 0 when SPIRE accepts it)."""
    return _validate(binaries.ensure("spire-agent"), conf_path)


class SpireServer:
    """A running spire-server.

    With ``conf_text=None`` a minimal configuration (sqlite3, disk key manager,
    join_token attestor, health checks) is written.  With a rendered
    configuration the text is used as is, except that the environment-specific
    settings are overridden by command-line flags so it runs here: bind
    address/port (loopback, a free port), the API socket path and data dir
    (temporary).  Plugin paths inside ``conf_text`` (e.g. the sqlite file) are
    the caller's to point at ``self.dir`` (use ``{dir}`` in the text: it is
    substituted).
    """

    def __init__(self, stack: Stack, conf_text: str | None = None, *,
                 trust_domain: str = "example.org", name: str = "spire-server",
                 port: int | None = None, flags: bool = True):
        self.stack = stack
        self.name = name
        self.bin = binaries.ensure("spire-server")
        self.dir = stack.subdir(name)
        self.socket_path = self.dir / "api.sock"
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir()
        self.port = port or free_port()
        if conf_text is None:
            self.health_port = free_port()
            conf_text = DEFAULT_SERVER_CONF.format(
                bind_address=LOOPBACK, bind_port=self.port, socket_path=self.socket_path,
                trust_domain=trust_domain, data_dir=self.data_dir,
                health_address=LOOPBACK, health_port=self.health_port)
        else:
            conf_text = conf_text.replace("{dir}", str(self.dir))
            self.health_port = _health_port(conf_text)
        self.conf_path = self.dir / "server.conf"
        self.conf_path.write_text(conf_text)
        # flags=False: the configuration file alone says where to listen and store (a
        # rendered conf rewritten for this machine); it must then use {dir}/api.sock,
        # {dir}/data and the port given here.
        overrides = ["-bindAddress", LOOPBACK, "-serverPort", self.port,
                     "-socketPath", self.socket_path, "-dataDir", self.data_dir] if flags else []
        self.proc = stack.spawn(name, [self.bin, "run", "-config", self.conf_path, *overrides])
        wait_until(lambda: self.cli("healthcheck", check=False, timeout=10).returncode == 0,
                   90, f"{name} healthcheck", proc=self.proc, interval=0.5)
        self.trust_domain = self._bundle_trust_domain() or trust_domain

    def _bundle_trust_domain(self) -> str | None:
        out = self.cli("bundle", "show", "-output", "json", check=False).stdout
        with contextlib.suppress(Exception):
            return json.loads(out)["trust_domain"]
        return None

    def cli(self, *args, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a `spire-server` CLI subcommand against this server's API socket."""
        # SPIRE's subcommands take no positional arguments, so the socket flag can go last
        return run([self.bin, *args, "-socketPath", self.socket_path], check=check, timeout=timeout)

    def health(self, path: str = "/ready") -> tuple[int, str]:
        """GET the health-check endpoint (status, body)."""
        if not self.health_port:
            raise StackError("this server configuration has no health_checks listener")
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.health_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def entries(self) -> list[dict]:
        """All registration entries (`entry show -output json`)."""
        out = self.cli("entry", "show", "-output", "json").stdout
        return json.loads(out).get("entries") or []

    def spiffe_ids(self) -> list[str]:
        return sorted(spiffe_id_str(e["spiffe_id"]) for e in self.entries())

    def bundle_pem(self) -> str:
        return self.cli("bundle", "show", "-format", "pem").stdout

    def join_token(self, agent_spiffe_id: str, ttl: int = 600) -> str:
        out = self.cli("token", "generate", "-spiffeID", agent_spiffe_id, "-ttl", ttl).stdout
        m = re.search(r"Token:\s*(\S+)", out)
        if not m:
            raise StackError(f"no token in `token generate` output: {out!r}")
        return m.group(1)

    def create_entry(self, spiffe_id: str, parent_id: str, selectors: list[str],
                     *extra: str) -> dict:
        args = ["entry", "create", "-spiffeID", spiffe_id, "-parentID", parent_id]
        for s in selectors:
            args += ["-selector", s]
        p = self.cli(*args, *extra, "-output", "json", check=False)
        try:
            res = json.loads(p.stdout)
            status = res["results"][0]["status"]
        except (ValueError, KeyError, IndexError):
            raise StackError(f"`entry create` failed ({p.returncode}): {p.stdout}{p.stderr}") from None
        # the CLI reports a refused entry in the result's status (exit code aside)
        if status.get("code", 0) != 0:
            raise EntryRefused(status.get("message", ""), res)
        return res


def spiffe_id_str(sid: dict | str) -> str:
    if isinstance(sid, str):
        return sid
    return f"spiffe://{sid['trust_domain']}{sid['path']}"


class SpireAgent:
    """A spire-agent attested to ``server`` with a join token."""

    def __init__(self, stack: Stack, server: SpireServer, *, agent_id_path: str = "/agent/test-node",
                 conf_text: str | None = None, name: str = "spire-agent", join_token: bool = True,
                 flags: bool = True, files: dict[str, str] | None = None):
        """``join_token=False``: the configuration's own NodeAttestor attests the agent
        (e.g. k8s_psat with a token in ``files``); ``flags=False``: no command-line
        overrides, the (rewritten) configuration says where everything is.  ``files``
        are written into the agent's directory first ({dir} in conf_text)."""
        self.bin = binaries.ensure("spire-agent")
        self.name = name
        self.dir = stack.subdir(name)
        self.server = server
        self.socket_path = self.dir / "agent.sock"
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir()
        self.spiffe_id = f"spiffe://{server.trust_domain}{agent_id_path}"
        for rel, text in (files or {}).items():
            (self.dir / rel).write_text(text)
        bundle = self.dir / "bundle.pem"
        if "bundle.pem" not in (files or {}):
            bundle.write_text(server.bundle_pem())
        if conf_text is None:
            conf_text = DEFAULT_AGENT_CONF.format(
                data_dir=self.data_dir, server_address=LOOPBACK, server_port=server.port,
                socket_path=self.socket_path, trust_bundle_path=bundle,
                trust_domain=server.trust_domain)
        else:
            conf_text = conf_text.replace("{dir}", str(self.dir))
        self.conf_path = self.dir / "agent.conf"
        self.conf_path.write_text(conf_text)
        argv = [self.bin, "run", "-config", self.conf_path]
        if join_token:
            argv += ["-joinToken", server.join_token(self.spiffe_id)]
        if flags:
            argv += ["-serverAddress", LOOPBACK, "-serverPort", server.port,
                     "-socketPath", self.socket_path, "-dataDir", self.data_dir]
        self.proc = stack.spawn(name, argv)
        wait_until(lambda: run([self.bin, "healthcheck", "-socketPath", self.socket_path],
                               check=False, timeout=10).returncode == 0,
                   90, f"{name} healthcheck", proc=self.proc, interval=0.5)

    def fetch_x509(self, out_dir: Path, timeout: float = 60) -> Path:
        """`spire-agent api fetch x509 -write DIR`, retried until the entry reached the agent."""
        out_dir.mkdir(parents=True, exist_ok=True)

        def attempt():
            p = run([self.bin, "api", "fetch", "x509", "-socketPath", self.socket_path,
                     "-write", out_dir, "-timeout", "5s"], check=False, timeout=20)
            return p.returncode == 0 and (out_dir / "svid.0.pem").exists()
        wait_until(attempt, timeout, "an X.509-SVID from `spire-agent api fetch x509`",
                   interval=1, proc=self.proc)
        return out_dir


# ---------------------------------------------------------------------------
# spire-controller-manager
# ---------------------------------------------------------------------------

def controller_manager_config(*, trust_domain: str, cluster_name: str, class_name: str,
                              entry_id_prefix: str, socket_path: str | Path = "") -> str:
    return yaml.safe_dump({
        "apiVersion": "spire.spiffe.io/v1alpha1",
        "kind": "ControllerManagerConfig",
        "clusterName": cluster_name,
        "clusterDomain": "cluster.local",
        "trustDomain": trust_domain,
        "className": class_name,
        "entryIDPrefix": entry_id_prefix,
        "spireServerSocketPath": str(socket_path),
        "ignoreNamespaces": ["kube-system", "kube-public", "spire-system"],
    }, sort_keys=False)


class ControllerManager:
    """spire-controller-manager connected to ``kube`` and ``server``.

    ``config_text`` is a ControllerManagerConfig (e.g. rendered from a
    package).  Its identity settings (clusterName, trustDomain, className,
    entryIDPrefix, ignoreNamespaces, ...) are kept; only what ties it to this
    machine is overridden: spireServerSocketPath (the test server's socket),
    health/metrics bind addresses (loopback, free port / off) and leader
    election (off).  The validating webhook is disabled (ENABLE_WEBHOOKS=false):
    it needs in-cluster credentials and a Service, which a loopback apiserver
    without kubelets cannot provide.
    """

    def __init__(self, stack: Stack, kube: Kube, server: SpireServer, config_text: str,
                 name: str = "spire-controller-manager", default_cluster_domain: bool = True):
        self.bin = binaries.ensure("spire-controller-manager")
        self.dir = stack.subdir(name)
        cfg = yaml.safe_load(config_text)
        self.config = cfg
        cfg["spireServerSocketPath"] = str(server.socket_path)
        self.health_port = free_port()
        cfg["health"] = {"healthProbeBindAddress": f"{LOOPBACK}:{self.health_port}"}
        cfg["metrics"] = {"bindAddress": "0"}
        cfg["leaderElection"] = {"leaderElect": False}
        if default_cluster_domain:
            # unset, the controller looks up the CNAME of kubernetes.default.svc (works in
            # a pod only; without it it logs an error and templates get an empty .ClusterDomain)
            cfg.setdefault("clusterDomain", "cluster.local")
        self.conf_path = self.dir / "controller-manager-config.yaml"
        self.conf_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.proc = stack.spawn(name, [self.bin, "-config", self.conf_path], env={
            "KUBECONFIG": str(kube.kubeconfig), "ENABLE_WEBHOOKS": "false"})

        def ready():
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.health_port}/readyz", timeout=2) as r:
                return r.status == 200
        wait_until(ready, 60, f"{name} /readyz", proc=self.proc, interval=0.5)

    @property
    def class_name(self) -> str:
        return self.config.get("className", "")

    @property
    def entry_id_prefix(self) -> str:
        return self.config.get("entryIDPrefix", "")


# ---------------------------------------------------------------------------
# the stack
# ---------------------------------------------------------------------------

class Stack(contextlib.AbstractContextManager):
    """Owns a temporary directory and every process started through it."""

    def __init__(self, base: Path | None = None, keep: bool = False):
        # short paths: unix socket paths are limited to 107 bytes
        self.base = Path(tempfile.mkdtemp(prefix="skpt-", dir=base or "/tmp"))
        self.keep = keep or bool(os.environ.get("SPIFFE_KPT_KEEP_STACK"))
        self.procs: list[Proc] = []
        # run (last registered first) before any process is stopped: the node
        # tier stops its pods and unmounts what the kubelet mounted here
        self.cleanups: list[Callable[[], None]] = []
        self._n = 0

    def subdir(self, name: str) -> Path:
        self._n += 1
        d = self.base / f"{self._n:02d}-{name}"
        d.mkdir()
        return d

    def spawn(self, name: str, argv: list, env: dict | None = None) -> Proc:
        p = Proc(name, argv, self.base, env=env)
        self.procs.append(p)
        return p

    def log_tails(self, n: int = 30) -> str:
        return "\n".join(p.log_tail(n) for p in self.procs)

    # component constructors
    def kube(self, **kw) -> Kube:
        return Kube(self, **kw)

    def spire_server(self, conf_text: str | None = None, **kw) -> SpireServer:
        return SpireServer(self, conf_text, **kw)

    def spire_agent(self, server: SpireServer, **kw) -> SpireAgent:
        return SpireAgent(self, server, **kw)

    def controller_manager(self, kube: Kube, server: SpireServer, config_text: str,
                           **kw) -> ControllerManager:
        return ControllerManager(self, kube, server, config_text, **kw)

    def close(self) -> None:
        # reverse start order: dependants before what they depend on
        errors = []
        while self.cleanups:
            try:
                self.cleanups.pop()()
            except Exception as e:  # noqa: BLE001 - stop the processes anyway
                errors.append(f"cleanup: {e}")
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001 - stop the others anyway
                errors.append(f"{p.name}: {e!r}")
        self.procs.clear()
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise StackError("failed to stop: " + "; ".join(errors))

    def __exit__(self, *exc):
        self.close()
        return None

"""A real single-node Kubernetes cluster on this machine, for the node tier.

On top of the tier's etcd + kube-apiserver (:class:`stack.Kube`, started with
the Node authorizer and kubelet client settings of :func:`apiserver_args`):

* kube-controller-manager and kube-scheduler (same k8s.io/kubernetes release);
* containerd (Debian's package) with runc, every path under the stack's
  temporary directory (root, state, sockets, CNI config);
* a kubelet (cgroupfs driver, cgroup v1 allowed) whose root directory is in
  the same temporary directory.

Pods use the host network (loopback only here): containerd is given a CNI
configuration so that it reports its network ready, but no CNI plugin binary,
so a pod that is not ``hostNetwork`` fails to start instead of getting a
network.  No registry is reachable: images are written by :mod:`images` and
imported with ``ctr``; pods must use ``imagePullPolicy: Never`` or
``IfNotPresent`` (the default for tagged references).

The settings these machines need, and why, are in
``../shared/design/MACHINE-NOTES.md`` ("A kubelet on these machines").

Teardown (registered with the stack, runs before its processes stop, pass or
fail): the kubelet stops, every process in the pods' cgroups is killed,
containerd and its shims stop, whatever was mounted under the temporary
directory is unmounted, the pods' cgroups are removed.  Anything left over is
an error (and the temporary directory is kept for inspection).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from . import binaries, images
from .stack import LOOPBACK, Kube, Stack, StackError, free_port, issue, run, wait_until

NODE_NAME = "node-1"
# the kubelet's secure port: the spire-agent's k8s workload attestor asks the
# kubelet on this port (its default), so it is not moved to a free port.  Only
# one node tier can run on a machine at a time.
KUBELET_PORT = 10250
CGROUP_FS = Path("/sys/fs/cgroup")
# where the kubelet (cgroupfs driver, cgroupRoot "/") puts every pod
PODS_CGROUP = "kubepods"

PAUSE_IMAGE = f"{images.REGISTRY}/pause:{binaries.VERSIONS['pause']}"

# one node tier per machine: it binds fixed ports (the kubelet's 10250, the rendered
# spire-server's 8081 on the host network...) and owns the "kubepods" cgroups, so a
# second run waits on this lock instead of fighting the first one over them
NODE_LOCK = Path("/tmp/spiffe-kpt-node.lock")


@contextlib.contextmanager
def node_lock(path: Path = NODE_LOCK, poll: float = 5.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the body's life.

    While another process holds it, say so on the terminal (who holds it, since when)
    and keep waiting: two node tiers on one machine run one after the other.  The lock
    goes with the file descriptor, so a run that dies releases it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(path).read_text().strip() or "another process"
            start = time.monotonic()
            # written to the real stderr: pytest captures the fixture's output
            print(f"\nnode tier: {path} is held by {holder}; another node tier runs on this "
                  f"machine (fixed ports 10250, 8081...): waiting for it to finish", file=sys.__stderr__,
                  flush=True)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(poll)
            print(f"node tier: got {path} after {time.monotonic() - start:.0f} s", file=sys.__stderr__,
                  flush=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv)[:200]}) since "
                      f"{time.strftime('%H:%M:%S', time.gmtime())} UTC\n".encode(), 0)
        yield
    finally:
        # unlocked by closing the descriptor (also when the process dies)
        os.close(fd)


def apiserver_args() -> tuple[str, ...]:
    """kube-apiserver flags for a cluster with a kubelet.

    The kubelet authenticates as ``system:node:<name>`` and is authorized by
    the Node authorizer (+ NodeRestriction), as in production; the apiserver
    reaches the kubelet (logs, exec) at the node's InternalIP, 127.0.0.1 (the
    node name does not resolve here), verifying its serving certificate with
    the cluster CA and presenting the admin client certificate."""
    return ("--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-certificate-authority={dir}/ca.crt",
            "--kubelet-client-certificate={dir}/admin.crt",
            "--kubelet-client-key={dir}/admin.key")


def _containerd_config(d: Path) -> str:
    cni = d / "cni"
    return f"""\
version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{d / 'containerd.sock'}"

[ttrpc]
  address = "{d / 'containerd.sock.ttrpc'}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root cannot lower oom_score_adj on these machines: without this every
  # sandbox fails with "can't get final child's PID from pipe: EOF"
  restrict_oom_score_adj = true
  stream_server_address = "{LOOPBACK}"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni / 'bin'}"
    conf_dir = "{cni / 'net.d'}"
"""


# containerd reports NetworkReady only with a CNI configuration; the plugin
# binary is deliberately absent (bin_dir is empty): host-network pods only.
CNI_CONFLIST = {"cniVersion": "1.0.0", "name": "host-network-only",
                "plugins": [{"type": "host-network-only-no-cni-plugin"}]}


def _kubelet_config(d: Path, kube: Kube, containerd_sock: Path, healthz_port: int) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": LOOPBACK,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": LOOPBACK,
        "healthzPort": healthz_port,
        "containerRuntimeEndpoint": f"unix://{containerd_sock}",
        # cgroup v1 (hybrid) on these machines
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(kube.ca_path)}},
        "authorization": {"mode": "Webhook"},
        # image-filesystem stats fail on this machine's disk: keep eviction out of the way
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "staticPodPath": "",
        "clusterDomain": "cluster.local",
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "nodeStatusUpdateFrequency": "5s",
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


def _kubeconfig(path: Path, server: str, ca: Path, crt: Path, key: Path, user: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(crt), "client-key": str(key)}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": user}}],
    }))
    return path


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below ``base`` (deepest first)."""
    out = []
    prefix = str(base.resolve()).rstrip("/") + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].encode().decode("unicode_escape")
        if mp.startswith(prefix):
            out.append(mp)
    return sorted(set(out), key=lambda m: -m.count("/"))


def pod_cgroup_dirs() -> list[Path]:
    """Every cgroup directory the kubelet made for pods, in every hierarchy (deepest first)."""
    dirs = []
    for h in CGROUP_FS.iterdir():
        top = h / PODS_CGROUP
        for root, subdirs, _ in os.walk(top):  # os.walk ignores directories that vanish meanwhile
            dirs += [Path(root, d) for d in subdirs]
        if top.is_dir():
            dirs.append(top)
    return sorted(dirs, key=lambda p: -len(p.parts))


def pod_pids() -> set[int]:
    pids: set[int] = set()
    for d in pod_cgroup_dirs():
        with contextlib.suppress(OSError):
            pids |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Node:
    """kube-controller-manager, kube-scheduler, containerd and a kubelet around ``kube``."""

    def __init__(self, stack: Stack, kube: Kube, name: str = NODE_NAME):
        self.stack, self.kube, self.name = stack, kube, name
        bins = {n: binaries.ensure(n) for n in
                ("kube-controller-manager", "kube-scheduler", "kubelet", "pause")}
        if os.geteuid() != 0:
            raise StackError("the node tier runs containerd and a kubelet, which need root "
                             "(cgroups, mounts, namespaces): run the tests as root")
        for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2"):
            if not shutil.which(tool):
                raise StackError(f"{tool} is not on PATH: install Debian's `containerd` and `runc` "
                                 "packages (apt-get install containerd runc), as .ci/run does")
        leftovers = pod_pids()
        if leftovers:
            raise StackError(f"processes of an earlier kubelet still run in the pods' cgroups: "
                             f"{sorted(leftovers)}; stop them first")
        self.dir = stack.subdir("node")
        self._closed = False
        self.kubelet = self.containerd = None
        stack.cleanups.append(self.close)
        # the node's "/" for hostPath volumes: rendered hostPaths (/var/lib/kubelet/...,
        # /run/spire/...) are moved under it (noderendered.py), and the kubelet's
        # --root-dir is <host>/var/lib/kubelet
        self.host = self.dir / "host"
        self.root_dir = self.host / "var" / "lib" / "kubelet"
        self.root_dir.mkdir(parents=True)
        # "/" is a private mount here; the CSI driver's Bidirectional mount of the pods
        # directory needs a shared one (the kubelet refuses it otherwise), so the
        # kubelet's root directory is bind-mounted onto itself and made shared
        run(["mount", "--bind", self.root_dir, self.root_dir])
        run(["mount", "--make-rshared", self.root_dir])
        self._control_plane(bins)
        self._containerd()
        self.import_image(images.Image(PAUSE_IMAGE, {"pause": bins["pause"]}, ["/pause"]))
        self._kubelet(bins["kubelet"])

    # --- components
    def _control_plane(self, bins: dict) -> None:
        k = self.kube
        self.kcm = self.stack.spawn("kube-controller-manager", [
            bins["kube-controller-manager"], f"--kubeconfig={k.kubeconfig}",
            f"--authentication-kubeconfig={k.kubeconfig}", f"--authorization-kubeconfig={k.kubeconfig}",
            f"--bind-address={LOOPBACK}", f"--secure-port={free_port()}",
            f"--cert-dir={self.dir / 'kcm-certs'}",
            f"--service-account-private-key-file={k.sa_key_path}", f"--root-ca-file={k.ca_path}",
            "--use-service-account-credentials=true", "--leader-elect=false",
            "--controllers=*,-bootstrapsigner,-tokencleaner", "--profiling=false",
        ])
        self.scheduler = self.stack.spawn("kube-scheduler", [
            bins["kube-scheduler"], f"--kubeconfig={k.kubeconfig}",
            f"--authentication-kubeconfig={k.kubeconfig}", f"--authorization-kubeconfig={k.kubeconfig}",
            f"--bind-address={LOOPBACK}", f"--secure-port={free_port()}",
            f"--cert-dir={self.dir / 'scheduler-certs'}", "--leader-elect=false", "--profiling=false",
        ])

    def _containerd(self) -> None:
        d = self.dir / "containerd"
        (d / "cni" / "bin").mkdir(parents=True)
        (d / "cni" / "net.d").mkdir(parents=True)
        (d / "cni" / "net.d" / "10-host-network-only.conflist").write_text(json.dumps(CNI_CONFLIST))
        conf = d / "config.toml"
        conf.write_text(_containerd_config(d))
        self.containerd_sock = d / "containerd.sock"
        # absolute --root/--state/--address: relative ones break the shim
        self.containerd = self.stack.spawn("containerd", [
            shutil.which("containerd"), "--config", conf, "--root", d / "root", "--state", d / "state",
            "--address", self.containerd_sock])
        wait_until(lambda: self.ctr("version", check=False).returncode == 0, 60, "containerd",
                   proc=self.containerd)

    def _kubelet(self, kubelet_bin: Path) -> None:
        d = self.dir / "kubelet"
        d.mkdir()
        k = self.kube
        cert = issue(k.ca, f"system:node:{self.name}", orgs=("system:nodes",), client=True)
        crt, key = cert.write(d, "kubelet-client")
        kubeconfig = _kubeconfig(d / "kubelet.kubeconfig", k.server, k.ca_path, crt, key, "kubelet")
        # serving certificate from the cluster CA (production: serverTLSBootstrap): the
        # spire-agent's k8s workload attestor verifies the kubelet with the CA of its
        # service-account token (the rendered kubelet_ca_path)
        serving = issue(k.ca, f"system:node:{self.name}", orgs=("system:nodes",), server=True,
                        ips=(LOOPBACK,), dns=(self.name,))
        scrt, skey = serving.write(d, "kubelet-serving")
        self.healthz_port = free_port()
        conf = d / "config.yaml"
        cfg = _kubelet_config(d, k, self.containerd_sock, self.healthz_port)
        cfg.update(tlsCertFile=str(scrt), tlsPrivateKeyFile=str(skey))
        conf.write_text(yaml.safe_dump(cfg))
        self.kubelet = self.stack.spawn("kubelet", [
            kubelet_bin, f"--config={conf}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.root_dir}", f"--cert-dir={d / 'pki'}",
            f"--hostname-override={self.name}", f"--node-ip={LOOPBACK}", "--v=1",
        ])
        wait_until(self.ready, 180, f"node {self.name} Ready", proc=self.kubelet, interval=1)
        # The kubelet refuses a loopback node IP ("nodeIP can't be loopback address") and
        # then sets no address at all, so pods get no status.hostIP (the rendered agent's
        # MY_NODE_NAME) and the apiserver cannot reach the kubelet. The address is set
        # here as a cloud controller sets it; the kubelet's failing address setter leaves
        # a stored address alone (checked: it survives the next status updates).
        self.kube.core().patch_node_status(self.name, {"status": {"addresses": [
            {"type": "InternalIP", "address": LOOPBACK}, {"type": "Hostname", "address": self.name}]}})

    # --- queries
    def ready(self) -> bool:
        p = self.kube.kubectl("get", "node", self.name, "-o", "json", check=False)
        if p.returncode != 0:
            return False
        conds = json.loads(p.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def ctr(self, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return run([shutil.which("ctr"), "--address", self.containerd_sock, "--namespace", "k8s.io",
                    *args], check=check, timeout=timeout)

    def import_image(self, image: images.Image) -> str:
        archive = images.write_oci_archive(image, self.dir / (image.name.replace("/", "_") + ".tar"))
        self.ctr("images", "import", archive)
        archive.unlink()
        return image.name

    def shim_pids(self) -> list[int]:
        """containerd shims of this node's containerd (they leave its process group)."""
        if self.containerd is None:
            return []
        sock = str(self.containerd_sock)
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                cmd = _cmdline(int(p.name))
                if "containerd-shim" in cmd and sock in cmd:
                    out.append(int(p.name))
        return out

    # --- teardown
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        problems: list[str] = []

        def step(what: str, fn) -> None:
            # every step runs, whatever failed before it
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - reported below
                problems.append(f"{what}: {e!r}")
        # the kubelet first, so that it does not restart what is killed next
        if self.kubelet is not None:
            step("stop kubelet", self.kubelet.stop)
        step("kill pod processes", self._kill_pod_processes)
        shims: list[int] = []
        step("list shims", lambda: shims.extend(self.shim_pids()))
        if self.containerd is not None:
            step("stop containerd", self.containerd.stop)
        step("kill shims", lambda: self._kill_shims(shims))
        step("unmount", self._unmount)
        step("remove pod cgroups", self._remove_cgroups)
        if pod_pids():
            problems.append(f"processes left in the pods' cgroups: {sorted(pod_pids())}")
        if self.shim_pids():
            problems.append(f"containerd shims left: {self.shim_pids()}")
        if mounts_under(self.stack.base):
            problems.append(f"mounts left: {mounts_under(self.stack.base)}")
        if pod_cgroup_dirs():
            problems.append(f"pod cgroups left: {[str(d) for d in pod_cgroup_dirs()][:5]}")
        if problems:
            # never delete a tree that may still have something mounted in it
            self.stack.keep = True
            raise StackError(f"node teardown incomplete ({self.stack.base} kept): " + "; ".join(problems))

    def _kill_pod_processes(self) -> None:
        for _ in range(20):
            pids = pod_pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.25)

    def _kill_shims(self, known: list[int]) -> None:
        for pid in set(known) | set(self.shim_pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _ in range(20):
            if not self.shim_pids():
                return
            time.sleep(0.25)

    def _unmount(self) -> None:
        for mp in mounts_under(self.stack.base):
            p = subprocess.run(["umount", mp], capture_output=True, text=True)
            if p.returncode != 0:
                # still busy (a process dying): detach it
                subprocess.run(["umount", "-l", mp], capture_output=True, text=True)

    def _remove_cgroups(self) -> None:
        for d in pod_cgroup_dirs():
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


# ---------------------------------------------------------------------------
# images of the SPIRE components and the workload
# ---------------------------------------------------------------------------

# binary name -> (path in the image, entrypoint arguments after the binary).  The
# entrypoints are those of the upstream images, so the rendered `args` run unchanged
# (ghcr.io/spiffe/spire-server: `spire-server run`, ...).
IMAGE_LAYOUT = {
    "spire-server": ("opt/spire/bin/spire-server", ["run"]),
    "spire-agent": ("opt/spire/bin/spire-agent", ["run"]),
    "spire-controller-manager": ("spire-controller-manager", []),
    "spiffe-csi-driver": ("spiffe-csi-driver", []),
    "csi-registrar": ("csi-node-driver-registrar", []),
    "svid-workload": ("svid-workload", []),
    "chown": ("bin/chown", []),
}


def local_image_name(binary: str) -> str:
    return f"{images.REGISTRY}/{binary}:{binaries.VERSIONS[binary]}"


def build_image(binary: str) -> images.Image:
    path, args = IMAGE_LAYOUT[binary]
    src = binaries.ensure(binary)
    # spire-server/agent are linked against glibc (CGO, sqlite3): their libraries go in too
    return images.Image(local_image_name(binary), images.with_libraries({path: src}),
                        ["/" + path, *args])


def import_images(node: Node, names: list[str]) -> dict[str, str]:
    """Build and import the images of ``names``; binary name -> image reference."""
    return {n: node.import_image(build_image(n)) for n in names}

"""Container images for the node tier, written here without a registry or a builder.

No registry is reachable from these machines, and podman's image store is
shared with other tests, so each image is written directly as an OCI image
layout archive (one uncompressed layer, a config, a manifest, an index) and
imported into the node's containerd with ``ctr -n k8s.io images import``.

An image is a set of files: static Go binaries need nothing else (``FROM
scratch``); a dynamically linked one (spire-server and spire-agent use CGO for
sqlite3) gets the shared libraries ``ldd`` names, at their own paths.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

# Image references use a reserved domain (RFC 6761 .invalid): nothing can ever
# pull them, so an image that was not imported fails as ErrImageNeverPull
# instead of reaching out to a registry.
REGISTRY = "spiffe-kpt.invalid"


@dataclass
class Image:
    name: str                      # e.g. spiffe-kpt.invalid/pause:local-abc
    files: dict[str, Path]         # path in the image -> file on this machine
    entrypoint: list[str]
    user: str = ""
    dirs: tuple[str, ...] = ("tmp",)
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/bin:/usr/bin:/bin"])


def shared_libraries(binary: Path) -> list[Path]:
    """The shared objects a dynamically linked binary loads (empty for a static one)."""
    p = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if "not a dynamic executable" in (p.stdout + p.stderr):
        return []
    if p.returncode != 0:
        raise RuntimeError(f"ldd {binary} failed: {p.stderr}")
    libs = []
    for line in p.stdout.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m.group(1)))
    return libs


def with_libraries(files: dict[str, Path]) -> dict[str, Path]:
    """``files`` plus every shared library their binaries need."""
    out = dict(files)
    for src in files.values():
        for lib in shared_libraries(src):
            out.setdefault(str(lib).lstrip("/"), lib)
    return out


def _layer(image: Image) -> bytes:
    buf = io.BytesIO()
    # fixed order, owner and mtime: the same files give the same digest
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(set(image.dirs) | {str(Path(p).parent) for p in image.files} - {"."}):
            parts = Path(d).parts
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i])
                if sub in tar.getnames():
                    continue
                ti = tarfile.TarInfo(sub)
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o1777 if sub == "tmp" else 0o755
                tar.addfile(ti)
        for path in sorted(image.files):
            src = Path(image.files[path]).resolve()
            ti = tarfile.TarInfo(path.lstrip("/"))
            ti.size = src.stat().st_size
            ti.mode = 0o755
            with open(src, "rb") as f:
                tar.addfile(ti, f)
    return buf.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ti = tarfile.TarInfo("blobs/sha256/" + digest.split(":")[1])
    ti.size = len(data)
    tar.addfile(ti, io.BytesIO(data))
    return {"digest": digest, "size": len(data)}


def write_oci_archive(image: Image, out: Path) -> Path:
    layer = _layer(image)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": image.entrypoint, "User": image.user, "Env": image.env},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }, sort_keys=True).encode()
    with tarfile.open(out, "w") as tar:
        layer_d = _blob(tar, layer)
        config_d = _blob(tar, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_d},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_d}],
        }, sort_keys=True).encode()
        manifest_d = _blob(tar, manifest)
        index = json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_d,
            "platform": {"architecture": "amd64", "os": "linux"},
            # containerd names the imported image after this annotation
            "annotations": {"io.containerd.image.name": image.name,
                            "org.opencontainers.image.ref.name": image.name.rsplit(":", 1)[1]},
        }]}).encode()
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return out

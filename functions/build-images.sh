#!/usr/bin/env bash
# Build one container image per function with podman (or docker: CONTAINER_ENGINE=docker).
#
#   functions/build-images.sh                 # public base image (needs registry access)
#   LOCAL_BASE=1 functions/build-images.sh    # no registry: make a Debian base with debootstrap
#
# Images are tagged $IMAGE_PREFIX/<function>:$VERSION, the references the blueprints' Kptfiles use.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
engine=${CONTAINER_ENGINE:-podman}
prefix=${IMAGE_PREFIX:-ghcr.io/spiffe-kpt}
version=${VERSION:-v$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")}
functions=${FUNCTIONS:-"specializer validator attestation registration authorization access spire-config hydrate"}
if [ "$engine" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF="$repo/.ci/containers.conf"
fi

build_args=()
# Networks that intercept TLS (like these build machines) need their CA for pip in the build.
ca=${PIP_CERT:-${SSL_CERT_FILE:-}}
if [ -n "$ca" ] && [ -s "$ca" ]; then
  build_args+=(--secret "id=pipca,src=$ca")
fi
if [ "${LOCAL_BASE:-0}" = 1 ]; then
  base=localhost/spiffe-kpt-base:bookworm
  if ! $engine image exists "$base" 2>/dev/null; then
    root=$(mktemp -d)
    echo "making $base with debootstrap (about a minute)"
    debootstrap --variant=minbase --include=python3 bookworm "$root" >/dev/null
    # Documentation and caches are not needed to run a function.
    rm -rf "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale "$root"/var/cache/apt/* \
           "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | $engine import - "$base" >/dev/null
    rm -rf "$root"
  fi
  build_args+=(--build-arg "BASE_IMAGE=$base")
fi

for fn in $functions; do
  module=${fn//-/_}
  if [ ! -d "$repo/functions/spiffe_kpt/$module" ]; then
    echo "no function $fn (functions/spiffe_kpt/$module)" >&2; exit 1
  fi
  echo "building $prefix/$fn:$version"
  $engine build -q --network=host "${build_args[@]}" --build-arg "FUNCTION=$fn" --build-arg "VERSION=$version" \
    -t "$prefix/$fn:$version" "$repo" >/dev/null
done

# One image per function, as porch's function runner and kpt-functions-catalog users expect
# (porch runs an image's ENTRYPOINT; a Kptfile cannot pick an entrypoint inside an image).
# All images share every layer except the last, which only sets the entrypoint and labels:
#
#   podman build --build-arg FUNCTION=specializer -t ghcr.io/spiffe-kpt/specializer:v0.1.0 .
#
# functions/build-images.sh builds them all. BASE_IMAGE defaults to a public image; on
# machines without registry access pass a locally made one (see the README).
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
RUN python3 -m pip --version >/dev/null 2>&1 || \
    (apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*)
COPY pyproject.toml README.md /src/
COPY functions /src/functions
COPY schemas /src/schemas
# --target: a self-contained tree (the package and PyYAML with its libyaml C extension) that
# the runtime stage copies and runs with `python3 -S`, skipping site-packages discovery.
# The optional secret "pipca" is a CA bundle for networks that intercept TLS; it is used by
# pip only and never stored in a layer.
RUN --mount=type=secret,id=pipca,required=false \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi; \
    python3 -m pip install --no-cache-dir --no-compile --break-system-packages --target /opt/spiffe-kpt /src \
 && python3 -m compileall -q /opt/spiffe-kpt \
 && rm -rf /opt/spiffe-kpt/bin

FROM ${BASE_IMAGE}
ARG FUNCTION=specializer
ARG VERSION=v0.1.0
COPY --from=build /opt/spiffe-kpt /opt/spiffe-kpt
# The function name is a file, not only an ENV: buildah (podman 4.3) leaves build args out of the
# cache key of ENV and LABEL lines, so every image would get the first function built; a RUN
# that reads the arg is keyed correctly.
RUN echo "${FUNCTION}" > /opt/spiffe-kpt/FUNCTION
ENV PYTHONPATH=/opt/spiffe-kpt \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="spiffe-kpt ${FUNCTION}" \
      org.opencontainers.image.description="kpt function ${FUNCTION} of spiffe-kpt: SPIFFE workload identity for GitOps hydration" \
      org.opencontainers.image.source="https://github.com/spiffe-kpt/spiffe-kpt" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# kpt and porch run functions as nobody; the functions need no network and no writable files.
USER 65534:65534
# -S: no site import (~30 ms per start, paid on every porch call); -I would drop PYTHONPATH.
ENTRYPOINT ["python3", "-S", "-m", "spiffe_kpt.entrypoint"]

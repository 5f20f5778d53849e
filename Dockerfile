# The vmrole-operator image. `docker build -t IMAGE .` (see docs/install.md).
#
# Stage 1 installs the pinned dependencies of requirements/operator.txt with pip; stage 2 is a Python
# runtime with no shell and no package manager, run as the non-root user 65532, with nothing it needs
# to write (the root filesystem can be read-only). Both bases are Debian 12's CPython 3.11, so the
# wheels and the byte code made in stage 1 are the ones stage 2 runs. Pin them by digest for a
# reproducible build: --build-arg BUILDER_IMAGE=python@sha256:... RUNTIME_IMAGE=gcr.io/...@sha256:...
# Without a Docker engine, `make operator-image` runs this same file with buildah and bases made from
# Debian packages (hack/operator_image.py).
ARG BUILDER_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/python3-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
COPY requirements/operator.txt /tmp/requirements.txt
# --no-deps: the list is complete and pinned; pip resolves nothing on its own. kubernetes/aio is the
# client's asyncio twin, which nothing here imports: without it the image is a third smaller.
RUN python3 -m pip install --no-cache-dir --no-compile --no-deps --only-binary=:all: \
        --target /app/site -r /tmp/requirements.txt \
    && rm -rf /app/site/kubernetes/aio \
    && python3 -m compileall -q --invalidation-mode unchecked-hash /app/site
COPY operator/vmrole_operator /app/vmrole_operator
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /app/vmrole_operator

FROM ${RUNTIME_IMAGE}
# Two layers: the large, rarely changing dependencies, then the operator's own code.
COPY --from=build /app/site /app/site
COPY --from=build /app/vmrole_operator /app/vmrole_operator
ENV PYTHONPATH=/app:/app/site \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
# 8080: kopf's liveness endpoint (/healthz); 9090: Prometheus /metrics; 9443: the naming webhook.
EXPOSE 8080 9090 9443
ENTRYPOINT ["/usr/bin/python3", "-m", "vmrole_operator"]

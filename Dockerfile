# One image for `csms serve`, `csms operator` and `csms simulate`; the chart picks the command.
# Debian 12 based: the tests build its base image from Debian packages (no registry here).
ARG BASE=docker.io/library/debian:bookworm-slim

# Build stage: a virtual environment from the hash-pinned lock, then csms itself.
FROM ${BASE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# A CA bundle for pip where the package index is reached through a TLS-inspecting proxy
# (the path of a file mounted into the build); unset elsewhere. Build stage only.
ARG PIP_CERT
WORKDIR /src
COPY requirements.lock ./
RUN python3 -m venv /opt/csms \
 && /opt/csms/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY operator ./operator
# Bytecode compiled here, once: the root filesystem is read-only at run time. Extension
# modules lose their symbol tables (uvloop's alone is 13.6 MB with them, 1.6 MB without).
# pygments (10 MB) comes with rich for syntax highlighting, which csms never does.
# Swagger UI's source maps (10 MB) serve only its own developers.
RUN /opt/csms/bin/pip install --no-deps . \
 && /opt/csms/bin/pip uninstall -y pygments setuptools pip \
 && find /opt/csms -name '*.map' -delete \
 && find /opt/csms -name '*.so' -exec strip --strip-unneeded {} + \
 && python3 -m compileall -q -j 0 /opt/csms/lib
# The runtime root filesystem: Python, the libraries it all links against, dash and sleep,
# the CA bundle, the users, and the dpkg records of those packages (image/rootfs.sh).
COPY image/rootfs.sh /usr/local/bin/
RUN sh /usr/local/bin/rootfs.sh /rootfs

# Runtime stage: that filesystem and the environment, nothing else (distroless-style: no
# shell tools, package manager or compiler).
FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="csms" \
      org.opencontainers.image.description="A Kubernetes-native OCPP central system" \
      org.opencontainers.image.source="https://github.com/csms-dev/csms" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rootfs /
COPY --from=build /opt/csms /opt/csms
# Python's ssl finds the CA bundle by name (there is no hashed certificate directory), and
# there is no locale data: UTF-8 mode.
ENV PATH=/opt/csms/bin:/usr/bin PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONUTF8=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
WORKDIR /tmp
EXPOSE 9000 9001
ENTRYPOINT ["csms"]
CMD ["serve"]

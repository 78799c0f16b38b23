#!/usr/bin/env bash
# Runs pagoda's whole test suite: the native build, the portable build (generic
# code + run-time dispatched SIMD, each kernel path forced in turn by the tests;
# built with clang where it is installed, so that both compilers stay covered),
# the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer, and a
# bounded run of each fuzz target. Set QUICK=1 to run only the native build.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
status=0

run_suite() { # name, cmake flags...
  local name=$1; shift
  echo "== $name build"
  cmake -S . -B "build-test-$name" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  cmake --build "build-test-$name" -j "$jobs" >/dev/null
  echo "== $name tests"
  (cd "build-test-$name" && ctest --output-on-failure -j "$jobs") || status=1
}

run_suite native -DPAGODA_NATIVE=ON
if [ "${QUICK:-0}" != 1 ]; then
  portable_cc=()
  if command -v clang >/dev/null; then portable_cc=(-DCMAKE_C_COMPILER=clang); fi
  run_suite portable -DPAGODA_NATIVE=OFF "${portable_cc[@]}"
  run_suite sanitize -DPAGODA_NATIVE=OFF -DPAGODA_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  echo "== fuzz (bounded)"
  FUZZ_SECONDS=${FUZZ_SECONDS:-60} FUZZ_SEED_WRITER="$PWD/build-test-native/test_gguf" \
    bash scripts/fuzz.sh || status=1
fi
exit $status

#!/usr/bin/env bash
# Fuzzes the GGUF reader with libFuzzer (clang, with AddressSanitizer and
# UndefinedBehaviorSanitizer), starting from small valid files that the test
# program writes. Exits non-zero when the fuzzer finds a crash, a leak or a
# hang. Needs clang and its runtime (Debian: apt-get install clang libclang-rt-dev).
#
#   FUZZ_SECONDS=60 scripts/fuzz.sh        # run time (default 60 s)
#   FUZZ_BUILD_DIR=build-fuzz              # where to build (default build-fuzz)
#   FUZZ_JOBS=1                            # parallel fuzzing processes
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-build-fuzz}
case $build in /*) ;; *) build="$root/$build" ;; esac
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}

command -v clang >/dev/null || { echo "fuzz.sh: clang is not installed" >&2; exit 2; }

CC=clang cmake -S "$root" -B "$build" -DPAGODA_FUZZ=ON -DPAGODA_NATIVE=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_gguf test_gguf -j"$(nproc)"

corpus="$build/fuzz-corpus/gguf"
seeds="$build/fuzz-seeds/gguf"
artifacts="$build/fuzz-artifacts/gguf"
mkdir -p "$corpus" "$seeds" "$artifacts"
# The seed files: small valid GGUF files with every value type, nested arrays,
# several tensor types, alignment 64 and none, versions 2 and 3.
PAGODA_FUZZ_SEEDS="$seeds" "$build/test_gguf"

# Undefined behaviour must stop the run like a crash does.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
echo "fuzzing the GGUF reader for ${seconds}s (corpus: $corpus)"
parallel=()
if [ "$jobs" -gt 1 ]; then
    # Parallel runs write their logs into the build folder.
    parallel=(-jobs="$jobs" -workers="$jobs")
    cd "$build"
fi
status=0
"$build/fuzz_gguf" "$corpus" "$seeds" \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${parallel[@]}" \
    > "$build/fuzz-gguf.log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    tail -n 40 "$build/fuzz-gguf.log" >&2
    echo "fuzz.sh: the fuzzer failed (exit $status); inputs are in $artifacts" >&2
    exit 1
fi
grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$build/fuzz-gguf.log" || true
echo "fuzz.sh: no failures in ${seconds}s"

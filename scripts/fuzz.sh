#!/usr/bin/env bash
# Fuzzes the GGUF reader and the HTTP request parser of `pagoda serve` with
# libFuzzer (clang, with AddressSanitizer and UndefinedBehaviorSanitizer),
# starting from small valid inputs (GGUF files that the test program writes,
# request bodies written below). Exits non-zero when a fuzzer finds a crash, a
# leak or a hang. Needs clang and its runtime (Debian: apt-get install clang
# libclang-rt-dev).
#
#   FUZZ_SECONDS=60 scripts/fuzz.sh        # total run time, shared by the targets (default 60 s)
#   FUZZ_BUILD_DIR=build-fuzz              # where to build (default build-fuzz)
#   FUZZ_JOBS=1                            # parallel fuzzing processes
#   FUZZ_SEED_WRITER=build/test_gguf       # a built test_gguf to write the GGUF seeds
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-build-fuzz}
case $build in /*) ;; *) build="$root/$build" ;; esac
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}

command -v clang >/dev/null || { echo "fuzz.sh: clang is not installed" >&2; exit 2; }

CC=clang cmake -S "$root" -B "$build" -DPAGODA_FUZZ=ON -DPAGODA_NATIVE=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# The seed files come from test_gguf: an existing build's (FUZZ_SEED_WRITER) or
# one built here.
seed_writer=${FUZZ_SEED_WRITER:-}
targets=(fuzz_gguf fuzz_server_request)
[ -n "$seed_writer" ] && [ -x "$seed_writer" ] || { seed_writer="$build/test_gguf"; targets+=(test_gguf); }
cmake --build "$build" --target "${targets[@]}" -j"$(nproc)"

# The GGUF reader gets half the time, the request parser the rest.
gguf_seconds=$(( (seconds + 1) / 2 ))
server_seconds=$(( seconds - gguf_seconds ))
[ "$server_seconds" -ge 1 ] || server_seconds=1

corpus="$build/fuzz-corpus/gguf"
seeds="$build/fuzz-seeds/gguf"
artifacts="$build/fuzz-artifacts/gguf"
mkdir -p "$corpus" "$seeds" "$artifacts"
# The seed files: small valid GGUF files with every value type, nested arrays,
# several tensor types, alignment 64 and none, versions 2 and 3.
PAGODA_FUZZ_SEEDS="$seeds" "$seed_writer"

# Request bodies; the first byte picks the endpoint: 0 completions, 1 chat,
# 2 tokenize, 3 detokenize.
server_corpus="$build/fuzz-corpus/server"
server_seeds="$build/fuzz-seeds/server"
server_artifacts="$build/fuzz-artifacts/server"
mkdir -p "$server_corpus" "$server_seeds" "$server_artifacts"
printf '\000{"model":"m","prompt":"Once upon","max_tokens":8,"temperature":0.7,"top_p":0.9,"top_k":40,"min_p":0.05,"stop":["\\n","x"],"seed":3,"n":2,"logprobs":2,"logit_bias":{"13":-100,"7":1.5},"stream":true,"stream_options":{"include_usage":true},"ignore_eos":false}' > "$server_seeds/completion"
printf '\000{"prompt":[[1,2,3],[4]],"presence_penalty":0.5,"frequency_penalty":-0.5,"repetition_penalty":1.1,"max_completion_tokens":4}' > "$server_seeds/ids"
printf '\001{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi \\u00e9"}]},{"role":"assistant","content":null}],"logprobs":true,"top_logprobs":3,"max_tokens":5}' > "$server_seeds/chat"
printf '\002{"content":"hello <s> world","add_special":true,"parse_special":false}' > "$server_seeds/tokenize"
printf '\003{"tokens":[1,2,3,31999]}' > "$server_seeds/detokenize"

# Undefined behaviour must stop the run like a crash does.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
parallel=()
if [ "$jobs" -gt 1 ]; then
    # Parallel runs write their logs into the build folder.
    parallel=(-jobs="$jobs" -workers="$jobs")
    cd "$build"
fi

# run_fuzzer NAME SECONDS MAX_LEN CORPUS SEEDS ARTIFACTS
run_fuzzer() {
    local name=$1 secs=$2 max_len=$3 corp=$4 seed_dir=$5 art=$6 status=0
    echo "fuzzing $name for ${secs}s (corpus: $corp)"
    "$build/fuzz_$name" "$corp" "$seed_dir" \
        -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$art/" "${parallel[@]}" \
        > "$build/fuzz-$name.log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$build/fuzz-$name.log" >&2
        echo "fuzz.sh: the $name fuzzer failed (exit $status); inputs are in $art" >&2
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$build/fuzz-$name.log" || true
}

run_fuzzer gguf "$gguf_seconds" 65536 "$corpus" "$seeds" "$artifacts"
run_fuzzer server_request "$server_seconds" 16384 "$server_corpus" "$server_seeds" "$server_artifacts"
echo "fuzz.sh: no failures in ${seconds}s"

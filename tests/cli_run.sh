#!/usr/bin/env bash
# cli_run.sh: `pagoda run` end to end: stories260K from BOS at temperature 0
# prints exactly llama2.c's text; stop strings, --json, seeds; bad input gives
# one clear line and exit 1.
set -u
bin=$1
. "$(dirname "$0")/lib_cli.sh"
cli_require_reference models/stories260K.gguf
ref=$REF
model=$ref/models/stories260K.gguf
cli_workdir cli-run
tmp=$WORK
json_get() { node -e "const o=JSON.parse(require('fs').readFileSync(0,'utf8'));const v=o$1;process.stdout.write(typeof v==='string'?v:JSON.stringify(v))"; }

# 1. The golden story: greedy from BOS, 256 steps.
"$bin" run "$model" --temp 0 -n 256 -t 1 --json > "$tmp/story.json" 2> "$tmp/err" || fail "run failed: $(cat "$tmp/err")"
json_get ".text" < "$tmp/story.json" > "$tmp/story.txt"
expected=$ref/expected/stories260K_llama2c_greedy_from_bos.txt
if [ "$(cat "$tmp/story.txt")" == "$(cat "$expected")" ]; then ok; else fail "story differs from llama2.c's"; diff <(cat "$tmp/story.txt") "$expected" | head -5 >&2; fi
[ "$(json_get ".finish_reason" < "$tmp/story.json")" == length ] && ok || fail "finish_reason"
[ "$(json_get ".prompt_tokens" < "$tmp/story.json")" == "[1]" ] && ok || fail "prompt tokens from BOS"

# 2. Streaming prints the prompt then the same continuation; timings on stderr.
"$bin" run "$model" -p "Once upon a time" --temp 0 -n 20 -t 2 > "$tmp/stream.txt" 2> "$tmp/stderr.txt" || fail "streaming run failed"
head -c 16 "$tmp/stream.txt" | grep -q "^Once upon a time" && ok || fail "prompt not echoed"
grep -q "generated 20 tokens" "$tmp/stderr.txt" && ok || fail "summary missing: $(cat "$tmp/stderr.txt")"

# 3. A stop string ends the text before it and is not printed.
"$bin" run "$model" --temp 0 -n 100 --stop "Lily" --json > "$tmp/stop.json" || fail "stop run failed"
[ "$(json_get ".text" < "$tmp/stop.json")" == "Once upon a time, there was a little girl named " ] && ok || fail "stop text: $(json_get ".text" < "$tmp/stop.json")"
[ "$(json_get ".finish_reason" < "$tmp/stop.json")" == stop ] && ok || fail "stop finish_reason"

# 4. Seeded sampling repeats; another seed (almost surely) differs.
a=$("$bin" run "$model" --temp 1 --seed 42 -n 40 --json | json_get ".tokens")
b=$("$bin" run "$model" --temp 1 --seed 42 -n 40 --json -t 1 | json_get ".tokens")
c=$("$bin" run "$model" --temp 1 --seed 43 -n 40 --json | json_get ".tokens")
[ "$a" == "$b" ] && ok || fail "same seed gave different tokens"
[ "$a" != "$c" ] && ok || fail "different seeds gave the same 40 tokens"

# 5. Bad input: one line on stderr, exit 1, no crash.
check_error() { # description, args...
  local what=$1; shift
  "$bin" run "$@" > /dev/null 2> "$tmp/e"; local rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l < "$tmp/e")" -eq 1 ]; then ok; else fail "$what: exit $rc, stderr: $(cat "$tmp/e")"; fi
}
check_error "missing file" "$tmp/nope.gguf" -p hi
echo "not a model" > "$tmp/text.gguf"
check_error "not gguf" "$tmp/text.gguf" -p hi
check_error "prompt too long" "$model" --ctx 8 -p "Once upon a time there was a girl who liked to play"
check_error "bad temperature" "$model" --temp -1
check_error "bad flag" "$model" --bogus
check_error "unsupported arch" "$ref/vocab/ggml-vocab-gpt-2.gguf" -p hi

cli_finish

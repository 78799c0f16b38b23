#!/usr/bin/env bash
# cli_quantize.sh: `pagoda quantize` end to end: the trained stories260K and
# the random tiny-llama models to many types; `pagoda info` reads each result
# and `pagoda run` generates from it; the q8_0 story stays the F32 story's
# opening; thread count does not change the bytes; bad input gives one clear
# line and exit 1.
set -u
bin=$1
. "$(dirname "$0")/lib_cli.sh"
cli_require_reference models/stories260K.gguf
stories=$REF/models/stories260K.gguf
tiny=$REF/models/tiny-llama-f32.gguf
cli_workdir cli-quantize
tmp=$WORK

for t in q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m q4_k_s q4_k_m q5_k_m q6_k bf16 f16; do
    for m in stories tiny; do
        src=$stories
        [ $m = tiny ] && src=$tiny
        out=$tmp/$m-$t.gguf
        if "$bin" quantize "$src" "$out" "$t" --threads 2 > "$tmp/log" 2>&1; then ok; else
            fail "quantize $m $t: $(cat "$tmp/log")"; continue; fi
        grep -q "wrote $out" "$tmp/log" && ok || fail "quantize $m $t: no summary: $(cat "$tmp/log")"
        [ "$(stat -c %s "$out")" -lt "$(stat -c %s "$src")" ] && ok || fail "$m $t is not smaller"
        if "$bin" info "$out" > "$tmp/info" 2>&1; then ok; else fail "info $m $t: $(cat "$tmp/info")"; fi
        grep -qi llama "$tmp/info" && ok || fail "info $m $t: no architecture"
        "$bin" run "$out" -p "Once upon a time" -n 8 --temp 0 -t 1 > "$tmp/run" 2> "$tmp/err" \
            && ok || fail "run $m $t: $(cat "$tmp/err")"
        [ "$(wc -c < "$tmp/run")" -gt 16 ] && ok || fail "run $m $t: no text generated"
    done
done

# A trained model keeps its story at 8 bits: the first words match F32's.
"$bin" run "$stories" --temp 0 -n 24 -t 1 > "$tmp/f32.txt" 2> /dev/null || fail "run f32"
"$bin" run "$tmp/stories-q8_0.gguf" --temp 0 -n 24 -t 1 > "$tmp/q8.txt" 2> /dev/null || fail "run q8_0"
[ "$(head -c 40 "$tmp/f32.txt")" == "$(head -c 40 "$tmp/q8.txt")" ] && ok ||
    fail "q8_0 story differs early: '$(cat "$tmp/q8.txt")' vs '$(cat "$tmp/f32.txt")'"

# One thread writes the same bytes as three.
"$bin" quantize "$tiny" "$tmp/t1.gguf" q4_k_m --threads 1 > /dev/null 2>&1 || fail "quantize 1 thread"
"$bin" quantize "$tiny" "$tmp/t3.gguf" q4_k_m -t 3 > /dev/null 2>&1 || fail "quantize 3 threads"
cmp -s "$tmp/t1.gguf" "$tmp/t3.gguf" && ok || fail "1 and 3 threads wrote different files"
cmp -s "$tmp/t1.gguf" "$tmp/tiny-q4_k_m.gguf" && ok || fail "2 threads wrote a different file"

# Bad input: exit 1, one line on stderr, no output file.
bad() { # name pattern args...
    local name=$1 pattern=$2
    shift 2
    rm -f "$tmp/bad.gguf"
    "$bin" quantize "$@" > /dev/null 2> "$tmp/err"
    local rc=$?
    if [ $rc -ne 1 ]; then fail "$name: exit $rc"
    elif [ "$(wc -l < "$tmp/err")" -ne 1 ] && ! grep -q usage "$tmp/err"; then fail "$name: stderr: $(cat "$tmp/err")"
    elif ! grep -q -- "$pattern" "$tmp/err"; then fail "$name: no '$pattern' in: $(cat "$tmp/err")"
    elif [ -e "$tmp/bad.gguf" ]; then fail "$name: wrote a file"
    else ok; fi
}
bad "unknown type" "unknown type 'q9_k'" "$tiny" "$tmp/bad.gguf" q9_k
bad "missing type" "required" "$tiny" "$tmp/bad.gguf"
bad "missing input" "nope.gguf" "$tmp/nope.gguf" "$tmp/bad.gguf" q4_0
bad "input not GGUF" "quantize:" "$0" "$tmp/bad.gguf" q4_0
bad "bad thread count" "thread" "$tiny" "$tmp/bad.gguf" q4_0 --threads 0
bad "unknown flag" "unknown option" "$tiny" "$tmp/bad.gguf" q4_0 --frob
bad "same output as input" "differ" "$tiny" "$tiny" q4_0

cli_finish

#!/usr/bin/env bash
# cli_info.sh: `pagoda info` on a reference model (key fields, --kv, --json)
# and its errors: a missing file and a file that is not GGUF must each give
# exit status 1 and exactly one line on stderr.
# usage: cli_info.sh PATH/TO/pagoda
set -u
bin=${1:?usage: cli_info.sh PATH/TO/pagoda}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_error NAME ARGS...: exit 1, nothing on stdout, one line on stderr.
expect_error() {
    local name=$1
    shift
    "$bin" info "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ "$rc" -eq 1 ] || fail "$name: exit $rc, want 1"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$name: stderr is not one line: $(cat "$tmp/err")"
    [ ! -s "$tmp/out" ] || fail "$name: printed on stdout"
    grep -q "^pagoda: " "$tmp/err" || fail "$name: message does not start with 'pagoda: '"
    echo "$name: $(cat "$tmp/err")"
}

expect_error "missing file" "$tmp/no-such-file.gguf"
grep -q "no-such-file.gguf" "$tmp/err" || fail "missing file: message does not name the file"
printf 'this is not a model file at all\n' >"$tmp/notes.txt"
expect_error "not GGUF" "$tmp/notes.txt"
grep -q "not a GGUF file" "$tmp/err" || fail "not GGUF: message does not say so"
: >"$tmp/empty.gguf"
expect_error "empty file" "$tmp/empty.gguf"
printf 'GGUF\001\000\000\000' >"$tmp/v1.gguf"
expect_error "version 1" "$tmp/v1.gguf"
grep -q "version 1" "$tmp/err" || fail "version 1: message does not say which version"
head -c 3000 /dev/urandom >"$tmp/rand.gguf"
printf 'GGUF\003\000\000\000' | dd of="$tmp/rand.gguf" conv=notrunc status=none
expect_error "corrupt" "$tmp/rand.gguf"
expect_error "no argument"
expect_error "bad option" --frobnicate x.gguf
"$bin" info --help >/dev/null || fail "--help failed"

ref=${PAGODA_REFERENCE_DIR:-${PAGODA_SOURCE_DIR:-.}/../shared/reference}
model="$ref/models/stories260K.gguf"
if [ ! -f "$model" ]; then
    echo "reference data not found at $ref: skipping the model checks"
    [ "$fails" -eq 0 ] && exit 77
    exit 1
fi

# field LABEL VALUE: a line "  LABEL   VALUE" in the text output.
field() {
    grep -Eq "^  $1 +$2( |\$)" "$tmp/info" || fail "$(basename "$model"): '$1' is not '$2'"
}

"$bin" info "$model" >"$tmp/info" 2>"$tmp/err" || fail "info on $model failed: $(cat "$tmp/err")"
field "gguf version" 3
field "alignment" 32
field "architecture" '"llama"'
field "context length" 2048
field "embedding length" 64
field "layers" 5
field "heads" 8
field "kv heads" 4
field "rope dimensions" 8
field "rope freq base" -
field "rms norm epsilon" 1e-05
field "head dimension" 8
field "model" '"llama"'
field "tokens" 512
field "bos id" 1
field "eos id" 2
field "tensors" 48
# 5 layers x 4 KV heads x (8 + 8) x 2 bytes x 1024 tokens.
field "kv cache per 1k tokens" 655360
grep -Eq "^  [0-9]+ +tok_embeddings.weight +f32 +\[64, 512\] +131072\$" "$tmp/info" ||
    grep -Eq "^  [0-9]+ +token_embd.weight +f32 +\[64, 512\] +131072\$" "$tmp/info" ||
    fail "token embedding row missing from the tensor table"
grep -q "^metadata" "$tmp/info" && fail "metadata listed without --kv"

"$bin" info --kv "$model" >"$tmp/kv" || fail "info --kv failed"
grep -Eq "tokenizer.ggml.tokens +arr +arr\[str\] 512: \[\"<unk>\", \"<s>\"" "$tmp/kv" ||
    fail "--kv does not summarize the token array"

q4="$ref/models/tiny-llama-q4_k_m.gguf"
if [ -f "$q4" ]; then
    "$bin" info "$q4" >"$tmp/q4" || fail "info on $q4 failed"
    grep -Eq "^  q4_K +13 tensors, 829440 bytes" "$tmp/q4" || fail "q4_k_m: q4_K totals wrong"
    grep -Eq "^  q6_K +3 tensors" "$tmp/q4" || fail "q4_k_m: q6_K totals wrong"
    grep -Eq "^  file type +15 \(Q4_K_M\)\$" "$tmp/q4" || fail "q4_k_m: file type not named"
    grep -Eq "^  kv cache per 1k tokens +1048576 " "$tmp/q4" || fail "q4_k_m: kv cache wrong"
fi

vocab="$ref/vocab/ggml-vocab-gpt-2.gguf"
if [ -f "$vocab" ]; then
    "$bin" info --kv "$vocab" >"$tmp/vocab" || fail "info on a vocabulary-only file failed"
    grep -Eq "^  tokens +50257\$" "$tmp/vocab" || fail "gpt-2 vocab: token count"
    grep -Eq "^  merges +50000\$" "$tmp/vocab" || fail "gpt-2 vocab: merge count"
    grep -Eq "^  weights +0 " "$tmp/vocab" || fail "gpt-2 vocab: weights not 0"
fi

if command -v python3 >/dev/null; then
    "$bin" info --kv --json "$model" >"$tmp/json" || fail "info --json failed"
    python3 - "$tmp/json" <<'PY' || fail "--json output is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["version"] == 3 and d["n_tensors"] == 48, d
assert d["model"]["architecture"] == "llama" and d["model"]["block_count"] == 5
assert d["model"]["rope_freq_base"] is None
assert d["tokenizer"]["tokens"] == 512 and d["tokenizer"]["bos_id"] == 1
assert d["totals"]["kv_cache_bytes_per_1k"] == 655360
assert sum(t["bytes"] for t in d["tensors"]) == d["totals"]["weight_bytes"]
assert any(m["key"] == "tokenizer.ggml.tokens" and m["value"]["length"] == 512
           for m in d["metadata"])
PY
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails checks failed"
    exit 1
fi
echo "all checks passed"

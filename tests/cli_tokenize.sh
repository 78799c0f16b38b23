#!/usr/bin/env bash
# cli_tokenize.sh: `pagoda tokenize` from the command line: the prompt ids of
# the reference models (BOS as their metadata says), --no-bos, --special,
# --decode, and clear errors for a missing file, a file that is not GGUF, a
# GGUF without a tokenizer and bad arguments. Skipped (77) without the
# reference data.
set -u
PAGODA=${1:?usage: cli_tokenize.sh path/to/pagoda}
. "$(dirname "$0")/lib_cli.sh"
cli_require_reference models/stories260K.gguf
STORIES=$REF/models/stories260K.gguf
QWEN=$REF/models/tiny-qwen2-f16.gguf
cli_workdir cli-tokenize




# the ids llama.cpp gives (expected/stories260K.json, tiny-qwen2-f16.json)
expect_out "stories ids" "1 403 407 261 378" "$PAGODA" tokenize "$STORIES" --ids "Once upon a time"
expect_out "stories no bos" "403 407 261 378" "$PAGODA" tokenize "$STORIES" --ids --no-bos "Once upon a time"
expect_out "qwen2 ids" "7454 2402 257 640" "$PAGODA" tokenize "$QWEN" --ids "Once upon a time"
# "<s>" is text unless --special
expect_out "special parsed" "1 1 403" "$PAGODA" tokenize "$STORIES" --ids --special "<s>Once"
out=$("$PAGODA" tokenize "$STORIES" --ids --no-bos "<s>Once")
case " $out " in
*" 1 "*) fail "plain <s> became BOS: $out" ;;
esac
# the listing shows each token's bytes and its vocabulary text
out=$("$PAGODA" tokenize "$STORIES" "Once upon")
grep -q "^       1  '<s>'  '<s>'$" <<<"$out" || fail "listing: no BOS line in: $out"
grep -q "' upon'  '▁upon'$" <<<"$out" || fail "listing: no ' upon' line in: $out"
grep -q "^3 tokens$" <<<"$out" || fail "listing: no count in: $out"
# decoding: the leading space goes, BOS shows only with --special
expect_out "decode" "Once upon a time" "$PAGODA" tokenize "$STORIES" --decode 1,403,407,261,378
expect_out "decode special" "<s>Once upon a time" "$PAGODA" tokenize "$STORIES" --special --decode 1,403,407,261,378
expect_out "decode qwen2" "Once upon a time" "$PAGODA" tokenize "$QWEN" --decode 7454,2402,257,640

expect_fail "missing file" "no-such.gguf" "$PAGODA" tokenize "$WORK/no-such.gguf" "hi"
echo "not a gguf file at all" >"$WORK/bad.gguf"
expect_fail "not gguf" "bad.gguf" "$PAGODA" tokenize "$WORK/bad.gguf" "hi"
expect_fail "bad id" "not a list of ids" "$PAGODA" tokenize "$STORIES" --decode 1,99999
expect_fail "bad list" "not a list of ids" "$PAGODA" tokenize "$STORIES" --decode 1,,2
expect_fail "no text" "usage" "$PAGODA" tokenize "$STORIES"
expect_fail "unknown option" "unknown option" "$PAGODA" tokenize "$STORIES" --frobnicate "hi"
# a GGUF with no tokenizer keys: write one with synth if it can, else skip that case
if "$PAGODA" synth --arch llama --n-embd 32 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 64 \
    --n-vocab 16 -o "$WORK/novocab.gguf" >/dev/null 2>&1; then
    expect_fail "no tokenizer" "tokenizer.ggml.model" "$PAGODA" tokenize "$WORK/novocab.gguf" "hi"
fi

cli_finish

#!/usr/bin/env bash
# cli_synth.sh: `pagoda synth` writes a loadable model; the same seed gives
# the same bytes whatever the thread count, another seed other bytes; each
# architecture (llama with rope scaling, qwen2, qwen3) gets its own keys and
# tensors and runs; bad flags fail with one error line and exit code 1.
# $1 is the pagoda binary.
set -u
PAGODA="$1"
REF="${PAGODA_REFERENCE_DIR:-${PAGODA_SOURCE_DIR:-..}/../shared/reference}"
VOCAB="$REF/vocab/ggml-vocab-llama-spm.gguf"
if [ ! -f "$VOCAB" ]; then
    echo "reference vocabulary not found at $VOCAB: skipping"
    exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
check() { # description, command...
    local what="$1"; shift
    if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}

# Tied: one 32000-row matrix instead of two keeps the test quick.
SHAPE=(--arch llama --n-embd 256 --n-layer 3 --n-head 8 --n-head-kv 2 --n-ff 512
       --vocab-from "$VOCAB" --ctx 512 --rope-theta 500000 --rms-eps 1e-6 --tied)

check "synth q4_k_m" "$PAGODA" synth "${SHAPE[@]}" --seed 11 -t 1 -o "$TMP/a.gguf"
check "file written" test -s "$TMP/a.gguf"
check "same seed, 2 threads" "$PAGODA" synth "${SHAPE[@]}" --seed 11 -t 2 -o "$TMP/b.gguf"
sa=$(sha256sum "$TMP/a.gguf" | cut -d' ' -f1)
sb=$(sha256sum "$TMP/b.gguf" | cut -d' ' -f1)
check "same seed gives identical bytes" test "$sa" = "$sb"
# Small vocabularies from here on keep the test quick.
SMALL=(--arch llama --n-embd 256 --n-layer 2 --n-head 4 --n-ff 256 --n-vocab 300)
check "small, seed 1" "$PAGODA" synth "${SMALL[@]}" --seed 1 -o "$TMP/s1.gguf"
check "small, seed 2" "$PAGODA" synth "${SMALL[@]}" --seed 2 -o "$TMP/s2.gguf"
s1=$(sha256sum "$TMP/s1.gguf" | cut -d' ' -f1)
s2=$(sha256sum "$TMP/s2.gguf" | cut -d' ' -f1)
check "other seed gives other bytes" test "$s1" != "$s2"
check "tied" "$PAGODA" synth "${SMALL[@]}" --tied --seed 1 -o "$TMP/t.gguf"
check "tied file has no output matrix" test "$(stat -c %s "$TMP/t.gguf")" -lt "$(stat -c %s "$TMP/s1.gguf")"
# Rows that are not whole super-blocks fall back to other types and still work.
check "odd shape" "$PAGODA" synth --arch llama --n-embd 96 --n-layer 1 --n-head 6 --n-ff 200 \
    --n-vocab 333 --type q4_k_m -o "$TMP/odd.gguf"
for t in f32 f16 bf16 q4_0 q5_1 q6_k-pure; do
    check "type $t" "$PAGODA" synth --arch llama --n-embd 64 --n-layer 1 --n-head 2 --n-ff 96 \
        --n-vocab 300 --type "$t" -o "$TMP/$t.gguf"
done

# `pagoda info` reads what synth wrote.
if "$PAGODA" info "$TMP/a.gguf" > "$TMP/info.txt" 2>&1; then
    echo "ok: info reads the file"
    check "info names the architecture" grep -qi llama "$TMP/info.txt"
else
    echo "FAIL: pagoda info on the synthesized file"; cat "$TMP/info.txt"; fail=1
fi

# The engine runs the synthesized model (greedy, a few tokens).
if "$PAGODA" run --help > /dev/null 2>&1; then
    check "run generates from the model" "$PAGODA" run "$TMP/a.gguf" -p "Once upon a time" -n 4 \
        --temp 0
fi

# Each architecture writes its own keys and tensors, and the engine runs it.
QVOCAB="$REF/models/tiny-qwen2-f16.gguf"
arch_case() { # label, tensor or key that must be listed, run prompt, synth args...
    local label="$1" want="$2"; shift 2
    if ! "$PAGODA" synth "$@" -t 1 -o "$TMP/$label.gguf" > /dev/null; then
        echo "FAIL: synth $label"; fail=1; return
    fi
    "$PAGODA" info --kv "$TMP/$label.gguf" > "$TMP/$label.txt" 2>&1
    for w in $want; do
        check "$label lists $w" grep -q -- "$w" "$TMP/$label.txt"
    done
    check "$label runs" "$PAGODA" run "$TMP/$label.gguf" -p "Once upon a time" -n 3 --temp 0 -t 1
}
if [ -f "$QVOCAB" ]; then
    arch_case qwen2 "qwen2.attention.head_count_kv blk.1.attn_q.bias blk.1.attn_k.bias blk.1.attn_v.bias output.weight" \
        --arch qwen2 --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 96 \
        --vocab-from "$QVOCAB" --type q8_0 --rope-theta 1000000 --rms-eps 1e-6
    # n_embd need not be n_head x head_dim (Qwen3 0.6B: 1024 and 16 x 128).
    arch_case qwen3 "qwen3.attention.key_length blk.0.attn_q_norm.weight blk.1.attn_k_norm.weight" \
        --arch qwen3 --n-embd 96 --n-layer 2 --n-head 5 --n-head-kv 1 --head-dim 32 --n-ff 80 \
        --vocab-from "$QVOCAB" --type f16 --tied
    check "qwen3 Q is n_head x head_dim wide" grep -Eq "blk.0.attn_q.weight +f16 +\[96, 160\]" "$TMP/qwen3.txt"
    check "qwen3 has no biases" test "$(grep -c 'attn_q.bias' "$TMP/qwen3.txt")" -eq 0
fi
arch_case llama3 "rope_freqs.weight llama.attention.key_length output.weight" \
    --arch llama --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 1 --head-dim 48 --n-ff 96 \
    --vocab-from "$VOCAB" --type q4_k_m --rope-theta 500000 --rope-scaling llama3
arch_case linear "llama.rope.scaling.type llama.rope.scaling.factor" \
    --arch llama --n-embd 64 --n-layer 1 --n-head 2 --n-ff 96 --vocab-from "$VOCAB" \
    --type q8_0 --tied --rope-scaling linear --rope-factor 4

# Bad flags: exit 1 with one line on stderr, and no file.
bad() { # description, args...
    local what="$1"; shift
    "$PAGODA" synth "$@" > "$TMP/out.txt" 2> "$TMP/err.txt"
    local rc=$?
    local lines
    lines=$(wc -l < "$TMP/err.txt")
    if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && [ ! -e "$TMP/bad.gguf" ]; then
        echo "ok: rejects $what: $(cat "$TMP/err.txt")"
    else
        echo "FAIL: $what: rc=$rc, $lines stderr lines"; cat "$TMP/err.txt"; fail=1
    fi
}
B=(--arch llama --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --vocab-from "$VOCAB" -o "$TMP/bad.gguf")
bad "n_embd not a multiple of n_head" "${B[@]}" --n-head 5
bad "n_head not a multiple of n_head_kv" "${B[@]}" --n-head-kv 3
bad "n_head_kv above n_head" "${B[@]}" --n-head-kv 8
bad "zero n_embd" "${B[@]}" --n-embd 0
bad "non-numeric n_layer" "${B[@]}" --n-layer 2x
bad "negative n_ff" "${B[@]}" --n-ff -5
bad "unknown type" "${B[@]}" --type q9_9
bad "bad rope theta" "${B[@]}" --rope-theta nan
bad "bad rms eps" "${B[@]}" --rms-eps 0
bad "unknown flag" "${B[@]}" --frobnicate 1
bad "missing value" "${B[@]}" --seed
bad "unknown arch" --arch gpt9 --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --vocab-from "$VOCAB" -o "$TMP/bad.gguf"
bad "missing n_ff" --arch llama --n-embd 64 --n-layer 1 --n-head 4 --vocab-from "$VOCAB" -o "$TMP/bad.gguf"
bad "missing output" --arch llama --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --vocab-from "$VOCAB"
bad "missing vocabulary" --arch llama --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 -o "$TMP/bad.gguf"
bad "vocab size mismatch" "${B[@]}" --n-vocab 10
bad "vocab file absent" "${B[@]/$VOCAB/$TMP/nope.gguf}"
bad "vocab file not GGUF" "${B[@]/$VOCAB/$0}"
bad "odd head size" "${B[@]}" --n-embd 12 --n-head 4
bad "odd --head-dim" "${B[@]}" --head-dim 7
bad "--head-dim for qwen2" --arch qwen2 "${B[@]:2}" --head-dim 32
bad "llama3 rope scaling for qwen3" --arch qwen3 "${B[@]:2}" --rope-scaling llama3
bad "unknown rope scaling" "${B[@]}" --rope-scaling yarn
bad "rope factor below 1" "${B[@]}" --rope-scaling linear --rope-factor 0.5

exit $fail

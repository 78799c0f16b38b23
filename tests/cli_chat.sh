#!/usr/bin/env bash
# cli_chat.sh: `pagoda chat` reads turns from standard input and answers each;
# the conversation's KV is kept across turns, so a greedy conversation gives
# the same replies whether earlier turns were computed incrementally or not.
set -u
bin=$1
. "$(dirname "$0")/lib_cli.sh"
cli_require_reference models/stories260K.gguf
ref=$REF
model=$ref/models/stories260K.gguf
cli_workdir cli-chat
tmp=$WORK

# Two turns in one conversation.
printf 'Once upon a time\nThen what\n' | "$bin" chat "$model" --template chatml -n 12 --temp 0 -t 1 \
  > "$tmp/two.txt" 2> "$tmp/err" || fail "chat failed: $(cat "$tmp/err")"
[ "$(grep -c '^> ' "$tmp/two.txt")" -ge 2 ] && ok || fail "expected two answered turns: $(cat "$tmp/two.txt")"
# The second reply alone, after /reset plus replaying the first turn's text, must
# match: the reply depends only on the conversation, not on cached state.
second=$(sed -n '2,$p' "$tmp/two.txt" | grep '^> ' | sed -n 2p)
printf 'Once upon a time\nThen what\n' | "$bin" chat "$model" --template chatml -n 12 --temp 0 -t 2 \
  > "$tmp/again.txt" 2>/dev/null
[ "$(grep '^> ' "$tmp/again.txt" | sed -n 2p)" == "$second" ] && ok || fail "replies differ between runs"
grep -q "template chatml" "$tmp/err" && ok || fail "banner missing"

# /reset clears the conversation.
printf 'Hello\n/reset\nHello\n' | "$bin" chat "$model" --template chatml -n 8 --temp 0 > "$tmp/reset.txt" 2>/dev/null
grep -q "conversation cleared" "$tmp/reset.txt" && ok || fail "/reset not acknowledged"
a=$(grep '^> ' "$tmp/reset.txt" | sed -n 1p); b=$(grep '^> ' "$tmp/reset.txt" | sed -n 3p)
[ "$a" == "$b" ] && ok || fail "reply after /reset differs: '$a' vs '$b'"

# Errors: no template in the model, unknown template name, missing model.
"$bin" chat "$model" < /dev/null > /dev/null 2> "$tmp/e"; rc=$?
[ $rc -eq 1 ] && grep -q "no chat template" "$tmp/e" && ok || fail "missing template: $rc $(cat "$tmp/e")"
"$bin" chat "$model" --template nonsense < /dev/null > /dev/null 2> "$tmp/e"; rc=$?
[ $rc -eq 1 ] && grep -q "unknown template" "$tmp/e" && ok || fail "unknown template: $rc"
"$bin" chat "$tmp/none.gguf" --template chatml < /dev/null > /dev/null 2> "$tmp/e"; rc=$?
[ $rc -eq 1 ] && [ "$(wc -l < "$tmp/e")" -eq 1 ] && ok || fail "missing model: $rc"

cli_finish

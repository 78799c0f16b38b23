#!/usr/bin/env bash
# cli_bench_engine.sh: `pagoda bench engine` on a small reference model: every
# level reports positive speeds, TTFT within the wall time, the prefix check
# runs, the JSON parses, and bad flags fail with a message. $1 is the binary.
set -u
PAGODA="$1"
. "$(dirname "$0")/lib_cli.sh"
cli_require_reference models/stories260K.gguf
cli_workdir bench-engine
MODEL="$REF/models/stories260K.gguf"

if "$PAGODA" bench engine "$MODEL" --concurrency 1,3,8 -p 24 -n 12 --prefix 64 -t 2 \
     --kv-mem 16MiB --json > "$WORK/e.json" 2> "$WORK/e.err"; then
  ok
else
  fail "bench engine --json: $(cat "$WORK/e.err")"
fi
levels=$(grep -o '"concurrency": [0-9]*' "$WORK/e.json" | awk '{print $2}' | tr '\n' ,)
[ "$levels" = "1,3,8," ] && ok || fail "levels: '$levels' in $(cat "$WORK/e.json")"
for key in gen_tok_s total_tok_s ttft_mean_s ttft_p99_s wall_s kv_peak_mib; do
  vals=$(grep -o "\"$key\": [0-9.e+-]*" "$WORK/e.json" | awk '{print $2}')
  n=$(echo "$vals" | grep -c .)
  [ "$n" -eq 3 ] || { fail "$key: $n values"; continue; }
  for v in $vals; do
    awk -v v="$v" 'BEGIN { exit !(v > 0) }' || fail "$key = $v is not positive"
  done
done
# TTFT never exceeds the wall time of its level; the prefix check reports
# both requests (how much sooner is a benchmark figure, not a test).
paste <(grep -o '"ttft_p99_s": [0-9.e+-]*' "$WORK/e.json" | awk '{print $2}') \
      <(grep -o '"wall_s": [0-9.e+-]*' "$WORK/e.json" | awk '{print $2}') |
  while read -r t w; do
    awk -v t="$t" -v w="$w" 'BEGIN { exit !(t <= w) }' || echo bad
  done | grep -q bad && fail "ttft beyond wall time" || ok
first=$(grep -o '"ttft_first_s": [0-9.e+-]*' "$WORK/e.json" | awk '{print $2}')
second=$(grep -o '"ttft_second_s": [0-9.e+-]*' "$WORK/e.json" | awk '{print $2}')
awk -v a="$first" -v b="$second" 'BEGIN { exit !(a > 0 && b > 0) }' && ok ||
  fail "prefix check: first $first s, second $second s"
if command -v node > /dev/null; then
  node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$WORK/e.json" && ok ||
    fail "output is not JSON"
fi

# The table form has a header and one line per level.
out=$("$PAGODA" bench engine "$MODEL" --concurrency 2 -p 8 -n 4 -t 1 --kv-mem 16MiB 2>&1)
grep -q "gen_tok/s" <<<"$out" && [ "$(grep -cE '^ +2 ' <<<"$out")" -eq 1 ] && ok ||
  fail "table: $out"

expect_fail "bad level" "concurrency" "$PAGODA" bench engine "$MODEL" --concurrency 0
expect_fail "bad level list" "concurrency" "$PAGODA" bench engine "$MODEL" --concurrency 1,x
expect_fail "bad size" "size" "$PAGODA" bench engine "$MODEL" --kv-mem 12Q
expect_fail "tiny pool" "KV budget" "$PAGODA" bench engine "$MODEL" --kv-mem 1K -p 8 -n 4
expect_fail "missing model" "No such file\|cannot open" "$PAGODA" bench engine "$WORK/none.gguf"
expect_fail "unknown flag" "unknown option" "$PAGODA" bench engine "$MODEL" --frobnicate 1

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]

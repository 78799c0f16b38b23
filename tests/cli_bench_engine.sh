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

# Single-sequence tests, as JSON: one entry per test, in order, with -r samples.
if "$PAGODA" bench engine "$MODEL" -p 16,0,24 -n 8 -r 2 -t 1 --kv-mem 16MiB -o json \
     > "$WORK/t.json" 2> "$WORK/t.err"; then
  ok
else
  fail "bench engine tests --json: $(cat "$WORK/t.err")"
fi
tests=$(grep -o '"test":[^,]*' "$WORK/t.json" | tr -d ' \t"' | sed 's/test://' | tr '\n' ,)
[ "$tests" = "pp16,pp24,tg8," ] && ok || fail "tests: '$tests'"
if command -v node > /dev/null; then
  node -e '
    const a = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const t of a) {
      if (!(t.avg_ts > 0) || t.samples_ts.length !== 2 || t.samples_ns.length !== 2 ||
          !t.samples_ns.every((ns) => ns > 0) || t.n_threads !== 1 ||
          t.n_prompt + t.n_gen !== Number(t.test.slice(2)))
        throw new Error("bad entry " + JSON.stringify(t));
    }' "$WORK/t.json" && ok || fail "test entries: $(cat "$WORK/t.json")"
fi
out=$("$PAGODA" bench engine "$MODEL" -p 32 -n 0 -r 1 -t 1 --kv-mem 16MiB --no-warmup 2>&1)
grep -q '| *pp32 | *[0-9.]* ± ' <<<"$out" && [ "$(grep -c '^| ' <<<"$out")" -eq 3 ] && ok ||
  fail "test table: $out"

expect_fail "zero reps" "repetition" "$PAGODA" bench engine "$MODEL" -r 0
expect_fail "bad output" "output format" "$PAGODA" bench engine "$MODEL" -o xml
expect_fail "no test" "no test" "$PAGODA" bench engine "$MODEL" -p 0 -n 0
expect_fail "reps with levels" "applies to" "$PAGODA" bench engine "$MODEL" --concurrency 2 -r 2
expect_fail "list with levels" "one length" "$PAGODA" bench engine "$MODEL" --concurrency 2 -p 8,16
expect_fail "bad level" "concurrency" "$PAGODA" bench engine "$MODEL" --concurrency 0
expect_fail "bad level list" "concurrency" "$PAGODA" bench engine "$MODEL" --concurrency 1,x
expect_fail "bad size" "size" "$PAGODA" bench engine "$MODEL" --kv-mem 12Q
expect_fail "tiny pool" "KV budget" "$PAGODA" bench engine "$MODEL" --kv-mem 1K -p 8 -n 4
expect_fail "missing model" "No such file\|cannot open" "$PAGODA" bench engine "$WORK/none.gguf"
expect_fail "unknown flag" "unknown option" "$PAGODA" bench engine "$MODEL" --frobnicate 1

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]

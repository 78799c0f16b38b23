#!/usr/bin/env bash
# cli_bench_serve.sh: `pagoda bench serve` end to end. Against a fake server
# (tests/fake_openai_server.js) that streams with delays, splits its writes,
# drops connections, sends broken SSE, stalls and answers 500: every failure
# is counted by kind and the report still comes out, the JSON agrees with the
# table and the SVG is well-formed; --compare, --chat, datasets, --duration,
# Ctrl-C and bad flags. Then against a real `pagoda serve` on a tiny model:
# tokens received match usage and TTFT <= E2E. $1 is the pagoda binary.
set -u
bin=$1
here=$(dirname "$0")
. "$here/lib_cli.sh"
if ! command -v node > /dev/null; then
  echo "node not found: skipping"
  exit 77
fi
cli_workdir cli-bench-serve
tmp=$WORK
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
  # a server still up after 5 s is stopped for good
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    kill -9 "$p" 2> /dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_server OUTFILE CMD...: runs CMD in the background and sets URL from
# its "listening on http://HOST:PORT" line (waits at most 30 s).
start_server() {
  local out=$1
  shift
  "$@" > "$out" 2>&1 &
  pids+=($!)
  URL=
  for _ in $(seq 300); do
    URL=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$out" | head -1)
    [ -n "$URL" ] && return 0
    kill -0 "${pids[-1]}" 2> /dev/null || return 1
    sleep 0.1
  done
  return 1
}

# A node helper: checks a run's JSON, its table and its SVG against each other.
cat > "$tmp/check.js" << 'EOF'
// node check.js JSON TABLE SVG EXPR: table rows equal the JSON's figures,
// the SVG is well-formed, and EXPR (a JS expression over j) is true.
'use strict';
const fs = require('fs');
const [jsonPath, tablePath, svgPath, expr] = process.argv.slice(2);
const j = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
const problems = [];
const near = (a, b, tol) => Math.abs(a - b) <= tol;
let section = '';
let rows = 0;
for (const line of fs.readFileSync(tablePath, 'utf8').split('\n')) {
  if (line === 'Throughput') section = 'tp';
  else if (line.startsWith('Latency (ms)')) section = 'lat';
  else if (line === 'Failures') section = 'fail';
  const f = line.trim().split(/\s+/);
  if (!section || !/^[AB]$/.test(f[0]) || !/^\d+$/.test(f[1] || '')) continue;
  const s = j.servers[f[0] === 'A' ? 0 : 1];
  const lv = s && s.levels.find((l) => l.concurrency === Number(f[1]));
  if (!lv) { problems.push('no JSON level for ' + line); continue; }
  rows++;
  if (section === 'tp') {
    const want = [lv.completed, lv.failed, lv.cancelled, lv.duration_s, lv.request_throughput,
      lv.output_throughput, lv.total_throughput, lv.input_tokens, lv.output_tokens, lv.content_chunks];
    want.forEach((w, i) => { if (!near(Number(f[2 + i]), w, 0.006)) problems.push(`throughput col ${i}: ${f[2 + i]} vs ${w}`); });
    if (f[12] !== lv.token_count) problems.push('token source ' + f[12] + ' vs ' + lv.token_count);
  } else if (section === 'lat') {
    ['ttft_ms', 'tpot_ms', 'itl_ms', 'e2e_ms'].forEach((k, a) => ['mean', 'median', 'p90', 'p99'].forEach((q, b) => {
      const cell = f[2 + a * 4 + b];
      if (lv[k].n === 0 ? cell !== '-' : !near(Number(cell), lv[k][q], 0.006)) problems.push(`${k}.${q}: ${cell} vs ${lv[k][q]}`);
    }));
  } else {
    ['connect', 'http', 'sse', 'timeout', 'dropped'].forEach((k, i) => {
      if (Number(f[2 + i]) !== lv.failures[k]) problems.push(`failures ${k}: ${f[2 + i]} vs ${lv.failures[k]}`);
    });
  }
}
const nlev = j.servers.reduce((a, s) => a + s.levels.length, 0);
if (rows !== 3 * nlev) problems.push(`table has ${rows} rows for ${nlev} levels`);
for (const s of j.servers) for (const l of s.levels) {
  if (l.completed > 0 && !(l.ttft_ms.median > 0 && l.ttft_ms.median <= l.e2e_ms.median && l.ttft_ms.p99 <= l.e2e_ms.p99 + 1e-9))
    problems.push('TTFT not in (0, E2E] at c=' + l.concurrency);
  if (l.completed + l.failed + l.cancelled !== l.sent) problems.push('counts do not add up at c=' + l.concurrency);
}
if (svgPath !== '-') {
  // well-formed: one root, tags nested, attributes quoted, entities valid
  const svg = fs.readFileSync(svgPath, 'utf8');
  if (!svg.startsWith('<?xml') || !svg.includes('<svg xmlns="http://www.w3.org/2000/svg"')) problems.push('SVG header');
  const body = svg.replace(/^<\?xml[^>]*\?>/, '');
  const stack = [];
  let roots = 0;
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|&(?!(amp|lt|gt|quot|apos|#\d+);)|<(?![A-Za-z/])/g;
  let m;
  let rest = body;
  let last = 0;
  while ((m = re.exec(body))) {
    if (m[0][0] === '&' || m[2] === undefined) { problems.push('SVG bad character at ' + m.index); break; }
    if (/<|>/.test(body.slice(last, m.index))) { problems.push('SVG malformed tag near ' + last); break; }
    last = m.index + m[0].length;
    if (m[1]) { if (stack.pop() !== m[2]) { problems.push('SVG mismatched </' + m[2] + '>'); break; } }
    else { if (stack.length === 0) roots++; if (!m[4]) stack.push(m[2]); }
  }
  rest = body.slice(last);
  if (/[<>]/.test(rest)) problems.push('SVG trailing junk');
  if (stack.length || roots !== 1) problems.push('SVG elements unbalanced or not one root');
  if ((svg.match(/<polyline/g) || []).length !== 2 * j.servers.length) problems.push('SVG polylines');
}
if (expr && !eval(expr)) problems.push('failed: ' + expr);
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
EOF
check() { node "$tmp/check.js" "$@"; }

start_server "$tmp/fake.out" node "$here/fake_openai_server.js" 0 || { fail "fake server did not start: $(cat "$tmp/fake.out")"; cli_finish; }
fake=$URL

# 1. A well-behaved server: everything completes, tokens from usage.
if "$bin" bench serve --url "$fake/good" --concurrency 1,4 --requests 8 --input-len 16 --output-len 12 \
     --json "$tmp/good.json" --svg "$tmp/good.svg" > "$tmp/good.txt" 2> "$tmp/good.err"; then
  ok
  check "$tmp/good.json" "$tmp/good.txt" "$tmp/good.svg" \
    'j.servers[0].model === "fake-model" && j.servers[0].levels.every(l => l.completed === 8 && l.failed === 0 && l.output_tokens === 96 && l.content_chunks === 96 && l.token_count === "usage" && l.itl_ms.n === 8 * 11 && l.request_throughput > 0)' \
    && ok || fail "good run: JSON, table or SVG wrong"
  grep -q "calibrated by the server's /tokenize" "$tmp/good.txt" && ok || fail "prompt length source not said"
else
  fail "good run exited $?: $(cat "$tmp/good.err")"
fi

# 2. A server that fails in every way: each kind counted, report complete.
if "$bin" bench serve --url "$fake/mixed" --concurrency 1,3 --requests 7 --input-len 8 --output-len 6 \
     --timeout 1 --json "$tmp/mixed.json" --svg "$tmp/mixed.svg" > "$tmp/mixed.txt" 2> "$tmp/mixed.err"; then
  ok
  check "$tmp/mixed.json" "$tmp/mixed.txt" "$tmp/mixed.svg" \
    'j.servers[0].levels.every(l => l.completed === 3 && l.failed === 4 && l.failures.http === 1 && l.failures.sse === 1 && l.failures.dropped === 1 && l.failures.timeout === 1 && l.failures.connect === 0 && l.output_tokens === 18 && /500/.test(l.first_errors.http))' \
    && ok || fail "mixed run: failures not counted as expected"
  grep -q "first sse error" "$tmp/mixed.txt" && ok || fail "no error message shown"
else
  fail "mixed run exited $?: $(cat "$tmp/mixed.err")"
fi

# 3. No usage in the stream and the chat endpoint: tokens counted by chunk.
"$bin" bench serve --url "$fake/nousage/v1" --chat --concurrency 2 --requests 4 --output-len 5 \
  --json "$tmp/nu.json" > "$tmp/nu.txt" 2> "$tmp/nu.err" || fail "nousage run: $(cat "$tmp/nu.err")"
check "$tmp/nu.json" "$tmp/nu.txt" - \
  'j.endpoint === "chat/completions" && j.servers[0].levels[0].token_count === "chunks" && j.servers[0].levels[0].output_tokens === 20' \
  && ok || fail "nousage run: chunk counting"

# 4. --compare with Poisson arrivals: both servers, ratios in table and JSON.
"$bin" bench serve --url "$fake/good" --compare "$fake/slow" --concurrency 1,2 --requests 4 --rate 40 \
  --output-len 6 --input-len 8 --json "$tmp/cmp.json" --svg "$tmp/cmp.svg" > "$tmp/cmp.txt" 2> "$tmp/cmp.err" \
  || fail "compare run: $(cat "$tmp/cmp.err")"
check "$tmp/cmp.json" "$tmp/cmp.txt" "$tmp/cmp.svg" \
  'j.servers.length === 2 && j.rate === 40 && j.ratios_b_over_a.length === 2 && j.ratios_b_over_a.every((r, i) => r.ttft_median > 0 && Math.abs(r.output_throughput - j.servers[1].levels[i].output_throughput / j.servers[0].levels[i].output_throughput) < 1e-9)' \
  && ok || fail "compare run"
[ "$(grep -cE '^B/A +[0-9]' "$tmp/cmp.txt")" -eq 4 ] && ok || fail "compare: ratio rows"

# 5. A dataset of prompts and conversations; --duration.
printf '{"prompt": "hello there"}\n\n{"prompt": "a \\"quoted\\" one"}\n' > "$tmp/p.jsonl"
printf '{"messages": [{"role": "user", "content": "hi"}]}\n{"prompt": "plain"}\n' > "$tmp/m.jsonl"
"$bin" bench serve --url "$fake/good" --dataset "$tmp/p.jsonl" --concurrency 2 --requests 5 --output-len 4 \
  --json "$tmp/ds.json" > "$tmp/ds.txt" 2>&1 || fail "dataset run: $(cat "$tmp/ds.txt")"
check "$tmp/ds.json" "$tmp/ds.txt" - 'j.servers[0].levels[0].completed === 5 && /dataset/.test(j.prompts)' && ok || fail "dataset run"
"$bin" bench serve --url "$fake/good" --dataset "$tmp/m.jsonl" --chat --concurrency 1 --requests 2 --output-len 3 \
  --json "$tmp/dm.json" > "$tmp/dm.txt" 2>&1 || fail "chat dataset run: $(cat "$tmp/dm.txt")"
check "$tmp/dm.json" "$tmp/dm.txt" - 'j.servers[0].levels[0].completed === 2' && ok || fail "chat dataset"
"$bin" bench serve --url "$fake/good" --duration 0.5 --concurrency 2 --output-len 4 --input-len 4 \
  --json "$tmp/dur.json" > "$tmp/dur.txt" 2>&1 || fail "duration run: $(cat "$tmp/dur.txt")"
check "$tmp/dur.json" "$tmp/dur.txt" - 'j.requests_per_level === 0 && j.servers[0].levels[0].completed >= 2 && j.servers[0].levels[0].failed === 0' \
  && ok || fail "duration run"

# 6. Nothing listening: connection errors counted, table printed, exit 1.
port=$(node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"$bin" bench serve --url "http://127.0.0.1:$port" --concurrency 2 --requests 3 --json "$tmp/conn.json" > "$tmp/conn.txt" 2> "$tmp/conn.err"
rc=$?
[ $rc -eq 1 ] && grep -q "no request succeeded" "$tmp/conn.err" && ok || fail "connect: exit $rc"
check "$tmp/conn.json" "$tmp/conn.txt" - 'j.servers[0].levels[0].failures.connect === 3 && j.servers[0].levels[0].completed === 0' \
  && ok || fail "connect errors not counted"

# A 200 answer that is not an event stream is a malformed stream.
"$bin" bench serve --url "$fake/plain" --concurrency 1 --requests 2 --json "$tmp/plain.json" > "$tmp/plain.txt" 2>&1
check "$tmp/plain.json" "$tmp/plain.txt" - 'j.servers[0].levels[0].failures.sse === 2 && /no SSE events/.test(j.servers[0].levels[0].first_errors.sse)' \
  && ok || fail "plain JSON answer not counted as malformed SSE"

# 7. Ctrl-C: what was measured so far is printed, exit 130.
# The fake server logs each stream it completes: interrupt after the first.
"$bin" bench serve --url "$fake/intr" --concurrency 1,2 --requests 500 --output-len 30 \
  --json "$tmp/int.json" > "$tmp/int.txt" 2> "$tmp/int.err" &
bp=$!
for _ in $(seq 300); do
  grep -q "^done intr" "$tmp/fake.out" && break
  sleep 0.1
done
kill -INT $bp
wait $bp
rc=$?
[ $rc -eq 130 ] && ok || fail "Ctrl-C: exit $rc"
check "$tmp/int.json" "$tmp/int.txt" - 'j.interrupted === true && j.servers[0].levels.length === 1 && j.servers[0].levels[0].completed >= 1 && j.servers[0].levels[0].cancelled <= 1' \
  && ok || fail "Ctrl-C: partial report"

# 8. Bad flags and input: one message, exit 1.
printf '{"prompt": 5}\n' > "$tmp/bad.jsonl"
for args in "" "--url ftp://x" "--url $fake --concurrency 0" "--url $fake --concurrency 1,,x" \
            "--url $fake --requests x" "--url $fake --rate -1" "--url $fake --timeout 0" \
            "--url $fake --requests 3 --duration 2" "--url $fake --bogus 1" "--url $fake --input-len" \
            "--url $fake --dataset $tmp/none.jsonl" "--url $fake --dataset $tmp/bad.jsonl" \
            "--url $fake --dataset $tmp/m.jsonl" "--url $fake --tokenizer $tmp/p.jsonl"; do
  # shellcheck disable=SC2086
  "$bin" bench serve $args > /dev/null 2> "$tmp/err.txt"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "pagoda: bench serve" "$tmp/err.txt"; then ok; else fail "'$args' gave $rc: $(cat "$tmp/err.txt")"; fi
done

# 9. A real `pagoda serve` on a tiny model (skipped when serve is not available).
# (in a subshell, so a missing reference folder skips only this part)
model=$(cli_require_reference models/stories260K.gguf > /dev/null && echo "$REF/models/stories260K.gguf")
if [ -n "$model" ]; then
  # Without usage, --tokenizer counts the received text; prompts are exact.
  "$bin" bench serve --url "$fake/nousage" --tokenizer "$model" --concurrency 2 --requests 4 --input-len 24 \
    --output-len 6 --json "$tmp/tk.json" > "$tmp/tk.txt" 2>&1 || fail "tokenizer run: $(cat "$tmp/tk.txt")"
  check "$tmp/tk.json" "$tmp/tk.txt" - \
    'j.servers[0].levels[0].token_count === "tokenizer" && j.servers[0].levels[0].output_tokens >= 24 && j.servers[0].levels[0].input_tokens === 4 * 24 && /4 exact/.test(j.prompts)' \
    && ok || fail "tokenizer counting"
fi
real=skip
if [ -n "$model" ] && start_server "$tmp/serve.out" "$bin" serve "$model" --port 0; then
  real=$URL
fi
if [ "$real" != skip ]; then
  if "$bin" bench serve --url "$real" --tokenizer "$model" --concurrency 1,4 --requests 4 --input-len 16 \
       --output-len 8 --json "$tmp/real.json" --svg "$tmp/real.svg" > "$tmp/real.txt" 2> "$tmp/real.err"; then
    ok
    check "$tmp/real.json" "$tmp/real.txt" "$tmp/real.svg" \
      'j.servers[0].levels.every(l => l.completed === 4 && l.failed === 0 && l.token_count === "usage" && l.output_tokens === 32 && l.content_chunks <= l.output_tokens && l.content_chunks > 0 && l.ttft_ms.mean > 0 && l.ttft_ms.mean <= l.e2e_ms.mean && l.input_tokens >= 4 * 16)' \
      && ok || { fail "real server run"; cat "$tmp/real.txt" >&2; }
  else
    fail "real server run exited: $(cat "$tmp/real.err")"
  fi
  cli_finish
fi
echo "pagoda serve is not available here ($(head -c 200 "$tmp/serve.out" 2> /dev/null)): the real-server part is skipped"
echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ] || exit 1
exit 77

#!/usr/bin/env bash
# cli_serve.sh: `pagoda serve` end to end with curl on stories260K: every
# endpoint, OpenAI error objects with the right 4xx codes, SSE framing byte
# for byte, a client hanging up mid-stream (its KV blocks come back, seen in
# /metrics), the API key, 503 + Retry-After when the queue is full, 64
# concurrent streams equal to the same requests one at a time (greedy), and
# SIGTERM: in-flight requests finish, exit 0.
set -u
bin=$1
. "$(dirname "$0")/lib_cli.sh"
cli_require_reference models/stories260K.gguf
model=$REF/models/stories260K.gguf
command -v curl >/dev/null || { echo "curl is not installed: skipping"; exit 77; }
command -v node >/dev/null || { echo "node is not installed: skipping"; exit 77; }
cli_workdir cli-serve
W=$WORK

SRV_PID=
stop_server() {
  if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
    kill -TERM "$SRV_PID"
    wait "$SRV_PID"
  fi
  SRV_PID=
}
trap 'stop_server; rm -rf "$W"' EXIT

# start_server LOG ARGS...: starts pagoda serve on a free port; sets PORT and SRV_PID.
start_server() {
  local log=$1
  shift
  "$bin" serve "$model" --port 0 --kv-mem 64MiB -t 2 "$@" 2> "$log" &
  SRV_PID=$!
  PORT=
  for _ in $(seq 1 200); do
    PORT=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
    [ -n "$PORT" ] && return 0
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start:" >&2
  cat "$log" >&2
  exit 1
}

# req NAME METHOD PATH [BODY] [curl args...]: body into $W/NAME.out, headers
# into $W/NAME.hdr; prints the status code.
req() {
  local name=$1 method=$2 path=$3 body=${4-}
  shift 3
  [ $# -gt 0 ] && shift
  local data=()
  [ -n "$body" ] && data=(--data-binary "$body" -H "Content-Type: application/json")
  curl -s -o "$W/$name.out" -D "$W/$name.hdr" -w '%{http_code}' -X "$method" "${data[@]}" "$@" \
    "http://127.0.0.1:$PORT$path"
}
# jget FILE EXPR: prints JSON.parse(FILE)EXPR (strings raw, the rest as JSON).
jget() {
  node -e "const o=JSON.parse(require('fs').readFileSync(process.argv[1],'utf8'));const v=o$2;process.stdout.write(typeof v==='string'?v:JSON.stringify(v))" "$1"
}
# expect_status NAME WANT GOT
expect_status() {
  if [ "$3" == "$2" ]; then ok; else fail "$1: status $3, want $2: $(head -c 300 "$W/$1.out" 2>/dev/null)"; fi
}
# expect_error NAME STATUS CODE_OR_PARAM METHOD PATH BODY [curl args]: an
# OpenAI error object with that status; the third field is matched against
# error.code, then error.param ("-": both null).
expect_error() {
  local name=$1 want=$2 what=$3
  shift 3
  local got
  got=$(req "$name" "$@")
  expect_status "$name" "$want" "$got"
  # The body is compact JSON: match its shape as text (no process per check).
  local out pat
  out=$(cat "$W/$name.out")
  if [ "$what" == - ]; then pat='"param":null,"code":null}}$'; else pat="\"(param|code)\":\"$what\""; fi
  if [[ $out =~ ^\{\"error\":\{\"message\":\"[^\"]+ ]] && [[ $out == *'"type":"'* ]] && [[ $out =~ $pat ]]; then
    ok
  else
    fail "$name: error object: $(head -c 300 "$W/$name.out")"
  fi
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | sed -n "s/^$1 //p"; }

start_server "$W/main.log" --ctx 2048 --chat-template llama2 --alias tiny --max-body 64KiB

# 1. health, models, tokenize, detokenize
expect_status health 200 "$(req health GET /health)"
[ "$(jget "$W/health.out" .status)" == ok ] && ok || fail "health body"
expect_status models 200 "$(req models GET /v1/models)"
[ "$(jget "$W/models.out" .data[0].id)" == tiny ] && ok || fail "models: $(cat "$W/models.out")"
[ "$(jget "$W/models.out" .object)" == list ] && ok || fail "models object"
expect_status model1 200 "$(req model1 GET /v1/models/tiny)"
grep -q '^{"id":"tiny","object":"model",' "$W/model1.out" && ok || fail "one model: $(cat "$W/model1.out")"
expect_error model2 404 model_not_found GET /v1/models/gpt-9
expect_status tok 200 "$(req tok POST /tokenize '{"content":"Once upon a time","add_special":true}')"
ids=$(jget "$W/tok.out" .tokens)
[[ $ids == \[1,* ]] && ok || fail "tokenize did not start with BOS: $ids"
expect_status detok 200 "$(req detok POST /detokenize "{\"tokens\":$ids}")"
[ "$(jget "$W/detok.out" .content)" == "Once upon a time" ] && ok || fail "detokenize: $(cat "$W/detok.out")"

# 2. completions, greedy: the known story; usage; token-id prompts give the same
body='{"model":"tiny","prompt":"Once upon a time","max_tokens":24,"temperature":0}'
expect_status comp 200 "$(req comp POST /v1/completions "$body")"
text=$(jget "$W/comp.out" .choices[0].text)
[[ $text == ", there was a little girl named Lily."* ]] && ok || fail "completion text: $text"
[ "$(jget "$W/comp.out" .object)" == text_completion ] && ok || fail "object"
[[ $(jget "$W/comp.out" .id) == cmpl-* ]] && ok || fail "id"
[ "$(jget "$W/comp.out" .choices[0].finish_reason)" == length ] && ok || fail "finish length"
[ "$(jget "$W/comp.out" .usage)" == '{"prompt_tokens":5,"completion_tokens":24,"total_tokens":29}' ] && ok ||
  fail "usage: $(jget "$W/comp.out" .usage)"
expect_status compids 200 "$(req compids POST /v1/completions "{\"prompt\":$ids,\"max_tokens\":24,\"temperature\":0}")"
[ "$(jget "$W/compids.out" .choices[0].text)" == "$text" ] && ok || fail "token-id prompt differs"
# no model field is fine too; a list of prompts gives one choice each
expect_status multi 200 "$(req multi POST /v1/completions '{"prompt":["Once upon a time","Tom had"],"max_tokens":8,"temperature":0}')"
[ "$(jget "$W/multi.out" .choices.length)" == 2 ] && ok || fail "two prompts, two choices"
[ "$(jget "$W/multi.out" .choices[1].index)" == 1 ] && ok || fail "choice index"
[[ $text == "$(jget "$W/multi.out" .choices[0].text)"* ]] && ok || fail "first of two prompts differs"

# 3. stop strings, logprobs, n with seeds
expect_status stop 200 "$(req stop POST /v1/completions '{"prompt":"Once upon a time","max_tokens":60,"temperature":0,"stop":["Lily","zzz"]}')"
[ "$(jget "$W/stop.out" .choices[0].text)" == ", there was a little girl named " ] && ok || fail "stop text: $(jget "$W/stop.out" .choices[0].text)"
[ "$(jget "$W/stop.out" .choices[0].finish_reason)" == stop ] && ok || fail "stop finish_reason"
expect_status lp 200 "$(req lp POST /v1/completions '{"prompt":"Once","max_tokens":6,"temperature":0,"logprobs":2}')"
[ "$(jget "$W/lp.out" .choices[0].logprobs.tokens.length)" == 6 ] && ok || fail "logprobs tokens: $(cat "$W/lp.out")"
# The tokens add up to the text, leading spaces and all.
[ "$(jget "$W/lp.out" '.choices[0].logprobs.tokens.join("")===o.choices[0].text')" == true ] && ok ||
  fail "logprobs tokens do not add up to the text: $(cat "$W/lp.out")"
[ "$(jget "$W/lp.out" '.choices[0].logprobs.token_logprobs.every(x=>x<=0)')" == true ] && ok || fail "logprobs <= 0"
[ "$(jget "$W/lp.out" '.choices[0].logprobs.top_logprobs.every(x=>Object.keys(x).length==2)')" == true ] && ok ||
  fail "two alternatives each"
expect_status chatlp 200 "$(req chatlp POST /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0,"logprobs":true,"top_logprobs":3}')"
[ "$(jget "$W/chatlp.out" '.choices[0].logprobs.content.every(t=>t.top_logprobs.length==3&&Array.isArray(t.bytes))&&o.choices[0].logprobs.content.length==o.usage.completion_tokens')" == true ] && ok ||
  fail "chat logprobs: $(head -c 400 "$W/chatlp.out")"
expect_status nseed 200 "$(req nseed POST /v1/completions '{"prompt":"Once","max_tokens":16,"temperature":1,"seed":5,"n":2}')"
expect_status seed6 200 "$(req seed6 POST /v1/completions '{"prompt":"Once","max_tokens":16,"temperature":1,"seed":6}')"
[ "$(jget "$W/nseed.out" .choices[1].text)" == "$(jget "$W/seed6.out" .choices[0].text)" ] && ok ||
  fail "choice 1 of seed 5 is not seed 6"
[ "$(jget "$W/nseed.out" .usage.completion_tokens)" == 32 ] && ok || fail "n=2 usage"

# 4. chat, plain
expect_status chat 200 "$(req chat POST /v1/chat/completions '{"model":"tiny","messages":[{"role":"system","content":"Be nice."},{"role":"user","content":[{"type":"text","text":"Tell a story."}]}],"max_tokens":12,"temperature":0}')"
[ "$(jget "$W/chat.out" .object)" == chat.completion ] && ok || fail "chat object"
[ "$(jget "$W/chat.out" .choices[0].message.role)" == assistant ] && ok || fail "chat role"
[ -n "$(jget "$W/chat.out" .choices[0].message.content)" ] && ok || fail "chat content empty"
[ "$(jget "$W/chat.out" .usage.completion_tokens)" -le 12 ] && ok || fail "chat usage"

# 5. SSE framing, byte for byte: "data: <json>\n\n" events, chunks that add up
# to the plain answer, the finish chunk, the usage chunk, "data: [DONE]\n\n".
curl -sN -D "$W/sse.hdr" -o "$W/sse.out" "http://127.0.0.1:$PORT/v1/completions" \
  -d '{"prompt":"Once upon a time","max_tokens":24,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
grep -qi '^content-type: text/event-stream' "$W/sse.hdr" && ok || fail "SSE content type"
check_sse() { # FILE PLAIN_JSON CHAT
  node -e '
    const fs=require("fs");const raw=fs.readFileSync(process.argv[1],"latin1");
    const plain=JSON.parse(fs.readFileSync(process.argv[2],"utf8"));const chat=process.argv[3]==="1";
    const fail=m=>{console.log(m);process.exit(0)};
    if(!raw.endsWith("data: [DONE]\n\n"))fail("does not end with [DONE]");
    if(raw.includes("\r"))fail("CR in stream");
    const ev=raw.split("\n\n");if(ev.pop()!=="")fail("trailing bytes");
    if(ev.pop()!=="data: [DONE]")fail("[DONE] not last");
    let text="",id=null,finish=null,usage=null,n=0,rebuilt="";
    for(const e of ev){
      if(!e.startsWith("data: ")||e.includes("\n"))fail("bad event: "+JSON.stringify(e));
      const j=e.slice(6);const o=JSON.parse(j);n++;
      rebuilt+="data: "+JSON.stringify(o)+"\n\n";
      if(id===null)id=o.id;else if(o.id!==id)fail("id changed");
      if(o.object!==(chat?"chat.completion.chunk":"text_completion"))fail("object "+o.object);
      if(typeof o.created!=="number"||typeof o.model!=="string")fail("created/model");
      if(usage)fail("chunk after usage");
      if(o.usage){usage=o.usage;if(o.choices.length!==0)fail("usage chunk has choices");continue}
      if(finish)fail("chunk after finish");
      const c=o.choices[0];if(c.index!==0)fail("index");
      const t=chat?c.delta.content:c.text;if(t!==undefined)text+=t;
      if(c.finish_reason!==null)finish=c.finish_reason;
    }
    if(rebuilt+"data: [DONE]\n\n"!==raw)fail("events are not compact JSON lines");
    const want=chat?plain.choices[0].message.content:plain.choices[0].text;
    if(Buffer.from(text,"latin1").toString("utf8")!==want)fail("text differs: "+JSON.stringify(text)+" vs "+JSON.stringify(want));
    if(finish!==plain.choices[0].finish_reason)fail("finish "+finish);
    if(JSON.stringify(usage)!==JSON.stringify(plain.usage))fail("usage "+JSON.stringify(usage));
    console.log("ok "+n)' "$@"
}
res=$(check_sse "$W/sse.out" "$W/comp.out" 0)
[[ $res == ok* ]] && ok || fail "completions SSE: $res"
curl -sN -o "$W/csse.out" "http://127.0.0.1:$PORT/v1/chat/completions" \
  -d '{"model":"tiny","messages":[{"role":"system","content":"Be nice."},{"role":"user","content":[{"type":"text","text":"Tell a story."}]}],"max_tokens":12,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
res=$(check_sse "$W/csse.out" "$W/chat.out" 1)
[[ $res == ok* ]] && ok || fail "chat SSE: $res"
head -c 6 "$W/csse.out" | grep -q '^data: ' && ok || fail "chat SSE start"
grep -q '"delta":{"role":"assistant","content":""}' "$W/csse.out" && ok || fail "chat SSE role chunk"
# without include_usage: no usage chunk
curl -sN -o "$W/sse2.out" "http://127.0.0.1:$PORT/v1/completions" -d '{"prompt":"Once","max_tokens":3,"temperature":0,"stream":true}'
grep -q usage "$W/sse2.out" && fail "usage without include_usage" || ok

# 6. errors: OpenAI error objects with the right status
expect_error e_json 400 - POST /v1/completions '{"prompt":'
expect_error e_type 400 max_tokens POST /v1/completions '{"prompt":"x","max_tokens":"many"}'
expect_error e_range 400 temperature POST /v1/completions '{"prompt":"x","temperature":9}'
expect_error e_nprompt 400 prompt POST /v1/completions '{"max_tokens":3}'
expect_error e_ids 400 prompt POST /v1/completions '{"prompt":[1,2,100000]}'
expect_error e_empty 400 messages POST /v1/chat/completions '{"messages":[]}'
expect_error e_role 400 messages POST /v1/chat/completions '{"messages":[{"role":"wizard","content":"x"}]}'
expect_error e_model 404 model_not_found POST /v1/completions '{"model":"gpt-9","prompt":"x"}'
long=$(printf 'Once upon a time %.0s' $(seq 1 600))
expect_error e_ctx 400 context_length_exceeded POST /v1/completions "{\"prompt\":\"$long\"}"
expect_error e_path 404 not_found GET /v1/nothing
expect_error e_method 405 method_not_allowed GET /v1/completions
grep -qi '^allow: POST' "$W/e_method.hdr" && ok || fail "405 without Allow"
expect_error e_method2 405 method_not_allowed POST /v1/models '{}'
head -c 70000 /dev/zero | tr '\0' 'a' > "$W/big.txt"
got=$(curl -s -o "$W/e_big.out" -w '%{http_code}' -H "Content-Type: application/json" \
  --data-binary "@$W/big.txt" "http://127.0.0.1:$PORT/v1/completions")
expect_status e_big 413 "$got"
grep -q '"error"' "$W/e_big.out" && ok || fail "413 body"
# chunked upload beyond the limit (no Content-Length)
got=$(curl -s -o "$W/e_big2.out" -w '%{http_code}' -H "Transfer-Encoding: chunked" \
  -H "Content-Type: application/json" --data-binary "@$W/big.txt" "http://127.0.0.1:$PORT/v1/completions")
expect_status e_big2 413 "$got"
expect_error e_tok 400 tokens POST /detokenize '{"tokens":[99999]}'
# still serving after all that
expect_status alive 200 "$(req alive POST /v1/completions '{"prompt":"Once","max_tokens":2}')"

# 7. a client that hangs up mid-stream: its sequence is aborted and its KV
# blocks come back at once (2000 tokens would take seconds).
curl -sN -o "$W/hang.out" "http://127.0.0.1:$PORT/v1/completions" \
  -d '{"prompt":"Once upon a time","max_tokens":2000,"temperature":0,"ignore_eos":true,"stream":true}' &
hang=$!
for _ in $(seq 1 100); do
  n=$(grep -c '^data: {' "$W/hang.out" 2>/dev/null)
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.05
done
used=$(metric pagoda_kv_blocks_used)
[ "${used:-0}" -gt 0 ] && ok || fail "no KV blocks in use during a stream ($used)"
kill $hang
wait $hang 2>/dev/null
grep -q '^data: {' "$W/hang.out" && ok || fail "no events before the hang-up"
used=
for _ in $(seq 1 200); do
  used=$(metric pagoda_kv_blocks_used)
  [ "$used" == 0 ] && break
  sleep 0.05
done
[ "$used" == 0 ] && ok || fail "KV blocks not back after the hang-up: $used"
[ "$(metric pagoda_sequences_aborted_total)" -ge 1 ] && ok || fail "abort not counted"
[ "$(metric pagoda_sequences_running)" == 0 ] && ok || fail "a sequence still runs"
grep -q 'POST /v1/completions 200 .*client gone' "$W/main.log" && ok || fail "no log line for the hang-up"
gen=$(grep 'client gone' "$W/main.log" | head -1 | sed 's/.* gen=\([0-9]*\) .*/\1/')
[ "${gen:-2000}" -lt 2000 ] && ok || fail "the hung-up sequence ran to the end ($gen)"
# the same with a client that closes after its first bytes
curl -sN "http://127.0.0.1:$PORT/v1/chat/completions" \
  -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":2000,"ignore_eos":true,"stream":true}' | head -c 200 > /dev/null
for _ in $(seq 1 200); do
  used=$(metric pagoda_kv_blocks_used)
  [ "$used" == 0 ] && break
  sleep 0.05
done
[ "$used" == 0 ] && ok || fail "KV blocks not back after head closed the stream: $used"

# 8. 64 concurrent streaming clients give the same greedy text as one at a time
prompts=("Once upon a time" "Tom had a" "The sun" "Lily and Ben" "One day, a big" "The cat")
body_for() { # I
  local p=${prompts[$(($1 % ${#prompts[@]}))]}
  local chat=$(($1 % 2))
  if [ $chat -eq 1 ]; then
    echo "/v1/chat/completions {\"messages\":[{\"role\":\"user\",\"content\":\"$p $1\"}],\"max_tokens\":$((8 + $1 % 9)),\"temperature\":0,\"stream\":true}"
  else
    echo "/v1/completions {\"prompt\":\"$p $1\",\"max_tokens\":$((8 + $1 % 9)),\"temperature\":0,\"stream\":true}"
  fi
}
pids=()
for i in $(seq 0 63); do
  read -r path body <<<"$(body_for "$i")"
  curl -sN -o "$W/par$i.out" "http://127.0.0.1:$PORT$path" -d "$body" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 0 63); do
  read -r path body <<<"$(body_for "$i")"
  curl -sN -o "$W/seq$i.out" "http://127.0.0.1:$PORT$path" -d "$body"
done
same=$(node -e '
  const fs=require("fs");
  const text=f=>{const raw=fs.readFileSync(f,"utf8");
    if(!raw.endsWith("data: [DONE]\n\n"))return "BROKEN";
    let t="",fin=null;
    for(const e of raw.split("\n\n").slice(0,-2)){if(!e.startsWith("data: "))return "BROKEN";
      const o=JSON.parse(e.slice(6));const c=o.choices[0];
      t+=(c.delta?c.delta.content:c.text)||"";if(c.finish_reason)fin=c.finish_reason}
    return fin?JSON.stringify(t)+" "+fin:"BROKEN"};
  let same=0;
  for(let i=0;i<64;i++){const a=text(process.argv[1]+"/par"+i+".out"),b=text(process.argv[1]+"/seq"+i+".out");
    if(a!=="BROKEN"&&a===b)same++;else console.error("stream "+i+": concurrent "+a+", alone "+b)}
  console.log(same)' "$W")
[ $same -eq 64 ] && ok || fail "$same of 64 concurrent streams matched"
[ "$(metric pagoda_kv_blocks_used)" == 0 ] && ok || fail "KV blocks held after the streams"
grep -q '^pagoda_requests_total{status="200"} [1-9]' <(curl -s "http://127.0.0.1:$PORT/metrics") && ok || fail "requests_total"
curl -s "http://127.0.0.1:$PORT/metrics" > "$W/metrics.txt"
for m in pagoda_requests_total pagoda_prompt_tokens_total pagoda_generated_tokens_total \
  pagoda_time_to_first_token_seconds pagoda_time_per_output_token_seconds pagoda_sequences_running \
  pagoda_sequences_waiting pagoda_kv_blocks_used pagoda_kv_blocks_free pagoda_kv_blocks_cached \
  pagoda_prefix_cache_hit_rate; do
  grep -q "^# TYPE $m " "$W/metrics.txt" && grep -q "^# HELP $m " "$W/metrics.txt" && ok || fail "metric $m missing"
done
grep -q '^pagoda_time_to_first_token_seconds_count [1-9]' "$W/metrics.txt" && ok || fail "TTFT count"
# one log line per request: id, method, path, status, tokens, latency
grep -qE '^pagoda: serve: req [0-9]+ POST /v1/chat/completions 200 prompt=[0-9]+ gen=[0-9]+ [0-9.]+ms$' "$W/main.log" && ok ||
  fail "request log line"

# 9. SIGTERM with a request in flight: it finishes, then exit 0
curl -s -o "$W/inflight.out" "http://127.0.0.1:$PORT/v1/completions" \
  -d '{"prompt":"Once","max_tokens":400,"temperature":0,"ignore_eos":true}' &
cpid=$!
sleep 0.2
kill -TERM "$SRV_PID"
wait "$SRV_PID"
rc=$?
SRV_PID=
[ $rc -eq 0 ] && ok || fail "exit status $rc after SIGTERM"
wait $cpid
[ "$(jget "$W/inflight.out" .usage.completion_tokens)" == 400 ] && ok || fail "in-flight request cut: $(head -c 200 "$W/inflight.out")"
grep -q 'stopped' "$W/main.log" && ok || fail "no stop message"

# 10. API key (flag and environment), 503 + Retry-After when the queue is full,
# and a grace period that runs out: the rest is aborted, still exit 0.
start_server "$W/key.log" --api-key s3cret --max-running 1 --max-queued 1 --grace 0.2
expect_error k_none 401 invalid_api_key GET /v1/models
expect_error k_wrong 401 invalid_api_key GET /v1/models "" -H "Authorization: Bearer nope"
expect_status k_right 200 "$(req k_right GET /v1/models "" -H "Authorization: Bearer s3cret")"
expect_status k_health 200 "$(req k_health GET /health)"
expect_error k_metrics 401 invalid_api_key GET /metrics
pids=()
for i in 1 2 3 4 5; do
  curl -s -o "$W/busy$i.out" -D "$W/busy$i.hdr" -w '%{http_code}' -H "Authorization: Bearer s3cret" \
    "http://127.0.0.1:$PORT/v1/completions" -d '{"prompt":"Once","max_tokens":1500,"ignore_eos":true}' > "$W/busy$i.code" &
  pids+=($!)
  sleep 0.05
done
sleep 0.3
kill -TERM "$SRV_PID"
t0=$(date +%s%N)
wait "$SRV_PID"
rc=$?
t1=$(date +%s%N)
SRV_PID=
for p in "${pids[@]}"; do wait "$p"; done
[ $rc -eq 0 ] && ok || fail "exit $rc after SIGTERM with a short grace"
[ $(((t1 - t0) / 1000000)) -lt 3000 ] && ok || fail "shutdown took $(((t1 - t0) / 1000000)) ms"
n503=0
for i in 1 2 3 4 5; do
  if [ "$(cat "$W/busy$i.code")" == 503 ] && grep -qi '^retry-after: ' "$W/busy$i.hdr" &&
    grep -q '"error"' "$W/busy$i.out"; then n503=$((n503 + 1)); fi
done
[ $n503 -ge 1 ] && ok || fail "no 503 with Retry-After: $(cat "$W"/busy*.code)"
PAGODA_API_KEY=envkey start_server "$W/key2.log"
expect_error k_env 401 invalid_api_key GET /v1/models
expect_status k_env2 200 "$(req k_env2 GET /v1/models "" -H "Authorization: Bearer envkey")"
stop_server

# 11. bad flags: one line, exit 1
expect_fail "bad port" "port" "$bin" serve "$model" --port 70000
expect_fail "bad kv-mem" "kv-mem" "$bin" serve "$model" --kv-mem lots
expect_fail "bad kv-type" "kv-type" "$bin" serve "$model" --kv-type f8
expect_fail "unknown flag" "unknown option" "$bin" serve "$model" --frobnicate
expect_fail "missing model" "serve" "$bin" serve "$W/none.gguf" --port 0

cli_finish

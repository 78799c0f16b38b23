#!/usr/bin/env bash
# cli_serve_node.sh: the official `openai` npm client (version pinned in
# tests/node/package.json) drives `pagoda serve` on stories260K: completions
# and chat, streaming and not, stop sequences, usage, seeds, logprobs and
# error cases (tests/node/client_test.mjs). The client is installed with npm
# into a folder beside the pagoda binary the first time. Skips (77) only when
# node or npm is missing.
set -u
bin=$1
. "$(dirname "$0")/lib_cli.sh"
cli_require_reference models/stories260K.gguf
model=$REF/models/stories260K.gguf
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node or npm is not installed (scripts/install-deps.sh installs them): skipping"
  exit 77
fi
src=$(cd "$(dirname "$0")/node" && pwd)
client=$(cd "$(dirname "$bin")" && pwd)/node-client
mkdir -p "$client"
cp "$src/package.json" "$src/package-lock.json" "$src/client_test.mjs" "$client/"
# Reinstall when the pinned version changed since the last install.
if [ ! -f "$client/node_modules/openai/package.json" ] ||
  ! cmp -s "$src/package-lock.json" "$client/.installed-lock"; then
  echo "installing the openai client into $client"
  (cd "$client" && { npm ci --no-audit --no-fund --loglevel=error ||
    npm install --no-audit --no-fund --loglevel=error; }) >&2 || { echo "FAIL: npm could not install the client" >&2; exit 1; }
  cp "$src/package-lock.json" "$client/.installed-lock"
fi
cli_workdir cli-serve-node
log=$WORK/serve.log

"$bin" serve "$model" --port 0 --kv-mem 64MiB -t 2 --chat-template llama2 --api-key node-key 2> "$log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$WORK"' EXIT
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
[ -n "$port" ] || { cat "$log" >&2; echo "FAIL: the server did not start" >&2; exit 1; }

if (cd "$client" && node client_test.mjs "http://127.0.0.1:$port/v1" node-key stories260K); then ok; else fail "openai client test"; fi
kill -TERM $pid
wait $pid
rc=$?
trap 'rm -rf "$WORK"' EXIT
[ $rc -eq 0 ] && ok || fail "server exit status $rc"
cli_finish

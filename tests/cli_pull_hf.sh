#!/usr/bin/env bash
# cli_pull_hf.sh: `pagoda pull hf://...` and `pull ORG/REPO:QUANT` against a
# local stand-in hub (tests/fake_hub_server.js, run with node), then
# `pagoda list` and `pagoda rm` on what was pulled.
#
# The hub drops the first connection for each file half-way (the pull must
# resume with a Range request and end with the whole file), announces wrong
# checksums for some files (refused, nothing left behind), ignores Range for
# others, answers 404 and 401, and is also made unreachable. A file size limit
# stands in for a full disk. Skipped (exit 77) without node.
set -u
PAGODA=${1:?usage: cli_pull_hf.sh path/to/pagoda}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib_cli.sh"

if ! command -v node >/dev/null 2>&1; then
    echo "node is not installed: skipping"
    exit 77
fi

cli_workdir cli-pull-hf
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
export PAGODA_HOME="$WORK/home"
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN
MODELS="$PAGODA_HOME/models"
HUB="$WORK/hub"
LOG="$WORK/server.log"

# ---- the hub's contents: tiny models of a few seeds ----

# With the reference vocabulary the models have a tokenizer, so the pulled
# file can also be run; without it they are weights only.
VOCAB_ARGS=(--n-vocab 256)
if (cli_require_reference vocab/ggml-vocab-llama-spm.gguf >/dev/null); then
    cli_require_reference vocab/ggml-vocab-llama-spm.gguf
    VOCAB_ARGS=(--vocab-from "$REF/vocab/ggml-vocab-llama-spm.gguf")
fi
synth() { # OUT SEED TYPE [VOCAB ARGS...]
    local out=$1 seed=$2 type=$3
    shift 3
    mkdir -p "$(dirname "$out")"
    "$PAGODA" synth --arch llama --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 128 \
        --type "$type" --seed "$seed" --name "tiny-$seed" "$@" -o "$out" >/dev/null ||
        fail "synth $out"
}
T="$HUB/acme/tiny-GGUF"
synth "$T/tiny-Q8_0.gguf" 1 q8_0 "${VOCAB_ARGS[@]}"
synth "$T/tiny-Q4_K_M.gguf" 2 q4_k_m --n-vocab 256
synth "$T/tiny-Q4_K_S.gguf" 3 q4_k_s --n-vocab 256
cp "$T/tiny-Q4_K_S.gguf" "$T/mmproj-tiny-Q8_0.gguf"
echo "a readme, not a model" >"$T/README.md"
synth "$HUB/acme/bad-GGUF/tiny-BADSUM-Q8_0.gguf" 4 q8_0 --n-vocab 256
synth "$HUB/acme/norange/tiny-NORANGE-Q8_0.gguf" 5 q8_0 --n-vocab 256
synth "$HUB/gated-org/secret/tiny-F16.gguf" 6 f16 --n-vocab 256
mkdir -p "$HUB/acme/notgguf" && head -c 3000 /dev/urandom >"$HUB/acme/notgguf/fake.gguf"
[ "$failures" -eq 0 ] || cli_finish

node "$HERE/fake_hub_server.js" "$HUB" "$LOG" >"$WORK/port" 2>"$WORK/server.err" &
SERVER_PID=$!
PORT=
for _ in $(seq 50); do
    PORT=$(sed -n 's/^PORT //p' "$WORK/port")
    [ -n "$PORT" ] && break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    cat "$WORK/server.err" >&2
    fail "the stand-in hub did not start"
    cli_finish
fi
export PAGODA_HF_ENDPOINT="http://127.0.0.1:$PORT/"

# expect_pull NAME SRC HUBFILE [pull args]: the pull succeeds, prints the path
# of a file equal to the hub's, and leaves no .part.
expect_pull() {
    local name=$1 src=$2 hubfile=$3
    shift 3
    local out rc dest
    out=$("$PAGODA" pull "$src" "$@" 2>"$WORK/pull.err")
    rc=$?
    if [ $rc -ne 0 ]; then
        fail "$name: exit $rc: $(cat "$WORK/pull.err")"
        return
    fi
    dest=$MODELS/${hubfile#"$HUB"/}
    if ! grep -qF -- "$dest" <<<"$out"; then
        fail "$name: the output does not name $dest: $out"
    elif ! cmp -s "$dest" "$hubfile"; then
        fail "$name: $dest differs from the hub's file"
    elif [ -e "$dest.part" ]; then
        fail "$name: $dest.part was left behind"
    else
        ok
    fi
}

# ---- hf://ORG/REPO/FILE.gguf ----

expect_pull "hf file" "hf://acme/tiny-GGUF/tiny-Q8_0.gguf" "$T/tiny-Q8_0.gguf"
grep -q "resuming" "$WORK/pull.err" || fail "the dropped connection was not reported: $(cat "$WORK/pull.err")"
grep -q "SHA-256 .* matches" "$WORK/pull.err" || fail "no checksum confirmation: $(cat "$WORK/pull.err")"
grep -q "^GET /cdn/acme/tiny-GGUF/tiny-Q8_0.gguf range=- " "$LOG" ||
    fail "the first request was not a plain GET"
grep -q "^GET /cdn/acme/tiny-GGUF/tiny-Q8_0.gguf range=bytes=[1-9][0-9]*- " "$LOG" ||
    fail "the download did not resume with a Range request: $(cat "$LOG")"
if [ "$(grep -c "^GET /cdn/acme/tiny-GGUF/tiny-Q8_0.gguf " "$LOG")" -ne 2 ]; then
    fail "expected exactly 2 requests for tiny-Q8_0.gguf: $(cat "$LOG")"
fi

out=$("$PAGODA" pull hf://acme/tiny-GGUF/tiny-Q8_0.gguf 2>&1)
grep -q "already cached" <<<"$out" && ok || fail "a second pull did not find the file cached: $out"

if [ "${VOCAB_ARGS[0]}" = "--vocab-from" ]; then
    # The printed path is a model `pagoda run` takes.
    if "$PAGODA" run "$MODELS/acme/tiny-GGUF/tiny-Q8_0.gguf" -p "Hello" -n 3 --temp 0 \
        >"$WORK/run.out" 2>&1; then ok; else fail "run on the pulled file: $(cat "$WORK/run.out")"; fi
fi

# A server that ignores Range: the .part must restart, not be appended to.
expect_pull "no range support" "hf://acme/norange/tiny-NORANGE-Q8_0.gguf" \
    "$HUB/acme/norange/tiny-NORANGE-Q8_0.gguf"

# A .part from an earlier run is resumed from where it ends.
mkdir -p "$MODELS/acme/tiny-GGUF"
head -c 1000 "$T/tiny-Q4_K_S.gguf" >"$MODELS/acme/tiny-GGUF/tiny-Q4_K_S.gguf.part"
expect_pull "resume a .part" "hf://acme/tiny-GGUF/tiny-Q4_K_S.gguf" "$T/tiny-Q4_K_S.gguf"
grep -q "^GET /cdn/acme/tiny-GGUF/tiny-Q4_K_S.gguf range=bytes=1000- " "$LOG" ||
    fail "the earlier .part was not resumed from byte 1000"

# ---- ORG/REPO:QUANT ----

expect_pull "quant tag" "acme/tiny-GGUF:q4_k_m" "$T/tiny-Q4_K_M.gguf"
grep -q "^GET /api/models/acme/tiny-GGUF/tree/main " "$LOG" || fail "the repository was not listed"
expect_out "no tag picks Q4_K_M" \
    "acme/tiny-GGUF/tiny-Q4_K_M.gguf is already cached: $MODELS/acme/tiny-GGUF/tiny-Q4_K_M.gguf" \
    "$PAGODA" pull acme/tiny-GGUF
expect_out "mmproj files are not models" \
    "acme/tiny-GGUF/tiny-Q8_0.gguf is already cached: $MODELS/acme/tiny-GGUF/tiny-Q8_0.gguf" \
    "$PAGODA" pull hf://acme/tiny-GGUF:Q8_0

out=$("$PAGODA" pull acme/tiny-GGUF:Q4_K 2>&1)
rc=$?
if [ $rc -eq 0 ] || ! grep -q "2 GGUF files .* match 'Q4_K'" <<<"$out" ||
    ! grep -q "tiny-Q4_K_S.gguf" <<<"$out" || ! grep -q "tiny-Q4_K_M.gguf" <<<"$out"; then
    fail "an ambiguous tag must list the choices: $out"
else
    ok
fi
out=$("$PAGODA" pull acme/tiny-GGUF:Q5_K_M 2>&1)
rc=$?
if [ $rc -eq 0 ] || ! grep -q "no GGUF file" <<<"$out" || ! grep -q "tiny-Q8_0.gguf" <<<"$out"; then
    fail "a tag matching nothing must list the choices: $out"
else
    ok
fi

# ---- refusals: nothing may be left behind ----

no_trace() { # NAME PATH: neither PATH nor PATH.part exists
    if [ -e "$2" ] || [ -e "$2.part" ]; then fail "$1: left $(ls "$2"*)"; else ok; fi
}
expect_fail "wrong checksum (header)" "checksum mismatch" \
    "$PAGODA" pull hf://acme/bad-GGUF/tiny-BADSUM-Q8_0.gguf
no_trace "wrong checksum (header)" "$MODELS/acme/bad-GGUF/tiny-BADSUM-Q8_0.gguf"
expect_fail "wrong checksum (listing)" "repository listing" "$PAGODA" pull acme/bad-GGUF:BADSUM
no_trace "wrong checksum (listing)" "$MODELS/acme/bad-GGUF/tiny-BADSUM-Q8_0.gguf"
[ -e "$MODELS/acme/bad-GGUF" ] && fail "the empty folder of a refused file was left"

expect_fail "not a GGUF" "not of the expected kind" "$PAGODA" pull hf://acme/notgguf/fake.gguf
no_trace "not a GGUF" "$MODELS/acme/notgguf/fake.gguf"

expect_fail "404 file" "HTTP 404" "$PAGODA" pull hf://acme/tiny-GGUF/nope.gguf
no_trace "404 file" "$MODELS/acme/tiny-GGUF/nope.gguf"
expect_fail "404 repo" "HTTP 404" "$PAGODA" pull nobody/nothing:Q4_0

expect_fail "401 without token" "HF_TOKEN" "$PAGODA" pull hf://gated-org/secret/tiny-F16.gguf
no_trace "401" "$MODELS/gated-org/secret/tiny-F16.gguf"

# A full disk, played by a file size limit: a clear error, the bytes so far
# kept, and the next pull resumes from them.
out=$( (ulimit -f 16 && HF_TOKEN=sekrit "$PAGODA" pull hf://gated-org/secret/tiny-F16.gguf) 2>&1)
rc=$?
if [ $rc -eq 0 ] || ! grep -q "disk full" <<<"$out"; then
    fail "file size limit: exit $rc: $out"
else
    ok
fi
[ -s "$MODELS/gated-org/secret/tiny-F16.gguf.part" ] || fail "the bytes before the full disk were not kept"
HF_TOKEN=sekrit expect_pull "401 with token, resuming after a full disk" "gated-org/secret:F16" \
    "$HUB/gated-org/secret/tiny-F16.gguf"
grep -q "^GET /cdn/gated-org/secret/tiny-F16.gguf range=bytes=16384- " "$LOG" ||
    fail "the pull after the full disk did not resume: $(grep tiny-F16 "$LOG")"

expect_fail "bad name" "expected hf://" "$PAGODA" pull "hf://../etc/x.gguf"
expect_fail "dot dot" "not a file name" "$PAGODA" pull "hf://acme/tiny-GGUF/../x.gguf"
expect_fail "not gguf" "only .gguf" "$PAGODA" pull "hf://acme/tiny-GGUF/README.md"
expect_fail "other scheme" "only hf://" "$PAGODA" pull "s3://bucket/x.gguf"

# Unreachable: nothing listens on port 1.
PAGODA_HF_ENDPOINT=http://127.0.0.1:1 expect_fail "offline (file)" "cannot connect" \
    "$PAGODA" pull hf://acme/tiny-GGUF/tiny-Q4_K_M.gguf --force
PAGODA_HF_ENDPOINT=http://127.0.0.1:1 expect_fail "offline (listing)" "offline" \
    "$PAGODA" pull acme/tiny-GGUF:Q8_0
[ -e "$MODELS/acme/tiny-GGUF/tiny-Q4_K_M.gguf" ] || fail "a failed --force pull removed the cached file"

# Two pulls of one file at once: the second is turned away.
if command -v flock >/dev/null 2>&1; then
    part="$MODELS/acme/tiny-GGUF/tiny-Q4_K_S.gguf.part"
    flock "$part" sleep 2 &
    LOCKER=$!
    for _ in $(seq 20); do flock -n "$part" true || break; sleep 0.1; done
    expect_fail "concurrent pull" "another process" \
        "$PAGODA" pull hf://acme/tiny-GGUF/tiny-Q4_K_S.gguf --force
    wait "$LOCKER"
    rm -f "$part"
fi

# ---- list ----

out=$("$PAGODA" list 2>&1) || fail "list: $out"
for name in acme/tiny-GGUF/tiny-Q8_0.gguf acme/tiny-GGUF/tiny-Q4_K_M.gguf \
    acme/norange/tiny-NORANGE-Q8_0.gguf gated-org/secret/tiny-F16.gguf; do
    grep -q "^$name " <<<"$out" || fail "list does not show $name: $out"
done
grep -q "^acme/tiny-GGUF/tiny-Q4_K_M.gguf .* Q4_K_M  *llama  *tiny-2$" <<<"$out" ||
    fail "list: wrong type, architecture or name for tiny-Q4_K_M: $out"
grep -q "^gated-org/secret/tiny-F16.gguf .* F16 " <<<"$out" || fail "list: F16 file: $out"
grep -q "^5 models" <<<"$out" || fail "list: expected 5 models: $out"

"$PAGODA" list --json >"$WORK/list.json" 2>&1 || fail "list --json: $(cat "$WORK/list.json")"
Q8="$MODELS/acme/tiny-GGUF/tiny-Q8_0.gguf"
check=$(node -e '
const l = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const e = l.find((x) => x.name === "acme/tiny-GGUF/tiny-Q8_0.gguf");
if (l.length !== 5) console.log("count " + l.length);
else if (!e) console.log("missing");
else if (e.size !== Number(process.argv[2]) || e.path !== process.argv[3] || e.type !== "Q8_0" ||
         e.file_type !== 7 || e.architecture !== "llama" || e.model_name !== "tiny-1")
  console.log(JSON.stringify(e));
else console.log("ok");' "$WORK/list.json" "$(stat -c %s "$Q8")" "$Q8" 2>&1)
[ "$check" = ok ] && ok || fail "list --json: $check"

# An unfinished download is mentioned, not listed as a model.
head -c 100 "$T/tiny-Q4_K_S.gguf" >"$MODELS/acme/tiny-GGUF/later.gguf.part"
out=$("$PAGODA" list 2>&1)
grep -q "unfinished download: acme/tiny-GGUF/later.gguf.part" <<<"$out" && ok ||
    fail "list does not mention the .part: $out"

# ---- rm ----

expect_out "rm full name" "removed acme/tiny-GGUF/tiny-Q8_0.gguf ($(awk -v s="$(stat -c %s "$Q8")" 'BEGIN{printf "%.1f", s/1048576}') MiB)" \
    "$PAGODA" rm acme/tiny-GGUF/tiny-Q8_0.gguf
[ -e "$Q8" ] && fail "rm left $Q8"
"$PAGODA" rm tiny-Q4_K_M >"$WORK/rm.out" 2>&1 && grep -q "removed acme/tiny-GGUF/tiny-Q4_K_M.gguf" "$WORK/rm.out" &&
    ok || fail "rm by file name: $(cat "$WORK/rm.out")"
expect_fail "rm absent" "no cached model named 'tiny-Q8_0.gguf'" "$PAGODA" rm tiny-Q8_0.gguf
expect_fail "rm outside" "not a model name" "$PAGODA" rm ../models/x.gguf
expect_fail "rm nothing" "which model" "$PAGODA" rm
cp "$MODELS/gated-org/secret/tiny-F16.gguf" "$MODELS/acme/norange/tiny-F16.gguf"
expect_fail "rm ambiguous" "ambiguous" "$PAGODA" rm tiny-F16.gguf
"$PAGODA" rm acme/tiny-GGUF/tiny-Q4_K_S acme/tiny-GGUF/later.gguf.part >/dev/null 2>&1 ||
    fail "rm of two names"
[ -e "$MODELS/acme/tiny-GGUF" ] && fail "rm left the empty folder acme/tiny-GGUF: $(ls -a "$MODELS/acme/tiny-GGUF")"
[ -d "$MODELS" ] || fail "rm removed the models folder"
out=$("$PAGODA" list 2>&1)
grep -q "^3 models" <<<"$out" && ok || fail "list after rm: $out"

cli_finish

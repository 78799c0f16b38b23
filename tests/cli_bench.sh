#!/usr/bin/env bash
# cli_bench.sh: `pagoda bench` runs each benchmark briefly, prints positive
# figures (also as parseable JSON), and rejects bad flags with exit code 1.
# $1 is the pagoda binary.
set -u
PAGODA="$1"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }

# Pulls "key": number values out of the JSON and checks each is > 0.
positive() { # file key
    local vals
    vals=$(grep -o "\"$2\": [0-9.e+-]*" "$1" | awk '{print $2}')
    [ -n "$vals" ] || return 1
    for v in $vals; do
        awk -v v="$v" 'BEGIN { exit !(v > 0) }' || return 1
    done
}

if "$PAGODA" bench membw --size 16 --reps 2 --json > "$TMP/m.json" &&
   positive "$TMP/m.json" median_gbs && positive "$TMP/m.json" best_gbs; then
    ok "membw"
else bad "membw"; cat "$TMP/m.json"; fi

if "$PAGODA" bench peak --seconds 0.05 --json > "$TMP/p.json" && positive "$TMP/p.json" tops &&
   grep -q '"instr"' "$TMP/p.json"; then
    ok "peak"
else bad "peak"; cat "$TMP/p.json"; fi

if "$PAGODA" bench kernels -t 2 --types q4_0,q4_k --mv-size 64 --gemm-rows 256 --size 16 --seconds 0.01 --json > "$TMP/k.json" &&
   positive "$TMP/k.json" matvec_gbs && positive "$TMP/k.json" gemm32_gops &&
   positive "$TMP/k.json" gemm512_gops && [ "$(grep -o '"type": "q4_[0K]"' "$TMP/k.json" | wc -l)" -eq 2 ]; then
    ok "kernels"
else bad "kernels"; cat "$TMP/k.json"; fi
if command -v python3 > /dev/null; then
    for f in m p k; do
        python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$TMP/$f.json" || { bad "$f.json is not JSON"; }
    done
fi

"$PAGODA" bench peak --seconds 0.05 > "$TMP/table.txt" && grep -q "TOP/s" "$TMP/table.txt" &&
    ok "table output" || bad "table output"

# Every benchmark the command runs is named in its help.
"$PAGODA" bench --help > "$TMP/help.txt" &&
    (for b in membw peak kernels engine serve; do grep -q "^  $b " "$TMP/help.txt" || exit 1; done) &&
    ok "help names every benchmark" || bad "help names every benchmark"

for args in "" "nosuch" "membw -t 0" "membw --size 0" "membw --reps x" "peak --seconds -1" \
            "kernels --types q4_0,zz" "kernels --mv-size 1" "kernels --gemm-rows 100" "membw --bogus" "peak -t"; do
    # shellcheck disable=SC2086
    "$PAGODA" bench $args > /dev/null 2> "$TMP/err.txt"
    rc=$?
    if [ "$rc" -eq 1 ] && [ -s "$TMP/err.txt" ]; then ok "rejects '$args'"; else bad "'$args' gave $rc"; fi
done
exit $fail

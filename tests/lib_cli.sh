# lib_cli.sh: what the command-line tests share, sourced by tests/cli_*.sh:
# finding the reference data, a scratch folder removed on exit, pass/fail
# counting with the closing "N passed, N failed" line, and expectations on a
# command's exit status and output.

passes=0
failures=0

ok() { passes=$((passes + 1)); }
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Sets REF to the reference data folder, or skips the test (exit 77) when the
# file named by $1 (relative to it) is not there.
cli_require_reference() {
  REF=${PAGODA_REFERENCE_DIR:-${PAGODA_SOURCE_DIR:-..}/../shared/reference}
  if [ ! -e "$REF/$1" ]; then
    echo "reference data not found at $REF (set PAGODA_REFERENCE_DIR): skipping"
    exit 77
  fi
}

# Sets WORK to a new scratch folder that is removed when the script exits.
cli_workdir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/pagoda-$1-XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
}

# expect_fail NAME PATTERN CMD...: CMD must exit non-zero and print PATTERN.
expect_fail() {
  local name=$1 pattern=$2
  shift 2
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then
    fail "$name: succeeded; output: $out"
  elif ! grep -q -- "$pattern" <<<"$out"; then
    fail "$name: no '$pattern' in: $out"
  else
    ok
  fi
}

# expect_out NAME WANT CMD...: CMD must succeed and print exactly WANT.
expect_out() {
  local name=$1 want=$2
  shift 2
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ $rc -ne 0 ]; then
    fail "$name: exit $rc: $out"
  elif [ "$out" != "$want" ]; then
    fail "$name: got '$out', want '$want'"
  else
    ok
  fi
}

# Prints the closing line and exits 1 if anything failed.
cli_finish() {
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ] || exit 1
  exit 0
}

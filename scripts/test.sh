#!/usr/bin/env bash
# Every test: set up this machine (idempotent), check formatting, lint and types, run the
# whole deno test suite, and end with one line "N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh --test || { echo "0 passed, 1 failed"; exit 1; }
deno=".tools/bin/deno"
export NO_COLOR=1 JACK_NO_START_SERVER=1
status=0
"$deno" fmt --check >&2 || { echo "deno fmt --check failed" >&2; status=1; }
"$deno" lint >&2 || { echo "deno lint failed" >&2; status=1; }
log="$(mktemp)"
"$deno" test --allow-all --unstable-net tests/ 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
summary="$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1)"
rm -f "$log"
passed="$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")"
failed="$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")"
[ -n "$passed" ] || passed=0
[ -n "$failed" ] || failed=$((test_status != 0))
if [ "$status" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$test_status" = 0 ] && [ "$status" = 0 ]

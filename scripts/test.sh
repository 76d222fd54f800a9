#!/usr/bin/env bash
# The test command (npm test): system packages, type check, lint and format check, then every tap test.
# Writes the totals to .cache/test-summary and prints them as the last line.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
summary=.cache/test-summary
echo "0 passed, 1 failed" > "$summary"

bash scripts/ensure-system-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
[ -d node_modules ] || npm ci --no-audit --no-fund

failed_typecheck=0
if ! npx --no-install tsc -p tsconfig.json; then failed_typecheck=1; echo "type check failed"; fi

# npm run lint: lint rules and formatting (biome.jsonc); `npm run format` fixes the formatting.
failed_lint=0
if ! npx --no-install biome check --error-on-warnings; then failed_lint=1; echo "lint failed"; fi

log=.cache/tap-output.log
npx --no-install tap "$@" 2>&1 | tee "$log"
tap_status=${PIPESTATUS[0]}

# tap's last line: "# { total: N, pass: N, fail: N, ... }"
totals=$(grep -E '^# \{ total:' "$log" | tail -n 1)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$totals"); pass=${pass:-0}
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$totals"); fail=${fail:-0}
if [ "$tap_status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
pass=$((pass + (1 - failed_typecheck) + (1 - failed_lint)))
fail=$((fail + failed_typecheck + failed_lint))
echo "$pass passed, $fail failed" > "$summary"
cat "$summary"
[ "$fail" -eq 0 ]

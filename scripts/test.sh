#!/usr/bin/env bash
# The test command (npm test): system and Python packages, type check, TypeScript lint and
# format check, Python lint and format checks, then every tap test.
# Writes the totals to .cache/test-summary and prints them as the last line.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
summary=.cache/test-summary
echo "0 passed, 1 failed" > "$summary"

bash scripts/ensure-system-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
bash scripts/ensure-python-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
[ -d node_modules ] || npm ci --no-audit --no-fund

# The type check, the TypeScript lint and the Python lint and format checks each count as one test in the summary.
checks_passed=0
checks_failed=0
check() {
  local name=$1; shift
  if "$@"; then checks_passed=$((checks_passed + 1)); else checks_failed=$((checks_failed + 1)); echo "$name failed"; fi
}
check "type check" npx --no-install tsc -p tsconfig.json
ruff=.cache/python-deps/bin/ruff
check "ruff check" "$ruff" check .
check "ruff format --check" "$ruff" format --check .

# npm run lint: TypeScript lint rules and formatting (biome.jsonc); `npm run format` fixes the formatting.
check "lint" npx --no-install biome check --error-on-warnings

log=.cache/tap-output.log
npx --no-install tap "$@" 2>&1 | tee "$log"
tap_status=${PIPESTATUS[0]}

# tap's last line: "# { total: N, pass: N, fail: N, ... }"
totals=$(grep -E '^# \{ total:' "$log" | tail -n 1)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$totals"); pass=${pass:-0}
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$totals"); fail=${fail:-0}
if [ "$tap_status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
pass=$((pass + checks_passed))
fail=$((fail + checks_failed))
echo "$pass passed, $fail failed" > "$summary"
cat "$summary"
[ "$fail" -eq 0 ]

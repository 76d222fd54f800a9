#!/usr/bin/env bash
# npm run test:deploy: builds the api and worker-cpu images with podman from a clean copy of the
# repository and runs them (test/deploy/). Needs podman, podman-compose and local
# node:20-bookworm-slim / redis:7-bookworm images; as root, ../shared/tools/container-engine.sh
# is run to provide them when it exists beside the repository.
# Writes the totals to .cache/test-deploy-summary and prints them as the last line.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
summary=.cache/test-deploy-summary
echo "0 passed, 1 failed" > "$summary"

have_engine() {
  command -v podman >/dev/null && command -v podman-compose >/dev/null \
    && podman image exists docker.io/library/node:20-bookworm-slim \
    && podman image exists docker.io/library/redis:7-bookworm
}
if ! have_engine; then
  setup=../shared/tools/container-engine.sh
  if [ "$(id -u)" = 0 ] && [ -x "$setup" ]; then
    "$setup" || { echo "container engine set-up failed"; cat "$summary"; exit 1; }
  else
    echo "test:deploy needs podman, podman-compose and the images node:20-bookworm-slim and" >&2
    echo "redis:7-bookworm available locally (as root, $setup sets them up)" >&2
    cat "$summary"; exit 1
  fi
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
export BUILDAH_ISOLATION=chroot BUILDAH_FORMAT=docker

log=.cache/test-deploy-output.log
npx --no-install tap --disable-coverage --timeout 3600 test/deploy/containers.test.ts 2>&1 | tee "$log"
tap_status=${PIPESTATUS[0]}
# tap's last line: "# { total: N, pass: N, fail: N, ... }"
totals=$(grep -E '^# \{ total:' "$log" | tail -n 1)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$totals"); pass=${pass:-0}
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$totals"); fail=${fail:-0}
if [ "$tap_status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "$pass passed, $fail failed" > "$summary"
cat "$summary"
[ "$fail" -eq 0 ]

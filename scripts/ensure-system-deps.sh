#!/usr/bin/env bash
# Checks the Debian packages the tests need and installs the missing ones when run as root.
# Debian's torch is used (at /usr/bin/python3); libopenblas0-pthread keeps its matrix products
# fast (the reference BLAS is ~20x slower). chromium runs the playground's browser test; without
# root a missing chromium only skips that test.
set -euo pipefail
packages=(python3-torch python3-torchvision python3-numpy python3-onnx libopenblas0-pthread redis-server)
optional=(chromium)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
missing_optional=()
for p in "${optional[@]}"; do installed "$p" || missing_optional+=("$p"); done
if [ $((${#missing[@]} + ${#missing_optional[@]})) -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  all=("${missing[@]}" "${missing_optional[@]}")
  echo "installing Debian packages: ${all[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${all[@]}" >/dev/null
  exit 0
fi
if [ ${#missing_optional[@]} -gt 0 ]; then
  echo "missing Debian packages: ${missing_optional[*]} (the browser test is skipped; sudo apt-get install ${missing_optional[*]})" >&2
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

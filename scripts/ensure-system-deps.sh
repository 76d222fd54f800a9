#!/usr/bin/env bash
# Checks the Debian packages the tests need and installs the missing ones when run as root.
# Debian's torch is used (at /usr/bin/python3); libopenblas0-pthread keeps its matrix products
# fast (the reference BLAS is ~20x slower).
set -euo pipefail
packages=(python3-torch python3-torchvision python3-numpy python3-onnx libopenblas0-pthread redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

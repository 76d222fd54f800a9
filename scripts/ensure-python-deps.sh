#!/usr/bin/env bash
# Installs trainer/requirements-dev.txt's pins (the trainer's requirements.txt, plus ruff for the
# test command) into .cache/python-deps (pip --target --no-deps, never
# into a system Python) unless that directory already holds exactly those pins. trainer/__init__.py
# puts the directory on sys.path. Debian's python3 often has no pip, so pyenv's or PATH's python3
# installs; the wheels are abi3/py3 manylinux builds that Debian's CPython loads too.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=trainer/requirements-dev.txt
target=.cache/python-deps
stamp="$target/.requirements.sha256"
want=$(cat "$requirements" trainer/requirements.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
rm -rf "$target"
mkdir -p "$target"
for python in python3 /usr/bin/python3; do
  if "$python" -m pip --version >/dev/null 2>&1; then
    "$python" -m pip install --no-deps --disable-pip-version-check --no-input --quiet --root-user-action=ignore \
      --target "$target" -r "$requirements"
    # The interpreter the trainer runs on must load them (abi3 wheels, no huggingface_hub).
    PYTHONPATH="$target" /usr/bin/python3 -c "import tokenizers, safetensors.torch"
    echo "$want" > "$stamp"
    exit 0
  fi
done
echo "no pip to install $requirements into $target (install python3-pip)" >&2
exit 1

"""`python -m trainer.launch [torch.distributed.run options] -m trainer train --job JOB.json`

PyTorch's own launcher, torch.distributed.run (torchrun), with one repair: on Python 3.11+ the
launcher of torch 1.13 (Debian's) reads `--redirects 0` as None, because iterating a Flag enum
there skips its zero member, and fails before starting any process. Newer torch is unaffected and
runs unpatched.
"""

from __future__ import annotations

import sys


def _repair_redirects() -> None:
    from torch.distributed.elastic.multiprocessing import api

    if api.Std.from_str("0") is not None:
        return
    original = api.Std.from_str

    def from_str(vm: str):
        parsed = original(vm)
        if parsed is None:
            return api.Std(int(vm))
        if isinstance(parsed, dict):
            return {k: api.Std.NONE if v is None else v for k, v in parsed.items()}
        return parsed

    api.Std.from_str = staticmethod(from_str)


def main() -> None:
    _repair_redirects()
    from torch.distributed.run import main as torchrun

    torchrun(sys.argv[1:])


if __name__ == "__main__":
    main()

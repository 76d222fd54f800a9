"""Test helper: which tensors differ between two weight files (or package/checkpoint directories).

usage: changed_tensors.py A B  ->  {"changed": [...], "same": [...]} on stdout, names sorted.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from trainer.io.hf_checkpoint import load_state  # noqa: E402


def main(a: str, b: str) -> None:
    left, right = load_state(a), load_state(b)
    shared = sorted(set(left) & set(right))
    changed = [n for n in shared if not torch.equal(left[n].float(), right[n].float())]
    print(json.dumps({"changed": changed, "same": [n for n in shared if n not in changed]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Helper for test/safetensors-files.test.ts: writes OUT with trainer.io.safetensors_files (every
dtype the Node reader decodes, an empty tensor, two views of one buffer) and reads READ with it;
prints the values written and a summary of each tensor read as JSON.

usage: safetensors_check.py OUT READ
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from trainer.io import safetensors_files  # noqa: E402


def main(out: str, read: str) -> None:
    base = torch.linspace(-2, 2, 12)
    tensors = {
        "f32": base.reshape(3, 4),
        "f64": base.double()[:5],
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "i64": torch.arange(-3, 3),
        "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "i16": torch.tensor([-300, 7], dtype=torch.int16),
        "i8": torch.tensor([-5, 5], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
        "view.top": base.reshape(3, 4)[:1],
        "view.rest": base.reshape(3, 4)[1:],
    }
    safetensors_files.save(out, tensors, {"format": "pt"})
    written = {n: {"shape": list(t.shape), "values": t.double().flatten().tolist()} for n, t in tensors.items()}
    loaded = safetensors_files.load(read)
    summary = {n: {"shape": list(t.shape), "sum": t.double().sum().item()} for n, t in loaded.items()}
    json.dump({"written": written, "read": summary}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Reading and writing .safetensors files with the safetensors library (trainer/requirements.txt).

Reading memory-maps the file (copy-on-write), so a multi-GB checkpoint or dataset shard is paged
in as its tensors are used, not copied into RAM first. The library's errors become
SafetensorsError with the file's path, so a bad upload or checkpoint is reported, not a crash.
"""

from __future__ import annotations

import re

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

# serde's wording for a dtype name the format does not know ("unknown variant `F8X`, expected ...").
_UNKNOWN_DTYPE = re.compile(r"unknown variant `([^`]*)`")


class SafetensorsError(ValueError):
    pass


def load(path: str) -> dict[str, torch.Tensor]:
    """Tensors backed by a read-only memory map of the file (copy-on-write where modified)."""
    try:
        with safe_open(path, framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}
    except SafetensorError as e:
        raise SafetensorsError(_message(path, str(e))) from None


def save(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    save_file(_unshared({name: t.detach().contiguous().cpu() for name, t in tensors.items()}), path, metadata)


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The library refuses tensors that share memory (views of one buffer, tied weights); each
    gets its own copy, as a file stores every tensor's bytes anyway."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        storage = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
        ptr = storage.data_ptr()
        out[name] = t.clone() if t.numel() and ptr in seen else t
        seen.add(ptr)
    return out


def _message(path: str, detail: str) -> str:
    unknown = _UNKNOWN_DTYPE.search(detail)
    if unknown:
        return f"{path}: a tensor has unsupported dtype {unknown.group(1)!r} ({detail})"
    return f"{path}: not a valid safetensors file ({detail})"

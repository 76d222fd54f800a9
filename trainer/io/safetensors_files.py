"""The safetensors format without the safetensors package (Debian has none).

Reading memory-maps the file, so a multi-GB checkpoint is not copied into RAM before the model
takes its tensors. Format: u64 little-endian header size, JSON header, raw little-endian data.
"""
from __future__ import annotations

import json
import mmap
import struct
from typing import Any

import numpy as np
import torch

_DTYPES = {
    "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "F64": (torch.float64, 8), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
_NAMES = {dtype: name for name, (dtype, _) in _DTYPES.items()}


class SafetensorsError(ValueError):
    pass


def read_header(path: str) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{path}: too short to be a safetensors file")
        (size,) = struct.unpack("<Q", raw)
        if size > 100_000_000:
            raise SafetensorsError(f"{path}: the header size is implausible; not a safetensors file?")
        try:
            header = json.loads(f.read(size))
        except ValueError as e:
            raise SafetensorsError(f"{path}: header is not valid JSON ({e})") from None
    header.pop("__metadata__", None)
    return header, 8 + size


def load(path: str) -> dict[str, torch.Tensor]:
    """Tensors backed by a read-only memory map of the file (copy-on-write where modified)."""
    header, start = read_header(path)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if _file_size(f) > 0 else None
    out: dict[str, torch.Tensor] = {}
    for name, info in header.items():
        dtype_name = info.get("dtype")
        if dtype_name not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {dtype_name!r} "
                                   f"(supported: {', '.join(_DTYPES)})")
        dtype, width = _DTYPES[dtype_name]
        shape = info["shape"]
        begin, end = info["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * width or mm is None or start + end > len(mm):
            raise SafetensorsError(f"{path}: tensor {name!r} data range does not match its shape {shape}")
        buf = torch.frombuffer(mm, dtype=torch.uint8, count=end - begin, offset=start + begin) \
            if end > begin else torch.empty(0, dtype=torch.uint8)
        out[name] = buf.view(dtype).reshape(shape)
    return out


def save(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset, blobs = 0, []
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def _file_size(f) -> int:
    f.seek(0, 2)
    return f.tell()

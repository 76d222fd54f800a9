"""Prepared datasets (manifest.json + safetensors shards) and batching.

Shards are memory-mapped (safetensors_files.load), so pixels of a large dataset are paged in per
batch rather than loaded up front. Everything is validated once at open time, against the model
the job trains, so a bad dataset fails before the first step with the shard, tensor and row named.
"""

from __future__ import annotations

import bisect
import json
import math
import os
from dataclasses import dataclass

import torch

from ..io import safetensors_files
from ..modeling.config import LlavaConfig
from .job import UserInputError

FORMAT = "psa-guard.prepared-dataset"
TENSORS = {
    "pixels": torch.uint8,
    "input_ids": torch.int64,
    "attention_mask": torch.int64,
    "labels": torch.int64,
    "query_ids": torch.int64,
    "query_mask": torch.int64,
    "safe_type": torch.int64,
    "safe_level": torch.int64,
}


class DatasetError(UserInputError):
    pass


@dataclass
class Batch:
    pixels: torch.Tensor  # float32, normalised [B,3,H,W]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    query_ids: torch.Tensor
    query_mask: torch.Tensor
    safe_type: torch.Tensor
    safe_level: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(**{k: v.to(device, non_blocking=True) for k, v in vars(self).items()})


class Split:
    """One split (train or val): the shards' tensors, indexed by a global row number."""

    def __init__(self, shards: list[dict[str, torch.Tensor]], image: dict, pad_id: int, query_pad_id: int):
        self.shards = shards
        self.pad_id = pad_id
        self.query_pad_id = query_pad_id
        self.offsets = [0]
        for s in shards:
            self.offsets.append(self.offsets[-1] + s["safe_type"].shape[0])
        self.mean = torch.tensor(image["image_mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(image["image_std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.rescale = float(image["rescale_factor"])

    def __len__(self) -> int:
        return self.offsets[-1]

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def order(self, seed: int) -> torch.Tensor:
        """The epoch's permutation; a function of the seed alone, so a resumed run sees the same order."""
        return torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))

    def batch(self, rows: list[int]) -> Batch:
        picked: dict[str, list[torch.Tensor]] = {k: [] for k in TENSORS}
        for row in rows:
            shard = bisect.bisect_right(self.offsets, row) - 1
            local = row - self.offsets[shard]
            for k in TENSORS:
                picked[k].append(self.shards[shard][k][local])
        # Right-padded sequences: trim to the longest real row so padding costs no compute.
        seq = max(int(m.nonzero().max()) + 1 if m.any() else 1 for m in picked["attention_mask"])
        qlen = max(int(m.nonzero().max()) + 1 if m.any() else 1 for m in picked["query_mask"])
        pixels = torch.stack(picked["pixels"]).float()
        return Batch(
            pixels=(pixels * self.rescale - self.mean) / self.std,
            input_ids=_pad(picked["input_ids"], seq, self.pad_id),
            attention_mask=_pad(picked["attention_mask"], seq, 0),
            labels=_pad(picked["labels"], seq, -100),
            query_ids=_pad(picked["query_ids"], qlen, self.query_pad_id),
            query_mask=_pad(picked["query_mask"], qlen, 0),
            safe_type=torch.stack(picked["safe_type"]),
            safe_level=torch.stack(picked["safe_level"]),
        )


def _pad(rows: list[torch.Tensor], length: int, value: int) -> torch.Tensor:
    out = torch.full((len(rows), length), value, dtype=torch.int64)
    for i, r in enumerate(rows):
        n = min(length, r.shape[0])
        out[i, :n] = r[:n]
    return out


def _check_shard(path: str, t: dict[str, torch.Tensor], cfg: LlavaConfig, image_tokens: int, hw: tuple[int, int]):
    for k, dtype in TENSORS.items():
        if k not in t:
            raise DatasetError(f"{path}: tensor {k!r} is missing")
        if t[k].dtype != dtype:
            raise DatasetError(f"{path}: tensor {k!r} has dtype {t[k].dtype}, expected {dtype}")
    n = t["safe_type"].shape[0]
    shapes = {"pixels": (n, 3, *hw), "safe_level": (n,), "safe_type": (n,)}
    for k in TENSORS:
        want = shapes.get(k)
        got = tuple(t[k].shape)
        if want is not None and got != want or want is None and (len(got) != 2 or got[0] != n):
            raise DatasetError(
                f"{path}: tensor {k!r} has shape {list(got)}, expected {list(want) if want else [n, 'L']}"
            )
    for a, b in (("input_ids", "attention_mask"), ("input_ids", "labels"), ("query_ids", "query_mask")):
        if t[a].shape != t[b].shape:
            raise DatasetError(f"{path}: {b!r} shape {list(t[b].shape)} differs from {a!r} {list(t[a].shape)}")
    vocab = cfg.text_config.vocab_size
    psa = cfg.psa
    # With a query encoder the query ids are its tokenizer's (data preparation writes them so).
    qvocab = psa.query_encoder.vocab_size if psa.query_encoder is not None else vocab
    checks = [
        ("input_ids", (t["input_ids"] < 0) | (t["input_ids"] >= vocab), f"is outside the vocabulary 0..{vocab - 1}"),
        (
            "query_ids",
            (t["query_ids"] < 0) | (t["query_ids"] >= qvocab),
            f"is outside the query vocabulary 0..{qvocab - 1}",
        ),
        (
            "labels",
            ((t["labels"] < 0) & (t["labels"] != -100)) | (t["labels"] >= vocab),
            "is neither -100 nor a token id",
        ),
        ("safe_type", (t["safe_type"] < 0) | (t["safe_type"] >= psa.num_types), f"is outside 0..{psa.num_types - 1}"),
        (
            "safe_level",
            (t["safe_level"] < 0) | (t["safe_level"] >= psa.num_levels),
            f"is outside 0..{psa.num_levels - 1}",
        ),
        (
            "input_ids",
            (t["input_ids"] == cfg.image_token_index).sum(1) != image_tokens,
            f"does not hold exactly {image_tokens} image tokens (id {cfg.image_token_index})",
        ),
    ]
    for k, bad, what in checks:
        if bool(bad.any()):
            row = int(bad.reshape(n, -1).any(1).nonzero()[0])
            raise DatasetError(f"{path}: {k!r} of row {row} {what}")


def open_split(root: str, manifest: dict, split: str, cfg: LlavaConfig, image_tokens: int) -> Split | None:
    info = manifest["splits"].get(split)
    if info is None:
        return None
    if not isinstance(info, dict) or not isinstance(info.get("shards"), list) or not info["shards"]:
        raise DatasetError(f"{root}/manifest.json: splits.{split}.shards must be a non-empty list")
    image = manifest["image"]
    hw = (image["height"], image["width"])
    shards = []
    for rel in info["shards"]:
        path = os.path.normpath(os.path.join(root, str(rel)))
        if not path.startswith(os.path.normpath(root) + os.sep) or not os.path.isfile(path):
            raise DatasetError(
                f"{root}/manifest.json: splits.{split}.shards entry {rel!r} is not a file in the dataset"
            )
        try:
            tensors = safetensors_files.load(path)
        except safetensors_files.SafetensorsError as e:
            raise DatasetError(str(e)) from None
        _check_shard(path, tensors, cfg, image_tokens, hw)
        shards.append(tensors)
    pad = cfg.text_config.pad_token_id if cfg.text_config.pad_token_id is not None else 0
    query_pad = cfg.psa.query_encoder.pad_token_id if cfg.psa.query_encoder is not None else pad
    out = Split(shards, image, pad, query_pad)
    if info.get("count") is not None and info["count"] != len(out):
        raise DatasetError(
            f"{root}/manifest.json: splits.{split}.count is {info['count']} but the shards hold {len(out)}"
        )
    return out


def open_dataset(root: str, cfg: LlavaConfig, image_tokens: int) -> tuple[Split, Split | None, dict]:
    path = os.path.join(root, "manifest.json")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != 1:
        raise DatasetError(f"{path}: format must be {FORMAT!r} version 1")
    image = manifest.get("image")
    try:
        if not all(k in image for k in ("height", "width", "rescale_factor", "image_mean", "image_std")):
            raise TypeError
        size = cfg.vision_config.image_size
        if (image["height"], image["width"]) != (size, size):
            raise DatasetError(
                f"{path}: image.height/width {image['height']}x{image['width']} do not match the "
                f"model's image_size {size}x{size}"
            )
        stats = [float(v) for v in image["image_mean"]], [float(v) for v in image["image_std"]]
        if len(stats[0]) != 3 or len(stats[1]) != 3 or min(stats[1]) <= 0 or float(image["rescale_factor"]) <= 0:
            raise TypeError
    except DatasetError:
        raise
    except (TypeError, ValueError):
        raise DatasetError(
            f"{path}: image must give height, width, rescale_factor > 0, and 3 values each for "
            "image_mean and image_std (> 0)"
        ) from None
    if not isinstance(manifest.get("splits"), dict) or "train" not in manifest["splits"]:
        raise DatasetError(f"{path}: splits.train is missing")
    train = open_split(root, manifest, "train", cfg, image_tokens)
    if len(train) == 0:
        raise DatasetError(f"{path}: splits.train has no examples")
    return train, open_split(root, manifest, "val", cfg, image_tokens), manifest

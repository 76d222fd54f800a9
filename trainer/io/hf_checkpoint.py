"""Loading Hugging Face LLaVA checkpoint directories (and our own) into PsaLlava.

Accepts the layouts transformers has used for LLaVA: `vision_tower.*` or
`vision_tower.vision_model.*`, `language_model.model.*` + `language_model.lm_head.weight`, and the
newer `model.vision_tower.*` / `model.multi_modal_projector.*` / `model.language_model.*` +
`lm_head.weight`. Weights may be one model.safetensors or shards with an index file.
Every vision tower lives under `vision_tower.*` (CLIP's names without `vision_model.`, or
NsfwMobileNetV2's own names: `vision_tower.stem.conv.weight`, `vision_tower.blocks.N.*`, ...).
"""

from __future__ import annotations

import json
import os

import torch

from ..modeling.config import ConfigError, LlavaConfig
from ..modeling.llava import PsaLlava
from . import safetensors_files


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message names the key, shape or setting."""


def canonical_name(name: str) -> str:
    """Maps any known LLaVA layout onto the names PsaLlava uses."""
    if name.startswith("model.") and not name.startswith("model.layers."):
        name = name[len("model.") :]
    if name.startswith("lm_head."):
        name = "language_model." + name
    elif name.startswith("language_model.") and not name.startswith(
        ("language_model.model.", "language_model.lm_head.")
    ):
        name = "language_model.model." + name[len("language_model.") :]
    if name.startswith("vision_tower.vision_model."):
        name = "vision_tower." + name[len("vision_tower.vision_model.") :]
    return name


def read_config(directory: str) -> LlavaConfig:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory}: config.json is missing")
    with open(path, encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except ValueError as e:
            raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    try:
        return LlavaConfig.from_dict(raw)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: {e}") from None


WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"


def write_weights(directory: str, tensors: dict[str, torch.Tensor], max_shard_bytes: int | None = None) -> list[str]:
    """Writes weights in transformers' layout and returns the file names written: one
    model.safetensors, or, when they add up to more than `max_shard_bytes`, shards
    model-0000i-of-0000N.safetensors (tensors in name order, a shard closed before the tensor that
    would take it over the limit) listed in model.safetensors.index.json."""
    names = sorted(tensors)
    size = {n: tensors[n].numel() * tensors[n].element_size() for n in names}
    total = sum(size.values())
    if max_shard_bytes is None or total <= max_shard_bytes:
        safetensors_files.save(os.path.join(directory, WEIGHTS_FILE), tensors, {"format": "pt"})
        return [WEIGHTS_FILE]
    shards: list[list[str]] = [[]]
    filled = 0
    for n in names:
        if shards[-1] and filled + size[n] > max_shard_bytes:
            shards.append([])
            filled = 0
        shards[-1].append(n)
        filled += size[n]
    files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for file, members in zip(files, shards):
        safetensors_files.save(os.path.join(directory, file), {n: tensors[n] for n in members}, {"format": "pt"})
    with open(os.path.join(directory, WEIGHTS_INDEX), "w", encoding="utf-8") as f:
        json.dump(
            {
                "metadata": {"total_size": total},
                "weight_map": {n: file for file, members in zip(files, shards) for n in members},
            },
            f,
            indent=2,
        )
        f.write("\n")
    return [*files, WEIGHTS_INDEX]


def _shard_path(directory: str, name: object) -> str:
    """A shard named by the index: a plain relative file name that stays inside `directory`
    (links included), so an index cannot make the trainer read any other file on the machine."""
    shown = repr(name)[:100]
    if not isinstance(name, str) or name == "" or "\0" in name or "\\" in name:
        raise CheckpointError(f"{WEIGHTS_INDEX}: shard name {shown} is not a file name")
    if os.path.isabs(name) or ".." in name.split("/"):
        raise CheckpointError(f"{WEIGHTS_INDEX}: shard name {shown} must be relative to the checkpoint, without '..'")
    root = os.path.realpath(directory)
    real = os.path.realpath(os.path.join(root, name))
    if not real.startswith(root + os.sep):
        raise CheckpointError(f"{WEIGHTS_INDEX}: shard {shown} resolves outside the checkpoint directory")
    return real


def weight_files(directory: str) -> list[str]:
    index = os.path.join(directory, WEIGHTS_INDEX)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            try:
                weight_map = json.load(f).get("weight_map") or {}
            except (ValueError, AttributeError):
                raise CheckpointError(f"{WEIGHTS_INDEX} is not a JSON object with a weight_map") from None
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{WEIGHTS_INDEX}: weight_map must be an object of tensor name -> shard file")
        for name in weight_map.values():
            _shard_path(directory, name)
        files = sorted(set(weight_map.values()))
        missing = [n for n in files if not os.path.isfile(os.path.join(directory, n))]
        if missing:
            raise CheckpointError(f"{index}: shard(s) {', '.join(missing)} are missing")
        return [os.path.join(directory, n) for n in files]
    single = os.path.join(directory, WEIGHTS_FILE)
    if os.path.isfile(single):
        return [single]
    raise CheckpointError(f"{directory}: neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX} found")


def load_state(directory: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        try:
            tensors = safetensors_files.load(path)
        except safetensors_files.SafetensorsError as e:
            raise CheckpointError(str(e)) from None
        for name, tensor in tensors.items():
            state[canonical_name(name)] = tensor
    return state


def load_model(directory: str, config: LlavaConfig | None = None, dtype: torch.dtype = torch.float32) -> PsaLlava:
    """Builds the model from config.json and fills it; safety modules absent from the checkpoint
    keep their fresh initialisation (a plain LLaVA base before stage 1)."""
    cfg = config or read_config(directory)
    model = PsaLlava(cfg)
    state = load_state(directory)
    expected = model.state_dict()
    tied = model.language_model.lm_head.weight is model.language_model.model.embed_tokens.weight
    for name, tensor in state.items():
        if name not in expected:
            # BatchNorm step counters (nn.BatchNorm2d saves them) mean nothing to a frozen tower.
            if (tied and name == "language_model.lm_head.weight") or name.endswith(".num_batches_tracked"):
                continue
            raise CheckpointError(
                f"{directory}: unexpected tensor {name!r} (not part of a LLaVA-1.5 model with this config.json)"
            )
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{directory}: tensor {name!r} has shape {list(tensor.shape)}, config.json "
                f"implies {list(expected[name].shape)}"
            )
    missing = [
        n
        for n in expected
        if n not in state and not n.startswith("psa.") and not (tied and n == "language_model.lm_head.weight")
    ]
    if missing:
        raise CheckpointError(
            f"{directory}: missing tensor {missing[0]!r}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    with torch.no_grad():
        for name, param in expected.items():
            if name in state:
                param.copy_(state[name].to(param.dtype))
    return model.to(dtype)

"""`python -m trainer export`: a checkpoint directory (ours, or a Hugging Face LLaVA one) -> package.

A plain LLaVA checkpoint has no safety modules: they are added, seeded, with the given token
counts (untrained until stage 1). The package records its base: source, config and the sha256 of
every weight file.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch

from ..io.hf_checkpoint import load_model, read_config, weight_files
from ..modeling.config import PsaConfig
from .package import image_processor, sha256_file, write_package


def _head_count(width: int) -> int:
    return next(h for h in (8, 4, 2, 1) if width % h == 0)


def read_image_processor(checkpoint: str) -> dict[str, Any] | None:
    """The checkpoint's image processor: nested in processor_config.json (transformers 5) or a
    separate preprocessor_config.json (older saves)."""
    for name, nested in (("processor_config.json", True), ("preprocessor_config.json", False)):
        path = os.path.join(checkpoint, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            proc = data.get("image_processor") if nested else data
            if isinstance(proc, dict) and "image_mean" in proc:
                return {k: v for k, v in proc.items() if k != "processor_class"}
    return None


def export_checkpoint(
    checkpoint: str,
    out: str,
    name: str,
    tokens_a: int = 64,
    tokens_b: int = 64,
    seed: int = 0,
    extra_provenance: dict[str, Any] | None = None,
    external_data: str = "auto",
    fp16: bool = False,
) -> str:
    cfg = read_config(checkpoint)
    had_safety = cfg.psa is not None
    if not had_safety:
        cfg.psa = PsaConfig(
            num_tokens_a=tokens_a, num_tokens_b=tokens_b, head_num_heads=_head_count(cfg.text_config.hidden_size)
        )
    torch.manual_seed(seed)  # fresh safety modules are the same on every run
    model = load_model(checkpoint, config=cfg).eval()
    with open(os.path.join(checkpoint, "config.json"), "rb") as f:
        config_sha = hashlib.sha256(f.read()).hexdigest()
    provenance = {
        "status": "exported" if had_safety else "base",
        # The checkpoint's own name, not a path of the machine that exported it (the weights'
        # hashes below identify it).
        "source": os.path.basename(os.path.normpath(checkpoint)),
        "base": {
            "config_sha256": config_sha,
            "weights": {os.path.basename(p): sha256_file(p) for p in weight_files(checkpoint)},
            "safety_modules": "from checkpoint" if had_safety else f"initialised (seed {seed}), untrained",
        },
        **(extra_provenance or {}),
    }
    preprocessor = read_image_processor(checkpoint) or image_processor(cfg.vision_config.image_size)
    return write_package(
        model,
        checkpoint,
        out,
        name=name,
        provenance=provenance,
        preprocessor=preprocessor,
        external_data=external_data,
        fp16=fp16,
    )

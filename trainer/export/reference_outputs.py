"""PyTorch outputs for parity checks against the Node runtime.

Request: {"cases": [{"pixel_values": base64 f32 [3*H*W], "input_ids": [...], "query_ids": [...],
"max_new_tokens": n}]}. The caller passes its own preprocessed pixels and token ids, so the
comparison isolates the model graphs from preprocessing and tokenisation.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch

from ..io.hf_checkpoint import load_model


def _f32(b64: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(b64), dtype="<f4").copy())


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.detach().float().contiguous().numpy().astype("<f4").tobytes()).decode()


@torch.no_grad()
def run_reference(package_dir: str, request: dict[str, Any]) -> dict[str, Any]:
    model = load_model(package_dir).eval()
    size = model.config.vision_config.image_size
    out = []
    for case in request["cases"]:
        pixels = _f32(case["pixel_values"]).reshape(1, 3, size, size)
        vision = model.vision_features(pixels)
        query_ids = torch.tensor([case["query_ids"]], dtype=torch.long)
        mask = torch.ones_like(query_ids)
        level, kind = model.safety_logits(vision, model.query_embeds(query_ids, mask), mask)
        embeds = model.merge_image_features(torch.tensor([case["input_ids"]]), model.image_features(vision))
        eos = model.config.text_config.eos_token_id
        tokens, logits = model.greedy(embeds, int(case.get("max_new_tokens", 20)), eos_token_id=eos)
        if tokens and tokens[-1] == eos:
            tokens.pop()  # the runtime reports the end of generation, not the EOS token
        out.append(
            {
                "level_probs": torch.softmax(level[0], -1).tolist(),
                "type_probs": torch.softmax(kind[0], -1).tolist(),
                "last_logits": _b64(logits[0, -1]),
                "greedy_tokens": tokens,
            }
        )
    return {"cases": out}

"""`python -m trainer bench-train`: training throughput of the two stages on random weights.

Measures tokens/s, model FLOP utilisation and peak memory of the trainer's own step (the loss,
backward and AdamW of trainer/train/loop.py) at a given model shape, batch and sequence. `7b` is
LLaVA-1.5-7B (CLIP ViT-L/14-336, Llama-2-7B widths); smaller shapes exist for CPU runs.
Sequences are `image` rows + `text` tokens (safety tokens B off, so the LLM sees exactly that many
positions); every text token is a label. Prints one JSON object per stage.

Model FLOPs per step (the usual accounting, attention included): forward 2·P·T for the P
parameters of linear layers each token passes, backward 2·P·T more for activation gradients
(the base is frozen) plus 2·P_trainable·T for weight gradients, and the LM head only on label
positions. The vision tower runs forward only. MFU divides by a bf16 (or fp32 on CPU) matmul
peak measured on the same device.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import time
from dataclasses import dataclass
from typing import Any

import torch

from ..modeling.config import LlavaConfig, PsaConfig, TextConfig, VisionConfig
from ..modeling.llava import PsaLlava, init_weights
from .data import Batch
from .loop import Objective
from .lora import apply_lora

SHAPES = {
    "7b": lambda: LlavaConfig(
        vision_config=VisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
        ),
        text_config=TextConfig(
            vocab_size=32064,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            pad_token_id=0,
        ),
        image_token_index=32000,
        psa=PsaConfig(num_tokens_a=64, num_tokens_b=0, head_num_heads=8),
    ),
    "1b": lambda: LlavaConfig(
        vision_config=VisionConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=336,
            patch_size=14,
            projection_dim=512,
        ),
        text_config=TextConfig(
            vocab_size=32064,
            hidden_size=2048,
            intermediate_size=5632,
            num_hidden_layers=16,
            num_attention_heads=16,
            num_key_value_heads=16,
            max_position_embeddings=4096,
            pad_token_id=0,
        ),
        image_token_index=32000,
        psa=PsaConfig(num_tokens_a=64, num_tokens_b=0, head_num_heads=8),
    ),
    "small": lambda: LlavaConfig(
        vision_config=VisionConfig(
            hidden_size=384,
            intermediate_size=1536,
            num_hidden_layers=6,
            num_attention_heads=6,
            image_size=336,
            patch_size=14,
            projection_dim=256,
        ),
        text_config=TextConfig(
            vocab_size=32064,
            hidden_size=512,
            intermediate_size=1408,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=8,
            max_position_embeddings=2048,
            pad_token_id=0,
        ),
        image_token_index=32000,
        psa=PsaConfig(num_tokens_a=16, num_tokens_b=0, head_num_heads=8),
    ),
}


@dataclass
class BenchSpec:
    shape: str = "small"
    batch: int = 8
    text_tokens: int = 96
    steps: int = 5
    warmup: int = 2
    lora_r: int = 256
    lora_alpha: float = 16.0
    activation_checkpointing: bool = False
    device: str = "auto"


def _linear_params(module: torch.nn.Module) -> int:
    """Weights of linear layers (LoRA-wrapped ones count their base weight and both adapters)."""
    from .lora import LoraLinear

    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (torch.nn.Linear, LoraLinear)))


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a large square matmul, the best of a few runs."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for _ in range(5 if device.type == "cuda" else 3):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(10 if device.type == "cuda" else 2):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / (10 if device.type == "cuda" else 2))
    return 2 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fake_batch(cfg: LlavaConfig, spec: BenchSpec, image_rows: int, device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(0)
    vc, tc = cfg.vision_config, cfg.text_config
    b, t = spec.batch, spec.text_tokens
    text = torch.randint(5, min(tc.vocab_size, 30000), (b, t), generator=g)
    ids = torch.cat([torch.full((b, image_rows), cfg.image_token_index), text], dim=1)
    labels = torch.cat([torch.full((b, image_rows), -100), text], dim=1)
    return Batch(
        pixels=torch.randn(b, vc.num_channels, vc.image_size, vc.image_size, generator=g),
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        labels=labels,
        query_ids=text[:, :32].contiguous(),
        query_mask=torch.ones(b, min(32, t), dtype=torch.long),
        safe_level=torch.randint(0, 4, (b,), generator=g),
        safe_type=torch.randint(0, 7, (b,), generator=g),
    ).to(device)


def step_flops(model: PsaLlava, trainable: int, spec: BenchSpec, image_rows: int) -> float:
    cfg = model.config
    tc = cfg.text_config
    seq = image_rows + spec.text_tokens
    tokens = spec.batch * seq
    lm = model.language_model
    decoder_linear = _linear_params(lm.model)
    head = lm.lm_head.weight.numel()
    attn = 4 * tc.num_hidden_layers * seq * tc.hidden_size  # QK^T and AV, per token, forward
    forward = (2 * decoder_linear + attn) * tokens + 2 * head * spec.batch * spec.text_tokens
    backward = forward + 2 * trainable * tokens
    vision = 2 * _linear_params(model.vision_tower) * spec.batch * (cfg.vision_config.num_patches + 1)
    return forward + backward + vision


def run_stage(stage: str, spec: BenchSpec) -> dict[str, Any]:
    device = torch.device(
        "cuda"
        if spec.device == "auto" and torch.cuda.is_available()
        else ("cpu" if spec.device == "auto" else spec.device)
    )
    cuda = device.type == "cuda"
    cfg = SHAPES[spec.shape]()
    torch.manual_seed(0)
    model = PsaLlava(cfg)
    init_weights(model, std=0.02, seed=0)
    if cuda:
        model.to(torch.bfloat16)  # the frozen base in bf16; autocast runs the step in bf16
    model.to(device)
    model.language_model.gradient_checkpointing = spec.activation_checkpointing
    lora = set(apply_lora(model, spec.lora_r, spec.lora_alpha, 0.0, seed=1)) if stage == "stage2" else set()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("psa.") or name in lora)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()  # trainable parameters and their optimizer state in fp32
    trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=1e-5)
    objective = Objective(model)
    image_rows = model.image_token_count
    batch = fake_batch(cfg, spec, image_rows, device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    model.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(spec.warmup + spec.steps):
        _sync(device)
        t0 = time.perf_counter()
        with autocast():
            terms = objective(batch)
        loss = terms["lm_sum"] / terms["tokens"].clamp(min=1) + 10.0 * terms["concept_sum"] / spec.batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _sync(device)
        if i >= spec.warmup:
            times.append(time.perf_counter() - t0)
    step_s = sorted(times)[len(times) // 2]
    tokens = spec.batch * (image_rows + spec.text_tokens)
    flops = step_flops(model, trainable, spec, image_rows)
    peak = matmul_peak(device, torch.bfloat16 if cuda else torch.float32)
    memory = (
        torch.cuda.max_memory_allocated(device) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "stage": stage,
        "shape": spec.shape,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": torch.get_num_threads(),
        "dtype": "bf16 autocast" if cuda else "fp32",
        "batch": spec.batch,
        "sequence": image_rows + spec.text_tokens,
        "image_rows": image_rows,
        "activation_checkpointing": spec.activation_checkpointing,
        "trainable_params": trainable,
        "step_s": step_s,
        "tokens_per_s": tokens / step_s,
        "model_tflop_per_step": flops / 1e12,
        "achieved_tflops": flops / step_s / 1e12,
        "matmul_peak_tflops": peak / 1e12,
        "mfu": flops / step_s / peak,
        "peak_memory_gib": memory / 2**30,
        "memory_kind": "torch.cuda.max_memory_allocated" if cuda else "process max RSS",
        "loss": float(loss),
    }


def bench_cli(spec: BenchSpec, stages: list[str]) -> int:
    for stage in stages:
        print(json.dumps(run_stage(stage, spec)), flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return 0

"""LoRA for the decoder's linear layers (Debian has no peft): y = W x + b + (alpha/r) B(A(dropout(x))).

LoraLinear holds the *same* weight and bias Parameters as the nn.Linear it replaces, so the model's
state-dict names stay `...q_proj.weight` and only `...q_proj.lora_A.weight` / `lora_B.weight` are
added. `merge_lora` folds B A into W and puts plain nn.Linear modules back, so a merged model
saves with transformers' names and nothing else.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraLinear(nn.Module):
    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float, generator: torch.Generator):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.register_parameter("bias", base.bias)
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scale = alpha / r
        with torch.no_grad():
            # kaiming_uniform(a=sqrt(5)) as nn.Linear and peft do; bound = 1/sqrt(fan_in). Drawn from
            # our own generator because init functions take none in torch 1.13. B = 0: no change at start.
            bound = 1.0 / math.sqrt(base.in_features)
            a = torch.rand(self.lora_A.weight.shape, generator=generator) * 2 * bound - bound
            self.lora_A.weight.copy_(a.to(self.lora_A.weight.dtype))
            self.lora_B.weight.zero_()
        self.lora_A.to(base.weight.device)
        self.lora_B.to(base.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.lora_B(self.lora_A(self.dropout(x))) * self.scale

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with W + scale * B A, sharing this module's weight and bias Parameters."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        with torch.no_grad():
            delta = (self.lora_B.weight.float() @ self.lora_A.weight.float()) * self.scale
            self.weight.add_(delta.to(self.weight.dtype))
        lin.weight = self.weight
        lin.bias = self.bias
        return lin


def _targets(model: nn.Module):
    """(parent module, attribute) of every target linear in the language model's decoder layers."""
    for layer in model.language_model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name in TARGETS:
                if isinstance(getattr(parent, name, None), (nn.Linear, LoraLinear)):
                    yield parent, name


def apply_lora(model: nn.Module, r: int, alpha: float, dropout: float, seed: int) -> list[str]:
    """Replaces target linears with LoraLinear (idempotent); returns the new parameter names."""
    gen = torch.Generator().manual_seed(seed)
    for parent, name in _targets(model):
        module = getattr(parent, name)
        if isinstance(module, nn.Linear):
            setattr(parent, name, LoraLinear(module, r, alpha, dropout, gen))
    return [n for n, _ in model.named_parameters() if ".lora_" in n]


def merge_lora(model: nn.Module) -> int:
    """Folds every LoRA delta into its base weight; returns how many layers were merged."""
    count = 0
    for parent, name in _targets(model):
        module = getattr(parent, name)
        if isinstance(module, LoraLinear):
            setattr(parent, name, module.merged())
            count += 1
    return count

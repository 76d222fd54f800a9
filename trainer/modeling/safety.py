"""PSA-VLM safety modules: safety projector, safety token sets A and B, cross-attention head.

The head's keys/values are [tokens A ; safety-projected vision features]; its queries are the
prompt's token embeddings, so the prompt text counts as well as the image. A query of a single
BOS token reproduces the image-only head of the paper. With psa_config.query_encoder the query is
instead a BERT encoder's token states (`query_encoder.*`, BertModel names) through a trained
linear layer to the head width (`query_proj`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .bert import BertModel
from .clip import attention
from .config import PsaConfig


class ConvProjector(nn.Module):
    """Linear -> GELU -> depthwise 3x3 conv (residual, keeps spatial locality) -> linear."""

    def __init__(self, vision_dim: int, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, dim)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, n, _ = feats.shape
        side = math.isqrt(n)
        x = F.gelu(self.fc1(feats))
        if side * side == n:  # a full patch grid; with a CLS row ("full" strategy) skip the conv
            grid = x.transpose(1, 2).reshape(b, -1, side, side)
            x = x + self.conv(grid).flatten(2).transpose(1, 2)
        return self.fc2(x)


class SafetyHead(nn.Module):
    def __init__(self, dim: int, cfg: PsaConfig):
        super().__init__()
        self.num_heads = cfg.head_num_heads
        self.query_norm = nn.LayerNorm(dim)
        self.kv_norm = nn.LayerNorm(dim)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)
        self.out_norm = nn.LayerNorm(dim)
        self.level_head = nn.Linear(dim, cfg.num_levels)
        self.type_head = nn.Linear(dim, cfg.num_types)

    def forward(self, kv: torch.Tensor, query: torch.Tensor, query_mask: torch.Tensor):
        b, lq, d = query.shape
        hd = d // self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.num_heads, hd).transpose(1, 2)

        q_in = self.query_norm(query)
        kv = self.kv_norm(kv)
        out = attention(heads(self.q_proj(q_in)), heads(self.k_proj(kv)), heads(self.v_proj(kv)), None)
        x = q_in + self.o_proj(out.transpose(1, 2).reshape(b, lq, d))
        m = query_mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        pooled = self.out_norm(pooled)
        return self.level_head(pooled), self.type_head(pooled)


class SafetyModules(nn.Module):
    def __init__(self, vision_dim: int, dim: int, cfg: PsaConfig):
        super().__init__()
        if dim % cfg.head_num_heads:
            raise ValueError(f"psa_config.head_num_heads {cfg.head_num_heads} must divide the LLM width {dim}")
        self.config = cfg
        self.projector = ConvProjector(vision_dim, dim)
        self.tokens_a = nn.Parameter(torch.randn(cfg.num_tokens_a, dim) * 0.02)
        self.tokens_b = nn.Parameter(torch.randn(cfg.num_tokens_b, dim) * 0.02)
        self.head = SafetyHead(dim, cfg)
        enc = cfg.query_encoder
        self.query_encoder = BertModel(enc) if enc is not None else None
        self.query_proj = nn.Linear(enc.hidden_size, dim) if enc is not None else None

    def encode_query(self, query_ids: torch.Tensor, query_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's last hidden states and their projection to the head width."""
        states = self.query_encoder(query_ids, query_mask)
        return states, self.query_proj(states)

    def classify(self, vision_features, query_embeds, query_mask):
        """Level and type logits from pre-projector vision features and the masked prompt query."""
        projected = self.projector(vision_features)
        tokens = self.tokens_a.unsqueeze(0).expand(projected.shape[0], -1, -1).to(projected.dtype)
        return self.head(torch.cat([tokens, projected], dim=1), query_embeds, query_mask)

    def prepend_tokens_b(self, image_features: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens_b.unsqueeze(0).expand(image_features.shape[0], -1, -1).to(image_features.dtype)
        return torch.cat([tokens, image_features], dim=1)

"""Llama decoder (RoPE, RMSNorm, SwiGLU, grouped-query attention) with transformers' names.

`forward` takes embeddings, not ids, because LLaVA merges image features into the sequence
before the decoder. The KV cache is a list of (key, value) per layer, [batch, kv_heads, seq, dim].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from .clip import attention
from .config import TextConfig

KvCache = list[tuple[torch.Tensor, torch.Tensor]]


class RmsNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Rotary(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        dim = cfg.head_dim
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids.float().unsqueeze(-1) * self.inv_freq.float()
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


class LlamaAttention(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.head_dim
        d, hd = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(d, self.num_heads * hd, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(d, self.num_kv_heads * hd, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(d, self.num_kv_heads * hd, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.num_heads * hd, d, bias=cfg.attention_bias)

    def forward(self, x, cos, sin, mask, past: tuple[torch.Tensor, torch.Tensor] | None):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        groups = self.num_heads // self.num_kv_heads
        if groups > 1:
            k, v = repeat_kv(k, groups), repeat_kv(v, groups)
        out = attention(q, k, v, mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1)), present


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, h, s, d = x.shape
    return x[:, :, None, :, :].expand(b, h, groups, s, d).reshape(b, h * groups, s, d)


class LlamaMlp(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.self_attn = LlamaAttention(cfg)
        self.mlp = LlamaMlp(cfg)
        self.input_layernorm = RmsNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RmsNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask, past):
        h, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), present


class LlamaModel(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RmsNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.rotary_emb = Rotary(cfg)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.gradient_checkpointing = False  # set by the trainer (activation checkpointing)

    def hidden_states(self, inputs_embeds, attention_mask, position_ids, past: KvCache | None = None):
        """Final normed hidden states and the new cache (past + this step)."""
        mask = causal_mask(attention_mask, inputs_embeds.shape[1], inputs_embeds.dtype)
        cos, sin = self.model.rotary_emb(position_ids, inputs_embeds.dtype)
        x, presents = inputs_embeds, []
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled() and past is None
        for i, layer in enumerate(self.model.layers):
            if recompute:  # activation checkpointing: keep layer inputs only, recompute in backward
                x, present = checkpoint(layer, x, cos, sin, mask, None, use_reentrant=False)
            else:
                x, present = layer(x, cos, sin, mask, None if past is None else past[i])
            presents.append(present)
        return self.model.norm(x), presents

    def forward(self, inputs_embeds, attention_mask, position_ids, past: KvCache | None = None):
        h, presents = self.hidden_states(inputs_embeds, attention_mask, position_ids, past)
        return self.lm_head(h), presents


def causal_mask(attention_mask: torch.Tensor, q_len: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [batch, 1, q_len, kv_len]: causal and hiding padded keys.

    attention_mask covers past and current positions, so the queries are its last q_len columns.
    """
    kv_len = attention_mask.shape[1]
    q_pos = torch.arange(q_len, device=attention_mask.device).unsqueeze(1) + (kv_len - q_len)
    k_pos = torch.arange(kv_len, device=attention_mask.device).unsqueeze(0)
    # A query always sees itself, so a padded query never has an all-masked row (NaN in softmax).
    allowed = (k_pos <= q_pos).unsqueeze(0) & (attention_mask.bool().unsqueeze(1) | (k_pos == q_pos).unsqueeze(0))
    neg = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=attention_mask.device)
    zero = torch.zeros((), dtype=dtype, device=attention_mask.device)
    return torch.where(allowed, zero, neg).unsqueeze(1)

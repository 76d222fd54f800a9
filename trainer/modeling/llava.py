"""LLaVA-1.5 (transformers' LlavaForConditionalGeneration layout) with PSA safety modules.

State-dict names: vision_tower.*, multi_modal_projector.linear_{1,2}.*, language_model.model.*,
language_model.lm_head.weight (as transformers 5 saves them), safety modules under psa.*.
The vision tower is CLIP ViT, or nsfwjs's MobileNetV2 (vision_config.model_type
"nsfwjs_mobilenet_v2"): pretrained, frozen, its 7x7 `out_relu` map as 49 rows of 1280.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .clip import ClipVisionTower
from .config import LlavaConfig, MobileNetConfig
from .llama import KvCache, LlamaForCausalLM, RmsNorm
from .mobilenet import NsfwMobileNetV2
from .safety import SafetyModules


class MultiModalProjector(nn.Module):
    def __init__(self, cfg: LlavaConfig):
        super().__init__()
        vd, td, bias = cfg.vision_config.hidden_size, cfg.text_config.hidden_size, cfg.multimodal_projector_bias
        self.linear_1 = nn.Linear(vd, td, bias=bias)
        self.linear_2 = nn.Linear(td, td, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x)))


class PsaLlava(nn.Module):
    def __init__(self, cfg: LlavaConfig):
        super().__init__()
        self.config = cfg
        if isinstance(cfg.vision_config, MobileNetConfig):
            # Frozen by design: eval mode for good (its train() keeps BatchNorm in eval), no gradients.
            self.vision_tower = NsfwMobileNetV2(cfg.vision_config).requires_grad_(False)
        else:
            self.vision_tower = ClipVisionTower(cfg.vision_config)
        self.multi_modal_projector = MultiModalProjector(cfg)
        self.language_model = LlamaForCausalLM(cfg.text_config)
        self.psa = (
            SafetyModules(cfg.vision_config.hidden_size, cfg.text_config.hidden_size, cfg.psa)
            if cfg.psa is not None
            else None
        )
        if cfg.tie_word_embeddings or cfg.text_config.tie_word_embeddings:
            self.language_model.lm_head.weight = self.language_model.model.embed_tokens.weight

    # --- vision side -------------------------------------------------------------------------
    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Features of vision_feature_layer, CLS dropped for the 'default' strategy: [B, N, Dv].
        A MobileNetV2 tower gives its last feature map as grid rows (y * 7 + x): [B, 49, 1280]."""
        if isinstance(self.vision_tower, NsfwMobileNetV2):
            return self.vision_tower.feature_rows(pixel_values)
        h = self.vision_tower(pixel_values, self.config.vision_feature_layer)
        return h[:, 1:] if self.config.vision_feature_select_strategy == "default" else h

    def image_features(self, vision_features: torch.Tensor) -> torch.Tensor:
        """What the LLM sees for one image: [tokens B ; projected features], [B, nB + N, D]."""
        projected = self.multi_modal_projector(vision_features)
        return self.psa.prepend_tokens_b(projected) if self.psa is not None else projected

    @property
    def image_token_count(self) -> int:
        extra = self.config.psa.num_tokens_b if self.config.psa is not None else 0
        return self.config.num_image_features + extra

    def safety_logits(self, vision_features, query_embeds, query_mask):
        if self.psa is None:
            raise ValueError("this model has no safety modules (psa_config is missing)")
        return self.psa.classify(vision_features, query_embeds, query_mask)

    def query_embeds(self, query_ids: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        """The safety head's query: the query encoder's projected states when the model has one,
        else the LLM's token embeddings of the query ids."""
        if self.psa is not None and self.psa.query_encoder is not None:
            return self.psa.encode_query(query_ids, query_mask)[1]
        return self.embed(query_ids)

    # --- language side -----------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.model.embed_tokens(input_ids)

    def merge_image_features(self, input_ids: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        """Token embeddings with each image-token position replaced by the next image feature row."""
        embeds = self.embed(input_ids)
        positions = input_ids == self.config.image_token_index
        rows = image_features.reshape(-1, image_features.shape[-1]).to(embeds.dtype)
        if int(positions.sum()) != rows.shape[0]:
            raise ValueError(
                f"the prompt has {int(positions.sum())} image tokens but the images give {rows.shape[0]} feature rows"
            )
        return embeds.masked_scatter(positions.unsqueeze(-1), rows)

    def decode(self, inputs_embeds, attention_mask, position_ids, past: KvCache | None = None):
        return self.language_model(inputs_embeds, attention_mask, position_ids, past)

    @torch.no_grad()
    def greedy(self, inputs_embeds: torch.Tensor, max_new_tokens: int, eos_token_id: int | None = None):
        """Greedy tokens for one sequence, with the KV cache; also the prompt's logits."""
        b, s, _ = inputs_embeds.shape
        mask = torch.ones(b, s, dtype=torch.long)
        logits, past = self.decode(inputs_embeds, mask, torch.arange(s).unsqueeze(0).expand(b, -1))
        prompt_logits, tokens = logits, []
        for _ in range(max_new_tokens):
            nxt = int(logits[0, -1].argmax())
            tokens.append(nxt)
            if eos_token_id is not None and nxt == eos_token_id:
                break
            pos = mask.shape[1]
            mask = torch.ones(b, pos + 1, dtype=torch.long)
            step = self.embed(torch.tensor([[nxt]]))
            logits, past = self.decode(step, mask, torch.tensor([[pos]]), past)
        return tokens, prompt_logits


def init_weights(model: nn.Module, std: float, seed: int) -> None:
    """Seeded random weights; norms start at identity. A large std makes tiny models input-sensitive."""
    gen = torch.Generator().manual_seed(seed)
    norms = {id(p) for m in model.modules() if isinstance(m, (nn.LayerNorm, RmsNorm)) for p in m.parameters()}
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if id(p) in norms:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * std)

"""Model configuration in Hugging Face's LlavaConfig layout, plus the PSA safety settings.

The dict form is exactly what goes into a package's config.json, so a checkpoint directory written
by transformers and a package written by this trainer describe the model the same way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

NUM_LEVELS = 4
NUM_TYPES = 7


class ConfigError(ValueError):
    """A configuration value that the model cannot use; the message names the setting."""


@dataclass
class VisionConfig:
    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    image_size: int = 336
    patch_size: int = 14
    num_channels: int = 3
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"
    projection_dim: int = 768
    model_type: str = "clip_vision_model"

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass
class TextConfig:
    vocab_size: int = 32064
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    head_dim: Optional[int] = None
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 4096
    hidden_act: str = "silu"
    attention_bias: bool = False
    mlp_bias: bool = False
    tie_word_embeddings: bool = False
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: Optional[int] = None
    model_type: str = "llama"

    def __post_init__(self) -> None:
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"text_config.num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})")


@dataclass
class PsaConfig:
    """Safety modules. `projector` 'conv' keeps spatial locality (a C-Abstractor stand-in)."""
    num_tokens_a: int = 64
    num_tokens_b: int = 64
    head_num_heads: int = 8
    projector: str = "conv"
    num_levels: int = NUM_LEVELS
    num_types: int = NUM_TYPES


@dataclass
class LlavaConfig:
    vision_config: VisionConfig = field(default_factory=VisionConfig)
    text_config: TextConfig = field(default_factory=TextConfig)
    image_token_index: int = 32000
    projector_hidden_act: str = "gelu"
    multimodal_projector_bias: bool = True
    vision_feature_layer: int = -2
    vision_feature_select_strategy: str = "default"
    tie_word_embeddings: bool = False
    psa: Optional[PsaConfig] = None

    @property
    def num_image_features(self) -> int:
        """Rows of projected image features per image, before safety tokens B."""
        n = self.vision_config.num_patches
        return n if self.vision_feature_select_strategy == "default" else n + 1

    def to_dict(self) -> dict[str, Any]:
        d = {
            "architectures": ["LlavaForConditionalGeneration"],
            "model_type": "llava",
            "image_token_index": self.image_token_index,
            "image_seq_length": self.num_image_features,
            "projector_hidden_act": self.projector_hidden_act,
            "multimodal_projector_bias": self.multimodal_projector_bias,
            "vision_feature_layer": self.vision_feature_layer,
            "vision_feature_select_strategy": self.vision_feature_select_strategy,
            "tie_word_embeddings": self.tie_word_embeddings,
            "vision_config": asdict(self.vision_config),
            "text_config": asdict(self.text_config),
        }
        if self.psa is not None:
            d["psa_config"] = asdict(self.psa)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LlavaConfig":
        if d.get("model_type") not in (None, "llava"):
            raise ConfigError(f"config.json model_type is {d.get('model_type')!r}; expected 'llava'")
        text = dict(d.get("text_config") or {})
        rope = text.pop("rope_parameters", None) or text.pop("rope_scaling", None)
        if isinstance(rope, dict) and "rope_theta" in rope and "rope_theta" not in text:
            if rope.get("rope_type", "default") != "default":
                raise ConfigError(f"text_config rope_type {rope.get('rope_type')!r} is not supported (only 'default')")
            text["rope_theta"] = rope["rope_theta"]
        if text.get("model_type", "llama") != "llama":
            raise ConfigError(f"text_config.model_type {text.get('model_type')!r} is not supported (only 'llama')")
        vision = dict(d.get("vision_config") or {})
        if vision.get("hidden_act", "quick_gelu") not in ("quick_gelu", "gelu"):
            raise ConfigError(f"vision_config.hidden_act {vision.get('hidden_act')!r} is not supported")
        strategy = d.get("vision_feature_select_strategy", "default")
        if strategy not in ("default", "full"):
            raise ConfigError(f"vision_feature_select_strategy {strategy!r} is not supported ('default' or 'full')")
        layer = d.get("vision_feature_layer", -2)
        if not isinstance(layer, int):
            raise ConfigError("vision_feature_layer must be a single integer layer index")
        psa = d.get("psa_config")
        return cls(
            vision_config=_pick(VisionConfig, vision),
            text_config=_pick(TextConfig, text),
            image_token_index=d.get("image_token_index", d.get("image_token_id", 32000)),
            projector_hidden_act=d.get("projector_hidden_act", "gelu"),
            multimodal_projector_bias=d.get("multimodal_projector_bias", True),
            vision_feature_layer=layer,
            vision_feature_select_strategy=strategy,
            tie_word_embeddings=bool(d.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
            psa=_pick(PsaConfig, psa) if psa is not None else None,
        )


def _pick(kind, values: dict[str, Any]):
    """Builds a dataclass from the keys it knows; transformers writes many others we ignore."""
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in values.items() if k in names})


def tiny_config(vocab_size: int) -> LlavaConfig:
    """A few-MB model for tests: GQA on, two safety tokens of each kind, 56 px images."""
    return LlavaConfig(
        vision_config=VisionConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                                   num_attention_heads=4, image_size=56, patch_size=14, projection_dim=32),
        text_config=TextConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=160,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=512, pad_token_id=4),
        image_token_index=3,
        psa=PsaConfig(num_tokens_a=4, num_tokens_b=4, head_num_heads=4),
    )


def small_config(vocab_size: int) -> LlavaConfig:
    """Tens of MB with realistic proportions (224 px, 256 patches), for benchmarks."""
    return LlavaConfig(
        vision_config=VisionConfig(hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                                   num_attention_heads=6, image_size=224, patch_size=14, projection_dim=256),
        text_config=TextConfig(vocab_size=vocab_size, hidden_size=512, intermediate_size=1408,
                               num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4,
                               max_position_embeddings=2048, pad_token_id=4),
        image_token_index=3,
        psa=PsaConfig(num_tokens_a=16, num_tokens_b=16, head_num_heads=8),
    )


def default_config(vocab_size: int) -> LlavaConfig:
    """The embedded default model: small enough to train on a CPU in minutes (224 px, 196 patches)."""
    return LlavaConfig(
        vision_config=VisionConfig(hidden_size=192, intermediate_size=768, num_hidden_layers=4,
                                   num_attention_heads=4, image_size=224, patch_size=16, projection_dim=192),
        text_config=TextConfig(vocab_size=vocab_size, hidden_size=256, intermediate_size=688,
                               num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=1024, pad_token_id=4),
        image_token_index=3,
        psa=PsaConfig(num_tokens_a=8, num_tokens_b=8, head_num_heads=4),
    )

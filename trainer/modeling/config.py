"""Model configuration in Hugging Face's LlavaConfig layout, plus the PSA safety settings.

The dict form is exactly what goes into a package's config.json, so a checkpoint directory written
by transformers and a package written by this trainer describe the model the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

NUM_LEVELS = 4
NUM_TYPES = 7
CLIP_VISION_TYPE = "clip_vision_model"
MOBILENET_VISION_TYPE = "nsfwjs_mobilenet_v2"
NSFW_CLASSES = ("Drawing", "Hentai", "Neutral", "Porn", "Sexy")


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
class MobileNetConfig:
    """nsfwjs's MobileNetV2 (trainer/modeling/mobilenet.py): the converter's config.json, and the
    vision_config of a LLaVA model whose tower it is. Grid, row count and widths are derived."""

    image_size: int = 224
    num_channels: int = 3
    stem_channels: int = 32
    last_channels: int = 1280
    head_hidden_sizes: list[int] = field(default_factory=lambda: [256, 128])
    class_names: list[str] = field(default_factory=lambda: list(NSFW_CLASSES))
    batch_norm_eps: float = 1e-3
    rescale_factor: float = 1 / 255
    resample: str = "bilinear_align_corners"
    model_type: str = MOBILENET_VISION_TYPE

    def __post_init__(self) -> None:
        if self.image_size != 224:
            # The head's 7x7 average pool is "valid": any other size changes the dense layer's input.
            raise ConfigError(f"image_size {self.image_size} is not supported: nsfwjs's head needs 224")

    @property
    def grid_size(self) -> int:
        return self.image_size // 32

    @property
    def patch_size(self) -> int:
        """Input pixels per grid cell along each axis (the network's total stride)."""
        return self.image_size // self.grid_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def hidden_size(self) -> int:
        """Channels of one feature row."""
        return self.last_channels

    def image_processor(self) -> dict[str, Any]:
        """A package's preprocessor_config.json for this tower (CLIPImageProcessor keys): stretch to
        image_size square without keeping the aspect ratio or cropping, bilinear, rescale to [0, 1],
        no normalisation (neutral mean and std, kept for readers that expect the keys)."""
        square = {"height": self.image_size, "width": self.image_size}
        return {
            "image_processor_type": "CLIPImageProcessor",
            "do_resize": True,
            "size": dict(square),
            "resample": 2,
            "do_center_crop": False,
            "crop_size": dict(square),
            "do_rescale": True,
            "rescale_factor": self.rescale_factor,
            "do_normalize": False,
            "image_mean": [0.0, 0.0, 0.0],
            "image_std": [1.0, 1.0, 1.0],
            "do_convert_rgb": True,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "grid_size": self.grid_size,
            "patch_size": self.patch_size,
            "num_patches": self.num_patches,
            "hidden_size": self.hidden_size,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MobileNetConfig:
        if d.get("model_type") != MOBILENET_VISION_TYPE:
            raise ConfigError(f"config model_type is {d.get('model_type')!r}; expected {MOBILENET_VISION_TYPE!r}")
        derived = {"grid_size": cls().grid_size, "patch_size": cls().patch_size, "num_patches": cls().num_patches}
        for key, want in derived.items():
            if key in d and d[key] != want:
                raise ConfigError(f"{key} is {d[key]!r}; this MobileNetV2 gives {want} at 224 px")
        if "hidden_size" in d and d["hidden_size"] != d.get("last_channels", cls.last_channels):
            raise ConfigError(
                f"hidden_size {d['hidden_size']!r} must equal last_channels "
                f"{d.get('last_channels', cls.last_channels)!r}"
            )
        return _pick(cls, d)


AnyVisionConfig = VisionConfig | MobileNetConfig


@dataclass
class TextConfig:
    vocab_size: int = 32064
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    head_dim: int | None = None
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 4096
    hidden_act: str = "silu"
    attention_bias: bool = False
    mlp_bias: bool = False
    tie_word_embeddings: bool = False
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int | None = None
    model_type: str = "llama"

    def __post_init__(self) -> None:
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"text_config.num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )


BERT_TYPE = "bert"
QUERY_STORAGE = ("float32", "float16")


@dataclass
class QueryEncoderConfig:
    """psa_config.query_encoder: a BERT encoder (transformers' BertConfig keys) whose token states,
    projected to the head width, are the safety head's query. `storage_dtype` is how the package
    stores its weights (safetensors and ONNX); float16 halves the files and the model computes in
    float32 on the float16 values, so PyTorch and ONNX see exactly the same weights."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    storage_dtype: str = "float32"
    model_type: str = BERT_TYPE

    def __post_init__(self) -> None:
        if self.model_type != BERT_TYPE:
            raise ConfigError(f"psa_config.query_encoder.model_type {self.model_type!r} is not supported (only 'bert')")
        if self.hidden_act != "gelu":
            raise ConfigError(f"psa_config.query_encoder.hidden_act {self.hidden_act!r} is not supported (only 'gelu')")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"psa_config.query_encoder.num_attention_heads {self.num_attention_heads} must divide "
                f"hidden_size {self.hidden_size}"
            )
        if self.storage_dtype not in QUERY_STORAGE:
            raise ConfigError(
                f"psa_config.query_encoder.storage_dtype {self.storage_dtype!r} must be one of "
                f"{', '.join(QUERY_STORAGE)}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QueryEncoderConfig:
        """From a BERT config.json too: transformers' other keys (dropout, architectures) are ignored."""
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(
                f"query encoder position_embedding_type {d['position_embedding_type']!r} is not "
                "supported (only 'absolute')"
            )
        return _pick(cls, d)


@dataclass
class PsaConfig:
    """Safety modules. `projector` 'conv' keeps spatial locality (a C-Abstractor stand-in)."""

    num_tokens_a: int = 64
    num_tokens_b: int = 64
    head_num_heads: int = 8
    projector: str = "conv"
    num_levels: int = NUM_LEVELS
    num_types: int = NUM_TYPES
    # Text read from the image (OCR) joins the safety head's query: "ocr" or None. The runtime
    # and the data preparation supply it; the modules themselves only see query tokens.
    query_image_text: str | None = None
    # A BERT encoder for the query in place of the LLM's token embeddings (None: the paper's query).
    query_encoder: QueryEncoderConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.query_encoder, dict):
            self.query_encoder = QueryEncoderConfig.from_dict(self.query_encoder)


@dataclass
class LlavaConfig:
    vision_config: AnyVisionConfig = field(default_factory=VisionConfig)
    text_config: TextConfig = field(default_factory=TextConfig)
    image_token_index: int = 32000
    projector_hidden_act: str = "gelu"
    multimodal_projector_bias: bool = True
    vision_feature_layer: int = -2
    vision_feature_select_strategy: str = "default"
    tie_word_embeddings: bool = False
    psa: PsaConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.vision_config, MobileNetConfig):
            check_mobilenet_selection(self.vision_feature_layer, self.vision_feature_select_strategy)

    @property
    def num_image_features(self) -> int:
        """Rows of projected image features per image, before safety tokens B."""
        n = self.vision_config.num_patches
        if isinstance(self.vision_config, MobileNetConfig):
            return n  # one row per grid cell; there is no CLS row
        return n if self.vision_feature_select_strategy == "default" else n + 1

    def to_dict(self) -> dict[str, Any]:
        vision = self.vision_config
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
            "vision_config": vision.to_dict() if isinstance(vision, MobileNetConfig) else asdict(vision),
            "text_config": asdict(self.text_config),
        }
        if self.psa is not None:
            d["psa_config"] = asdict(self.psa)
            if self.psa.query_encoder is None:
                del d["psa_config"]["query_encoder"]  # config.json as before for packages without one
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LlavaConfig:
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
        vision_type = vision.get("model_type", CLIP_VISION_TYPE)
        if vision_type == MOBILENET_VISION_TYPE:
            # No layer to pick and no CLS row to drop: absent keys mean the only valid choice.
            layer = d.get("vision_feature_layer", -1)
            strategy = d.get("vision_feature_select_strategy", "full")
            check_mobilenet_selection(layer, strategy)
            try:
                vision_config: AnyVisionConfig = MobileNetConfig.from_dict(vision)
            except ConfigError as e:
                raise ConfigError(f"vision_config: {e}") from None
        elif vision_type == CLIP_VISION_TYPE:
            if vision.get("hidden_act", "quick_gelu") not in ("quick_gelu", "gelu"):
                raise ConfigError(f"vision_config.hidden_act {vision.get('hidden_act')!r} is not supported")
            strategy = d.get("vision_feature_select_strategy", "default")
            if strategy not in ("default", "full"):
                raise ConfigError(f"vision_feature_select_strategy {strategy!r} is not supported ('default' or 'full')")
            layer = d.get("vision_feature_layer", -2)
            if not isinstance(layer, int):
                raise ConfigError("vision_feature_layer must be a single integer layer index")
            vision_config = _pick(VisionConfig, vision)
        else:
            raise ConfigError(
                f"vision_config.model_type {vision_type!r} is not supported "
                f"({CLIP_VISION_TYPE!r} or {MOBILENET_VISION_TYPE!r})"
            )
        psa = d.get("psa_config")
        return cls(
            vision_config=vision_config,
            text_config=_pick(TextConfig, text),
            image_token_index=d.get("image_token_index", d.get("image_token_id", 32000)),
            projector_hidden_act=d.get("projector_hidden_act", "gelu"),
            multimodal_projector_bias=d.get("multimodal_projector_bias", True),
            vision_feature_layer=layer,
            vision_feature_select_strategy=strategy,
            tie_word_embeddings=bool(d.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
            psa=_pick(PsaConfig, psa) if psa is not None else None,
        )


def check_mobilenet_selection(layer: Any, strategy: Any) -> None:
    """A MobileNetV2 tower always gives its last feature map (out_relu), every grid cell a row:
    vision_feature_layer must be -1 and vision_feature_select_strategy 'full'."""
    if layer != -1:
        raise ConfigError(
            f"vision_feature_layer is {layer!r}; a {MOBILENET_VISION_TYPE} vision tower gives its "
            "last feature map only: use -1 (or leave it out)"
        )
    if strategy != "full":
        raise ConfigError(
            f"vision_feature_select_strategy is {strategy!r}; a {MOBILENET_VISION_TYPE} vision tower "
            "has no CLS row to drop, every grid cell is a row: use 'full' (or leave it out)"
        )


def mobilenet_variant(cfg: LlavaConfig, vision: MobileNetConfig | None = None) -> LlavaConfig:
    """The same LLM and safety sizes with nsfwjs's MobileNetV2 as the vision tower (224 px, 7x7 rows of 1280)."""
    return replace(
        cfg, vision_config=vision or MobileNetConfig(), vision_feature_layer=-1, vision_feature_select_strategy="full"
    )


def _pick(kind, values: dict[str, Any]):
    """Builds a dataclass from the keys it knows; transformers writes many others we ignore."""
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in values.items() if k in names})


def tiny_config(vocab_size: int) -> LlavaConfig:
    """A few-MB model for tests: GQA on, two safety tokens of each kind, 56 px images."""
    return LlavaConfig(
        vision_config=VisionConfig(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=56,
            patch_size=14,
            projection_dim=32,
        ),
        text_config=TextConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=160,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=4,
        ),
        image_token_index=3,
        psa=PsaConfig(num_tokens_a=4, num_tokens_b=4, head_num_heads=4),
    )


def small_config(vocab_size: int) -> LlavaConfig:
    """Tens of MB with realistic proportions (224 px, 256 patches), for benchmarks."""
    return LlavaConfig(
        vision_config=VisionConfig(
            hidden_size=384,
            intermediate_size=1536,
            num_hidden_layers=6,
            num_attention_heads=6,
            image_size=224,
            patch_size=14,
            projection_dim=256,
        ),
        text_config=TextConfig(
            vocab_size=vocab_size,
            hidden_size=512,
            intermediate_size=1408,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=4,
            max_position_embeddings=2048,
            pad_token_id=4,
        ),
        image_token_index=3,
        psa=PsaConfig(num_tokens_a=16, num_tokens_b=16, head_num_heads=8),
    )


def default_config(vocab_size: int) -> LlavaConfig:
    """The embedded default model: small enough to train on a CPU in minutes (224 px, 196 patches)."""
    return LlavaConfig(
        vision_config=VisionConfig(
            hidden_size=192,
            intermediate_size=768,
            num_hidden_layers=4,
            num_attention_heads=4,
            image_size=224,
            patch_size=16,
            projection_dim=192,
        ),
        text_config=TextConfig(
            vocab_size=vocab_size,
            hidden_size=256,
            intermediate_size=688,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            pad_token_id=4,
        ),
        image_token_index=3,
        psa=PsaConfig(num_tokens_a=8, num_tokens_b=8, head_num_heads=4),
    )

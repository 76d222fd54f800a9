"""Writes a model package (docs/model-package.md): HF LLaVA files + ONNX graphs + psa.json.

The package is also a valid checkpoint directory (config.json, model.safetensors or shards with
an index, tokenizer), so training can start from it. It is written to a temporary sibling and renamed into place, so a
reader never sees a half-written package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from typing import Any

from ..io import query_encoder as qe, safetensors_files
from ..io.hf_checkpoint import WEIGHTS_INDEX, weight_files, write_weights
from ..io.onnx_files import ExternalMode
from ..modeling.config import MobileNetConfig
from ..modeling.llava import PsaLlava
from ..taxonomy import default_hints, taxonomy
from .onnx_graphs import export_all

FORMAT = "psa-guard.model-package"
FORMAT_VERSION = 1
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }} "
    "{% elif message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {{ message['content'] }}{{ eos_token }} {% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
OCR_QUERY_TOKENS = 64
GRAPHS = {
    "vision_encoder": "onnx/vision_encoder.onnx",
    "safety_head": "onnx/safety_head.onnx",
    "embed_tokens": "onnx/embed_tokens.onnx",
    "decoder": "onnx/decoder_model_merged.onnx",
}
QUERY_ENCODER_GRAPH = "onnx/query_encoder.onnx"


def image_processor(image_size: int) -> dict[str, Any]:
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "do_convert_rgb": True,
    }


def write_json(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_package(
    model: PsaLlava,
    tokenizer_dir: str,
    out_dir: str,
    *,
    name: str,
    provenance: dict[str, Any],
    preprocessor: dict[str, Any] | None = None,
    chat_template: str | None = None,
    external_data: ExternalMode = "auto",
    fp16: bool = False,
) -> str:
    """external_data: weights in `<graph>.onnx_data` files always, never, or (auto) for graphs
    above protobuf's limit; fp16: also write `<graph>_fp16.onnx`, listed under onnx_fp16."""
    cfg = model.config
    if cfg.psa is None:
        raise ValueError("the model has no safety modules: a package needs psa_config")
    tmp = out_dir.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    template = chat_template or CHAT_TEMPLATE
    vc = cfg.vision_config
    preprocessor = preprocessor or (
        vc.image_processor() if isinstance(vc, MobileNetConfig) else image_processor(vc.image_size)
    )
    grid = (preprocessor["crop_size"]["height"] // cfg.vision_config.patch_size) * (
        preprocessor["crop_size"]["width"] // cfg.vision_config.patch_size
    )
    image_rows = model.image_token_count
    tc = cfg.text_config

    for fname in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(tokenizer_dir, fname), os.path.join(tmp, fname))
    enc = cfg.psa.query_encoder
    max_query = 64 + (OCR_QUERY_TOKENS if cfg.psa.query_image_text else 0)
    if enc is not None and max_query > enc.max_position_embeddings:
        raise ValueError(
            f"the query takes up to {max_query} tokens but the query encoder has "
            f"{enc.max_position_embeddings} positions"
        )
    if enc is not None:
        src = os.path.join(tokenizer_dir, qe.TOKENIZER_FILE)
        if not os.path.isfile(src):
            raise ValueError(f"{tokenizer_dir}: the model has a query encoder but no {qe.TOKENIZER_FILE}")
        os.makedirs(os.path.join(tmp, os.path.dirname(qe.TOKENIZER_FILE)))
        shutil.copyfile(src, os.path.join(tmp, qe.TOKENIZER_FILE))
    tok_cfg_path = os.path.join(tmp, "tokenizer_config.json")
    with open(tok_cfg_path, encoding="utf-8") as f:
        tok_cfg = json.load(f)
    tok_cfg["chat_template"] = template
    write_json(tok_cfg_path, tok_cfg)
    with open(os.path.join(tmp, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(template)

    write_json(os.path.join(tmp, "config.json"), cfg.to_dict())
    write_json(
        os.path.join(tmp, "generation_config.json"),
        {
            "bos_token_id": tc.bos_token_id,
            "eos_token_id": tc.eos_token_id,
            "pad_token_id": tc.pad_token_id,
            "do_sample": False,
            "max_new_tokens": 256,
        },
    )
    # processor_class here is how transformers.js' AutoProcessor finds LlavaProcessor.
    write_json(os.path.join(tmp, "preprocessor_config.json"), {**preprocessor, "processor_class": "LlavaProcessor"})
    # transformers.js expands <image> into grid + num_additional_image_tokens tokens, which must
    # equal the rows vision_encoder.onnx returns (safety tokens B included).
    write_json(
        os.path.join(tmp, "processor_config.json"),
        {
            "processor_class": "LlavaProcessor",
            "image_token": "<image>",
            "patch_size": cfg.vision_config.patch_size,
            "num_additional_image_tokens": image_rows - grid,
            "vision_feature_select_strategy": cfg.vision_feature_select_strategy,
            "image_processor": preprocessor,
        },
    )
    write_weights(tmp, qe.stored_state(model.state_dict(), enc))
    onnx_files = export_all(model, os.path.join(tmp, "onnx"), external=external_data, fp16=fp16)

    graphs = {**GRAPHS, **({"query_encoder": QUERY_ENCODER_GRAPH} if enc is not None else {})}
    files = sorted(os.path.relpath(os.path.join(root, f), tmp) for root, _, names in os.walk(tmp) for f in names)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "taxonomy": taxonomy(),
        "hints": default_hints(),
        "safety_tokens": {"a": cfg.psa.num_tokens_a, "b": cfg.psa.num_tokens_b},
        "image": {
            "preprocessor": "preprocessor_config.json",
            "image_token": "<image>",
            "image_token_id": cfg.image_token_index,
            "image_token_count": image_rows,
        },
        "text": {
            "tokenizer": "tokenizer.json",
            "tokenizer_config": "tokenizer_config.json",
            "chat_template": "chat_template.jinja",
            "hint_role": "system",
            "max_query_tokens": max_query,
            "max_context_tokens": tc.max_position_embeddings,
        },
        # The safety head's query starts with the text OCR reads in the image (at most
        # max_text_tokens tokens), then the prompt: typographic attacks are read, not only seen.
        **({"ocr": {"engine": "pp-ocrv4", "max_text_tokens": OCR_QUERY_TOKENS}} if cfg.psa.query_image_text else {}),
        "generation": {
            "max_new_tokens": 256,
            "temperature": 0.0,
            "top_k": 0,
            "top_p": 1.0,
            "eos_token_id": tc.eos_token_id,
            "stop": [],
        },
        # The safety head's query is a BERT encoder's token states, projected to the head width
        # inside query_encoder.onnx (output query_embeds; last_hidden_state is the encoder's own).
        **(
            {
                "query_encoder": {
                    "tokenizer": qe.TOKENIZER_FILE,
                    "cls_token": "[CLS]",
                    "sep_token": "[SEP]",
                    "pad_token": "[PAD]",
                    "hidden_size": enc.hidden_size,
                    "num_layers": enc.num_hidden_layers,
                    "storage_dtype": enc.storage_dtype,
                }
            }
            if enc is not None
            else {}
        ),
        "onnx": graphs,
        **({"onnx_fp16": {k: v.replace(".onnx", "_fp16.onnx") for k, v in graphs.items()}} if fp16 else {}),
        "model": {
            "num_layers": tc.num_hidden_layers,
            "num_key_value_heads": tc.num_key_value_heads,
            "head_dim": tc.head_dim,
            "hidden_size": tc.hidden_size,
            "vocab_size": tc.vocab_size,
        },
        "provenance": provenance,
        "files": {f: sha256_file(os.path.join(tmp, f)) for f in files},
    }
    assert set(onnx_files) <= set(manifest["files"])
    write_json(os.path.join(tmp, "psa.json"), manifest)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


class PackageError(ValueError):
    pass


def reshard_package(pkg_dir: str, max_shard_bytes: int | None) -> list[str]:
    """Rewrites a package's PyTorch weights as one model.safetensors (max_shard_bytes None) or as
    shards of at most max_shard_bytes with an index (checkpoint.write_weights), and updates the
    checksums in psa.json. Tensors are copied bit for bit; the ONNX graphs are not touched. The
    weights are checked against psa.json first, so a damaged package is refused, not re-signed."""
    manifest_path = os.path.join(pkg_dir, "psa.json")
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise PackageError(f"{manifest_path}: not a readable package manifest ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise PackageError(f'{manifest_path}: no "files" checksums; not a package manifest')
    paths = weight_files(pkg_dir)
    if os.path.isfile(os.path.join(pkg_dir, WEIGHTS_INDEX)):
        paths.append(os.path.join(pkg_dir, WEIGHTS_INDEX))
    old = [os.path.relpath(p, pkg_dir) for p in paths]
    for name, path in zip(old, paths):
        if manifest["files"].get(name) != sha256_file(path):
            raise PackageError(f"{path}: checksum does not match psa.json; the package is damaged")
    tensors: dict[str, Any] = {}
    for path in paths:
        if path.endswith(".safetensors"):
            tensors.update(safetensors_files.load(path))
    tmp = os.path.join(pkg_dir, ".weights.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    new = write_weights(tmp, tensors, max_shard_bytes)
    # New files first, then the manifest, then the old files: an interrupted run leaves a package
    # whose checksums refuse it, never one that loads other weights than psa.json lists.
    for name in new:
        os.replace(os.path.join(tmp, name), os.path.join(pkg_dir, name))
    shutil.rmtree(tmp)
    files = {k: v for k, v in manifest["files"].items() if k not in old}
    files.update({name: sha256_file(os.path.join(pkg_dir, name)) for name in new})
    manifest["files"] = dict(sorted(files.items()))
    write_json(manifest_path + ".partial", manifest)
    os.replace(manifest_path + ".partial", manifest_path)
    for name in old:
        if name not in new:
            os.remove(os.path.join(pkg_dir, name))
    return new

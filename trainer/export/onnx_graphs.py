"""ONNX export of the four graphs of a model package (tensor names fixed by the package format).

  vision_encoder:        pixel_values -> image_features (tokens B prepended), vision_features
  safety_head:           vision_features, query_embeds, query_mask -> level_logits, type_logits
  embed_tokens:          input_ids -> inputs_embeds
  query_encoder:         input_ids, attention_mask -> last_hidden_state, query_embeds (only with
                         psa_config.query_encoder; query_embeds is the projection to the head width)
  decoder_model_merged:  inputs_embeds, attention_mask, position_ids, past_key_values.N.{key,value}
                         -> logits, present.N.{key,value}
Graphs are traced in fp32 on CPU; dynamic axes cover batch, sequence and past length.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import onnx
import torch
from torch import nn

from ..io import onnx_files
from ..modeling.llava import PsaLlava

OPSET = 17


class _VisionEncoder(nn.Module):
    def __init__(self, model: PsaLlava):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        vision = self.model.vision_features(pixel_values)
        return self.model.image_features(vision), vision


class _SafetyHead(nn.Module):
    def __init__(self, model: PsaLlava):
        super().__init__()
        self.model = model

    def forward(self, vision_features, query_embeds, query_mask):
        return self.model.safety_logits(vision_features, query_embeds, query_mask)


class _EmbedTokens(nn.Module):
    def __init__(self, model: PsaLlava):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model.embed(input_ids)


class _QueryEncoder(nn.Module):
    def __init__(self, model: PsaLlava):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model.psa.encode_query(input_ids, attention_mask)


class _Decoder(nn.Module):
    def __init__(self, model: PsaLlava):
        super().__init__()
        self.model = model

    def forward(self, inputs_embeds, attention_mask, position_ids, *flat_past):
        past = [(flat_past[i], flat_past[i + 1]) for i in range(0, len(flat_past), 2)]
        logits, presents = self.model.decode(inputs_embeds, attention_mask, position_ids, past)
        return (logits, *[t for kv in presents for t in kv])


def export_all(
    model: PsaLlava, onnx_dir: str, external: onnx_files.ExternalMode = "auto", fp16: bool = False
) -> list[str]:
    """Writes the four graphs, five with a query encoder (and with fp16, their `_fp16` variants); returns the written files'
    paths relative to the package root, external data files included."""
    os.makedirs(onnx_dir, exist_ok=True)
    model = model.float().eval()
    cfg = model.config
    vc, tc = cfg.vision_config, cfg.text_config
    pixels = torch.randn(2, vc.num_channels, vc.image_size, vc.image_size)
    with torch.no_grad():
        vision = model.vision_features(pixels)
    written = []

    def run(module, args, name, inputs, outputs, axes, half_storage=False):
        # Exported to a scratch directory first: above 2 GB torch writes one file per tensor there.
        with tempfile.TemporaryDirectory(dir=onnx_dir) as scratch:
            traced = os.path.join(scratch, f"{name}.onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic are expected
                torch.onnx.export(
                    module,
                    args,
                    traced,
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_axes=axes,
                    opset_version=OPSET,
                    do_constant_folding=True,
                )
            graph = onnx.load(traced)
        if half_storage:
            graph = onnx_files.store_half(graph)
        # Saving with external data moves the weights out of the proto: convert before saving.
        half = onnx_files.to_fp16(graph) if fp16 else None
        for fname in onnx_files.save(
            graph,
            os.path.join(onnx_dir, f"{name}.onnx"),
            external,
            split_bytes=onnx_files.SPLIT_BYTES if half_storage else None,
        ):
            written.append(os.path.join("onnx", fname))
        del graph
        if half is not None:
            for fname in onnx_files.save(
                half,
                os.path.join(onnx_dir, f"{name}_fp16.onnx"),
                external,
                split_bytes=onnx_files.SPLIT_BYTES if half_storage else None,
            ):
                written.append(os.path.join("onnx", fname))

    run(
        _VisionEncoder(model),
        (pixels,),
        "vision_encoder",
        ["pixel_values"],
        ["image_features", "vision_features"],
        {"pixel_values": {0: "batch_size"}, "image_features": {0: "batch_size"}, "vision_features": {0: "batch_size"}},
    )

    if model.psa is not None:
        query = torch.randn(2, 5, tc.hidden_size)
        qmask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.int64)
        run(
            _SafetyHead(model),
            (vision, query, qmask),
            "safety_head",
            ["vision_features", "query_embeds", "query_mask"],
            ["level_logits", "type_logits"],
            {
                "vision_features": {0: "batch_size"},
                "query_embeds": {0: "batch_size", 1: "query_length"},
                "query_mask": {0: "batch_size", 1: "query_length"},
                "level_logits": {0: "batch_size"},
                "type_logits": {0: "batch_size"},
            },
        )

    enc = cfg.psa.query_encoder if cfg.psa is not None else None
    if enc is not None:
        qids = torch.tensor([[2, 5, 6, 3, 0], [2, 7, 8, 9, 3]], dtype=torch.int64)
        qmask = (qids != 0).to(torch.int64)
        axes = {
            "input_ids": {0: "batch_size", 1: "query_length"},
            "attention_mask": {0: "batch_size", 1: "query_length"},
            "last_hidden_state": {0: "batch_size", 1: "query_length"},
            "query_embeds": {0: "batch_size", 1: "query_length"},
        }
        run(
            _QueryEncoder(model),
            (qids, qmask),
            "query_encoder",
            ["input_ids", "attention_mask"],
            ["last_hidden_state", "query_embeds"],
            axes,
            half_storage=enc.storage_dtype == "float16",
        )

    ids = torch.tensor([[1, 5, 6], [1, 7, 8]], dtype=torch.int64)
    run(
        _EmbedTokens(model),
        (ids,),
        "embed_tokens",
        ["input_ids"],
        ["inputs_embeds"],
        {
            "input_ids": {0: "batch_size", 1: "sequence_length"},
            "inputs_embeds": {0: "batch_size", 1: "sequence_length"},
        },
    )

    b, s, p = 2, 3, 4
    past = []
    names_in, names_out = [], []
    axes = {
        "inputs_embeds": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for i in range(tc.num_hidden_layers):
        for kind in ("key", "value"):
            past.append(torch.randn(b, tc.num_key_value_heads, p, tc.head_dim))
            names_in.append(f"past_key_values.{i}.{kind}")
            names_out.append(f"present.{i}.{kind}")
            axes[names_in[-1]] = {0: "batch_size", 2: "past_sequence_length"}
            axes[names_out[-1]] = {0: "batch_size", 2: "total_sequence_length"}
    embeds = torch.randn(b, s, tc.hidden_size)
    mask = torch.ones(b, p + s, dtype=torch.int64)
    positions = torch.arange(p, p + s).unsqueeze(0).expand(b, -1).contiguous()
    run(
        _Decoder(model),
        (embeds, mask, positions, *past),
        "decoder_model_merged",
        ["inputs_embeds", "attention_mask", "position_ids", *names_in],
        ["logits", *names_out],
        axes,
    )
    return written

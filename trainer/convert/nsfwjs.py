"""`python -m trainer convert-nsfwjs`: nsfwjs's MobileNetV2 (TF.js layers model) -> PyTorch.

Writes `model.safetensors` (NsfwMobileNetV2's state dict, float32, BatchNorm step counters left
out) and `config.json` (MobileNetConfig plus the source's name, version, licence and file hashes).
The Keras graph is checked against the PyTorch module first (strides, paddings, epsilons,
activations, residual adds, head), then every weight is mapped; a missing, extra or misshaped
tensor stops the conversion with its Keras and PyTorch names.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..export.package import sha256_file
from ..io import safetensors_files
from ..io.tfjs_artifacts import TfjsModel, read_model
from ..modeling.mobilenet import ConvBn, MobileNetConfig, NsfwMobileNetV2


class ConversionError(ValueError):
    """The TF.js model does not fit NsfwMobileNetV2; the message names the layer or weight."""


def keras_layers(model: NsfwMobileNetV2) -> Iterator[tuple[str, str, ConvBn]]:
    """(Keras conv layer, Keras BN layer, module) in order, with Keras MobileNetV2's names."""
    yield "Conv1", "bn_Conv1", model.stem
    for i, block in enumerate(model.blocks):
        prefix = "expanded_conv" if i == 0 else f"block_{i}"
        for part in ("expand", "depthwise", "project"):
            unit = getattr(block, part)
            if unit is not None:
                yield f"{prefix}_{part}", f"{prefix}_{part}_BN", unit
    yield "Conv_1", "Conv_1_bn", model.last


def check_topology(topology: dict[str, Any], model: NsfwMobileNetV2) -> list[str]:
    """Raises on the first layer that differs from the module; returns the Dense layers' names."""
    try:
        layers = topology["model_config"]["config"]["layers"]
    except (KeyError, TypeError):
        raise ConversionError(
            "modelTopology has no model_config.config.layers (not a Keras functional model)"
        ) from None
    by_name = {layer["name"]: layer for layer in layers}
    consumers: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        for node in layer.get("inbound_nodes") or []:
            for inbound in node:
                consumers.setdefault(inbound[0], []).append(layer)
    cfg = model.config

    def config_of(name: str, kind: str) -> dict[str, Any]:
        found = by_name.get(name)
        if found is None or found["class_name"] != kind:
            raise ConversionError(
                f"layer {name!r}: expected a {kind} layer, found {found['class_name'] if found else 'none'}"
            )
        return found["config"]

    def require(name: str, what: str, got: Any, want: Any) -> None:
        if got != want:
            raise ConversionError(f"layer {name!r}: {what} is {got!r}, the PyTorch module expects {want!r}")

    size = cfg.image_size
    require(
        "input_1",
        "batch_input_shape",
        config_of("input_1", "InputLayer")["batch_input_shape"][1:],
        [size, size, cfg.num_channels],
    )
    for conv_name, bn_name, unit in keras_layers(model):
        depthwise = unit.conv.groups > 1
        conv = config_of(conv_name, "DepthwiseConv2D" if depthwise else "Conv2D")
        stride = unit.conv.stride[0]
        require(conv_name, "strides", conv["strides"], [stride, stride])
        require(conv_name, "kernel_size", conv["kernel_size"], list(unit.conv.kernel_size))
        require(conv_name, "use_bias/activation", (conv["use_bias"], conv["activation"]), (False, "linear"))
        source = by_name.get(by_name[conv_name]["inbound_nodes"][0][0][0], {})
        padded = (source.get("class_name"), source.get("config", {}).get("padding"))
        if unit.pad_bottom_right:
            require(
                conv_name,
                "(input padding, padding)",
                (padded, conv["padding"]),
                (("ZeroPadding2D", [[0, 1], [0, 1]]), "valid"),
            )
        elif unit.conv.padding == (1, 1):
            require(conv_name, "padding", conv["padding"], "same")
        if padded[0] == "ZeroPadding2D" and not unit.pad_bottom_right:
            raise ConversionError(f"layer {conv_name!r}: input is zero-padded, the PyTorch module pads nothing there")
        bn = config_of(bn_name, "BatchNormalization")
        require(bn_name, "epsilon", bn["epsilon"], cfg.batch_norm_eps)
        require(bn_name, "center/scale", (bn["center"], bn["scale"]), (True, True))
        after = [c for c in consumers.get(bn_name, []) if c["class_name"] == "ReLU"]
        relu6 = [
            (c["config"].get("max_value"), c["config"].get("negative_slope", 0), c["config"].get("threshold", 0))
            for c in after
        ]
        require(bn_name, "following ReLU (max_value, slope, threshold)", relu6, [(6, 0, 0)] if unit.relu else [])
    adds = {layer["name"] for layer in layers if layer["class_name"] == "Add"}
    want_adds = {f"block_{i}_add" for i, block in enumerate(model.blocks) if block.residual}
    require("Add layers", "set", sorted(adds), sorted(want_adds))
    grid = cfg.grid_size
    pools = [layer for layer in layers if layer["class_name"] in ("AveragePooling2D", "GlobalAveragePooling2D")]
    if len(pools) != 1 or (
        pools[0]["class_name"] == "AveragePooling2D"
        and (pools[0]["config"]["pool_size"] != [grid, grid] or pools[0]["config"]["padding"] != "valid")
    ):
        raise ConversionError(
            f"head: expected one {grid}x{grid} 'valid' average pool, found "
            f"{[(p['name'], p['config'].get('pool_size')) for p in pools]}"
        )
    dense = [layer for layer in layers if layer["class_name"] == "Dense"]
    want = [(lin.out_features, "relu") for lin in model.classifier[:-1]] + [(len(cfg.class_names), "softmax")]
    require(
        "Dense layers", "(units, activation)", [(d["config"]["units"], d["config"]["activation"]) for d in dense], want
    )
    known = {
        "InputLayer",
        "ZeroPadding2D",
        "Conv2D",
        "DepthwiseConv2D",
        "BatchNormalization",
        "ReLU",
        "Add",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "Flatten",
        "Dense",
        "Dropout",
    }
    for unknown in (layer for layer in layers if layer["class_name"] not in known):
        raise ConversionError(
            f"layer {unknown['name']!r}: class {unknown['class_name']} has no PyTorch counterpart here"
        )
    return [d["name"] for d in dense]


# Keras layout -> PyTorch layout, as (axes of the Keras array in PyTorch order); depthwise kernels
# [kh, kw, in, 1] become [in, 1, kh, kw].
_CONV, _DEPTHWISE, _DENSE = (3, 2, 0, 1), (2, 3, 0, 1), (1, 0)


def map_weights(weights: dict[str, np.ndarray], model: NsfwMobileNetV2, dense: list[str]) -> dict[str, torch.Tensor]:
    """Keras tensors -> the module's state dict names and layouts."""
    plan: list[tuple[str, str, tuple[int, ...] | None]] = []  # (Keras name, PyTorch name, axes)
    for conv_name, bn_name, unit in keras_layers(model):
        prefix = next(n for n, m in model.named_modules() if m is unit)
        depthwise = unit.conv.groups > 1
        plan.append(
            (
                f"{conv_name}/{'depthwise_kernel' if depthwise else 'kernel'}",
                f"{prefix}.conv.weight",
                _DEPTHWISE if depthwise else _CONV,
            )
        )
        for keras, ours in (
            ("gamma", "weight"),
            ("beta", "bias"),
            ("moving_mean", "running_mean"),
            ("moving_variance", "running_var"),
        ):
            plan.append((f"{bn_name}/{keras}", f"{prefix}.bn.{ours}", None))
    for i, name in enumerate(dense):
        plan.append((f"{name}/kernel", f"classifier.{i}.weight", _DENSE))
        plan.append((f"{name}/bias", f"classifier.{i}.bias", None))
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state: dict[str, torch.Tensor] = {}
    for keras, ours, axes in plan:
        if keras not in weights:
            raise ConversionError(f"missing weight {keras!r} (for {ours!r})")
        want = list(expected[ours].shape)
        keras_shape = [want[axes.index(i)] for i in range(len(axes))] if axes else want
        array = weights[keras]
        if list(array.shape) != keras_shape:
            raise ConversionError(
                f"weight {keras!r} has shape {list(array.shape)}; {ours!r} {want} needs {keras_shape} in Keras layout"
            )
        state[ours] = torch.from_numpy(np.ascontiguousarray(array.transpose(axes) if axes else array)).float()
    extra = sorted(set(weights) - {keras for keras, _, _ in plan})
    if extra:
        raise ConversionError(
            f"unexpected weight {extra[0]!r}" + (f" and {len(extra) - 1} more" if len(extra) > 1 else "")
        )
    return state


def convert(model_dir: str, out_dir: str) -> dict[str, Any]:
    started = time.perf_counter()
    tfjs = read_model(model_dir)
    cfg = MobileNetConfig()
    model = NsfwMobileNetV2(cfg)
    dense = check_topology(tfjs.topology, model)
    state = map_weights(tfjs.weights, model, dense)
    os.makedirs(out_dir, exist_ok=True)
    source = _provenance(model_dir, tfjs)
    safetensors_files.save(
        os.path.join(out_dir, "model.safetensors"),
        state,
        {"format": "pt", "source": f"{source['package']} {source['version']} {source['model']}"},
    )
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump({**cfg.to_dict(), "source": source}, f, indent=2)
        f.write("\n")
    return {
        "out": out_dir,
        "tensors": len(state),
        "parameters": sum(t.numel() for t in state.values()),
        "grid_size": cfg.grid_size,
        "hidden_size": cfg.hidden_size,
        "seconds": round(time.perf_counter() - started, 3),
    }


def load_converted(directory: str) -> NsfwMobileNetV2:
    """The module a conversion wrote, in eval mode and without gradients (a frozen tower)."""
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        cfg = MobileNetConfig.from_dict(json.load(f))
    model = NsfwMobileNetV2(cfg)
    state = safetensors_files.load(os.path.join(directory, "model.safetensors"))
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    for name in sorted(set(state) | set(expected)):
        if name not in expected or name not in state:
            raise ConversionError(f"{directory}: {'unexpected' if name in state else 'missing'} tensor {name!r}")
        if tuple(state[name].shape) != tuple(expected[name].shape):
            raise ConversionError(
                f"{directory}: tensor {name!r} has shape {list(state[name].shape)}, "
                f"expected {list(expected[name].shape)}"
            )
    model.load_state_dict(state, strict=False)
    return model.requires_grad_(False)


def _provenance(model_dir: str, tfjs: TfjsModel) -> dict[str, Any]:
    """nsfwjs's package.json, found above the model directory, names the version and licence."""
    package: dict[str, Any] = {}
    here = os.path.abspath(model_dir)
    for _ in range(5):
        candidate = os.path.join(here, "package.json")
        if os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as f:
                found = json.load(f)
            if found.get("name") == "nsfwjs":
                package = found
                break
        here = os.path.dirname(here)
    stored = ", ".join(f"{n} {k}" for k, n in sorted(tfjs.storage.items()))
    return {
        "package": package.get("name", "unknown"),
        "version": package.get("version", "unknown"),
        "license": package.get("license", "unknown"),
        "author": "Infinite Red, Inc. (nsfwjs)",
        "model": os.path.basename(os.path.normpath(model_dir)),
        "weights": f"stored as {stored} (quantized ones dequantized to float32 as tfjs-core does)",
        "files": {os.path.basename(p): sha256_file(p) for p in tfjs.files},
    }

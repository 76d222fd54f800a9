"""Saving exported ONNX graphs: external data for large graphs, and the fp16 variant.

Protobuf caps a file at 2 GB, so a graph whose weights exceed EXTERNAL_DATA_BYTES keeps them in
one `<name>.onnx_data` file beside `<name>.onnx` (the layout transformers.js and onnxruntime
read; onnxruntime resolves it relative to the graph's path). The fp16 variant,
`<name>_fp16.onnx` (transformers.js' suffix), stores and computes in float16 while its inputs
and outputs stay float32 (a Cast at each boundary), so a runtime feeds it exactly what it feeds
the fp32 graph.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EXTERNAL_DATA_BYTES = 1_800_000_000  # below protobuf's 2 GB limit, with room for the graph itself
ExternalMode = Literal["auto", "always", "never"]
FP16_MAX = float(np.finfo(np.float16).max)


def weight_bytes(model: onnx.ModelProto) -> int:
    total = 0
    for t in model.graph.initializer:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        total += n * {
            TensorProto.FLOAT: 4,
            TensorProto.FLOAT16: 2,
            TensorProto.INT64: 8,
            TensorProto.INT32: 4,
            TensorProto.BFLOAT16: 2,
        }.get(t.data_type, 4)
    return total


SPLIT_BYTES = 20 * 2**20


def save(
    model: onnx.ModelProto, path: str, external: ExternalMode = "auto", split_bytes: int | None = None
) -> list[str]:
    """Writes `path` (and `path` + '_data' when the weights go outside); returns the file names.
    With split_bytes, weights above that size in all go to `path` + '_data.N' files of at most
    split_bytes each (a single larger tensor gets a file of its own), so no file is large."""
    if split_bytes is not None and external != "never" and weight_bytes(model) > split_bytes:
        return _save_split(model, path, split_bytes)
    data_name = os.path.basename(path) + "_data"
    data_path = os.path.join(os.path.dirname(path), data_name)
    if os.path.exists(data_path):
        os.remove(data_path)
    outside = external == "always" or (external == "auto" and weight_bytes(model) > EXTERNAL_DATA_BYTES)
    if outside:
        onnx.save_model(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=1024,
            convert_attribute=False,
        )
        return [os.path.basename(path), data_name]
    onnx.save_model(model, path)
    return [os.path.basename(path)]


def _save_split(model: onnx.ModelProto, path: str, limit: int) -> list[str]:
    from onnx.external_data_helper import set_external_data

    base = os.path.basename(path)
    names: list[str] = []
    handle, filled = None, 0
    try:
        for t in model.graph.initializer:
            if not t.HasField("raw_data") or len(t.raw_data) < 1024:
                continue
            data = t.raw_data
            if handle is None or (filled and filled + len(data) > limit):
                if handle is not None:
                    handle.close()
                names.append(f"{base}_data.{len(names)}")
                handle, filled = open(os.path.join(os.path.dirname(path), names[-1]), "wb"), 0
            set_external_data(t, location=names[-1], offset=filled, length=len(data))
            handle.write(data)
            filled += len(data)
            t.ClearField("raw_data")
            t.data_location = TensorProto.EXTERNAL
    finally:
        if handle is not None:
            handle.close()
    onnx.save_model(model, path)
    return [base, *names]


def store_half(model: onnx.ModelProto) -> onnx.ModelProto:
    """float32 initializers whose values float16 holds exactly (a query encoder stored in float16)
    are stored as float16 and cast back at the graph's start: half the file, the same results.
    onnxruntime folds the casts when it loads the graph, so it computes in float32 as before."""
    g = model.graph
    casts = []
    for i, t in enumerate(g.initializer):
        if t.data_type != TensorProto.FLOAT or int(np.prod(t.dims)) < 1024:
            continue
        values = numpy_helper.to_array(t)
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue  # e.g. the projection, trained and stored in float32
        name = t.name  # t is the list entry itself: read its name before replacing it
        stored = f"{name}__fp16"
        g.initializer[i].CopyFrom(numpy_helper.from_array(half, stored))
        casts.append(helper.make_node("Cast", [stored], [name], name=f"{name}__to_fp32", to=TensorProto.FLOAT))
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model


def _half(t: TensorProto) -> TensorProto:
    values = numpy_helper.to_array(t).astype(np.float32)
    # float32's extremes (attention masks use its minimum) become fp16's, not infinities.
    half = np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)
    out = numpy_helper.from_array(half, t.name)
    return out


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of a float32 graph, float32 at its inputs and outputs."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(_half(t))
    for node in g.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
            elif a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(_half(a.t))
    for vi in g.value_info:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16

    casts_in = []
    for inp in g.input:
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{inp.name}__fp16"
        for node in g.node:
            for k, name in enumerate(node.input):
                if name == inp.name:
                    node.input[k] = inner
        casts_in.append(
            helper.make_node("Cast", [inp.name], [inner], name=f"{inp.name}__to_fp16", to=TensorProto.FLOAT16)
        )
    casts_out = []
    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{out.name}__fp16"
        passthrough = False
        for node in g.node:
            for k, name in enumerate(node.output):
                if name == out.name:
                    node.output[k] = inner
            for k, name in enumerate(node.input):  # a graph output also read inside the graph
                if name == out.name:
                    node.input[k] = inner
        if any(i.name == out.name for i in g.input):  # an input passed straight through
            passthrough = True
        if not passthrough:
            casts_out.append(
                helper.make_node("Cast", [inner], [out.name], name=f"{out.name}__to_fp32", to=TensorProto.FLOAT)
            )
    nodes = casts_in + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    return m

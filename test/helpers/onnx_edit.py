"""Test helper: damages ONNX graphs on purpose (rename an input, change its element type)."""

import sys

import onnx
from onnx import TensorProto


def main(path: str, action: str, name: str, value: str) -> None:
    model = onnx.load(path)
    graph = model.graph
    target = next(i for i in graph.input if i.name == name)
    if action == "rename-input":
        target.name = value
        for node in graph.node:
            node.input[:] = [value if x == name else x for x in node.input]
    elif action == "set-input-type":
        target.type.tensor_type.elem_type = getattr(TensorProto, value)
    else:
        raise SystemExit(f"unknown action {action}")
    onnx.save(model, path)


if __name__ == "__main__":
    main(*sys.argv[1:5])

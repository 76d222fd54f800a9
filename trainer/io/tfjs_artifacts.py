"""Reading TensorFlow.js layers-model artifacts without TensorFlow.

Two layouts: the standard `model.json` + binary shards named in its weightsManifest, and the
bundled form nsfwjs ships (`model.min.js` whose browserify module exports the model JSON as a
JavaScript object literal, and `<shard>.min.js` modules that export each shard as base64). The
literal is parsed, never evaluated. Weights decode as tfjs-core's io_utils does: per manifest
group, shards concatenated in order, specs consumed in order, uint8/uint16 affine quantization
(q * scale + min) and float16 quantization expanded to float32.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np


class TfjsError(ValueError):
    """Artifacts that cannot be read; the message names the file or weight."""


@dataclass
class TfjsModel:
    topology: dict[str, Any]
    weights: dict[str, np.ndarray]  # float32, in manifest order, Keras layouts
    files: list[str]  # every file read, for provenance
    storage: dict[str, int]  # how the weights were stored: {"uint8 quantized": 266, ...}


_QUANT_DTYPES = {"uint8": np.dtype("<u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2")}
_PLAIN_DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}


def read_model(model_dir: str) -> TfjsModel:
    plain, bundled = os.path.join(model_dir, "model.json"), os.path.join(model_dir, "model.min.js")
    if os.path.isfile(plain):
        with open(plain, encoding="utf-8") as f:
            try:
                model = json.load(f)
            except ValueError as e:
                raise TfjsError(f"{plain}: not valid JSON ({e})") from None
        main, read_shard = plain, lambda path: _read_bytes(os.path.join(model_dir, path))
    elif os.path.isfile(bundled):
        model = _bundle_export(bundled)
        main, read_shard = bundled, lambda path: _bundle_shard(os.path.join(model_dir, path + ".min.js"))
    else:
        raise TfjsError(f"{model_dir}: neither model.json nor model.min.js found")
    if not isinstance(model, dict) or "modelTopology" not in model or "weightsManifest" not in model:
        raise TfjsError(f"{main}: no modelTopology/weightsManifest; not a TF.js layers model")
    weights: dict[str, np.ndarray] = {}
    storage: dict[str, int] = {}
    files = [main]
    for group in model["weightsManifest"]:
        data = b""
        for path in group["paths"]:
            data += read_shard(path)
            files.append(os.path.join(model_dir, path + ("" if main == plain else ".min.js")))
        weights.update(decode_group(group["weights"], data, ", ".join(group["paths"])))
        for spec in group["weights"]:
            kind = f"{spec['quantization']['dtype']} quantized" if spec.get("quantization") else spec["dtype"]
            storage[kind] = storage.get(kind, 0) + 1
    return TfjsModel(model["modelTopology"], weights, files, storage)


def decode_group(specs: list[dict[str, Any]], data: bytes, where: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    offset = 0
    for spec in specs:
        name, shape, dtype = spec["name"], [int(d) for d in spec["shape"]], spec["dtype"]
        count = int(np.prod(shape)) if shape else 1
        quant = spec.get("quantization")
        if dtype not in _PLAIN_DTYPES:
            raise TfjsError(f"weight {name!r} has dtype {dtype!r}; only float32/int32 are supported")
        stored = _QUANT_DTYPES.get(quant["dtype"]) if quant else _PLAIN_DTYPES[dtype]
        if stored is None:
            raise TfjsError(f"weight {name!r} has unknown quantization dtype {quant['dtype']!r}")
        size = count * stored.itemsize
        if offset + size > len(data):
            raise TfjsError(
                f"{where}: weight {name!r} needs bytes {offset}..{offset + size}, the shard data has {len(data)}"
            )
        raw = np.frombuffer(data, dtype=stored, count=count, offset=offset)
        offset += size
        if quant and quant["dtype"] in ("uint8", "uint16"):
            if "scale" not in quant or "min" not in quant:
                raise TfjsError(f"weight {name!r}: {quant['dtype']} quantization without min and scale")
            # tfjs computes v * scale + min in double precision and stores float32.
            values = raw.astype(np.float64) * float(quant["scale"]) + float(quant["min"])
            values = np.round(values) if dtype == "int32" else values
        else:
            values = raw
        if name in out:
            raise TfjsError(f"{where}: weight {name!r} appears twice in the manifest")
        out[name] = values.astype(np.float32 if dtype == "float32" else np.int32).reshape(shape)
    if offset != len(data):
        raise TfjsError(
            f"{where}: {len(data) - offset} bytes left after the last weight; manifest and shard data disagree"
        )
    return out


def _read_bytes(path: str) -> bytes:
    if not os.path.isfile(path):
        raise TfjsError(f"weight shard {path} is missing")
    with open(path, "rb") as f:
        return f.read()


def _bundle_shard(path: str) -> bytes:
    if not os.path.isfile(path):
        raise TfjsError(f"weight shard {path} is missing")
    value = _bundle_export(path)
    if not isinstance(value, str):
        raise TfjsError(f"{path}: the bundle does not export a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:
        raise TfjsError(f"{path}: invalid base64 ({e})") from None


def _bundle_export(path: str) -> Any:
    """The value assigned to `module.exports` by the (single) module of a browserify bundle."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = re.search(r"\{1:\[function\(\w+,(\w+),\w+\)\{\1\.exports=", text)
    if not found:
        raise TfjsError(f"{path}: not a browserify bundle with a `module.exports=` literal")
    try:
        value, _ = JsLiteral(text, found.end()).value()
    except TfjsError as e:
        raise TfjsError(f"{path}: {e}") from None
    except IndexError:
        raise TfjsError(f"{path}: the exported literal is cut short") from None
    return value


class JsLiteral:
    """Parses the JSON-like subset of JavaScript that minifiers emit for data: bare or quoted
    keys, !0/!1 booleans, `.5` numbers, `void 0`."""

    _NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
    _IDENT = re.compile(r"[A-Za-z_$][\w$]*")
    _WORDS = {"true": True, "false": False, "null": None, "!0": True, "!1": False}

    def __init__(self, text: str, pos: int):
        self.text, self.pos = text, pos

    def value(self) -> tuple[Any, int]:
        t, c = self.text, self.text[self.pos : self.pos + 1]
        if c == "{":
            return self._object(), self.pos
        if c == "[":
            return self._array(), self.pos
        if c in "\"'":
            return self._string(), self.pos
        for word, val in self._WORDS.items():
            if t.startswith(word, self.pos):
                self.pos += len(word)
                return val, self.pos
        if t.startswith("void 0", self.pos):
            self.pos += 6
            return None, self.pos
        m = self._NUMBER.match(t, self.pos)
        if m:
            self.pos = m.end()
            s = m.group()
            return (float(s) if any(ch in s for ch in ".eE") else int(s)), self.pos
        raise TfjsError(f"unexpected {t[self.pos : self.pos + 20]!r} at offset {self.pos}")

    def _expect(self, ch: str) -> None:
        if self.text[self.pos : self.pos + 1] != ch:
            raise TfjsError(f"expected {ch!r} at offset {self.pos}, found {self.text[self.pos : self.pos + 20]!r}")
        self.pos += 1

    def _object(self) -> dict[str, Any]:
        self._expect("{")
        out: dict[str, Any] = {}
        while self.text[self.pos] != "}":
            m = self._IDENT.match(self.text, self.pos)
            if m:
                key, self.pos = m.group(), m.end()
            elif self.text[self.pos] in "\"'":
                key = self._string()
            else:
                m = self._NUMBER.match(self.text, self.pos)
                if not m:
                    raise TfjsError(f"bad object key at offset {self.pos}")
                key, self.pos = m.group(), m.end()
            self._expect(":")
            out[key], _ = self.value()
            if self.text[self.pos] == ",":
                self.pos += 1
        self.pos += 1
        return out

    def _array(self) -> list[Any]:
        self._expect("[")
        out: list[Any] = []
        while self.text[self.pos] != "]":
            item, _ = self.value()
            out.append(item)
            if self.text[self.pos] == ",":
                self.pos += 1
        self.pos += 1
        return out

    def _string(self) -> str:
        quote, start = self.text[self.pos], self.pos
        end = start + 1
        while True:
            end = self.text.find(quote, end)
            if end < 0:
                raise TfjsError(f"unterminated string at offset {start}")
            backslashes = len(self.text[start + 1 : end]) - len(self.text[start + 1 : end].rstrip("\\"))
            if backslashes % 2 == 0:
                break
            end += 1
        body = self.text[start + 1 : end]
        self.pos = end + 1
        if "\\" not in body:
            return body
        if quote == "'":
            body = body.replace("\\'", "'").replace('"', '\\"')
        return json.loads(f'"{body}"')

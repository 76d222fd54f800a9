"""Loads the transformers-written tiny LLaVA checkpoint in every layout and compares outputs with
the reference transformers computed; prints one JSON report (used by test/hf-llava.test.ts)."""

import json
import os
import shutil
import sys
import tempfile

import torch

from trainer.io import safetensors_files as st
from trainer.io.hf_checkpoint import CheckpointError, load_model

SRC = sys.argv[1]
ref = st.load(os.path.join(SRC, "reference", "outputs.safetensors"))
cases = json.load(open(os.path.join(SRC, "reference", "cases.json")))["cases"]


@torch.no_grad()
def outputs(model):
    out = {}
    for c in cases:
        n = c["name"]
        vf = model.vision_features(ref[n + ".pixel_values"])
        imf = model.image_features(vf)
        emb = model.merge_image_features(torch.tensor([c["input_ids"]]), imf)
        toks, logits = model.greedy(emb, len(c["greedy_tokens"]))
        out[n] = {
            "vision": (vf[0] - ref[n + ".vision_features"]).abs().max().item(),
            "image": (imf[0] - ref[n + ".image_features"]).abs().max().item(),
            "logits": (logits[0] - ref[n + ".logits"]).abs().max().item(),
            "tokens_equal": toks == c["greedy_tokens"],
            "logits_tensor": logits[0],
        }
    return out


def copy_with(tensors, dst, rename=None, shards=1, dtype=None):
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(SRC):
        if f.endswith((".json", ".jinja")) and f != "model.safetensors.index.json":
            shutil.copy(os.path.join(SRC, f), dst)
    renamed = {(rename(k) if rename else k): (v.to(dtype) if dtype else v) for k, v in tensors.items()}
    names = sorted(renamed)
    if shards == 1:
        st.save(os.path.join(dst, "model.safetensors"), renamed)
        return
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        st.save(os.path.join(dst, fname), {k: renamed[k] for k in part})
        weight_map.update({k: fname for k in part})
    json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(dst, "model.safetensors.index.json"), "w"))


def error_of(fn):
    try:
        fn()
        return None
    except (CheckpointError, ValueError) as e:
        return str(e)


base = outputs(load_model(SRC).eval())
report = {
    "reference": {n: {k: v for k, v in o.items() if k != "logits_tensor"} for n, o in base.items()},
    "layouts": {},
    "errors": {},
}
tensors = st.load(os.path.join(SRC, "model.safetensors"))
layouts = {
    "hub (vision_tower.vision_model.*)": lambda k: k.replace("vision_tower.", "vision_tower.vision_model.", 1)
    if k.startswith("vision_tower.")
    else k,
    "transformers 5 (model.* + lm_head)": lambda k: "lm_head.weight"
    if k == "language_model.lm_head.weight"
    else "model." + k.replace("language_model.model.", "language_model.", 1),
}
with tempfile.TemporaryDirectory() as tmp:
    for label, fn in layouts.items():
        d = os.path.join(tmp, label.split()[0])
        copy_with(tensors, d, rename=fn)
        o = outputs(load_model(d).eval())
        report["layouts"][label] = max((o[n]["logits_tensor"] - base[n]["logits_tensor"]).abs().max().item() for n in o)
    d = os.path.join(tmp, "sharded")
    copy_with(tensors, d, shards=2)
    o = outputs(load_model(d).eval())
    report["layouts"]["two shards + index"] = max(
        (o[n]["logits_tensor"] - base[n]["logits_tensor"]).abs().max().item() for n in o
    )
    d = os.path.join(tmp, "bf16")
    copy_with(tensors, d, dtype=torch.bfloat16)
    o = outputs(load_model(d).eval())
    report["bf16_max_logit_diff"] = max(
        (o[n]["logits_tensor"] - base[n]["logits_tensor"]).abs().max().item() for n in o
    )

    bad = dict(tensors)
    k = "multi_modal_projector.linear_1.weight"
    bad[k] = torch.zeros(3, 3)
    copy_with(bad, os.path.join(tmp, "shape"))
    report["errors"]["wrong shape"] = error_of(lambda: load_model(os.path.join(tmp, "shape")))
    missing = {kk: v for kk, v in tensors.items() if kk != "language_model.model.norm.weight"}
    copy_with(missing, os.path.join(tmp, "missing"))
    report["errors"]["missing key"] = error_of(lambda: load_model(os.path.join(tmp, "missing")))
    copy_with(tensors, os.path.join(tmp, "dtype"))
    path = os.path.join(tmp, "dtype", "model.safetensors")
    raw = open(path, "rb").read()
    raw = raw.replace(b'"dtype":"F32"', b'"dtype":"F8X"', 1)
    open(path, "wb").write(raw)
    report["errors"]["unsupported dtype"] = error_of(lambda: load_model(os.path.join(tmp, "dtype")))
print(json.dumps(report))

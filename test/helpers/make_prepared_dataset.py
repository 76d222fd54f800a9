"""Writes a small synthetic prepared dataset (psa-guard.prepared-dataset v1) for a model package.

usage: make_prepared_dataset.py --package PKG --out DIR [--train N] [--val N] [--shards K] [--seed S]

Concepts are learnable from the image alone: type t gives the noisy image one of 7 tints, level l
whitens the l rightmost columns of patches. The answer tokens depend
on (type, level) too, so the LM loss can fall as well. Shards get different padded lengths (L, Q)
so the trainer's re-padding is exercised.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from trainer.io import safetensors_files  # noqa: E402

# Type t tints the whole image: features averaged by attention still carry it.
PALETTE = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40), (220, 40, 220), (40, 220, 220), (128, 128, 128)]


def load_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def make_shard(n: int, extra_pad: int, gen: torch.Generator, spec: dict) -> dict[str, torch.Tensor]:
    size, patch, vocab = spec["size"], spec["patch"], spec["vocab"]
    first_free = 5  # ids 0..4 are <unk> <s> </s> <image> <pad> in the project's tokenizers
    safe_type = torch.randint(0, 7, (n,), generator=gen)
    safe_level = torch.randint(0, 4, (n,), generator=gen)
    pixels = torch.randn(n, 3, size, size, generator=gen) * 25
    for i in range(n):
        pixels[i] += torch.tensor(PALETTE[int(safe_type[i])], dtype=torch.float32).view(3, 1, 1)
        if int(safe_level[i]):  # level l: the l rightmost patch columns are white
            pixels[i, :, :, size - int(safe_level[i]) * patch :] = 255
    pixels = pixels.clamp(0, 255)
    rows, queries = [], []
    for i in range(n):
        prompt = torch.randint(
            first_free, vocab, (int(torch.randint(3, 9, (1,), generator=gen)),), generator=gen
        ).tolist()
        answer = [first_free + 1 + int(safe_type[i]), first_free + 10 + int(safe_level[i]), first_free + 20]
        ids = [spec["bos"]] + [spec["image_id"]] * spec["image_count"] + prompt + answer + [spec["eos"]]
        labels = [-100] * (len(ids) - len(answer) - 1) + answer + [spec["eos"]]
        rows.append((ids, labels))
        q = spec.get("query")
        if q is None:
            queries.append([spec["bos"]] + prompt)
        else:  # the query encoder's own ids: [CLS] prompt [SEP]
            ids_q = torch.randint(first_free, q["vocab"], (len(prompt),), generator=gen).tolist()
            queries.append([q["cls"]] + ids_q + [q["sep"]])
    seq = max(len(ids) for ids, _ in rows) + extra_pad
    qlen = max(len(q) for q in queries) + extra_pad
    out = {
        k: torch.full((n, seq), v, dtype=torch.int64)
        for k, v in (("input_ids", spec["pad"]), ("attention_mask", 0), ("labels", -100))
    }
    out["query_ids"] = torch.full(
        (n, qlen), spec["query"]["pad"] if spec.get("query") else spec["pad"], dtype=torch.int64
    )
    out["query_mask"] = torch.zeros(n, qlen, dtype=torch.int64)
    for i, ((ids, labels), q) in enumerate(zip(rows, queries)):
        out["input_ids"][i, : len(ids)] = torch.tensor(ids)
        out["attention_mask"][i, : len(ids)] = 1
        out["labels"][i, : len(ids)] = torch.tensor(labels)
        out["query_ids"][i, : len(q)] = torch.tensor(q)
        out["query_mask"][i, : len(q)] = 1
    out.update(pixels=pixels.round().to(torch.uint8), safe_type=safe_type, safe_level=safe_level)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=48)
    ap.add_argument("--val", type=int, default=0)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    config = load_json(os.path.join(args.package, "config.json"))
    psa = load_json(os.path.join(args.package, "psa.json"))
    pre = load_json(os.path.join(args.package, psa["image"]["preprocessor"]))
    text = config["text_config"]
    spec = {
        "size": config["vision_config"]["image_size"],
        "patch": config["vision_config"]["patch_size"],
        "vocab": text["vocab_size"],
        "bos": text["bos_token_id"],
        "eos": text["eos_token_id"],
        "pad": text.get("pad_token_id") or 0,
        "image_id": psa["image"]["image_token_id"],
        "image_count": psa["image"]["image_token_count"],
    }
    if "query_encoder" in psa:
        vocab = load_json(os.path.join(args.package, psa["query_encoder"]["tokenizer"]))["model"]["vocab"]
        qe = psa["query_encoder"]
        spec["query"] = {
            "vocab": len(vocab),
            "cls": vocab[qe["cls_token"]],
            "sep": vocab[qe["sep_token"]],
            "pad": vocab[qe["pad_token"]],
        }
    gen = torch.Generator().manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    splits = {}
    for split, count in (("train", args.train), ("val", args.val)):
        if count <= 0:
            continue
        k = max(1, min(args.shards, count))
        sizes = [count // k + (1 if i < count % k else 0) for i in range(k)]
        names = []
        for i, n in enumerate(sizes):
            name = f"{split}-{i:05d}.safetensors"
            safetensors_files.save(os.path.join(args.out, name), make_shard(n, 3 * i, gen, spec))
            names.append(name)
        splits[split] = {"count": count, "shards": names}
    manifest = {
        "format": "psa-guard.prepared-dataset",
        "version": 1,
        "image": {
            "height": spec["size"],
            "width": spec["size"],
            "rescale_factor": pre["rescale_factor"],
            "image_mean": pre["image_mean"],
            "image_std": pre["image_std"],
        },
        "splits": splits,
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    print(json.dumps({"dataset": os.path.abspath(args.out), "splits": {k: v["count"] for k, v in splits.items()}}))


if __name__ == "__main__":
    main()

"""Command line: /usr/bin/python3 -m trainer <command> ...

  build-random --out PKG [--size tiny|small|default] [--seed N] [--corpus F]   seeded random model, as a package
  export      --checkpoint DIR --out PKG [--tokens-a N --tokens-b N --seed S]
                                               checkpoint directory (ours or a LLaVA one) -> package
  reference   --package PKG < request.json     PyTorch outputs for parity checks (JSON on stdout)
  train       --job JOB.json                   two-stage PSA-VLM training (JSON-lines progress on stdout)
  convert-nsfwjs --model-dir DIR --out DIR     nsfwjs's MobileNetV2 (TF.js) -> model.safetensors + config.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .runtime_env import configure_torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build-random", help="build a seeded random package (tests, benchmarks)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", choices=["tiny", "small", "default"], default="tiny")
    p.add_argument("--corpus", default=None, help="text file, one text per line, added to the tokenizer's training text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="psa-tiny")
    p = sub.add_parser("export", help="export a checkpoint directory as a model package")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--tokens-a", type=int, default=64, help="safety tokens A when the checkpoint has none")
    p.add_argument("--tokens-b", type=int, default=64, help="safety tokens B when the checkpoint has none")
    p.add_argument("--seed", type=int, default=0, help="seed for safety modules the checkpoint lacks")
    p = sub.add_parser("reference", help="PyTorch outputs for a JSON request on stdin")
    p.add_argument("--package", required=True)
    p = sub.add_parser("train", help="run a two-stage training job (progress as JSON lines on stdout)")
    p.add_argument("--job", required=True, help="job file (JSON); see trainer/train/job.py")
    p = sub.add_parser("convert-nsfwjs", help="convert nsfwjs's MobileNetV2 (TF.js files) to PyTorch")
    p.add_argument("--model-dir", required=True, help="e.g. node_modules/nsfwjs/dist/models/mobilenet_v2")
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    configure_torch()
    if args.command == "build-random":
        from .build_random import build_random
        corpus = None
        if args.corpus:
            with open(args.corpus, encoding="utf-8") as f:
                corpus = [line.rstrip("\n") for line in f if line.strip()]
        print(json.dumps({"package": build_random(args.out, size=args.size, seed=args.seed, name=args.name, corpus=corpus)}))
    elif args.command == "export":
        from .checkpoint import CheckpointError
        from .export_cli import export_checkpoint
        name = args.name or os.path.basename(os.path.normpath(args.out))
        try:
            out = export_checkpoint(args.checkpoint, args.out, name, args.tokens_a, args.tokens_b, args.seed)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"package": out}))
    elif args.command == "reference":
        from .reference import run_reference
        json.dump(run_reference(args.package, json.load(sys.stdin)), sys.stdout)
    elif args.command == "train":
        from .train import train_cli
        return train_cli(args.job)
    elif args.command == "convert-nsfwjs":
        from .convert_nsfwjs import ConversionError, convert
        from .tfjs_artifacts import TfjsError
        try:
            print(json.dumps(convert(args.model_dir, args.out)))
        except (ConversionError, TfjsError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: /usr/bin/python3 -m trainer <command> ...

build-random --out PKG [--size tiny|small|default] [--seed N] [--corpus F]   seeded random model, as a package
             [--vocab-size N] [--word-vectors GLOVE.txt --lexicon-words N]   ... token embeddings from word vectors
             [--vision nsfwjs --nsfwjs-dir DIR | --nsfwjs-model-dir DIR]   ... with nsfwjs's pretrained MobileNetV2
             [--query-encoder DIR | --query-encoder-random]   ... a BERT query encoder (pretrained or tiny random)
export      --checkpoint DIR --out PKG [--tokens-a N --tokens-b N --seed S]
            [--external-data auto|always|never] [--fp16]
                                             checkpoint directory (ours or a LLaVA one) -> package
reshard     --package PKG [--max-shard-mib N]  the package's weights as shards of at most N MiB
                                             with an index (without N: one model.safetensors)
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
    p.add_argument(
        "--corpus", default=None, help="text file, one text per line, added to the tokenizer's training text"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="psa-tiny")
    p.add_argument(
        "--query-ocr",
        action="store_true",
        help="text OCR reads in the image joins the safety head's query (the runtime runs PP-OCRv4)",
    )
    p.add_argument("--vocab-size", type=int, default=None, help="tokenizer size (default: the size's own)")
    p.add_argument(
        "--word-vectors",
        default=None,
        help="GloVe text file (most frequent word first): its vectors start the token embeddings",
    )
    p.add_argument(
        "--lexicon-words",
        type=int,
        default=0,
        help="with --word-vectors: its N most frequent words join the tokenizer's training text",
    )
    p.add_argument("--word-vectors-source", default=None, help="how the package's provenance names the word vectors")
    p.add_argument(
        "--vision",
        choices=["clip", "nsfwjs"],
        default="clip",
        help="vision tower: random CLIP ViT, or nsfwjs's pretrained MobileNetV2 (frozen)",
    )
    p.add_argument("--nsfwjs-dir", default=None, help="with --vision nsfwjs: a convert-nsfwjs output directory")
    p.add_argument(
        "--nsfwjs-model-dir",
        default=None,
        help="with --vision nsfwjs: nsfwjs's TF.js files, converted on the fly "
        "(e.g. node_modules/nsfwjs/dist/models/mobilenet_v2)",
    )
    p.add_argument(
        "--query-encoder",
        default=None,
        help="a BERT checkpoint directory (config.json, model.safetensors, tokenizer.json, e.g. all-MiniLM-L6-v2): "
        "its token states are the safety head's query",
    )
    p.add_argument(
        "--query-encoder-random", action="store_true", help="a tiny seeded random BERT query encoder (tests)"
    )
    p = sub.add_parser("export", help="export a checkpoint directory as a model package")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--tokens-a", type=int, default=64, help="safety tokens A when the checkpoint has none")
    p.add_argument("--tokens-b", type=int, default=64, help="safety tokens B when the checkpoint has none")
    p.add_argument("--seed", type=int, default=0, help="seed for safety modules the checkpoint lacks")
    p.add_argument(
        "--external-data",
        choices=["auto", "always", "never"],
        default="auto",
        help="ONNX weights in <graph>.onnx_data files: always, never, or above 1.8 GB (auto)",
    )
    p.add_argument(
        "--fp16", action="store_true", help="also write <graph>_fp16.onnx (float16 inside, float32 at the edges)"
    )
    p = sub.add_parser("reference", help="PyTorch outputs for a JSON request on stdin")
    p.add_argument("--package", required=True)
    p = sub.add_parser("train", help="run a two-stage training job (progress as JSON lines on stdout)")
    p.add_argument("--job", required=True, help="job file (JSON); see trainer/train/job.py")
    p = sub.add_parser("bench-train", help="training throughput, MFU and peak memory on random weights")
    p.add_argument("--shape", choices=["7b", "1b", "small"], default="small")
    p.add_argument("--stages", default="stage1,stage2")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--text-tokens", type=int, default=96)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lora-r", type=int, default=256)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p = sub.add_parser("reshard", help="rewrite a package's weights as shards (or one file) and update psa.json")
    p.add_argument("--package", required=True)
    p.add_argument("--max-shard-mib", type=float, default=None, help="largest shard in MiB (default: one file)")
    p = sub.add_parser("convert-nsfwjs", help="convert nsfwjs's MobileNetV2 (TF.js files) to PyTorch")
    p.add_argument("--model-dir", required=True, help="e.g. node_modules/nsfwjs/dist/models/mobilenet_v2")
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    configure_torch()
    if args.command == "build-random":
        from .export.random_package import build_random

        if (args.vision == "nsfwjs") != (args.nsfwjs_dir is not None or args.nsfwjs_model_dir is not None) or (
            args.nsfwjs_dir is not None and args.nsfwjs_model_dir is not None
        ):
            parser.error(
                "--vision nsfwjs needs exactly one of --nsfwjs-dir and --nsfwjs-model-dir; --vision clip takes neither"
            )
        corpus = None
        if args.corpus:
            with open(args.corpus, encoding="utf-8") as f:
                corpus = [line.rstrip("\n") for line in f if line.strip()]
        from .convert.nsfwjs import ConversionError
        from .io.tfjs_artifacts import TfjsError
        from .modeling.config import ConfigError
        from .tokenizer.word_vectors import WordVectorsError

        if args.lexicon_words and not args.word_vectors:
            parser.error("--lexicon-words needs --word-vectors")
        if args.query_encoder and args.query_encoder_random:
            parser.error("--query-encoder and --query-encoder-random exclude each other")
        from .io.query_encoder import QueryEncoderError

        try:
            out = build_random(
                args.out,
                size=args.size,
                seed=args.seed,
                name=args.name,
                corpus=corpus,
                vision=args.vision,
                nsfwjs_dir=args.nsfwjs_dir,
                nsfwjs_model_dir=args.nsfwjs_model_dir,
                query_ocr=args.query_ocr,
                vocab_size=args.vocab_size,
                word_vectors=args.word_vectors,
                lexicon_words=args.lexicon_words,
                word_vectors_source=args.word_vectors_source,
                query_encoder="random" if args.query_encoder_random else args.query_encoder,
            )
        except (ConversionError, TfjsError, ConfigError, WordVectorsError, QueryEncoderError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"package": out}))
    elif args.command == "export":
        from .export.from_checkpoint import export_checkpoint
        from .io.hf_checkpoint import CheckpointError

        name = args.name or os.path.basename(os.path.normpath(args.out))
        try:
            out = export_checkpoint(
                args.checkpoint,
                args.out,
                name,
                args.tokens_a,
                args.tokens_b,
                args.seed,
                external_data=args.external_data,
                fp16=args.fp16,
            )
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"package": out}))
    elif args.command == "reshard":
        from .export.package import PackageError, reshard_package
        from .io.hf_checkpoint import CheckpointError

        if args.max_shard_mib is not None and not args.max_shard_mib > 0:
            parser.error("--max-shard-mib must be positive")
        limit = None if args.max_shard_mib is None else int(args.max_shard_mib * 2**20)
        try:
            print(json.dumps({"package": args.package, "weights": reshard_package(args.package, limit)}))
        except (PackageError, CheckpointError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    elif args.command == "reference":
        from .export.reference_outputs import run_reference

        json.dump(run_reference(args.package, json.load(sys.stdin)), sys.stdout)
    elif args.command == "train":
        from .train import train_cli

        return train_cli(args.job)
    elif args.command == "bench-train":
        from .train.bench import BenchSpec, bench_cli

        spec = BenchSpec(
            shape=args.shape,
            batch=args.batch,
            text_tokens=args.text_tokens,
            steps=args.steps,
            warmup=args.warmup,
            lora_r=args.lora_r,
            lora_alpha=args.lora_alpha,
            activation_checkpointing=args.activation_checkpointing,
            device=args.device,
        )
        return bench_cli(spec, [s.strip() for s in args.stages.split(",") if s.strip()])
    elif args.command == "convert-nsfwjs":
        from .convert.nsfwjs import ConversionError, convert
        from .io.tfjs_artifacts import TfjsError

        try:
            print(json.dumps(convert(args.model_dir, args.out)))
        except (ConversionError, TfjsError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

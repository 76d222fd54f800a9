"""Helper for test/tokenizer-bpe.test.ts: train, save, encode, print JSON.

usage: tokenizer_check.py OUT_DIR REFERENCE_DIR  (strings to encode come as JSON on stdin)
"""

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainer.tokenizer.bpe_training import default_corpus, save_tokenizer, tokenizer_config, train_bpe  # noqa: E402
from trainer.tokenizer.hf_tokenizer import HfTokenizer  # noqa: E402


def main() -> None:
    out_dir, ref_dir = Path(sys.argv[1]), Path(sys.argv[2])
    texts = json.load(sys.stdin)
    trained = train_bpe(default_corpus(), 600)
    again = train_bpe(default_corpus(), 600)
    save_tokenizer(out_dir, trained, tokenizer_config(model_max_length=512))
    tok = HfTokenizer.from_file(out_dir / "tokenizer.json")
    cases = [{"text": t, "ids": tok.encode(t), "decoded": tok.decode(tok.encode(t, add_bos=False))} for t in texts]

    reference = []
    has_ref = (ref_dir / "tokenizer.json").exists()
    ref = HfTokenizer.from_file(ref_dir / "tokenizer.json") if has_ref else None
    image_seq = json.loads((ref_dir / "config.json").read_text())["image_seq_length"] if has_ref else 0
    cases_json = json.loads((ref_dir / "reference" / "cases.json").read_text()) if has_ref else {"cases": []}
    for case in cases_json["cases"]:
        # The LLaVA processor expands each <image> into one token per image patch
        # before tokenizing; cases.json keeps the unexpanded text.
        text = case["text"].replace("<image>", "<image>" * image_seq)
        reference.append({"name": case["name"], "text": text, "ids": ref.encode(text), "expected": case["input_ids"]})

    json.dump(
        {
            "deterministic": json.dumps(trained) == json.dumps(again),
            "sha256": hashlib.sha256((out_dir / "tokenizer.json").read_bytes()).hexdigest(),
            "specials": {
                "bos": tok.bos_id,
                "eos": tok.eos_id,
                "pad": tok.pad_id,
                "image": tok.image_id,
                "vocab_size": tok.vocab_size,
            },
            "cases": cases,
            "reference": reference,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

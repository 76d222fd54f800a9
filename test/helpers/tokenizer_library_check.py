"""Helper for test/tokenizer-library.test.ts: the hand-written byte-level BPE encoder and
pre-tokenizer against Hugging Face `tokenizers` on the same tokenizers and texts; prints JSON.

usage: tokenizer_library_check.py REFERENCE_DIR  (extra texts come as JSON on stdin)
"""

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainer.taxonomy import hint_sentences  # noqa: E402
from trainer.tokenizer import bpe_training  # noqa: E402
from trainer.tokenizer.bpe_encoder import BpeTokenizer  # noqa: E402
from trainer.tokenizer.bytelevel import BYTE_ALPHABET, pre_tokenize  # noqa: E402
from trainer.tokenizer.hf_tokenizer import HfTokenizer  # noqa: E402
from tokenizers import pre_tokenizers  # noqa: E402  (found through trainer's .cache/python-deps)

_BYTE_LEVEL = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def library_pre_tokenize(text: str) -> list[str]:
    return [piece for piece, _ in _BYTE_LEVEL.pre_tokenize_str(text)]


def main() -> None:
    ref_dir = Path(sys.argv[1])
    texts = bpe_training.default_corpus() + hint_sentences() + json.load(sys.stdin)
    words = Counter(w.strip(".,;:!?\"()") for t in texts for w in t.split())
    lexicon = [w for w, _ in words.most_common() if w] + ["naïve", "café", "Ünïcödé", "日本語", "emoji🙂"]

    report = {"pre_tokenize": {"pieces": 0, "mismatches": []}, "alphabet": None, "training": {}, "encoding": {}}
    for text in texts + lexicon:
        old, new = pre_tokenize(text), library_pre_tokenize(text)
        report["pre_tokenize"]["pieces"] += len(old)
        if old != new:
            report["pre_tokenize"]["mismatches"].append({"text": text, "old": old, "library": new})
    report["alphabet"] = sorted(pre_tokenizers.ByteLevel.alphabet()) == BYTE_ALPHABET

    tokenizers = {}
    for vocab_size, lex in ((600, None), (2000, None), (1024, lexicon)):
        name = f"vocab {vocab_size}" + (" + lexicon" if lex else "")
        hand = bpe_training.train_bpe(texts, vocab_size, lexicon=lex)
        # The same training with the library's ByteLevel pre-tokenizer counting the words.
        saved = bpe_training.pre_tokenize
        bpe_training.pre_tokenize = library_pre_tokenize
        try:
            lib_pre = bpe_training.train_bpe(texts, vocab_size, lexicon=lex)
        finally:
            bpe_training.pre_tokenize = saved
        report["training"][name] = json.dumps(hand) == json.dumps(lib_pre)
        tokenizers[name] = (hand, bpe_training.tokenizer_config())
    if (ref_dir / "tokenizer.json").exists():
        tokenizers["hf-tiny-llava"] = (json.loads((ref_dir / "tokenizer.json").read_text()),
                                       json.loads((ref_dir / "tokenizer_config.json").read_text()))

    for name, (data, config) in tokenizers.items():
        old, new = BpeTokenizer.from_dict(data, config), HfTokenizer.from_dict(data, config)
        result = {"texts": 0, "tokens": 0, "id_mismatches": [], "decode_mismatches": [], "specials": None}
        for text in texts + lexicon + ["<image>" * 3 + "USER: <s>x</s><pad>"]:
            for add_bos in (True, False):
                a, b = old.encode(text, add_bos=add_bos), new.encode(text, add_bos=add_bos)
                result["texts"] += 1
                result["tokens"] += len(a)
                if a != b:
                    result["id_mismatches"].append({"text": text, "old": a, "library": b})
                if old.decode(a) != new.decode(a):
                    result["decode_mismatches"].append({"text": text, "old": old.decode(a), "library": new.decode(a)})
        result["specials"] = [(old.bos_id, old.eos_id, old.pad_id, old.image_id, old.vocab_size),
                              (new.bos_id, new.eos_id, new.pad_id, new.image_id, new.vocab_size)]
        report["encoding"][name] = result
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()

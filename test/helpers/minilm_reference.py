"""Test helper: sentence embeddings from transformers' own BertModel and BertTokenizer (a PyPI wheel
under .cache, independent of this project's code), as sentence-transformers computes them for
all-MiniLM-L6-v2 (modules.json: mean pooling over the attention mask, then L2 normalisation).

usage: minilm_reference.py MODEL_DIR HF_SITE < ["sentence", ...]  ->  {"ids": [[...]], "embeddings": [[...]]}
"""

import json
import os
import sys


def main(model_dir: str, site: str) -> None:
    sys.path.insert(0, site)
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import BertModel, BertTokenizer

    torch.set_num_threads(1)
    sentences = json.load(sys.stdin)
    tokenizer = BertTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
    model = BertModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(pooled, p=2, dim=1)
    ids = [row[: int(m.sum())].tolist() for row, m in zip(batch["input_ids"], batch["attention_mask"])]
    json.dump({"ids": ids, "embeddings": embeddings.tolist()}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""The converted MobileNetV2 run on the inputs scripts/nsfwjs/reference.ts wrote.

  PYTHONPATH=. /usr/bin/python3 scripts/nsfwjs/torch_outputs.py CONVERTED_DIR REFERENCE_DIR [TIMED_RUNS]

For every image of REFERENCE_DIR/report.json: probabilities on nsfwjs's own preprocessed tensor
(`<name>.input.f32`, so only the network is compared), probabilities on the PyTorch preprocessing
of the decoded RGB (`<name>.rgb.u8`) and how far that preprocessing is from nsfwjs's, and the
feature rows, written as `<name>.torch-features.f32`. Then the CPU time of one 224x224 forward,
with torch's thread count and with one thread.
Prints one JSON object.
"""

import json
import os
import statistics
import sys
import time

import numpy as np
import torch

from trainer.convert.nsfwjs import load_converted
from trainer.modeling.mobilenet import preprocess
from trainer.runtime_env import configure_torch


def read(path: str, dtype, shape) -> torch.Tensor:
    return torch.from_numpy(np.fromfile(path, dtype=dtype).reshape(shape))


@torch.no_grad()
def main(converted: str, ref_dir: str, timed_runs: int) -> dict:
    configure_torch()
    with open(os.path.join(ref_dir, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    model = load_converted(converted)
    cfg = model.config
    out = []
    for image in report["images"]:
        nhwc = read(os.path.join(ref_dir, image["input"]["file"]), "<f4", image["input"]["shape"])
        result = model(nhwc.permute(2, 0, 1).unsqueeze(0))
        rgb = read(os.path.join(ref_dir, image["rgb"]["file"]), np.uint8, image["rgb"]["shape"])
        ours = preprocess(rgb, cfg.image_size)
        from_rgb = model(ours)
        features = f"{image['name']}.torch-features.f32"
        result.feature_rows[0].contiguous().numpy().astype("<f4").tofile(os.path.join(ref_dir, features))
        out.append(
            {
                "name": image["name"],
                "probabilities": result.probs[0].tolist(),
                "top1": cfg.class_names[int(result.probs[0].argmax())],
                "featureRows": {"file": features, "shape": list(result.feature_rows.shape)},
                "fromRgb": {
                    "probabilities": from_rgb.probs[0].tolist(),
                    "inputMaxDiff": (ours[0].permute(1, 2, 0) - nhwc).abs().max().item(),
                },
            }
        )
    x = torch.rand(1, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    timings = {}
    # On a shared machine the configured thread count can lose to one thread: report both.
    for n in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n)
        for _ in range(2):
            model(x)
        runs = []
        for _ in range(timed_runs):
            started = time.perf_counter()
            model(x)
            runs.append((time.perf_counter() - started) * 1000)
        timings[str(n)] = {"median": statistics.median(runs), "min": min(runs), "runs": len(runs)}
    torch.set_num_threads(threads)
    return {
        "torch": torch.__version__,
        "threads": threads,
        "gridSize": cfg.grid_size,
        "numPatches": cfg.num_patches,
        "hiddenSize": cfg.hidden_size,
        "forwardMs": timings[str(threads)],
        "forwardMsByThreads": timings,
        "images": out,
    }


if __name__ == "__main__":
    json.dump(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 10), sys.stdout)

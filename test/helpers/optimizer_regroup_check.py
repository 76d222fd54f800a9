"""Helper for test/trainer.test.ts: a single-group AdamW state, regrouped for two groups, resumes
exactly. Prints JSON: max differences of the moments and of the parameters after one more step."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainer.train.resume_checkpoints import regroup_optimizer_state  # noqa: E402


def params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in [(3, 4), (5,), (2, 2)]]


def step(opt: torch.optim.Optimizer, ps: list[torch.nn.Parameter], k: int) -> None:
    opt.zero_grad()
    sum(((p * (i + k + 1)) ** 2).sum() for i, p in enumerate(ps)).backward()
    opt.step()


def main() -> None:
    old = params(0)
    opt_old = torch.optim.AdamW(old, lr=1e-2, weight_decay=0.1)
    for k in range(3):
        step(opt_old, old, k)
    saved = opt_old.state_dict()
    # The new layout: [p0, p2] then [p1]; lr_scale 1 everywhere, so the next step must agree.
    new = [torch.nn.Parameter(p.detach().clone()) for p in old]
    opt_new = torch.optim.AdamW(
        [{"params": [new[0], new[2]], "lr_scale": 1.0}, {"params": [new[1]], "lr_scale": 1.0}],
        lr=1e-2,
        weight_decay=0.1,
    )
    regrouped = regroup_optimizer_state(saved, [{"order": [0, 2], "lr_scale": 1.0}, {"order": [1], "lr_scale": 1.0}])
    opt_new.load_state_dict(regrouped)
    moments = max(
        float((opt_new.state[n]["exp_avg_sq"] - opt_old.state[o]["exp_avg_sq"]).abs().max()) for n, o in zip(new, old)
    )
    step(opt_old, old, 3)
    step(opt_new, new, 3)
    after = max(float((n - o).abs().max()) for n, o in zip(new, old))
    try:
        regroup_optimizer_state(saved, [{"order": [0, 1], "lr_scale": 1.0}])
        refused = ""
    except ValueError as e:
        refused = str(e)
    print(
        json.dumps(
            {
                "moments": moments,
                "after_step": after,
                "lr_scales": [g["lr_scale"] for g in opt_new.param_groups],
                "refused": refused,
            }
        )
    )


main()

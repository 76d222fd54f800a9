"""Training checkpoints: `workdir/checkpoints/<stage>-step<k>/`, written atomically, last 2 kept.

A checkpoint holds only what training changes (safety modules, LoRA weights), the optimizer, the
RNG states and state.json; the frozen base is reloaded from the job's `base`. It is written into a
hidden temporary directory and renamed into place, so a run killed mid-write (SIGKILL, OOM, node
loss) leaves either the previous checkpoints or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

import torch

from ..io import safetensors_files
from ..io.query_encoder import TOKENIZER_FILE as QUERY_TOKENIZER, stored_state

STAGE_INDEX = {"stage1": 0, "stage2": 1}
NAME = re.compile(r"^(stage[12])-step(\d+)$")
KEEP = 2


@dataclass
class Checkpoint:
    path: str
    state: dict[str, Any]

    def trainable(self) -> dict[str, torch.Tensor]:
        return safetensors_files.load(os.path.join(self.path, "trainable.safetensors"))

    def optimizer_and_rng(self) -> dict[str, Any]:
        tensors = {
            k: v.clone() for k, v in safetensors_files.load(os.path.join(self.path, "optimizer.safetensors")).items()
        }
        with open(os.path.join(self.path, "optimizer.json"), encoding="utf-8") as f:
            meta = json.load(f)
        zero_dim = set(meta["zero_dim"])
        state: dict[int, dict[str, Any]] = {}
        for name, t in tensors.items():
            if name.startswith("state."):
                _, idx, key = name.split(".", 2)
                state.setdefault(int(idx), {})[key] = t.reshape(()) if name in zero_dim else t
        for idx, values in meta["state"].items():
            state.setdefault(int(idx), {}).update(values)
        cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        return {
            "optimizer": {"state": state, "param_groups": meta["param_groups"]},
            "rng": {"cpu": tensors["rng.cpu"], "cuda": [tensors[k] for k in cuda]},
        }


def regroup_optimizer_state(saved: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
    """A single-group optimizer state (checkpoints written before the type classifier had its own
    learning-rate group) laid out for `groups`: the optimizer's current param_groups, whose
    parameters, taken in order, are the saved group's parameters in a new order. `order` in each
    group lists, per parameter, its position in the saved group. Hyperparameters come from the
    saved group; each new group keeps its own `lr_scale`."""
    if len(saved["param_groups"]) != 1:
        raise ValueError(f"expected a single saved parameter group, got {len(saved['param_groups'])}")
    old = saved["param_groups"][0]
    total = sum(len(g["order"]) for g in groups)
    if total != len(old["params"]) or sorted(i for g in groups for i in g["order"]) != list(range(total)):
        raise ValueError(f"the saved group has {len(old['params'])} parameters, the new groups {total}")
    state: dict[int, Any] = {}
    param_groups = []
    flat = 0
    for g in groups:
        ids = []
        for position in g["order"]:
            saved_id = old["params"][position]
            if saved_id in saved["state"]:
                state[flat] = saved["state"][saved_id]
            ids.append(flat)
            flat += 1
        param_groups.append(
            {**{k: v for k, v in old.items() if k != "params"}, "lr_scale": g["lr_scale"], "params": ids}
        )
    return {"state": state, "param_groups": param_groups}


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state as safetensors + JSON rather than a pickle: torch 1.13's weights_only
    unpickler rejects it, and unpickling without weights_only would execute code from the workdir."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    zero_dim: list[str] = []
    for idx, values in sd["state"].items():
        for key, v in values.items():
            if torch.is_tensor(v):  # AdamW's 0-d `step`: safetensors_files stores at least 1-d
                tensors[f"state.{idx}.{key}"] = v.reshape(1) if v.dim() == 0 else v
                if v.dim() == 0:
                    zero_dim.append(f"state.{idx}.{key}")
            else:
                scalars.setdefault(str(idx), {})[key] = v
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, t in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = t
    return tensors, {"state": scalars, "zero_dim": zero_dim, "param_groups": sd["param_groups"]}


def _root(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def save(
    workdir: str, state: dict[str, Any], trainable: dict[str, torch.Tensor], optimizer_state: dict[str, Any]
) -> str:
    root = _root(workdir)
    os.makedirs(root, exist_ok=True)
    name = f"{state['stage']}-step{state['step']}"
    dest = os.path.join(root, name)
    if os.path.isdir(dest):  # e.g. SIGTERM right after the periodic checkpoint of the same step
        return dest
    tmp = os.path.join(root, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    safetensors_files.save(os.path.join(tmp, "trainable.safetensors"), trainable)
    tensors, meta = _flatten_optimizer(optimizer_state)
    safetensors_files.save(os.path.join(tmp, "optimizer.safetensors"), tensors)
    with open(os.path.join(tmp, "optimizer.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    for fname in os.listdir(tmp):
        _fsync(os.path.join(tmp, fname))
    os.rename(tmp, dest)
    _fsync(root)
    prune(workdir, state["stage"])
    return dest


def _listed(workdir: str) -> list[tuple[int, int, str]]:
    root = _root(workdir)
    if not os.path.isdir(root):
        return []
    out = []
    for name in os.listdir(root):
        m = NAME.match(name)
        if m and os.path.isfile(os.path.join(root, name, "state.json")):
            out.append((STAGE_INDEX[m.group(1)], int(m.group(2)), os.path.join(root, name)))
    return sorted(out)


def prune(workdir: str, stage: str) -> None:
    mine = [path for s, _, path in _listed(workdir) if s == STAGE_INDEX[stage]]
    for path in mine[:-KEEP]:
        shutil.rmtree(path, ignore_errors=True)


def lock_workdir(workdir: str):
    """An exclusive lock held for the life of the process: a job redelivered to a second worker
    while the first still runs must not interleave checkpoints in the same workdir."""
    import fcntl

    os.makedirs(workdir, exist_ok=True)
    f = open(os.path.join(workdir, ".lock"), "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise RuntimeError(f"another trainer is running in {workdir} (it holds {workdir}/.lock)") from None
    return f


def remove_partial(workdir: str) -> None:
    """Temporary directories of a run that died while writing a checkpoint."""
    root = _root(workdir)
    if os.path.isdir(root):
        for name in os.listdir(root):
            if name.startswith(".tmp-"):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def latest(workdir: str) -> Checkpoint | None:
    listed = _listed(workdir)
    if not listed:
        return None
    path = listed[-1][2]
    with open(os.path.join(path, "state.json"), encoding="utf-8") as f:
        return Checkpoint(path, json.load(f))


FINAL_COPIES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
    "generation_config.json",
    "special_tokens_map.json",
)


def write_final(model: torch.nn.Module, base: str, workdir: str, training: dict[str, Any]) -> str:
    """`workdir/final`: a checkpoint directory `python -m trainer export` turns into a package."""
    out = os.path.join(workdir, "final")
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
        json.dump(model.config.to_dict(), f, indent=2)
    enc = model.config.psa.query_encoder if model.config.psa is not None else None
    safetensors_files.save(
        os.path.join(tmp, "model.safetensors"), stored_state(model.state_dict(), enc), {"format": "pt"}
    )
    for name in FINAL_COPIES + (QUERY_TOKENIZER,):
        if os.path.isfile(os.path.join(base, name)):
            os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
            shutil.copyfile(os.path.join(base, name), os.path.join(tmp, name))
    with open(os.path.join(tmp, "training.json"), "w", encoding="utf-8") as f:
        json.dump(training, f, indent=2)
    for name in os.listdir(tmp):
        _fsync(os.path.join(tmp, name))
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    return out

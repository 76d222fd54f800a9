"""The training job file: parsing and validation.

Every error names the offending field (`stage1.lr`, `base`) because the worker shows the message
to the user and does not retry (exit code 2). Unknown fields are rejected: a typo such as
`"epoch": 3` silently training with the default would be worse than failing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

STAGES = ("stage1", "stage2")
DEVICES = ("cpu", "cuda", "auto")


class UserInputError(ValueError):
    """A bad job file, dataset or base checkpoint: retrying cannot help, so the CLI exits with 2."""


class JobError(UserInputError):
    def __init__(self, field_name: str, problem: str):
        super().__init__(f"job field {field_name!r}: {problem}")
        self.field = field_name


# The defaults equal the API's (src/training/trainer-defaults.ts; test/trainer-defaults.test.ts
# compares them). The API writes every setting into the job file, so these apply to job files
# written by hand.
@dataclass
class LoraSpec:
    r: int = 16
    alpha: float = 16.0
    dropout: float = 0.05


@dataclass
class StageSpec:
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 8
    concept_weight: float = 10.0
    weight_decay: float = 0.0
    # Learning-rate multiplier of the type classifier (the safety head's last linear layer for types).
    type_head_lr_scale: float = 1.0
    # Top layers of the query encoder (psa_config.query_encoder) trained in this stage; 0: frozen.
    query_encoder_train_layers: int = 0
    # Learning-rate multiplier of those encoder layers: pretrained layers are tuned gently.
    query_encoder_lr_scale: float = 1.0
    lora: LoraSpec | None = None


@dataclass
class Job:
    base: str
    data: str
    workdir: str
    stages: list[str]
    stage1: StageSpec = field(default_factory=StageSpec)
    stage2: StageSpec = field(default_factory=lambda: StageSpec(lora=LoraSpec()))
    seed: int = 0
    checkpoint_every_steps: int = 50
    device: str = "auto"
    max_steps: int | None = None
    activation_checkpointing: bool = False

    def stage(self, name: str) -> StageSpec:
        return self.stage1 if name == "stage1" else self.stage2

    def fingerprint(self) -> dict[str, Any]:
        """What must not change between an interrupted run and its resumption (device and
        checkpoint frequency may: resuming a CUDA run on another node is fine; so may activation
        checkpointing, which changes memory, not results)."""
        d = asdict(self)
        for k in ("workdir", "device", "checkpoint_every_steps", "activation_checkpointing"):
            d.pop(k)
        for (
            stage
        ) in STAGES:  # at their defaults they are left out, as checkpoints written before they existed have them
            if d[stage]["query_encoder_train_layers"] == 0:
                d[stage].pop("query_encoder_train_layers")
            if d[stage]["query_encoder_lr_scale"] == 1.0:
                d[stage].pop("query_encoder_lr_scale")
        return d


def _number(obj: dict, key: str, where: str, kind: type, default, minimum=None, exclusive=False):
    value = obj.get(key, default)
    name = f"{where}{key}"
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise JobError(name, f"must be an integer, got {json.dumps(value)}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise JobError(name, f"must be a number, got {json.dumps(value)}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        raise JobError(name, f"must be {'>' if exclusive else '>='} {minimum}, got {value}")
    return kind(value)


def _check_keys(obj: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise JobError(where.rstrip(".") or "(job)", "must be a JSON object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise JobError(where + unknown[0], f"unknown field (known: {', '.join(sorted(allowed))})")
    return obj


def _stage(obj: Any, name: str) -> StageSpec:
    keys = {
        "epochs",
        "lr",
        "batch_size",
        "concept_weight",
        "weight_decay",
        "type_head_lr_scale",
        "query_encoder_train_layers",
        "query_encoder_lr_scale",
    } | ({"lora"} if name == "stage2" else set())
    o = _check_keys({} if obj is None else obj, keys, f"{name}.")
    w = f"{name}."
    d = StageSpec()
    spec = StageSpec(
        epochs=_number(o, "epochs", w, int, d.epochs, 1),
        lr=_number(o, "lr", w, float, d.lr, 0, exclusive=True),
        batch_size=_number(o, "batch_size", w, int, d.batch_size, 1),
        concept_weight=_number(o, "concept_weight", w, float, d.concept_weight, 0),
        weight_decay=_number(o, "weight_decay", w, float, d.weight_decay, 0),
        type_head_lr_scale=_number(o, "type_head_lr_scale", w, float, d.type_head_lr_scale, 0, exclusive=True),
        query_encoder_train_layers=_number(o, "query_encoder_train_layers", w, int, d.query_encoder_train_layers, 0),
        query_encoder_lr_scale=_number(
            o, "query_encoder_lr_scale", w, float, d.query_encoder_lr_scale, 0, exclusive=True
        ),
    )
    if name == "stage2":
        lo = _check_keys(o.get("lora") or {}, {"r", "alpha", "dropout"}, "stage2.lora.")
        dl = LoraSpec()
        dropout = _number(lo, "dropout", "stage2.lora.", float, dl.dropout, 0)
        if dropout >= 1:
            raise JobError("stage2.lora.dropout", f"must be < 1, got {dropout}")
        spec.lora = LoraSpec(
            r=_number(lo, "r", "stage2.lora.", int, dl.r, 1),
            alpha=_number(lo, "alpha", "stage2.lora.", float, dl.alpha, 0, exclusive=True),
            dropout=dropout,
        )
    return spec


def _directory(obj: dict, key: str, must_exist: bool) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise JobError(key, "must be a non-empty path string")
    if not os.path.isabs(value):
        raise JobError(key, f"must be an absolute path, got {value!r}")
    if must_exist and not os.path.isdir(value):
        raise JobError(key, f"directory {value!r} does not exist")
    return os.path.normpath(value)


def parse_job(raw: Any) -> Job:
    o = _check_keys(
        raw,
        {
            "base",
            "data",
            "workdir",
            "stages",
            "stage1",
            "stage2",
            "seed",
            "checkpoint_every_steps",
            "device",
            "max_steps",
            "activation_checkpointing",
        },
        "",
    )
    base = _directory(o, "base", True)
    if not os.path.isfile(os.path.join(base, "config.json")):
        raise JobError("base", f"{base!r} has no config.json (not a checkpoint directory)")
    data = _directory(o, "data", True)
    if not os.path.isfile(os.path.join(data, "manifest.json")):
        raise JobError("data", f"{data!r} has no manifest.json (not a prepared dataset)")
    stages = o.get("stages", list(STAGES))
    if not isinstance(stages, list) or not stages or any(s not in STAGES for s in stages):
        raise JobError("stages", f"must be a non-empty list of {list(STAGES)}, got {json.dumps(stages)}")
    if len(set(stages)) != len(stages) or stages != sorted(stages):
        raise JobError("stages", f"must list each stage once, stage1 before stage2, got {json.dumps(stages)}")
    device = o.get("device", "auto")
    if device not in DEVICES:
        raise JobError("device", f"must be one of {list(DEVICES)}, got {json.dumps(device)}")
    max_steps = o.get("max_steps")
    checkpointing = o.get("activation_checkpointing", Job.activation_checkpointing)
    if not isinstance(checkpointing, bool):
        raise JobError("activation_checkpointing", f"must be true or false, got {json.dumps(checkpointing)}")
    return Job(
        base=base,
        data=data,
        workdir=_directory(o, "workdir", False),
        stages=list(stages),
        stage1=_stage(o.get("stage1"), "stage1"),
        stage2=_stage(o.get("stage2"), "stage2"),
        seed=_number(o, "seed", "", int, Job.seed, 0),
        checkpoint_every_steps=_number(o, "checkpoint_every_steps", "", int, Job.checkpoint_every_steps, 1),
        device=device,
        max_steps=None if max_steps is None else _number(o, "max_steps", "", int, None, 1),
        activation_checkpointing=checkpointing,
    )


def load_job(path: str) -> Job:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as e:
        raise JobError("--job", f"cannot read {path!r}: {e.strerror}") from None
    except ValueError as e:
        raise JobError("--job", f"{path!r} is not valid JSON ({e})") from None
    return parse_job(raw)

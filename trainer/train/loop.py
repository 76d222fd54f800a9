"""The two PSA-VLM stages: losses, optimizer, schedule, checkpoints and progress events.

Stage 1 trains psa.* with the vision tower, projector and LLM frozen; stage 2 adds LoRA on every
decoder linear layer. A query encoder (psa.query_encoder.*) stays frozen in both unless the
stage's query_encoder_train_layers names its top layers; its projection (psa.query_proj) trains. Loss = LM loss + concept_weight * (CE(level) + CE(type)).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from ..io.hf_checkpoint import CheckpointError, load_model, read_config
from ..modeling.config import PsaConfig
from ..modeling.llava import PsaLlava
from . import resume_checkpoints as ckpt
from .data import Batch, Split, open_dataset
from .distributed import World, device_for as dist_device, init as init_world, wrap as wrap_ddp
from .job import Job, JobError, StageSpec, UserInputError
from .lora import apply_lora, merge_lora

log = logging.getLogger("trainer.train")
Emit = Callable[..., None]


class Interrupted(Exception):
    """A stop signal arrived; the checkpoint of the last finished step has been written."""


TYPE_HEAD_PREFIXES = ("psa.head.type_head.",)
QUERY_ENCODER_PREFIX = "psa.query_encoder."


def lr_factor(step: int, total: int) -> float:
    """Linear warmup over 3% of the steps (at least 1), then cosine decay; `step` counts from 0.

    The first step already trains (factor 1/warmup, not 0) and the last one still has lr > 0.
    """
    warmup = max(1, math.ceil(0.03 * total))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def epoch_seed(job: Job, stage: str, epoch: int) -> int:
    return job.seed * 1_000_003 + ckpt.STAGE_INDEX[stage] * 10_007 + epoch


def loss_terms(model: PsaLlava, b: Batch) -> dict[str, torch.Tensor]:
    """Sums over this batch (not means), so that ranks holding parts of one global batch can be
    normalised by the global counts: LM cross-entropy summed over label tokens, concept
    cross-entropies summed over rows, correct predictions, and the counts."""
    with torch.no_grad():  # the vision tower is frozen in both stages
        feats = model.vision_features(b.pixels)
    embeds = model.merge_image_features(b.input_ids, model.image_features(feats))
    positions = torch.arange(embeds.shape[1], device=embeds.device).expand(embeds.shape[0], -1)
    hidden, _ = model.language_model.hidden_states(embeds, b.attention_mask, positions)
    # Logits at t predict labels at t+1; the vocab projection runs only where there is a label.
    targets = b.labels[:, 1:]
    keep = targets != -100
    if bool(keep.any()):
        logits = model.language_model.lm_head(hidden[:, :-1][keep]).float()
        lm = F.cross_entropy(logits, targets[keep], reduction="sum")
    else:
        lm = hidden.sum() * 0.0
    level, kind = model.safety_logits(feats, model.query_embeds(b.query_ids, b.query_mask), b.query_mask)
    concept = F.cross_entropy(level.float(), b.safe_level, reduction="sum") + F.cross_entropy(
        kind.float(), b.safe_type, reduction="sum"
    )
    return {
        "lm_sum": lm,
        "concept_sum": concept,
        "tokens": keep.sum(),
        "rows": torch.tensor(len(b.safe_level)),
        "level_correct": (level.argmax(-1) == b.safe_level).sum(),
        "type_correct": (kind.argmax(-1) == b.safe_type).sum(),
    }


def losses(model: PsaLlava, b: Batch) -> dict[str, torch.Tensor]:
    """Mean losses and accuracies of one batch on one process."""
    t = loss_terms(model, b)
    rows = float(t["rows"])
    return {
        "lm_loss": t["lm_sum"] / t["tokens"].clamp(min=1),
        "concept_loss": t["concept_sum"] / rows,
        "level_acc": t["level_correct"].float() / rows,
        "type_acc": t["type_correct"].float() / rows,
    }


class Objective(torch.nn.Module):
    """The training objective as a module, so that DistributedDataParallel sees its forward."""

    def __init__(self, model: PsaLlava):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return loss_terms(self.model, batch)


class Trainer:
    def __init__(self, job: Job, emit: Emit, stop_requested: Callable[[], bool], world: World | None = None):
        self.job, self.emit, self.stop_requested = job, emit, stop_requested
        self.world = world or World()
        self.device = dist_device(self.world, pick_device(job.device))
        cuda = self.device.type == "cuda"
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
            if cuda and torch.cuda.is_bf16_supported()
            else contextlib.nullcontext
        )
        try:
            cfg = read_config(job.base)
        except CheckpointError as e:
            raise JobError("base", str(e)) from None
        if cfg.psa is None:
            cfg.psa = PsaConfig()  # a plain LLaVA base: fresh safety modules, seeded below
        torch.manual_seed(job.seed)
        try:
            self.model = load_model(job.base, cfg)
        except CheckpointError as e:
            raise JobError("base", str(e)) from None
        self.model.language_model.gradient_checkpointing = job.activation_checkpointing
        for stage in job.stages:  # a bad query_encoder_train_layers fails before any data is read
            self._encoder_trainable(stage, job.stage(stage))
        self.train, self.val, _ = open_dataset(job.data, cfg, self.model.image_token_count)
        self.model.to(self.device)
        init_world(self.world, self.device)
        self.summary: dict = {"stages": {}}

    def run(self) -> str:
        job, world = self.job, self.world
        if world.main:  # one writer per workdir: rank 0 holds the lock and writes checkpoints
            self._lock = ckpt.lock_workdir(job.workdir)
            ckpt.remove_partial(job.workdir)
        world.barrier()
        resume = ckpt.latest(job.workdir)
        completed: list[str] = []
        if resume is not None:
            mismatch = [k for k, v in job.fingerprint().items() if resume.state.get("job", {}).get(k) != v]
            if mismatch:
                raise JobError(
                    mismatch[0],
                    f"differs from the run whose checkpoints are in {job.workdir}/checkpoints; "
                    "use a new workdir or the same job",
                )
            if resume.state["stage"] == "stage2":
                self._lora()
            self._load_trainable(resume)
            completed = list(resume.state["completed"])
            self.summary = resume.state.get("summary") or self.summary
            log.info("resuming from %s", resume.path)
        for stage in job.stages:
            if stage in completed:
                self.emit(
                    event="stage_done",
                    stage=stage,
                    steps=self.summary["stages"].get(stage, {}).get("steps"),
                    skipped=True,
                )
                continue
            same = resume if resume is not None and resume.state["stage"] == stage else None
            self._stage(stage, job.stage(stage), same, completed)
            completed.append(stage)
        out = ""
        if world.main:
            merged = merge_lora(self.model)
            log.info("merged LoRA into %d linear layers", merged)
            out = ckpt.write_final(self.model.cpu(), job.base, job.workdir, {**self.summary, "job": job.fingerprint()})
            self.emit(event="done", output=out)
        world.barrier()
        return out

    def _lora(self) -> list[str]:
        spec = self.job.stage2.lora
        return apply_lora(self.model, spec.r, spec.alpha, spec.dropout, seed=self.job.seed + 1)

    def _load_trainable(self, c: ckpt.Checkpoint) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, t in c.trainable().items():
                if name not in params:
                    raise UserInputError(f"{c.path}: checkpoint tensor {name!r} is not in the model")
                params[name].copy_(t)

    def _stage(self, stage: str, spec: StageSpec, resume: ckpt.Checkpoint | None, completed: list[str]) -> None:
        job, model, world = self.job, self.model, self.world
        lora = set(self._lora()) if stage == "stage2" else set()
        encoder_trained = self._encoder_trainable(stage, spec)
        for name, p in model.named_parameters():
            in_encoder = name.startswith(QUERY_ENCODER_PREFIX)
            p.requires_grad_(
                (name.startswith("psa.") and not in_encoder)
                or name in lora
                or (in_encoder and name.startswith(encoder_trained))
            )
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        params = [p for _, p in named]
        if spec.batch_size < world.size:
            raise JobError(
                f"{stage}.batch_size", f"must be at least the number of processes ({world.size}), got {spec.batch_size}"
            )
        objective = Objective(model)
        frozen = [f"model.{n}" for n, p in model.named_parameters() if not p.requires_grad] + [
            f"model.{n}" for n, _ in model.named_buffers()
        ]
        step_fn = wrap_ddp(objective, world, self.device, frozen)
        # The type classifier may learn faster than the rest (type_head_lr_scale): the words that tell
        # the types apart are a small part of its pooled input, so at the base rate it lags behind
        # the layers feeding it and leans on the most common type.
        # Trained encoder layers get a group of their own only at a scale other than 1, so that runs
        # that did not set it keep the groups their checkpoints were written with.
        group_of = [
            1
            if n.startswith(TYPE_HEAD_PREFIXES)
            else 2
            if n.startswith(QUERY_ENCODER_PREFIX) and spec.query_encoder_lr_scale != 1.0
            else 0
            for n, _ in named
        ]
        scales = (1.0, spec.type_head_lr_scale, spec.query_encoder_lr_scale)
        # Optimizer groups as positions in `named` (the order a single-group checkpoint saved).
        layout = [
            g
            for g in ({"order": [i for i, k in enumerate(group_of) if k == j], "lr_scale": scales[j]} for j in range(3))
            if g["order"]
        ]
        groups = [{"params": [params[i] for i in g["order"]], "lr_scale": g["lr_scale"]} for g in layout]
        opt = torch.optim.AdamW(groups, lr=spec.lr, weight_decay=spec.weight_decay)
        per_epoch = self.train.steps_per_epoch(spec.batch_size)
        total = per_epoch * spec.epochs if job.max_steps is None else min(per_epoch * spec.epochs, job.max_steps)
        start = 0
        if resume is not None:
            extra = resume.optimizer_and_rng()
            saved = extra["optimizer"]
            if (
                len(saved["param_groups"]) == 1 and len(layout) > 1
            ):  # written before the type classifier had its own group
                saved = ckpt.regroup_optimizer_state(saved, layout)
            opt.load_state_dict(saved)
            ckpt.set_rng_state(extra["rng"])
            start = resume.state["step"]
        else:
            torch.manual_seed(epoch_seed(job, stage, -1))  # LoRA dropout draws from the global RNG
        self.emit(
            event="start",
            stage=stage,
            total_steps=total,
            epochs=spec.epochs,
            resumed_from=start if resume is not None else None,
            processes=world.size,
        )
        model.train()
        order, order_epoch = None, -1
        for step in range(start, total):
            epoch, pos = divmod(step, per_epoch)
            if epoch != order_epoch:
                order, order_epoch = self.train.order(epoch_seed(job, stage, epoch)), epoch
            rows = order[pos * spec.batch_size : (pos + 1) * spec.batch_size].tolist()
            t0 = time.perf_counter()
            lr = spec.lr * lr_factor(step, total)
            for g in opt.param_groups:
                g["lr"] = lr * g["lr_scale"]
            mine, weight = world.shard(rows)
            batch = self.train.batch(mine).to(self.device)
            with self.autocast():
                terms = step_fn(batch)
            # Global counts first, so every rank divides by the whole batch's tokens and rows.
            counts = world.all_sum(
                torch.stack(
                    [
                        terms["tokens"].to(self.device, torch.float64) * weight,
                        terms["rows"].to(self.device, torch.float64) * weight,
                    ]
                )
            )
            tokens, n_rows = float(counts[0].clamp(min=1)), float(counts[1])
            lm, concept = terms["lm_sum"] * (weight / tokens), terms["concept_sum"] * (weight / n_rows)
            loss = lm + spec.concept_weight * concept
            opt.zero_grad(set_to_none=True)
            (loss * world.size).backward()  # DDP averages gradients over ranks: this makes it their sum
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            report = world.all_sum(
                torch.stack(
                    [
                        loss.detach().double(),
                        lm.detach().double(),
                        concept.detach().double(),
                        terms["level_correct"].to(self.device, torch.float64) * weight,
                        terms["type_correct"].to(self.device, torch.float64) * weight,
                        torch.tensor(float(self.stop_requested()), dtype=torch.float64, device=self.device),
                    ]
                )
            )
            loss_value = float(report[0])
            if not math.isfinite(loss_value):  # stepping would poison the weights and every later checkpoint
                raise FloatingPointError(f"{stage} step {step + 1}: loss is {loss_value}; lower the learning rate")
            opt.step()
            done = step + 1
            self.emit(
                event="step",
                stage=stage,
                step=done,
                total_steps=total,
                epoch=epoch + 1,
                loss=loss_value,
                lm_loss=float(report[1]),
                concept_loss=float(report[2]),
                level_acc=float(report[3]) / n_rows,
                type_acc=float(report[4]) / n_rows,
                lr=lr,
                examples_per_s=len(rows) / max(time.perf_counter() - t0, 1e-9),
            )
            stop = float(report[5]) > 0  # any rank asked to stop: all stop after this step
            if done % job.checkpoint_every_steps == 0 or pos + 1 == per_epoch or done == total or stop:
                finished = done == total
                if finished:
                    self.summary["stages"][stage] = {"steps": total, "last_loss": loss_value}
                if world.main:
                    state = {
                        "stage": stage,
                        "step": done,
                        "epoch": done // per_epoch,
                        "position": done % per_epoch,
                        "steps_per_epoch": per_epoch,
                        "total_steps": total,
                        "completed": completed + ([stage] if finished else []),
                        "summary": self.summary,
                        "job": job.fingerprint(),
                    }
                    path = ckpt.save(job.workdir, state, {n: p.detach() for n, p in named}, opt.state_dict())
                    self.emit(event="checkpoint", stage=stage, step=done, path=path)
                world.barrier()
            if stop:
                raise Interrupted(f"stopped after {stage} step {done}; checkpoint written")
        self.emit(event="stage_done", stage=stage, steps=total)
        if self.val is not None and world.main:
            metrics = self.evaluate(self.val, spec.batch_size)
            self.summary["stages"][stage]["val"] = metrics
            self.emit(event="eval", stage=stage, split="val", **metrics)
        world.barrier()

    def _encoder_trainable(self, stage: str, spec: StageSpec) -> tuple[str, ...]:
        """Name prefixes of the query encoder's layers this stage trains (its top N)."""
        n = spec.query_encoder_train_layers
        enc = self.model.config.psa.query_encoder
        if n == 0:
            return ()
        if enc is None:
            raise JobError(
                f"{stage}.query_encoder_train_layers", "the base model has no query encoder (psa_config.query_encoder)"
            )
        if n > enc.num_hidden_layers:
            raise JobError(
                f"{stage}.query_encoder_train_layers",
                f"must be at most the encoder's {enc.num_hidden_layers} layers, got {n}",
            )
        return tuple(
            f"{QUERY_ENCODER_PREFIX}encoder.layer.{i}." for i in range(enc.num_hidden_layers - n, enc.num_hidden_layers)
        )

    @torch.no_grad()
    def evaluate(self, split: Split, batch_size: int) -> dict[str, float]:
        self.model.eval()
        sums = {"lm_loss": 0.0, "concept_loss": 0.0, "level_acc": 0.0, "type_acc": 0.0}
        for first in range(0, len(split), batch_size):
            rows = list(range(first, min(first + batch_size, len(split))))
            with self.autocast():
                m = losses(self.model, split.batch(rows).to(self.device))
            for k in sums:
                sums[k] += float(m[k]) * len(rows)
        self.model.train()
        return {"examples": len(split), **{k: v / len(split) for k, v in sums.items()}}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise JobError("device", "'cuda' was requested but torch sees no CUDA device")
    return torch.device(name)

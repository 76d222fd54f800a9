"""Data-parallel training across processes started by `python -m torch.distributed.run`.

The launcher sets RANK, LOCAL_RANK and WORLD_SIZE; one process (one GPU, or one CPU process with
the gloo backend) per rank. Every rank holds the whole model; each global batch is split by rows
across ranks, and losses are normalised by the global token and row counts so that the gradients
DDP averages equal those of one process running the whole batch. Rank 0 alone reports progress,
writes checkpoints and the final output.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, rows: list[int]) -> tuple[list[int], float]:
        """This rank's rows of a global batch, and the weight of its loss (0 for a rank left with
        no row of a short last batch: it still runs one row so that every rank joins the
        gradient all-reduce, but contributes nothing)."""
        mine = rows[self.rank :: self.size]
        return (mine, 1.0) if mine else (rows[:1], 0.0)

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def all_max(self, values: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return values

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def world_from_env() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init(world: World, device: torch.device) -> None:
    """Joins the process group: NCCL between GPUs, gloo on CPU."""
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(minutes=int(os.environ.get("PSA_DIST_TIMEOUT_MIN", "30")))
    dist.init_process_group(backend=backend, timeout=timeout)


def device_for(world: World, device: torch.device) -> torch.device:
    if device.type == "cuda" and world.distributed:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def wrap(module: torch.nn.Module, world: World, device: torch.device, frozen: list[str]) -> torch.nn.Module:
    """DDP over the trainable parameters only: frozen ones are neither broadcast nor reduced."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    DDP._set_params_and_buffers_to_ignore_for_model(module, frozen)
    ids: list[int] | None = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, broadcast_buffers=False)

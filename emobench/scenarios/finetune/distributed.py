"""The fine-tune across processes: torchrun's environment read, the process group, and the few
collectives the recipe needs (data-parallel training with DistributedDataParallel).

`torchrun --nproc-per-node N -m emobench finetune ...` starts N copies of the command with
WORLD_SIZE, RANK and LOCAL_RANK set; each joins one process group (gloo on CPU, nccl on CUDA,
device cuda:LOCAL_RANK) and trains the same recipe on its share of the training split:

- the global batch is --batch-size, split evenly: each process takes --batch-size / WORLD_SIZE
  (a batch that does not divide is refused before anything trains); the learning rate is the
  recipe's, unchanged, because the global batch is unchanged (DDP averages the processes'
  gradients, so one step is the step a single process takes on the whole global batch);
- the training order is one permutation per (seed, epoch), the same for every world size;
  process r takes its r-th of every W indices (DistributedSampler, drop_last=False: when the
  training split does not divide by W the sampler repeats its first few images, at most W-1
  per epoch, so every process takes as many steps);
- the train loss is all-reduced (each step's loss x images and images, summed over processes);
  validation, the test score and every file (checkpoints, the report) are rank 0's alone.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from emobench.errors import DeviceUnavailable, MeasurementError, UsageError
from emobench.scenarios.finetune.settings import SINGLE, World, per_process_batch, world_from_env

__all__ = [
    "SINGLE",
    "World",
    "all_gather_floats",
    "all_sum",
    "barrier",
    "check_nproc",
    "device_for",
    "per_process_batch",
    "process_group",
    "world_from_env",
]


def device_for(world: World, device: torch.device) -> tuple[World, torch.device]:
    """The backend and this process's device: cuda:LOCAL_RANK with nccl, the CPU with gloo;
    one process keeps its device as given."""
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if world.local_rank >= count:
            raise DeviceUnavailable(
                f"LOCAL_RANK {world.local_rank}: this machine has {count} CUDA device(s); "
                "use --nproc-per-node at most the number of GPUs"
            )
        device = torch.device("cuda", world.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    return World(world.size, world.rank, world.local_rank, backend), device


def check_nproc(nproc: int, device_spec: str) -> None:
    """Before torchrun is started: on CUDA (named, or auto with a GPU) one GPU per process."""
    from emobench.device import resolve_device

    device = resolve_device(device_spec)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise UsageError(
            f"--nproc {nproc}: this machine has {torch.cuda.device_count()} CUDA device(s); "
            "use at most one process per GPU"
        )


COLLECTIVE_TIMEOUT_S = 2 * 3600  # the longest rank 0's evaluation may keep the others waiting


@contextmanager
def process_group(world: World) -> Iterator[None]:
    """Join the process group for the block (from torchrun's MASTER_ADDR/MASTER_PORT), and
    leave it however the block ends: a rank that raises leaves, so the others' collectives
    fail instead of waiting forever."""
    if not world.distributed:
        yield
        return
    # rank 0 alone validates, saves and scores the test split while the others wait at a
    # barrier: on a large data set that outlasts the default collective timeout (10 min)
    dist.init_process_group(
        backend=world.backend,
        rank=world.rank,
        world_size=world.size,
        timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
    )
    try:
        yield
    except Exception as exc:
        if not _broken_collective(exc):
            raise  # this rank's own error, as it is
        raise MeasurementError(
            f"rank {world.rank} of {world.size}: another process of the fine-tune stopped "
            f"(the {world.backend} collective broke: {_first_line(exc)}); that process's own "
            "error says why; no report was written"
        ) from exc
    finally:
        dist.destroy_process_group()


def _broken_collective(exc: BaseException) -> bool:
    """A collective that failed because a peer left (gloo: the connection closed; nccl: a
    DistError), not this rank's own error."""
    text = str(exc).lower()
    return isinstance(exc, getattr(dist, "DistError", ())) or any(
        s in text for s in ("connection closed by peer", "connection reset by peer")
    )


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text.split("] ", 1)[-1] if text.startswith("[") else text  # gloo's source location
    return text.split(". ")[0][:160]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """values summed over the processes (in place on a copy); itself on one process."""
    if not world.distributed:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_floats(value: float, world: World, device: torch.device) -> list[float]:
    """One number from each process, in rank order."""
    if not world.distributed:
        return [value]
    mine = torch.tensor([value], dtype=torch.float64, device=device)
    every = [torch.zeros_like(mine) for _ in range(world.size)]
    dist.all_gather(every, mine)
    return [float(t) for t in every]

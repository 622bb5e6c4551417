"""Many processes through ``torchrun``: rank and device from the environment, never a home-made launcher.

``torchrun --nproc_per_node=N -m aknet_cli train CONFIG`` (and multi-node launches with
``--nnodes`` / ``--rdzv_endpoint``) set ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`setup` reads them, initialises the process group (NCCL on GPUs, gloo on CPUs) and
picks the device. Without them the run is a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from ..exceptions import AKNetError, ConfigError, RankZeroDecided

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


DEVICES = ("auto", "cpu", "cuda")


def pick_device(requested: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without a GPU is a user error."""
    if requested not in DEVICES:
        raise ConfigError(f"--device {requested!r} is not a device aknet runs on; choose one of {', '.join(DEVICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is visible; use --device cpu")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def setup(requested_device: str = "auto") -> DistContext:
    """Initialise the process group when launched by torchrun; return this process's context."""
    device = pick_device(requested_device)
    if not launched_by_torchrun():
        return DistContext(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, local_rank=local_rank, world_size=world, device=device)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a few scalars over all processes (float64, so counts stay exact)."""
    if not ctx.distributed:
        return list(values)
    device = ctx.device if ctx.device.type == "cuda" else torch.device("cpu")
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def agree(ok: bool, ctx: DistContext) -> bool:
    """Whether ``ok`` holds on every process: a decision all ranks take together, so that none
    raises alone while the others wait for it in the next collective."""
    return all_reduce_sum([1.0 if ok else 0.0], ctx)[0] == ctx.world_size


def decided_by_rank0(decide: Callable[[], T], ctx: DistContext) -> T:
    """``decide()`` run on rank 0 alone, its answer (or its error) given to every rank.

    A decision about files (does ``last.pt`` exist, which checkpoint to resume, is there a
    ``best.pt`` to carry) taken by each rank on its own view of a filesystem splits the ranks
    wherever the views differ (a stale NFS cache, a disk not shared between nodes): some
    resume, others start fresh, and they hang in mismatched collectives. Decided once and
    broadcast, every rank takes the same branch; whether each rank can then *read* what was
    decided is a separate check (``agree``).

    Raises:
        AKNetError: on rank 0 the one ``decide`` raised, on the others a
            :class:`RankZeroDecided` with its message. Any other exception of ``decide`` is
            re-raised on rank 0 and reported to the others as an :class:`AKNetError`.
    """
    if not ctx.distributed:
        return decide()
    box: list[Any] = [None]
    error: BaseException | None = None
    if ctx.is_main:
        try:
            box[0] = ("value", decide())
        except Exception as exc:  # every rank must reach the broadcast, whatever rank 0 met
            error = exc
            box[0] = ("error", exc if isinstance(exc, AKNetError) else AKNetError(f"rank 0 failed: {exc!r}"))
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "value":
        return value
    if ctx.is_main:
        raise error
    raise RankZeroDecided(str(value))


def all_gather_objects(obj, ctx: DistContext) -> list:
    """Every process's ``obj``, in rank order (for predictions gathered at evaluation)."""
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def average_batchnorm_buffers(model: torch.nn.Module, ctx: DistContext) -> None:
    """Average every BatchNorm's running mean and variance over the processes (timm's
    ``distribute_bn``): each rank's statistics describe only the clips it saw (DDP is built
    without ``broadcast_buffers``, so they are its own). A collective: every rank calls it at
    the same point."""
    if not ctx.distributed:
        return
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buffer in (module.running_mean, module.running_var):
                if buffer is not None:
                    dist.all_reduce(buffer)
                    buffer.div_(ctx.world_size)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()

"""Random-number-generator states of torch, CUDA, NumPy and Python, as checkpointable tensors.

Every process (rank) draws from its own streams: :func:`seed_everything` seeds rank ``r`` with
``seed + r`` (as timm does), so dropout masks differ between GPUs, and rank 0 of a 1-process
run is seeded exactly as before. A checkpoint holds every rank's state (:func:`gather`), each
rank restores its own (:func:`restore_rank`), and a rank's CUDA state is that of the one GPU
it uses, so a checkpoint written on an 8-GPU node resumes on a 1-GPU machine.

``last.pt`` is read with ``torch.load(weights_only=True)``, which accepts tensors and plain
containers but not NumPy arrays, so NumPy's Mersenne-Twister key travels as an int64 tensor.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from .distributed import DistContext, all_gather_objects


def capture() -> dict[str, Any]:
    """The current state of every generator a training step of this process may draw from."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def restore(state: dict[str, Any]) -> None:
    """Put every generator of this process back where :func:`capture` found it."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if isinstance(cuda, (list, tuple)):  # checkpoints before per-rank states: rank 0's GPUs, GPU 0 first
        cuda = cuda[0] if cuda else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed this process's generators with ``seed + rank``."""
    seed = seed + rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def gather(ctx: DistContext) -> dict[str, Any]:
    """Every rank's :func:`capture`, in rank order (a collective: call it on every rank)."""
    return {"world_size": ctx.world_size, "ranks": all_gather_objects(capture(), ctx)}


def restore_rank(saved: dict[str, Any], ctx: DistContext, *, seed: int) -> str | None:
    """Restore this rank's saved streams; see :func:`gather`.

    With another number of processes than the checkpoint's, rank ``r`` restores the state
    rank ``r`` saved where there is one and starts from ``seed + r`` where there is none: the
    data order still resumes exactly (it depends on the global step only), the dropout streams
    cannot.

    Returns:
        A note when the world size changed, else ``None``.
    """
    ranks = saved["ranks"] if "ranks" in saved else [saved]  # before per-rank states: rank 0's only
    if ctx.rank < len(ranks):
        restore(ranks[ctx.rank])
    else:
        seed_everything(seed, ctx.rank)
    if len(ranks) == ctx.world_size:
        return None
    return (f"the checkpoint holds the random streams of {len(ranks)} process(es), this run has {ctx.world_size}: "
            f"the data order and augmentations resume exactly, the dropout streams do not (not bit-identical)")

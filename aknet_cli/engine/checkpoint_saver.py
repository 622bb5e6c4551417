"""Writing a run's ``last.pt`` and ``best.pt``: decided on every rank, written by rank 0.

Every rank checks that the weights are finite and the ranks agree before anything is written,
so a diverged run stops on all of them at once (a check on rank 0 alone left the others
waiting in a collective until their timeout). Every rank's random streams are gathered into
``last.pt`` (:func:`~aknet_cli.engine.rng.gather`), so each resumes its own.
"""

from __future__ import annotations

from typing import Any

import torch

from . import rng
from ..checkpoints.format import save_checkpoint
from .distributed import agree, all_gather_objects, average_batchnorm_buffers
from .resume import torchrun_job
from .state import Position, Run, TrainingDiverged


def weights_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def gather_meters(meters: dict[str, float], ctx) -> dict[str, Any]:
    """Every rank's running sums of a partly done epoch, in rank order (a collective)."""
    return {"world_size": ctx.world_size, "ranks": all_gather_objects(dict(meters), ctx)}


def train_state(run: Run, position: Position, epoch: int, step: int, rng_states: dict[str, Any],
                meters: dict[str, Any]) -> dict[str, Any]:
    """What an exact resume needs (see :data:`~aknet_cli.engine.resume.STATE_KEYS`)."""
    return {
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(), "epoch": epoch, "step_in_epoch": step,
        "sampler": {"seed": run.sampler.seed, "epoch": epoch}, "history": position.history,
        "best_top1": position.best, "meters": meters, "rng": rng_states,
    }


def save(run: Run, name: str, position: Position, *, epoch: int, step: int, with_state: bool) -> None:
    """Write ``WORK/name`` (atomically, rank 0) after every rank agreed the weights are finite.

    A collective: call it on every rank at the same point.

    Raises:
        TrainingDiverged: on every rank, when any rank's weights are not finite; the file on
            disk keeps the last good state.
    """
    if not agree(weights_finite(run.model), run.ctx):
        raise TrainingDiverged(f"the weights became NaN/inf at epoch {epoch + 1}, step {step}; "
                               f"{run.work_dir / name} keeps the last good state; lower optim.lr")
    # every rank's BatchNorm statistics into the file, and every rank holding what it says
    # (DDP runs without broadcast_buffers): a resume continues exactly
    average_batchnorm_buffers(run.model, run.ctx)
    rng_states = rng.gather(run.ctx) if with_state else None
    meters = gather_meters(position.meters, run.ctx) if with_state else None
    if not run.ctx.is_main:
        return
    cfg = run.cfg
    save_checkpoint(
        run.work_dir / name, kind=run.kind, config=run.description, state_dict=run.model.state_dict(),
        meta={"epoch": epoch, "step_in_epoch": step, "best_top1": position.best, "train_config": cfg.to_dict(),
              "dataset": str(cfg.data.dataset), "torchrun_job": torchrun_job()},
        train_state=train_state(run, position, epoch, step, rng_states, meters) if with_state else None,
    )

"""Resuming a run: from which checkpoint, whether this config may resume it, and how.

A resumed run must be the run that stopped, continued. So its config may differ from the one
recorded in the checkpoint only in

* run-time keys that do not change what is computed (:data:`RUNTIME_KEYS`: loader workers,
  evaluation and checkpoint cadence, the device), and keys that only matter at a fresh start
  (:data:`FRESH_START_KEYS`: the stage-1 checkpoint, pretrained weights, BN recalibration);
* the learning-rate schedule (:data:`SCHEDULE_KEYS`): the new ``lr``, milestones, ``gamma``,
  warm-up and epoch count take effect **from the step the run resumes at**, as if the new
  schedule had been the run's from the start (the steps already taken keep the lr they had);

every other difference (the model, the data, the batch size, the optimizer, the seed) is
refused in one line naming the key and both values. The config recorded in the work dir is
always the one running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..exceptions import CheckpointError, ConfigError
from .config import RunConfig
from .distributed import DistContext, decided_by_rank0
from .workdir import check_not_in_use
from .optim import lr_factor

RUNTIME_KEYS = frozenset({
    "name", "description", "data.num_workers", "data.pin_memory", "data.persistent_workers",
    "data.val_batch_size", "data.backend", "train.device", "train.amp", "train.channels_last", "train.eval_every",
    "train.log_every", "ckpt.every_steps",
})
FRESH_START_KEYS = frozenset({"model.init_from", "model.pretrained", "model.calibrate_batches"})
SCHEDULE_KEYS = ("optim.lr", "optim.epochs", "optim.milestones", "optim.gamma", "optim.warmup_epochs")
#: What a ``train_state`` must hold to resume exactly.
STATE_KEYS = ("optimizer", "scheduler", "scaler", "epoch", "step_in_epoch", "history", "best_top1", "meters", "rng")


def restart_count() -> int:
    """How many times torchrun has restarted this job: 0 on its first launch and without torchrun.

    ``RANK`` says nothing about it: torchrun sets ``RANK`` on every launch, the first one too.
    """
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def torchrun_job() -> str | None:
    """The torchrun job this process belongs to (``TORCHELASTIC_RUN_ID``: the same for every
    attempt of one launch, a new one per ``--standalone`` launch); ``None`` without torchrun.
    Checkpoints record it, so that a restart continues only what its own job saved."""
    return os.environ.get("TORCHELASTIC_RUN_ID") or None


def _saved_meta(path: Path) -> tuple[tuple[int, int], str | None]:
    """``((epoch, step), torchrun job)`` a checkpoint was saved at, read without loading its tensors."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    state = ckpt.get("train_state") or {}
    job = (ckpt.get("meta") or {}).get("torchrun_job")
    return (int(state.get("epoch", -1)), int(state.get("step_in_epoch", -1))), job


def _own_restart_point(work_dir: Path) -> Path | None:
    """Under a torchrun restart, the work dir's ``last.pt`` if an earlier attempt of this very job
    saved it. A ``last.pt`` of another job (a launch refused for not saying ``--resume``, then
    restarted by ``--max-restarts``) is no restart point."""
    own = work_dir / "last.pt"
    if restart_count() == 0 or torchrun_job() is None or not own.is_file():
        return None
    return own if _saved_meta(own)[1] == torchrun_job() else None


def refuse_overwrite(resume: str | None, work_dir: Path, ctx: DistContext | None = None) -> None:
    """Refuse a fresh start into a work dir that holds a run (``last.pt``): it would overwrite the
    run's checkpoints, metrics and config.

    A launch with ``--resume`` resumes; a torchrun restart (:func:`restart_count` > 0) of a job
    that saved the work dir's ``last.pt`` continues from it by itself; anything else is a fresh
    start. Rank 0 looks at the work dir and decides for every rank
    (:func:`~aknet_cli.engine.distributed.decided_by_rank0`).

    Raises:
        ConfigError: on a fresh start into a work dir holding ``last.pt``.
        WorkDirInUse: another run holds the work dir (asked first, whatever ``resume`` says).
    """
    def decide() -> None:
        check_not_in_use(work_dir)  # a run in progress is "in use", not "holds a run"
        if resume is None and (work_dir / "last.pt").is_file() and _own_restart_point(work_dir) is None:
            raise ConfigError(f"--work-dir {work_dir} already holds a run (last.pt); add --resume to continue it, "
                              f"or give another --work-dir to start a new one")

    decided_by_rank0(decide, ctx or DistContext())


def resume_source(resume: str | None, work_dir: Path, ctx: DistContext | None = None) -> Path | None:
    """The checkpoint to resume from, or ``None`` for a fresh start; rank 0 decides for every rank.

    ``resume`` is ``None``, ``"auto"`` (the work dir's ``last.pt``) or a path. Under a torchrun
    restart the ``last.pt`` an earlier attempt of the same job saved (:func:`_own_restart_point`)
    wins whenever it is at least as far as the given checkpoint: the restarted job continues
    from what it last saved, not from where it first started. Only rank 0's view of the files
    counts (every rank then checks that it can read the answer: ``trainer._require_everywhere``).

    Raises:
        CheckpointError: the checkpoint to resume from does not exist (on every rank).
    """
    return decided_by_rank0(lambda: _resume_source(resume, work_dir), ctx or DistContext())


def _resume_source(resume: str | None, work_dir: Path) -> Path | None:
    own = _own_restart_point(work_dir)
    if resume is None:
        return own
    path = work_dir / "last.pt" if resume == "auto" else Path(resume)
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} does not exist"
                              + (" (no epoch of this work dir has finished yet)" if resume == "auto" else ""))
    if own is not None and path.resolve() != own.resolve() and _saved_meta(own)[0] >= _saved_meta(path)[0]:
        return own
    return path


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(cfg: RunConfig, saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, value now)}`` for every key both configs hold and that differs.

    A key only one side has (the schema changed between versions) cannot be compared and is
    left out.
    """
    now, then = _flat(cfg.to_dict()), _flat(saved)
    return {k: (then[k], now[k]) for k in sorted(now.keys() & then.keys()) if then[k] != now[k]}


def check_resumable(cfg: RunConfig, saved: dict[str, Any] | None, source: Path) -> dict[str, tuple[Any, Any]]:
    """Refuse a config that would silently train something else; return the schedule changes.

    Raises:
        ConfigError: a key outside the allowed ones differs (the first one, both values).
    """
    if not saved:  # a checkpoint that does not record its config: nothing to compare
        return {}
    changes = config_changes(cfg, saved)
    allowed = RUNTIME_KEYS | FRESH_START_KEYS | set(SCHEDULE_KEYS)
    refused = [k for k in changes if k not in allowed]
    if refused:
        key = refused[0]
        then, now = changes[key]
        more = f" ({len(refused) - 1} more key(s) differ too)" if len(refused) > 1 else ""
        raise ConfigError(f"--resume {source}: {key} is {now!r} in this config but {then!r} in the run being "
                          f"resumed{more}; a resumed run keeps it: drop the change, or start a new --work-dir")
    return {k: v for k, v in changes.items() if k in SCHEDULE_KEYS}


def read_train_state(ckpt: dict[str, Any], path: Path) -> dict[str, Any]:
    """The checkpoint's ``train_state``, checked to hold everything an exact resume needs.

    Raises:
        CheckpointError: weights only (a ``best.pt``), or a state that lacks a part.
    """
    state = ckpt.get("train_state")
    if not state:
        raise CheckpointError(f"{path} holds weights only, no training state; resume from a last.pt")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} cannot be resumed exactly: its training state lacks {', '.join(missing)} "
                              f"(written by another tool or edited); resume from a last.pt aknet wrote")
    return state


def apply_schedule(optimizer: torch.optim.Optimizer, scheduler, cfg: RunConfig, steps_per_epoch: int) -> None:
    """Make the restored optimizer and scheduler follow ``cfg``'s schedule from their step on.

    ``LambdaLR`` restores its base learning rates from the checkpoint (the old ``lr``) and
    takes its lambda from the new config (milestones, ``gamma``, warm-up); both are set here
    from ``cfg``, and the lr of the next step is recomputed.
    """
    base = cfg.scaled_lr
    scheduler.base_lrs = [base * group.get("lr_mult", 1.0) for group in optimizer.param_groups]
    factor = lr_factor(scheduler.last_epoch, steps_per_epoch, cfg)
    for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs):
        group["initial_lr"] = base_lr
        group["lr"] = base_lr * factor


def restore_meters(saved: dict[str, Any], ctx: DistContext) -> dict[str, float]:
    """This rank's running sums of a partly done epoch (see
    :func:`~aknet_cli.engine.checkpoint_saver.gather_meters`). On another number of processes, rank
    0 takes the sum over all saved ranks and the others start at zero, so that the epoch's
    totals stay right."""
    ranks = saved["ranks"] if "ranks" in saved else [saved]  # before per-rank sums: rank 0's only
    if len(ranks) == ctx.world_size:
        return dict(ranks[ctx.rank])
    if not ctx.is_main:
        return {}
    keys = {k for r in ranks for k in r}
    return {k: sum(float(r.get(k, 0.0)) for r in ranks) for k in keys}

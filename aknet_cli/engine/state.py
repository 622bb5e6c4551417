"""What a training run is made of (:class:`Run`, built once) and where it stands
(:class:`Position`, what a checkpoint restores)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..exceptions import AKNetError
from .config import RunConfig
from .distributed import DistContext


class TrainingDiverged(AKNetError, FloatingPointError):
    """The loss or the weights became NaN or infinite."""


@dataclass
class Run:
    """Everything set up for one training run; fixed from the first step to the last."""

    cfg: RunConfig
    ctx: DistContext
    work_dir: Path
    model: nn.Module  # unwrapped: what checkpoints hold
    ddp_model: nn.Module  # what the steps call (the DDP wrapper under torchrun)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    train_loader: Any
    sampler: Any
    val_loader: Any
    steps_per_epoch: int
    batch: int  # clips per process and step
    description: dict[str, Any]  # the model description checkpoints carry
    show: bool  # progress bars and epoch lines (rank 0, unless quiet)

    @property
    def channels_last(self) -> bool:
        return self.ctx.device.type == "cuda" and self.cfg.train.channels_last

    @property
    def kind(self) -> str:
        return "aknet" if self.cfg.model.stage == 2 else "backbone"


@dataclass
class Position:
    """Where a run stands: the epoch and step to run next, what finished epochs measured, and
    the running sums of a partly done epoch."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = -1.0
    meters: dict[str, float] = field(default_factory=dict)

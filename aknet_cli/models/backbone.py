"""The contract every video backbone plugin fulfils.

A backbone is a 2-D network applied frame by frame (TSN, TSM, TDN, ...) that exposes five
named stages, ``stem, res2, res3, res4, res5``. AK-Net splits it after one of them: the
stages up to and including the split are ``F`` (eq. 3) and the remaining ones are ``P``,
later compacted into the 1-D point classifier ``Q`` (eq. 11).

Input layout: ``(B, T, 3, H, W)`` with ``T == num_segments``. A backbone whose segments bring
several consecutive frames (TDN) sets ``frames_per_segment > 1`` and takes
``(B, T, frames_per_segment, 3, H, W)``; the data sampler reads ``frames_per_segment`` to
decide how many frames to decode per segment.

Inside the network every stage maps ``(B*T, C, H, W) -> (B*T, C', H', W')``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..exceptions import ConfigError, InputShapeError
from .heads import classify_fp32

STAGE_NAMES: tuple[str, ...] = ("stem", "res2", "res3", "res4", "res5")
SPLIT_STAGES: tuple[str, ...] = ("res2", "res3", "res4")


@dataclass(frozen=True)
class StageSpec:
    """Output channels and cumulative stride of one named stage."""

    name: str
    channels: int
    stride: int


def check_stage(name: str, allowed: tuple[str, ...] = STAGE_NAMES) -> str:
    if name not in allowed:
        what = "split" if allowed == SPLIT_STAGES else "stage"  # the word the user's option or key uses
        raise ConfigError(f"unknown {what} {name!r}; choose one of {', '.join(allowed)}")
    return name


class VideoBackbone(nn.Module):
    """A frame-wise 2-D video network with named stages and a frame-averaging head.

    Args:
        stages: ``{name: module}`` for every name in :data:`STAGE_NAMES`, in order.
        specs: the :class:`StageSpec` of each stage.
        num_classes: classifier size.
        num_segments: ``T``, frames (segments) per clip.
        dropout: dropout before the classifier (TSM uses 0.5 on Sth-Sth).
    """

    #: consecutive frames each segment brings (TDN: 5); the sampler reads it.
    frames_per_segment: int = 1

    def __init__(
        self,
        *,
        stages: dict[str, nn.Module],
        specs: dict[str, StageSpec],
        num_classes: int,
        num_segments: int,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        missing = [n for n in STAGE_NAMES if n not in stages or n not in specs]
        if missing:
            raise ValueError(f"backbone is missing stages: {missing}")
        if num_segments < 1:
            raise ConfigError(f"num_segments must be >= 1, got {num_segments}")
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        self.stages = nn.ModuleDict({n: stages[n] for n in STAGE_NAMES})
        self.specs = {n: specs[n] for n in STAGE_NAMES}
        self.num_segments = num_segments
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(specs["res5"].channels, num_classes)

    # ------------------------------------------------------------------ input
    @property
    def input_layout(self) -> str:
        if self.frames_per_segment == 1:
            return f"(B, {self.num_segments}, 3, H, W)"
        return f"(B, {self.num_segments}, {self.frames_per_segment}, 3, H, W)"

    def check_input(self, x: torch.Tensor) -> int:
        """Validate a clip batch against :attr:`input_layout`; return the batch size.

        The batch size is returned as the shape gives it (a symbolic size under
        ``torch.export``): converting it to ``int`` would freeze an exported model's batch.
        """
        want_rank = 5 if self.frames_per_segment == 1 else 6
        if not isinstance(x, torch.Tensor) or x.dim() != want_rank:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputShapeError(
                f"expected a clip batch of shape {self.input_layout}, got {got}"
            )
        if int(x.shape[1]) != self.num_segments:
            raise InputShapeError(
                f"expected {self.num_segments} frames per clip (dim 1), got {int(x.shape[1])}; "
                f"input layout is {self.input_layout}"
            )
        if self.frames_per_segment > 1 and int(x.shape[2]) != self.frames_per_segment:
            raise InputShapeError(
                f"expected {self.frames_per_segment} frames per segment (dim 2), "
                f"got {int(x.shape[2])}; input layout is {self.input_layout}"
            )
        if int(x.shape[-3]) != 3:
            raise InputShapeError(f"expected 3 colour channels, got {int(x.shape[-3])}")
        return x.shape[0]

    # --------------------------------------------------------------- features
    def forward_until(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """Run a clip batch through the stages up to and including ``stage``.

        Args:
            x: clips in :attr:`input_layout`.
            stage: one of :data:`STAGE_NAMES`.

        Returns:
            ``(B*T, C, H', W')`` features of that stage.
        """
        check_stage(stage)
        self.check_input(x)
        h = x.flatten(0, 1)  # (B*T, 3, H, W)
        for name in STAGE_NAMES:
            h = self.stages[name](h)
            if name == stage:
                break
        return h

    def stages_after(self, stage: str) -> list[tuple[str, nn.Module]]:
        """The stages after ``stage`` (``P`` in the paper), in order."""
        check_stage(stage)
        names = STAGE_NAMES[STAGE_NAMES.index(stage) + 1 :]
        return [(n, self.stages[n]) for n in names]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, ...) -> (B*T, C5, H/32, W/32)``."""
        return self.forward_until(x, "res5")

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Frame-wise GAP + classifier, then TSN's average consensus over the T frames.

        Args:
            features: ``(B*T, C5, h, w)``.

        Returns:
            ``(B, num_classes)`` logits, float32 under autocast too (:func:`~.heads.classify_fp32`).
        """
        pooled = features.mean(dim=(2, 3))
        logits = classify_fp32(self.fc, self.dropout(pooled))
        return logits.view(-1, self.num_segments, self.num_classes).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------- plugin hook (eq. 11)
    def convert_1d(self, module: nn.Module) -> nn.Module | None:
        """Return a 1-D replacement for one of this backbone's own module types.

        AK-Net's generic converter calls this first for every module it visits in ``P``;
        ``None`` means "use the generic rules". Override it for custom layers.
        """
        return None

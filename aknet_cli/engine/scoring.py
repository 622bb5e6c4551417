"""Scores of a model over a loader, and the hit counts accuracy is computed from.

Shared by validation during training and by :func:`~aknet_cli.engine.evaluate.evaluate`.
"""

from __future__ import annotations

import torch
from torch import nn

from .._progress import StepProgress
from .distributed import DistContext
from .precision import autocast


def channels_last_frames(clips: torch.Tensor) -> torch.Tensor:
    """The same clip batch ``(..., 3, H, W)`` with every frame laid out as NHWC, the layout
    cuDNN's fastest convolution kernels read.

    The leading dimensions are folded into one batch dimension for the conversion and unfolded
    again, so the backbone's own ``reshape`` to ``(B·T, 3, H, W)`` is a view with NHWC strides.
    """
    lead = clips.shape[:-3]
    frames = clips.reshape(-1, *clips.shape[-3:]).contiguous(memory_format=torch.channels_last)
    return frames.unflatten(0, lead)


def to_device(clips: torch.Tensor, device: torch.device, *, channels_last: bool = False) -> torch.Tensor:
    """Move a clip batch to ``device``; on CUDA with ``channels_last``, in NHWC frames."""
    clips = clips.to(device, non_blocking=True)
    return channels_last_frames(clips) if channels_last and device.type == "cuda" else clips


@torch.no_grad()
def collect_scores(model: nn.Module, loader, ctx: DistContext, *, amp_dtype: torch.dtype | None = None,
                   channels_last: bool = False, progress: bool = False, description: str = "evaluating",
                   average: str = "prob") -> tuple[torch.Tensor, torch.Tensor]:
    """Scores averaged over views, for this process's share of the loader.

    Batches are ``(B, T, ...)`` or, with several views, ``(B, V, T, ...)``. ``average`` is the
    protocol's (:mod:`~aknet_cli.data.protocols`): ``prob``, the mean softmax (TDN, mmaction2,
    aknet), or ``logits``, the mean logit (TSM's ``test_models.py``).

    Returns:
        ``scores (n, K)`` float32 on the CPU and ``labels (n,)``.
    """
    was_training = model.training
    model.eval()
    fps = getattr(getattr(model, "backbone", model), "frames_per_segment", 1)
    clip_rank = 5 if fps == 1 else 6
    scores, labels = [], []
    with StepProgress(description, len(loader), enabled=progress, unit="batch") as bar:
        for clips, target in loader:
            views = 1
            if clips.dim() == clip_rank + 1:
                views = clips.shape[1]
                clips = clips.flatten(0, 1)
            clips = to_device(clips, ctx.device, channels_last=channels_last)
            with autocast(ctx.device, amp_dtype):
                logits = model(clips)
            scores.append(average_views(logits, views, average).cpu())
            labels.append(torch.as_tensor(target))
            bar.update(clips=len(target))
    model.train(was_training)
    if not scores:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(scores), torch.cat(labels)


def average_views(logits: torch.Tensor, views: int, average: str = "prob") -> torch.Tensor:
    """``(B·V, K)`` logits of ``V`` consecutive views per video → ``(B, K)`` float32 scores: the
    mean softmax (``prob``) or the mean logit (``logits``)."""
    scores = logits.float()
    if average == "prob":
        scores = scores.softmax(dim=1)
    elif average != "logits":
        raise ValueError(f"unknown view averaging {average!r}")
    return scores.reshape(-1, views, scores.shape[1]).mean(dim=1)


def accuracy_counts(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, float]:
    """``(top-1 hits, top-5 hits, clips)`` over labelled clips (label ≥ 0)."""
    keep = labels >= 0
    scores, labels = scores[keep], labels[keep]
    if len(labels) == 0:
        return 0.0, 0.0, 0.0
    k = min(5, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    hit1 = (top[:, 0] == labels).sum().item()
    hit5 = (top == labels[:, None]).any(dim=1).sum().item()
    return float(hit1), float(hit5), float(len(labels))

"""Re-estimate the BatchNorm statistics of the 1-D subnet ``Q`` after conversion (eq. 11).

The converted ``BatchNorm1d`` layers start with the 2-D layers' running statistics, which
describe every position of the feature map. ``Q`` only sees the selected keypoints, which are
not a random sample of positions (the heatmap picks the strongest responses), so their
statistics differ: the variance reaching the 1-D layers was 1.4–2.7× the copied running
variance in a check. :func:`recalibrate_bn` runs forward passes without gradient with only
those layers in training mode and replaces their statistics by a cumulative (equal-weight)
average over the batches, the way SWA's ``update_bn`` does.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from ..exceptions import ConfigError, DataError


def point_net_batchnorms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """``(name, layer)`` of every BatchNorm in the model's 1-D subnet (``model.point_net``)."""
    point_net = getattr(model, "point_net", None)
    if not isinstance(point_net, nn.Module):
        raise ConfigError(f"{type(model).__name__} has no 1-D subnet (point_net): recalibrate an AK-Net")
    return [
        (f"point_net.{name}", m) for name, m in point_net.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def _clip_of(batch: Any) -> torch.Tensor:
    """A clip batch, from either a tensor or a ``(clip, label, ...)`` pair."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise DataError(f"calibration batches must be clip tensors or (clip, label) pairs, got {type(batch).__name__}")


def recalibrate_bn(model: nn.Module, clips: Iterable[Any], *, num_batches: int) -> dict[str, Any]:
    """Re-estimate the running mean/variance of the 1-D subnet's BatchNorm layers.

    Every other layer stays in eval mode (``F``'s statistics are untouched, dropout is off, the
    auxiliary head does not run), so each 1-D layer sees the points it will see at inference.
    The 1-D layers are reset and run with ``momentum=None`` (cumulative average): after ``K``
    batches their statistics are the plain mean of the ``K`` batch means and unbiased batch
    variances. The model's train/eval flags and the layers' momenta are restored afterwards.

    Args:
        model: an AK-Net (anything with a ``point_net`` submodule), e.g. just converted, or a
            DataParallel/DDP wrapper of one (its ``module`` is calibrated, without the
            wrapper's hooks). Under DDP each rank estimates from its own clips; the trainer
            averages the ranks' statistics before it validates or saves.
        clips: an iterable of clip batches in the model's input layout, or of
            ``(clip, label)`` pairs (a training DataLoader).
        num_batches: ``K``, how many batches to use (at most; fewer if ``clips`` runs out).

    Returns:
        ``{"batches": K_used, "clips": n, "layers": {name: {"mean_shift", "var_ratio_mean",
        "var_ratio_min", "var_ratio_max"}}, "var_ratio_range": [lo, hi]}``: ``mean_shift`` is the
        channel-mean of ``|μ_new − μ_old| / √σ²_old``, ``var_ratio_*`` summarise
        ``σ²_new / σ²_old`` over channels.

    Raises:
        ConfigError: ``num_batches < 1`` or a model without a 1-D subnet.
        DataError: ``clips`` yields no batch, or something that is not a clip batch.
    """
    if int(num_batches) < 1:
        raise ConfigError(f"num_batches must be >= 1, got {num_batches}")
    if not hasattr(model, "point_net") and hasattr(getattr(model, "module", None), "point_net"):
        model = model.module  # DataParallel / DistributedDataParallel: calibrate the inner model
    layers = point_net_batchnorms(model)
    if not layers:
        raise ConfigError("the 1-D subnet has no BatchNorm layer to recalibrate")
    before = {name: (bn.running_mean.clone(), bn.running_var.clone()) for name, bn in layers}
    used, seen = _run_cumulative(model, layers, before, clips, num_batches)
    return _movement_report(layers, before, used, seen)


def _run_cumulative(model: nn.Module, layers, before, clips: Iterable[Any], num_batches: int) -> tuple[int, int]:
    """Forward up to ``num_batches`` batches with only ``layers`` in training mode, averaging
    their statistics cumulatively; on failure the old statistics are put back. Returns
    ``(batches, clips)`` used."""
    modes = {m: m.training for m in model.modules()}
    momenta = {name: bn.momentum for name, bn in layers}
    device = next(model.parameters()).device
    used = seen = 0
    try:
        model.eval()
        for _, bn in layers:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: every batch weighs the same
            bn.train()
        with torch.no_grad():
            for batch in clips:
                if used >= num_batches:
                    break
                x = _clip_of(batch).to(device)
                model(x)
                used += 1
                seen += int(x.shape[0])
        if used == 0:
            raise DataError("no calibration batch: the clip iterable is empty")
    except BaseException:
        for name, bn in layers:  # leave the model as it was, not half-calibrated
            bn.running_mean.copy_(before[name][0])
            bn.running_var.copy_(before[name][1])
        raise
    finally:
        for name, bn in layers:
            bn.momentum = momenta[name]
        for m, flag in modes.items():
            m.training = flag
    return used, seen


def _movement_report(layers, before, used: int, seen: int) -> dict[str, Any]:
    """How far each layer's statistics moved (see :func:`recalibrate_bn`'s return value)."""
    report: dict[str, Any] = {"batches": used, "clips": seen, "layers": {}}
    ratios = []
    for name, bn in layers:
        mean0, var0 = before[name]
        ratio = bn.running_var / var0.clamp_min(1e-12)
        shift = (bn.running_mean - mean0).abs() / var0.clamp_min(1e-12).sqrt()
        report["layers"][name] = {
            "mean_shift": float(shift.mean()),
            "var_ratio_mean": float(ratio.mean()),
            "var_ratio_min": float(ratio.min()),
            "var_ratio_max": float(ratio.max()),
        }
        ratios.append(float(ratio.mean()))
    report["var_ratio_range"] = [min(ratios), max(ratios)]
    return report

"""Classification heads: the final head on points + context (eq. 13) and the auxiliary head
on the heatmap-weighted features (eq. 14)."""

from __future__ import annotations

import torch
from torch import nn


def classify_fp32(fc: nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """``fc(features)`` in float32, under autocast too.

    Under bf16 autocast a classifier's logits would be rounded to bf16, whose spacing is 2⁻⁵
    (0.03) at logits of 4–8: near-ties between classes would be resolved by class index, not by
    the model, and accuracies would move with the rounding. The head is a few thousand
    multiply-adds per clip, so it costs nothing to run it in float32. Without autocast (the CPU,
    fvcore's trace, export) it is ``fc(features)`` as it always was.
    """
    device = features.device.type
    if not torch.is_autocast_enabled(device):
        return fc(features)
    with torch.autocast(device, enabled=False):
        return fc(features.float())


class PointHead(nn.Module):
    """``y_cls = fc(concat(GAP(X_l), pool(e_f)))`` (eq. 13).

    Args:
        point_channels: ``C'`` of the 1-D subnet's output ``e_f``.
        context_channels: ``C`` of ``X_l`` when ``GAP(X_l)`` is concatenated, else 0
            (the "concat" ablation switch).
        num_classes: classifier size.
        dropout: dropout before the FC.
    """

    def __init__(self, point_channels: int, context_channels: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(point_channels + context_channels, num_classes)

    def forward(self, point_features: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """``(B, C', N'), (B, C) or None -> (B, num_classes)`` float32 logits (:func:`classify_fp32`);
        points are average-pooled."""
        pooled = point_features.mean(dim=2)
        if context is not None:
            pooled = torch.cat([context, pooled], dim=1)
        return classify_fp32(self.fc, self.dropout(pooled))


class AuxiliaryHead(nn.Module):
    """Early prediction from ``H ⊙ X_l`` (eq. 14): two stride-2 conv-BN-ReLU layers, GAP and an
    FC per frame, averaged over frames. It is the path through which the heatmap learns.

    Used in training only; inference never runs it (and the FLOP count excludes it).

    Args:
        channels: ``C`` of ``X_l``.
        num_classes: classifier size.
        num_segments: ``T``.
        hidden: conv width; defaults to ``min(C, 512)`` to keep training cost modest at res4.
    """

    def __init__(self, channels: int, num_classes: int, num_segments: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or min(channels, 512)
        self.num_segments = num_segments
        self.convs = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
        """``(B*T, C, H, W), (B, T, H, W) -> (B, num_classes)``."""
        weighted = features * heatmap.reshape(-1, 1, *heatmap.shape[2:])
        logits = self.fc(self.convs(weighted).mean(dim=(2, 3)))
        return logits.view(-1, self.num_segments, logits.shape[-1]).mean(dim=1)

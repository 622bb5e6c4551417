"""The spatio-temporal heatmap that scores every position of ``X_l`` (paper eqs. 4-6)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ChannelHeatmap(nn.Module):
    """Channel-weighted heatmap with SE-softmax weights.

    Per frame: ``Z = GAP(X)`` (eq. 4), ``ω = softmax(W2 ReLU(W1 Z))`` over channels (eq. 5),
    ``H(i, j) = ωᵀ X(i, j)`` (eq. 6).

    Normalisation to [0, 1]. The sparsity term ``4H(1-H)`` (eq. 15) and the attention
    ``H ⊙ X`` (eq. 14) need ``H ∈ [0, 1]``, which the paper does not spell out. We min-max
    normalise each clip over all its ``T·H·W`` positions: ``(H - min) / (max - min + ε)``.
    It is monotonic, so the top-N selection is unchanged; it is scale-free, so the SE weights
    cannot shrink the penalty by shrinking the features; and the clip's best point is always
    1 and its worst 0, which matches selection being made jointly over all frames.

    Args:
        channels: ``C`` of the split feature map.
        reduction: SE reduction ratio ``r`` (16 in SE-Net).
        eps: guards the division for a constant heatmap.
    """

    def __init__(self, channels: int, reduction: int = 16, eps: float = 1e-6) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.eps = eps

    def channel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C)`` softmax weights ``ω`` (eqs. 4-5), one row per frame."""
        z = x.mean(dim=(2, 3))
        return F.softmax(self.fc2(F.relu(self.fc1(z))), dim=1)

    def forward(self, x: torch.Tensor, num_segments: int) -> torch.Tensor:
        """Score every position.

        Args:
            x: ``(B*T, C, H, W)`` split features ``X_l``.
            num_segments: ``T``.

        Returns:
            ``(B, T, H, W)`` heatmap in [0, 1], normalised per clip.
        """
        omega = self.channel_weights(x)
        heat = torch.einsum("nc,nchw->nhw", omega, x)  # eq. 6
        nt, h, w = (int(s) for s in heat.shape)
        heat = heat.reshape(nt // num_segments, num_segments, h, w)
        flat = heat.flatten(1)
        lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
        hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
        return (heat - lo) / (hi - lo + self.eps)

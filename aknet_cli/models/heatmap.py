"""The spatio-temporal heatmap that scores every position of ``X_l`` (paper eqs. 4-6), and its
normalisation to [0, 1] for the sparsity term (eq. 15) and the auxiliary attention (eq. 14)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..exceptions import ConfigError

#: How raw scores ``h`` become ``H ∈ [0, 1]`` (see :class:`ChannelHeatmap`).
HEAT_NORMS = ("threshold", "minmax")


def _fp32(x: torch.Tensor):
    """Autocast off on ``x``'s device: the heatmap, its normalisation and the selection run in
    fp32 whatever the caller's autocast state. In bf16 (8-bit mantissa) a res2 heatmap of
    25,088 positions took 159 distinct values, 577 of them equal to the N-th score, and the
    keypoints became an arbitrary pick among the ties; the backbone may stay in bf16/fp16."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def _floor(flat: torch.Tensor, rel_eps: float, eps: float) -> torch.Tensor:
    """``(B, M) -> (B, 1)`` the smallest spread a clip is credited with: ``rel_eps`` of its mean
    magnitude. A near-constant clip would otherwise divide by ~0: a spread of 1e-5 amplified
    the gradient reaching ``X_l`` by 8×10⁵."""
    return rel_eps * flat.abs().mean(dim=1, keepdim=True) + eps


def minmax_normalize(heat: torch.Tensor, *, rel_eps: float = 1e-2, eps: float = 1e-6) -> torch.Tensor:
    """``(h − min) / max(max − min, rel_eps·mean|h| + eps)`` per clip.

    Args:
        heat: ``(B, T, H, W)`` raw scores.

    Returns:
        ``(B, T, H, W)`` in [0, 1]; the clip's best point is 1 unless the clip is flat.
    """
    flat = heat.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    spread = torch.maximum(hi - lo, _floor(flat, rel_eps, eps))
    return ((flat - lo) / spread).view_as(heat)


def threshold_normalize(
    heat: torch.Tensor, n: int, *, scale: float = 0.1, rel_eps: float = 1e-2, eps: float = 1e-6,
) -> torch.Tensor:
    """``σ((h − c) / s)`` per clip, centred on the selection threshold.

    ``c`` is the midpoint between the ``N``-th and ``(N+1)``-th largest scores (the top-N
    boundary), so exactly the ``N`` selected points get ``H > 0.5``; ``s = scale·std(h)``
    (floored like :func:`minmax_normalize`). ``4H(1−H)`` is then small only for points far
    from the boundary in units of the clip's spread: minimising it widens the margin between
    selected and unselected points, whatever α is. Both ``c`` and ``s`` follow ``h``, so
    shifting or scaling all scores changes nothing.

    Args:
        heat: ``(B, T, H, W)`` raw scores.
        n: ``N``, the number of keypoints per clip.

    Returns:
        ``(B, T, H, W)`` in (0, 1).
    """
    flat = heat.flatten(1)
    m = int(flat.shape[1])
    top = flat.topk(min(n + 1, m), dim=1).values
    spread = torch.maximum(flat.std(dim=1, keepdim=True, unbiased=False), _floor(flat, rel_eps, eps))
    if n < m:
        centre = (top[:, n - 1 : n] + top[:, n : n + 1]) / 2
    else:  # α = 1: every point is selected, the boundary lies below the lowest score
        centre = top[:, n - 1 : n] - spread
    return torch.sigmoid((flat - centre) / (scale * spread)).view_as(heat)


class HeatmapNormalization(nn.Module):
    """Raw scores ``(B, T, H, W)`` → fp32 ``H ∈ [0, 1]``, per clip (a module of its own so that
    FLOP counts attribute it to the heatmap; it has no parameters).

    Args:
        alpha: point sampling rate, for the threshold's ``N``.
        norm: one of :data:`HEAT_NORMS`.
        scale: ``s / std(h)`` of the threshold normalisation.
        rel_eps, eps: the flat-clip guard (see :func:`minmax_normalize`).
    """

    def __init__(self, *, alpha: float = 0.3, norm: str = "threshold", scale: float = 0.1,
                 rel_eps: float = 1e-2, eps: float = 1e-6) -> None:
        super().__init__()
        if norm not in HEAT_NORMS:
            raise ConfigError(f"heat_norm must be one of {', '.join(HEAT_NORMS)}, got {norm!r}")
        if not (scale > 0 and math.isfinite(scale)):
            raise ConfigError(f"heat_scale must be a number > 0, got {scale!r}")
        self.alpha = float(alpha)
        self.norm = norm
        self.scale = float(scale)
        self.rel_eps = float(rel_eps)
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}, scale={self.scale}, alpha={self.alpha}"

    def forward(self, heat: torch.Tensor) -> torch.Tensor:
        """``(B, T, H, W)`` raw scores → ``(B, T, H, W)`` fp32 in [0, 1]."""
        from .selection import num_keypoints

        with _fp32(heat):
            heat = heat.float()
            if self.norm == "minmax":
                return minmax_normalize(heat, rel_eps=self.rel_eps, eps=self.eps)
            _, t, h, w = (int(s) for s in heat.shape)
            return threshold_normalize(heat, num_keypoints(self.alpha, t, h, w), scale=self.scale,
                                       rel_eps=self.rel_eps, eps=self.eps)


class ChannelHeatmap(nn.Module):
    """Channel-weighted heatmap with SE-softmax weights, normalised to [0, 1].

    Per frame: ``Z = GAP(X)`` (eq. 4), ``ω = softmax(W2 ReLU(W1 Z))`` over channels (eq. 5),
    ``h(i, j) = ωᵀ X(i, j)`` (eq. 6). All of it in fp32 whatever the autocast state.

    Normalisation to [0, 1], which the paper does not spell out but the sparsity term
    ``4H(1-H)`` (eq. 15) and the attention ``H ⊙ X`` (eq. 14) need. Both choices are monotonic
    per clip (the top-N selection is unchanged) and scale-free (the SE weights cannot shrink the
    penalty by shrinking the features):

    * ``"threshold"`` (:func:`threshold_normalize`): ``σ((h − c)/s)`` centred on the top-N
      boundary, so the penalty asks for a margin around the threshold that α sets;
    * ``"minmax"`` (:func:`minmax_normalize`): ``(h − min)/(max − min)`` per clip, blind to α.

    Which is the default, and why, is recorded in ``docs/model.md``.

    Args:
        channels: ``C`` of the split feature map.
        reduction: SE reduction ratio ``r`` (16 in SE-Net).
        alpha, norm, scale, rel_eps, eps: see :class:`HeatmapNormalization`.
    """

    def __init__(
        self, channels: int, reduction: int = 16, *, alpha: float = 0.3, norm: str = "threshold",
        scale: float = 0.1, rel_eps: float = 1e-2, eps: float = 1e-6,
    ) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.normalization = HeatmapNormalization(alpha=alpha, norm=norm, scale=scale, rel_eps=rel_eps, eps=eps)

    def channel_weights(self, x: torch.Tensor, frame_means: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C)`` fp32 softmax weights ``ω`` (eqs. 4-5), one row per frame.

        ``frame_means``: ``Z = GAP(X)`` (eq. 4) when the caller has it already (AK-Net reuses
        it for its ``GAP(X_l)`` context, so the feature map is read once for both)."""
        with _fp32(x):
            z = x.float().mean(dim=(2, 3)) if frame_means is None else frame_means.float()
            return F.softmax(self.fc2(F.relu(self.fc1(z))), dim=1)

    def scores(self, x: torch.Tensor, num_segments: int, frame_means: torch.Tensor | None = None) -> torch.Tensor:
        """Raw scores ``h = ωᵀX`` (eq. 6): ``(B*T, C, H, W) -> (B, T, H, W)`` fp32."""
        with _fp32(x):
            omega = self.channel_weights(x, frame_means)
            heat = torch.einsum("nc,nchw->nhw", omega, x.float())
        h, w = (int(s) for s in heat.shape[1:])  # the batch stays symbolic (torch.export, ONNX)
        return heat.reshape(-1, num_segments, h, w)

    def normalize(self, heat: torch.Tensor) -> torch.Tensor:
        """``(B, T, H, W)`` raw scores → ``(B, T, H, W)`` fp32 in [0, 1]."""
        return self.normalization(heat)

    def forward(self, x: torch.Tensor, num_segments: int, normalize: bool = True,
                frame_means: torch.Tensor | None = None) -> torch.Tensor:
        """Score every position.

        Args:
            x: ``(B*T, C, H, W)`` split features ``X_l`` (any dtype).
            num_segments: ``T``.
            normalize: ``False`` returns the raw fp32 scores ``h`` (all the selection needs).
            frame_means: ``(B*T, C)`` ``GAP(X)`` per frame, if already computed.

        Returns:
            ``(B, T, H, W)`` fp32 heatmap, in [0, 1] normalised per clip unless ``normalize``
            is ``False``.
        """
        heat = self.scores(x, num_segments, frame_means)
        return self.normalization(heat) if normalize else heat

"""Keypoint selection (top-N over all frames), ranking (eq. 7) and coordinate normalisation (eq. 8)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..exceptions import ConfigError


def num_keypoints(alpha: float, t: int, h: int, w: int) -> int:
    """``N = round(α·T·H·W)``, rounded half up, at least 1."""
    return max(1, int(math.floor(alpha * t * h * w + 0.5)))


def flat_to_coords(index: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Flat indices over ``(T, H, W)`` → integer ``(t, y, x)`` coordinates, shape ``(..., 3)``."""
    t = torch.div(index, h * w, rounding_mode="floor")
    rem = index - t * (h * w)
    y = torch.div(rem, w, rounding_mode="floor")
    x = rem - y * w
    return torch.stack([t, y, x], dim=-1)


def frame_contiguous_tau(h: int, w: int) -> int:
    """The smallest integer ``τ`` that keeps each frame's points together: ``h + w − 1``.

    Within a frame ``x + y`` spans ``[0, h + w − 2]``, so with ``τ ≥ h + w − 1`` every point of
    frame ``t`` outranks every point of frame ``t − 1`` (eq. 7's "spatial continuity first"),
    and any larger ``τ`` ranks a map of this size identically. ``τ = 2`` does not: on a 14×14
    map it interleaves frames almost as much as ``τ = 1``.
    """
    return int(h) + int(w) - 1


def rank_keypoints(index: torch.Tensor, h: int, w: int, tau: float) -> torch.Tensor:
    """Order selected points by ``x + y + τ·t``, descending (eq. 7).

    Ties are broken by the flat position ``(t, y, x)`` in ascending order, so the ranking does
    not depend on the order in which top-k returned the points.

    Args:
        index: ``(B, N)`` flat indices over ``T·H·W``.
        h, w: spatial size of the split feature map.
        tau: weight of the time axis. Each frame's points form one contiguous run only when
            ``τ ≥ h + w − 1`` (:func:`frame_contiguous_tau`); a smaller ``τ`` (the paper's
            "τ > 1" is not enough) lets late positions of one frame outrank early positions of
            the next and the frames interleave.

    Returns:
        ``(B, N)`` the same indices, ranked.
    """
    index = index.sort(dim=1).values
    coords = flat_to_coords(index, h, w).to(torch.float64)
    key = coords[..., 2] + coords[..., 1] + tau * coords[..., 0]
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    return index.gather(1, order)


def normalize_coordinates(coords: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 8: centre on the centroid, divide by the largest distance to it.

    Args:
        coords: ``(B, N, 3)`` coordinates (any numeric dtype).

    Returns:
        ``(B, N, 3)`` float coordinates inside the unit ball, with at least one point on its
        surface (unless all points coincide, then all zeros).
    """
    d = coords.float()
    d = d - d.mean(dim=1, keepdim=True)
    d_max = d.norm(dim=2).amax(dim=1).clamp_min(eps)
    return d / d_max.view(-1, 1, 1)


class KeypointSelector(nn.Module):
    """Select the ``N = round(α·T·H·W)`` highest-scoring positions of each clip jointly over
    all frames (frames may get different counts), rank them, and gather their features.

    The selection is not differentiable; gradients reach the selected features only, and the
    heatmap is trained through the auxiliary head (eq. 14).

    Args:
        alpha: point sampling rate ``α ∈ (0, 1]``.
        tau: time weight of the ranking key (eq. 7); a number (:class:`AKNet` resolves its
            ``"auto"`` default to one that keeps frames contiguous, see
            :func:`frame_contiguous_tau`).
        ranking: if False the points keep top-k's order (highest score first), the
            "w/o R" ablation row.
    """

    def __init__(self, alpha: float, tau: float = 2.0, ranking: bool = True) -> None:
        super().__init__()
        if not (0.0 < float(alpha) <= 1.0):
            raise ConfigError(f"alpha must be in (0, 1], got {alpha}")
        if tau <= 0:
            raise ConfigError(f"tau must be > 0, got {tau}")
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.ranking = ranking

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, tau={self.tau}, ranking={self.ranking}"

    def forward(self, features: torch.Tensor, heatmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick, rank and gather the keypoints.

        Args:
            features: ``(B, T, C, H, W)``.
            heatmap: ``(B, T, H, W)`` scores (raw or normalised: only their order matters).

        Returns:
            ``points (B, C, N)`` in ranked order and ``coords (B, N, 3)`` int64 ``(t, y, x)``.
        """
        t, c, h, w = (int(s) for s in features.shape[1:])  # the batch stays symbolic (torch.export, ONNX)
        n = num_keypoints(self.alpha, t, h, w)
        # Selected in fp32 whatever the autocast state: low-precision scores tie at the threshold.
        with torch.autocast(device_type=heatmap.device.type, enabled=False):
            index = heatmap.float().reshape(-1, t * h * w).topk(n, dim=1).indices
            if self.ranking:
                index = rank_keypoints(index, h, w, self.tau)
        flat = features.permute(0, 2, 1, 3, 4).reshape(-1, c, t * h * w)
        points = flat.gather(2, index.unsqueeze(1).expand(-1, c, n))
        return points, flat_to_coords(index, h, w)

"""Ways to give the ranked points back their position: the transform network ``T``
(eqs. 8-10) and the learnable position embedding of Table V."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..exceptions import InputShapeError
from .convert import PointConv1d
from .selection import normalize_coordinates


class TransformNet(nn.Module):
    """PointNet-style transform of ``concat(S, D')`` (eqs. 9-10).

    ``T``: three 1x1 conv1d layers (64, 128, 1024) → max-pool over points → three FC layers
    (512, 256, out). The paper's version outputs a full ``(C+3)×(C+3)`` matrix ``A``,
    initialised to the identity; the transformed points are ``concat(S, D') A`` and the first
    ``C`` channels are kept. At ``C = 1024`` (split res4) that last FC has ~270M parameters.

    ``rank=r`` selects the cheaper variant ``A = I + U Vᵀ`` with input-dependent
    ``U, V ∈ R^{(C+3)×r}``: the last FC shrinks to ``2·(C+3)·r`` outputs and applying ``A``
    costs ``2·N·(C+3)·r`` instead of ``N·(C+3)²``. ``U`` starts at zero, so ``A`` starts at the
    identity exactly as in the paper.

    The FC layers have no BatchNorm (PointNet's have one) so batch-size-1 training works.

    Args:
        channels: ``C`` of the point features.
        rank: ``None`` for the paper's full matrix, or the rank ``r`` of the cheaper variant.
    """

    conv_dims = (64, 128, 1024)
    fc_dims = (512, 256)

    def __init__(self, channels: int, rank: int | None = None) -> None:
        super().__init__()
        d = channels + 3
        self.channels = channels
        self.rank = rank
        layers: list[nn.Module] = []
        prev = d
        for width in self.conv_dims:
            layers += [PointConv1d(prev, width, 1, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            prev = width
        self.point_mlp = nn.Sequential(*layers)
        fcs: list[nn.Module] = []
        for width in self.fc_dims:
            fcs += [nn.Linear(prev, width), nn.ReLU(inplace=True)]
            prev = width
        self.global_mlp = nn.Sequential(*fcs)
        out = d * d if rank is None else 2 * d * rank
        # skip_init: the default init of the paper's ~270M-weight layer costs seconds and
        # is overwritten by reset_matrix() anyway.
        self.matrix = nn.utils.skip_init(nn.Linear, prev, out)
        self.reset_matrix()

    def reset_matrix(self) -> None:
        """Initialise so that ``A = I`` whatever the input."""
        d = self.channels + 3
        nn.init.zeros_(self.matrix.weight)
        with torch.no_grad():
            if self.rank is None:
                self.matrix.bias.copy_(torch.eye(d).flatten())
            else:
                bias = self.matrix.bias.view(2, d, self.rank)
                bias[0].zero_()  # U = 0 → A = I
                nn.init.normal_(bias[1], std=1.0 / math.sqrt(d))  # V ≠ 0 so U receives gradient

    def forward(self, points: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Transform the ranked points.

        Args:
            points: ``(B, C, N)`` ranked point features ``S``.
            coords: ``(B, N, 3)`` their integer ``(t, y, x)`` coordinates.

        Returns:
            ``(B, C, N)`` the first ``C`` channels of ``concat(S, D') A``.
        """
        c = self.channels
        d = c + 3
        coord = normalize_coordinates(coords).transpose(1, 2)  # (B, 3, N) D'
        g = self.global_mlp(self._point_features(points, coord).amax(dim=2))
        # ``concat(S, D')`` is never built (a (C+3)×N copy), and only the C output channels
        # that are kept are computed: out = A[:C, :C]ᵀ S + A[C:, :C]ᵀ D' (column form).
        if self.rank is None:
            a = self.matrix(g).view(-1, d, d)
            # bmm + add rather than baddbmm: fvcore counts bmm, not baddbmm
            out = torch.bmm(a[:, :c, :c].transpose(1, 2), points)
            return out.add_(torch.bmm(a[:, c:, :c].transpose(1, 2), coord))
        uv = self.matrix(g).view(-1, 2, d, self.rank)
        u, v = uv[:, 0], uv[:, 1]
        # (I + U Vᵀ)ᵀ z = z + V (Uᵀ z), first C rows: S + V[:C] (U[:C]ᵀ S + U[C:]ᵀ D')
        uz = torch.bmm(u[:, :c].transpose(1, 2), points).add_(torch.bmm(u[:, c:].transpose(1, 2), coord))
        return torch.bmm(v[:, :c], uz).add_(points)

    def _point_features(self, points: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        """The point MLP on ``concat(S, D')`` without building it: its first layer is a 1×1
        conv, so ``W [S; D'] = W[:, :C] S + W[:, C:] D'``. ``(B, C, N), (B, 3, N) -> (B, 1024, N)``."""
        first = self.point_mlp[0]
        w = first.weight[:, :, 0]  # (64, C+3)
        h = torch.matmul(w[:, : self.channels], points) + torch.matmul(w[:, self.channels :], coord)
        if first.bias is not None:  # after fuse_for_inference
            h = h + first.bias.view(1, -1, 1)
        return self.point_mlp[1:](h)


class PositionEmbedding(nn.Module):
    """Learnable position embedding added to each point (the Table V alternative).

    Factorised as ``E_t[t] + E_y[y] + E_x[x]`` so it is independent of the order and number
    of selected points.

    Args:
        channels: ``C``.
        num_segments: ``T``, the size of the time table.
        grid: the size of each spatial table; inputs whose split map is larger fail clearly.
    """

    def __init__(self, channels: int, num_segments: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.time = nn.Parameter(torch.zeros(num_segments, channels))
        self.row = nn.Parameter(torch.zeros(grid, channels))
        self.col = nn.Parameter(torch.zeros(grid, channels))
        for p in (self.time, self.row, self.col):
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, points: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """``(B, C, N), (B, N, 3) -> (B, C, N)``."""
        if int(coords[..., 1:].max()) >= self.grid:
            raise InputShapeError(
                f"the split feature map is larger than the position embedding's {self.grid}x{self.grid} "
                f"grid; build the model with a larger max_input_size"
            )
        emb = self.time[coords[..., 0]] + self.row[coords[..., 1]] + self.col[coords[..., 2]]
        return points + emb.transpose(1, 2)

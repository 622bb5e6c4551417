"""Ways to give the ranked points back their position: the transform network ``T``
(eqs. 8-10) and the learnable position embedding of Table V."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..exceptions import ConfigError, InputShapeError
from .kernels_1d import PointConv1d
from .selection import normalize_coordinates


#: The forms of the transform matrix ``A`` (eq. 10), by name:
#: ``full``: the paper's ``(C+3)×(C+3)`` matrix predicted from ``g``;
#: ``uv``: ``A = I + U Vᵀ`` with ``U, V ∈ R^{(C+3)×r}`` both predicted from ``g``;
#: ``core``: ``A = I + Q G Pᵀ`` with learned bases ``P ∈ R^{C×r}``, ``Q ∈ R^{(C+3)×r}`` shared by
#: every clip and only the ``r×r`` core ``G`` predicted from ``g``.
TRANSFORM_FORMS = ("full", "uv", "core")


class TransformNet(nn.Module):
    """PointNet-style transform of ``concat(S, D')`` (eqs. 9-10).

    ``T``: three 1x1 conv1d layers (64, 128, 1024) → max-pool over points → three FC layers
    (512, 256, out), the last of which predicts the matrix ``A`` (or the input-dependent part
    of it) from the global feature ``g``. The transformed points are ``concat(S, D') A``, of
    which the first ``C`` channels are kept. ``A`` starts at the identity in every form.

    What the forms cost (``d = C + 3``, ``N`` points, per clip; the last FC is a matrix-vector
    product at batch 1, so its weights are read once per clip and dominate the time on a CPU):

    ====== ============================ ================================ =========================
    form   last FC (weights)            applying A (multiply-adds)       at C = 1024, r = 64
    ====== ============================ ================================ =========================
    full   ``256·d²``                   ``N·C·d``                        270 M weights
    uv     ``256·2·d·r``                ``2·N·d·r``                      33.7 M weights
    core   ``256·r²`` (+ ``(C+d)·r``    ``2·N·d·r + N·r²``               1.0 M + 0.13 M weights
           bases, read once a batch)
    ====== ============================ ================================ =========================

    ``core`` keeps eq. 10's role (an input-dependent linear map of features and coordinates
    together) inside a learned ``r``-dimensional subspace: what changes from clip to clip is how
    that subspace is mixed, not the subspace itself (docs/model.md, "The transform net's forms").

    The FC layers have no BatchNorm (PointNet's have one) so batch-size-1 training works.

    Args:
        channels: ``C`` of the point features.
        rank: ``r`` of the ``uv`` and ``core`` forms; ``None`` for the paper's full matrix.
        form: one of :data:`TRANSFORM_FORMS`; ``None``: ``full`` when ``rank`` is ``None``,
            else ``uv`` (what a rank alone meant before the forms had names).
    """

    conv_dims = (64, 128, 1024)
    fc_dims = (512, 256)

    def __init__(self, channels: int, rank: int | None = None, form: str | None = None) -> None:
        super().__init__()
        form = form or ("full" if rank is None else "uv")
        if form not in TRANSFORM_FORMS or (form == "full") != (rank is None):
            raise ConfigError(f"transform form {form!r} with rank {rank!r}: 'full' takes no rank, 'uv' and "
                              f"'core' need one (forms: {', '.join(TRANSFORM_FORMS)})")
        d = channels + 3
        self.channels, self.rank, self.form = channels, rank, form
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
        out = {"full": d * d, "uv": 2 * d * (rank or 0), "core": (rank or 0) ** 2}[form]
        # skip_init: the default init of the paper's ~270M-weight layer costs seconds and
        # is overwritten by reset_matrix() anyway.
        self.matrix = nn.utils.skip_init(nn.Linear, prev, out)
        if form == "core":
            self.basis_in = nn.Parameter(torch.empty(d, rank))  # Q: reads concat(S, D')
            self.basis_out = nn.Parameter(torch.empty(channels, rank))  # P: writes the C kept channels
        self.reset_matrix()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, form={self.form!r}, rank={self.rank}"

    def reset_matrix(self) -> None:
        """Initialise so that ``A = I`` whatever the input."""
        d = self.channels + 3
        nn.init.zeros_(self.matrix.weight)
        with torch.no_grad():
            if self.form == "full":
                self.matrix.bias.copy_(torch.eye(d).flatten())
            elif self.form == "uv":
                bias = self.matrix.bias.view(2, d, self.rank)
                bias[0].zero_()  # U = 0 → A = I
                nn.init.normal_(bias[1], std=1.0 / math.sqrt(d))  # V ≠ 0 so U receives gradient
            else:
                self.matrix.bias.zero_()  # G = 0 → A = I
                # Orthonormal bases, so that G starts receiving gradient (P and Q do once G ≠ 0).
                nn.init.orthogonal_(self.basis_in)
                nn.init.orthogonal_(self.basis_out)

    def forward(self, points: torch.Tensor, coords: torch.Tensor, map_size: tuple[int, int] | None = None
                ) -> torch.Tensor:
        """Transform the ranked points.

        Args:
            points: ``(B, C, N)`` ranked point features ``S``.
            coords: ``(B, N, 3)`` their integer ``(t, y, x)`` coordinates.
            map_size: the split map's ``(h, w)``; unused (eq. 8 normalises by the points themselves),
                taken so that every position module is called alike.

        Returns:
            ``(B, C, N)`` the first ``C`` channels of ``concat(S, D') A``.
        """
        c = self.channels
        d = c + 3
        coord = normalize_coordinates(coords).transpose(1, 2)  # (B, 3, N) D'
        g = self.global_mlp(self._point_features(points, coord).amax(dim=2))
        # ``concat(S, D')`` is never built (a (C+3)×N copy), and only the C output channels
        # that are kept are computed: out = A[:C, :C]ᵀ S + A[C:, :C]ᵀ D' (column form).
        if self.form == "full":
            a = self.matrix(g).view(-1, d, d)
            # bmm + add rather than baddbmm: fvcore counts bmm, not baddbmm
            out = torch.bmm(a[:, :c, :c].transpose(1, 2), points)
            return out.add_(torch.bmm(a[:, c:, :c].transpose(1, 2), coord))
        if self.form == "uv":
            uv = self.matrix(g).view(-1, 2, d, self.rank)
            u, v = uv[:, 0], uv[:, 1]
            # (I + U Vᵀ)ᵀ z = z + V (Uᵀ z), first C rows: S + V[:C] (U[:C]ᵀ S + U[C:]ᵀ D')
            uz = torch.bmm(u[:, :c].transpose(1, 2), points).add_(torch.bmm(u[:, c:].transpose(1, 2), coord))
            return torch.bmm(v[:, :c], uz).add_(points)
        # core: (I + Q G Pᵀ)ᵀ z = z + P Gᵀ (Qᵀ z), first C rows: S + P Gᵀ (Q[:C]ᵀ S + Q[C:]ᵀ D').
        # The bases are expanded over the batch (no copy) so that fvcore counts every bmm.
        b = points.shape[0]
        core = self.matrix(g).view(-1, self.rank, self.rank)
        q = self.basis_in.t()
        qz = torch.bmm(q[:, :c].expand(b, -1, -1), points).add_(torch.bmm(q[:, c:].expand(b, -1, -1), coord))
        return torch.bmm(self.basis_out.expand(b, -1, -1), torch.bmm(core.transpose(1, 2), qz)).add_(points)

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

    def forward(self, points: torch.Tensor, coords: torch.Tensor, map_size: tuple[int, int] | None = None
                ) -> torch.Tensor:
        """``(B, C, N), (B, N, 3) -> (B, C, N)``.

        ``map_size``: the split map's ``(h, w)`` as Python ints, checked against the grid without
        touching the device. Without it the coordinates themselves are checked, a read of a
        device value (a host sync on a GPU every forward): AK-Net always passes it.
        """
        largest = max(map_size) - 1 if map_size is not None else int(coords[..., 1:].max())
        if largest >= self.grid:
            raise InputShapeError(
                f"the split feature map is larger than the position embedding's {self.grid}x{self.grid} "
                f"grid; build the model with a larger max_input_size"
            )
        emb = self.time[coords[..., 0]] + self.row[coords[..., 1]] + self.col[coords[..., 2]]
        return points + emb.transpose(1, 2)

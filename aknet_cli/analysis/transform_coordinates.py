"""How the transform net (eqs. 8-10) uses the keypoints' coordinates: its input split into the
feature part ``S`` and the coordinate part ``D'``, and two interventions on the net.

The net reads ``concat(S, D')``: ``C`` feature channels and the 3 normalised coordinates of
eq. 8, which lie in the unit ball. :func:`coordinate_parts` separates what each part contributes
to the point MLP's first layer and to the change ``T(S) − S``; :func:`scaled_coordinates` and
:func:`noise_instead_of_transform` patch every transform net while active, for retraining with
the coordinates scaled up or with the transform replaced by noise
(``studies/transform_coordinate_scale.py``).
"""

from __future__ import annotations

import contextlib

import torch

from ..models import position
from ..models.selection import normalize_coordinates


def coordinate_parts(net: position.TransformNet, points: torch.Tensor, coords: torch.Tensor) -> dict[str, torch.Tensor]:
    """The feature (``S``) and coordinate (``D``) parts of the point MLP's first layer and of the
    change ``T(S) − S``: each pair sums to the whole, ``(B, 64, N)`` and ``(B, C, N)``."""
    c = net.channels
    coord = position.normalize_coordinates(coords).transpose(1, 2)
    w = net.point_mlp[0].weight[:, :, 0]
    g = net.global_mlp(net._point_features(points, coord).amax(dim=2))
    uv = net.matrix(g).view(-1, 2, c + 3, net.rank)
    u, v = uv[:, 0], uv[:, 1]
    return {"coord": coord, "matrix_S": torch.bmm(v[:, :c], u[:, :c].transpose(1, 2)),
            "first_S": torch.matmul(w[:, :c], points), "first_D": torch.matmul(w[:, c:], coord),
            "change_S": torch.bmm(v[:, :c], torch.bmm(u[:, :c].transpose(1, 2), points)),
            "change_D": torch.bmm(v[:, :c], torch.bmm(u[:, c:].transpose(1, 2), coord))}


def coordinate_terms(net: position.TransformNet, points: torch.Tensor, coords: torch.Tensor) -> dict[str, float]:
    """The norms of :func:`coordinate_parts` for one batch, and the points' mean per-point norms."""
    parts = coordinate_parts(net, points, coords)
    matrix = parts.pop("matrix_S")
    mean_matrix = matrix.mean(dim=0, keepdim=True)
    spread = (matrix - mean_matrix).flatten(1).norm(dim=1).mean() / mean_matrix.norm().clamp_min(1e-12)
    return {"point_norm_S": float(points.norm(dim=1).mean()), "point_norm_D": float(parts["coord"].norm(dim=1).mean()),
            "points": float(points.norm()), "matrix_spread": float(spread),
            **{k: float(v.norm()) for k, v in parts.items() if k != "coord"}}


@contextlib.contextmanager
def scaled_coordinates(scale: float, fixed_matrix: bool = False):
    """While active, every transform net reads ``scale · D'``; with ``fixed_matrix`` its point
    MLP reads zeros instead of ``concat(S, D')``, so ``g`` and with it ``A = I + U Vᵀ`` are the
    same for every clip: a learned linear map of ``concat(S, D')`` that does not depend on it."""
    point_features = position.TransformNet._point_features
    position.normalize_coordinates = lambda coords: scale * normalize_coordinates(coords)
    if fixed_matrix:
        position.TransformNet._point_features = lambda net, points, coord: point_features(
            net, torch.zeros_like(points), torch.zeros_like(coord))
    try:
        yield
    finally:
        position.normalize_coordinates = normalize_coordinates
        position.TransformNet._point_features = point_features


@contextlib.contextmanager
def noise_instead_of_transform(relative: float):
    """While active, every transform net is replaced by noise while training, and by the
    identity in eval mode: each point ``S_i`` gets ``relative · ‖S_i‖ / √C · ε``, ``ε ~ N(0, I)``,
    a random change of about ``relative · ‖S_i‖``, the size of the one a trained transform makes."""
    forward = position.TransformNet.forward

    def noisy(net, points, coords):
        if not net.training:
            return points
        scale = relative * points.norm(dim=1, keepdim=True) / points.shape[1] ** 0.5
        return points + scale * torch.randn_like(points)

    position.TransformNet.forward = noisy
    try:
        yield
    finally:
        position.TransformNet.forward = forward

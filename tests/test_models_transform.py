"""Position information for the ranked points: the transform net T (eqs. 8-10) with a
non-identity A, full and low-rank, and the learnable position embedding, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aknet_cli import build_aknet
from aknet_cli.exceptions import ConfigError, InputShapeError
from aknet_cli.models.position import PositionEmbedding, TransformNet

C, N = 5, 12
D = C + 3


def _inputs(batch: int = 2, seed: int = 0):
    """Ranked point features S as (B, C, N) and distinct integer (t, y, x) coordinates."""
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(batch, C, N, generator=g)
    coords = []
    for _ in range(batch):
        flat = torch.randperm(4 * 6 * 7, generator=g)[:N]
        coords.append(torch.stack([flat // 42, (flat // 7) % 6, flat % 7], dim=1))
    return points, torch.stack(coords)


def _normalised(coords: np.ndarray) -> np.ndarray:
    """Eq. 8: D' = (D - centroid) / max distance to the centroid, one clip."""
    d = coords.astype(np.float64)
    d = d - d.mean(axis=0)
    return d / np.linalg.norm(d, axis=1).max()


def _concat(points: torch.Tensor, coords: torch.Tensor, b: int) -> np.ndarray:
    """concat(S, D'): (N, C+3), one row per point."""
    s = points[b].numpy().astype(np.float64).T
    return np.concatenate([s, _normalised(coords[b].numpy())], axis=1)


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def test_eq8_centres_and_scales_into_the_unit_ball():
    from aknet_cli.models.selection import normalize_coordinates

    _, coords = _inputs()
    got = normalize_coordinates(coords).numpy()
    for b in range(coords.shape[0]):
        np.testing.assert_allclose(got[b], _normalised(coords[b].numpy()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("form,rank", [("full", None), ("uv", 3), ("core", 3)])
def test_constant_non_identity_matrix_is_applied_as_concat_S_D_times_A(form, rank):
    """With the last FC's weight at zero, A is its bias (and, for ``core``, the learned bases):
    a fixed matrix, chosen non-symmetric and with non-zero coordinate rows, so that Aᵀ in place
    of A, the last C channels in place of the first, or dropping D' each give a different answer."""
    net = TransformNet(C, rank=rank, form=form).eval()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        net.matrix.weight.zero_()
        if form == "full":
            a = rng.normal(size=(D, D))
            net.matrix.bias.copy_(torch.from_numpy(a.reshape(-1)))  # A[i, j] = bias[i·(C+3) + j]
        elif form == "uv":
            u, v = rng.normal(size=(D, rank)), rng.normal(size=(D, rank))
            net.matrix.bias.copy_(torch.from_numpy(np.concatenate([u.reshape(-1), v.reshape(-1)])))
            a = np.eye(D) + u @ v.T  # A = I + U Vᵀ
        else:
            q, p, g = rng.normal(size=(D, rank)), rng.normal(size=(C, rank)), rng.normal(size=(rank, rank))
            net.basis_in.copy_(torch.from_numpy(q))
            net.basis_out.copy_(torch.from_numpy(p))
            net.matrix.bias.copy_(torch.from_numpy(g.reshape(-1)))  # G[i, j] = bias[i·r + j]
            # A = I + Q G Pᵀ; P has C rows because only the first C output channels are kept,
            # so A's last 3 columns are the identity's.
            a = np.eye(D) + q @ g @ np.concatenate([p, np.zeros((3, rank))]).T
    assert not np.allclose(a, a.T) and np.abs(a[C:, :C]).min() > 0
    points, coords = _inputs()
    with torch.no_grad():
        out = net(points, coords)
    assert out.shape == (2, C, N)
    for b in range(2):
        expected = (_concat(points, coords, b) @ a)[:, :C]  # (N, C): the first C channels of P̂
        np.testing.assert_allclose(out[b].numpy().T, expected, rtol=1e-4, atol=1e-4)


def _randomise(net: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def _numpy_t(net: TransformNet, z: np.ndarray) -> np.ndarray:
    """T of eq. 9 for one clip: three 1×1 conv1d + BN + ReLU on every point, max over the
    points, three FC layers (ReLU after the first two). Returns the last FC's output."""
    h = z
    mods = list(net.point_mlp)
    for conv, bn in zip(mods[0::3], mods[1::3]):
        h = h @ _f64(conv.weight)[:, :, 0].T
        h = (h - _f64(bn.running_mean)) / np.sqrt(_f64(bn.running_var) + bn.eps) * _f64(bn.weight) + _f64(bn.bias)
        h = np.maximum(h, 0)
    assert h.shape == (N, 1024)
    g = h.max(axis=0)
    for fc in [m for m in net.global_mlp if isinstance(m, nn.Linear)]:
        g = np.maximum(_f64(fc.weight) @ g + _f64(fc.bias), 0)
    return _f64(net.matrix.weight) @ g + _f64(net.matrix.bias)


@pytest.mark.parametrize("form,rank", [("full", None), ("uv", 2), ("core", 2)])
def test_input_dependent_transform_matches_numpy(form, rank):
    """Every weight of T random: A = T(concat(S, D')) differs per clip (eq. 9), and the output
    is the first C channels of concat(S, D')·A (eq. 10)."""
    torch.manual_seed(0)
    net = TransformNet(C, rank=rank, form=form)
    _randomise(net, seed=3)
    net.eval()
    points, coords = _inputs(seed=5)
    with torch.no_grad():
        out = net(points, coords)
    mats = []
    for b in range(2):
        z = _concat(points, coords, b)
        m = _numpy_t(net, z)
        if form == "full":
            a = m.reshape(D, D)
        elif form == "uv":
            uv = m.reshape(2, D, rank)
            a = np.eye(D) + uv[0] @ uv[1].T
        else:  # A = I + Q G Pᵀ with the learned bases; only G = m comes from the clip
            p = np.concatenate([_f64(net.basis_out), np.zeros((3, rank))])
            a = np.eye(D) + _f64(net.basis_in) @ m.reshape(rank, rank) @ p.T
        mats.append(a)
        np.testing.assert_allclose(out[b].numpy().T, (z @ a)[:, :C], rtol=1e-3, atol=1e-3)
    assert not np.allclose(mats[0], mats[1])  # input-dependent
    assert not np.allclose(mats[0], np.eye(D), atol=0.1)  # and far from the identity


def test_position_embedding_adds_time_row_and_column_vectors():
    torch.manual_seed(0)
    emb = PositionEmbedding(C, num_segments=4, grid=7)
    points, coords = _inputs()
    with torch.no_grad():
        out = emb(points, coords)
    e_t, e_y, e_x = _f64(emb.time), _f64(emb.row), _f64(emb.col)
    assert e_t.shape == (4, C) and e_y.shape == e_x.shape == (7, C)
    assert np.abs(e_t).max() > 0 and not np.allclose(e_y, e_x)
    for b in range(2):
        for i, (t, y, x) in enumerate(coords[b].tolist()):
            expected = points[b, :, i].numpy() + e_t[t] + e_y[y] + e_x[x]
            np.testing.assert_allclose(out[b, :, i].numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis", [1, 2])
def test_position_embedding_grid_overflow_is_named(axis):
    emb = PositionEmbedding(C, num_segments=4, grid=6)
    points, coords = _inputs()
    inside = coords.clone()
    inside[..., 1:] = inside[..., 1:].clamp_max(5)
    emb(points, inside)  # y, x ≤ 5 < 6: fine
    outside = inside.clone()
    outside[1, 3, axis] = 6
    with pytest.raises(InputShapeError, match=r"larger than the position embedding's 6x6 grid.*max_input_size"):
        emb(points, outside)


def test_model_with_embedding_refuses_inputs_beyond_max_input_size():
    # res3 has stride 8: max_input_size 64 gives an 8×8 grid; α = 1 keeps every position.
    model = build_aknet("resnet18", split="res3", alpha=1.0, num_classes=3, num_segments=2, tau=2.0,
                        position="embedding", max_input_size=64).eval()
    assert model.position.grid == 8
    with torch.no_grad():
        assert model(torch.randn(1, 2, 3, 64, 64)).shape == (1, 3)
        with pytest.raises(InputShapeError, match="max_input_size"):
            model(torch.randn(1, 2, 3, 72, 72))


@pytest.mark.parametrize("form,rank", [("full", None), ("uv", 4), ("core", 4)])
def test_every_form_starts_at_the_identity_and_learns(form, rank):
    """A = I at initialisation whatever the input, and one gradient step moves it away: the
    part of A that depends on the clip receives gradient from the start."""
    torch.manual_seed(0)
    net = TransformNet(C, rank=rank, form=form)
    points, coords = _inputs(seed=2)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(points, coords), points)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = (net(points, coords) * torch.randn(points.shape, generator=torch.Generator().manual_seed(1))).sum()
    loss.backward()
    assert net.matrix.weight.grad.abs().sum() > 0
    opt.step()
    net.eval()
    with torch.no_grad():
        assert not torch.allclose(net(points, coords), points, atol=1e-4)


def test_auto_resolves_to_a_recorded_form_and_rank():
    from aknet_cli.models.aknet import DEFAULT_CORE_RANK, DEFAULT_TRANSFORM_FORM, AKNetConfig, resolve_transform

    assert resolve_transform("auto", "auto", 1024) == (DEFAULT_TRANSFORM_FORM, DEFAULT_CORE_RANK)
    assert resolve_transform("core", "auto", 5) == ("core", 8)  # no more than C + 3: the bases span everything
    assert resolve_transform("uv", "auto", 64) == ("full", None)  # 2r ≥ C + 3: the low rank saves nothing
    assert resolve_transform("auto", None, 1024) == ("full", None)
    model = build_aknet("resnet18", split="res4", num_classes=3, num_segments=2)
    assert (model.config.transform, model.config.transform_rank) == (DEFAULT_TRANSFORM_FORM, DEFAULT_CORE_RANK)
    # A checkpoint written before the forms had names: its rank meant A = I + U Vᵀ.
    assert AKNetConfig.from_record({"transform_rank": 64}).transform == "uv"
    assert AKNetConfig.from_record({"transform_rank": None}).transform == "full"
    for bad in ({"transform": "full", "transform_rank": 8}, {"transform": "core", "transform_rank": None},
                {"transform": "diagonal"}):
        with pytest.raises(ConfigError, match="transform"):
            AKNetConfig(**bad).validate()

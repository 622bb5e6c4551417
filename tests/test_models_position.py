"""The transform net T (eqs. 8-10) against a reference written from the equations, point by
point in float64, with A away from the identity (full matrix and low-rank variant), unfused
and fused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aknet_cli.models.fuse import fuse_for_inference
from aknet_cli.models.position import TransformNet


def _reference(net: TransformNet, points: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Eqs. 8-10 for one clip, row form: ``P̂ = concat(S, D') A``, first C columns kept.

    Every layer is written out: 1×1 conv = per-point matrix product, BatchNorm with its running
    statistics, max over points, FC layers, then ``A`` reshaped row-major from the last FC.
    """
    c = net.channels
    d = c + 3
    out = []
    for b in range(points.shape[0]):
        s = points[b].double().t()  # (N, C), one row per ranked point
        xyz = coords[b].double()
        centred = xyz - xyz.mean(dim=0)  # eq. 8
        dmax = max(float(torch.sqrt((row**2).sum())) for row in centred)
        dprime = centred / dmax
        rows = torch.cat([s, dprime], dim=1)  # concat(S, D'): (N, C+3)
        h = rows
        layers = list(net.point_mlp)
        for conv, bn in zip(layers[0::3], layers[1::3]):
            h = h @ conv.weight[:, :, 0].double().t()
            h = (h - bn.running_mean.double()) / torch.sqrt(bn.running_var.double() + bn.eps)
            h = torch.relu(h * bn.weight.double() + bn.bias.double())
        g = h.max(dim=0).values  # max-pool over points
        for fc in (m for m in net.global_mlp if isinstance(m, nn.Linear)):
            g = torch.relu(g @ fc.weight.double().t() + fc.bias.double())
        flat = g @ net.matrix.weight.double().t() + net.matrix.bias.double()
        if net.rank is None:
            a = flat.view(d, d)
        else:
            u, v = flat.view(2, d, net.rank)
            a = torch.eye(d, dtype=torch.float64) + u @ v.t()
        out.append((rows @ a)[:, :c].t())  # eq. 10, first C channels, back to (C, N)
    return torch.stack(out)


@pytest.mark.parametrize("rank", [None, 5])
@pytest.mark.parametrize("fused", [False, True])
def test_transform_net_matches_the_equations(rank, fused):
    torch.manual_seed(3)
    net = TransformNet(12, rank=rank)
    with torch.no_grad():
        nn.init.normal_(net.matrix.weight, std=0.05)  # A depends on the input, not just I
        for m in net.point_mlp:
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.eval()
    points = torch.randn(2, 12, 37)
    coords = torch.stack([torch.randint(0, 4, (2, 37)), torch.randint(0, 9, (2, 37)), torch.randint(0, 9, (2, 37))], -1)
    expected = _reference(net, points, coords)
    model = fuse_for_inference(net) if fused else net
    with torch.no_grad():
        got = model(points, coords)
    assert got.shape == (2, 12, 37)
    assert (expected - points.double()).abs().max() > 1e-2, "A must be far enough from I for the test to mean something"
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)


def _moving_object(batch: int, generator: torch.Generator, channels: int = 8):
    """Point sets whose class only their coordinates carry: an object moving right (class 0) or
    left (class 1) across a 4×4 grid over 8 frames, 3 points a frame at random rows. The point
    features are noise drawn independently of the class."""
    labels = torch.randint(0, 2, (batch,), generator=generator)
    t = torch.arange(8).repeat_interleave(3).expand(batch, -1)
    x = torch.where(labels[:, None] == 0, t // 2, 3 - t // 2)
    y = torch.randint(0, 4, t.shape, generator=generator)
    coords = torch.stack([t, y, x], dim=-1)
    points = torch.randn(batch, channels, t.shape[1], generator=generator)
    return points, coords, labels



def _trained_on_moving_objects(rank, steps: int = 60):
    """T and a small per-point head trained on ``_moving_object`` with Adam."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    net = TransformNet(8, rank=rank)
    head = nn.Sequential(nn.Conv1d(8, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=3e-3)
    for _ in range(steps):
        points, coords, labels = _moving_object(32, generator)
        loss = nn.functional.cross_entropy(head(net(points, coords)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval(), head.eval(), generator


@pytest.mark.parametrize("rank", [None, 4])
def test_transform_net_learns_a_class_only_the_coordinates_carry(rank):
    """The coordinate path of T is trainable end to end: the direction of motion, carried by
    ``D'`` alone, is learned. Given the coordinates of other clips, the same net is at chance,
    so nothing else in the inputs told the classes apart."""
    net, head, generator = _trained_on_moving_objects(rank)
    points, coords, labels = _moving_object(512, generator)
    with torch.no_grad():
        own = (head(net(points, coords)).argmax(dim=1) == labels).float().mean()
        others = (head(net(points, coords.roll(1, dims=0))).argmax(dim=1) == labels).float().mean()
    assert own > 0.9
    assert abs(others - 0.5) < 0.1

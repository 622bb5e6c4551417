"""analysis.transform_coordinates (studies/transform_coordinate_scale.py's measure and patches):
its split of the transform into a feature part and a coordinate part adds up to what the
transform net computes, and its scaling reaches the net."""

from __future__ import annotations

import torch

from aknet_cli.analysis import transform_coordinates
from aknet_cli.models.position import TransformNet


def _net_away_from_identity(channels: int = 6, rank: int = 3) -> TransformNet:
    torch.manual_seed(0)
    net = TransformNet(channels, rank=rank).eval()
    with torch.no_grad():
        net.matrix.weight.normal_(std=0.05)  # A depends on the input
        net.matrix.bias.view(2, -1)[0].normal_()  # U ≠ 0: T changes the points
    return net


def _points(batch: int = 2, channels: int = 6, n: int = 10):
    coords = torch.stack([torch.randint(0, 8, (batch, n)), torch.randint(0, 4, (batch, n)),
                          torch.randint(0, 4, (batch, n))], dim=-1)
    return torch.randn(batch, channels, n), coords


@torch.no_grad()
def test_feature_and_coordinate_parts_add_up_to_the_transforms_change():
    net = _net_away_from_identity()
    points, coords = _points()
    parts = transform_coordinates.coordinate_parts(net, points, coords)
    torch.testing.assert_close(parts["change_S"] + parts["change_D"], net(points, coords) - points)
    concat = torch.cat([points, parts["coord"]], dim=1)  # concat(S, D'), built here and only here
    torch.testing.assert_close(parts["first_S"] + parts["first_D"], net.point_mlp[0](concat))
    assert parts["change_D"].abs().max() > 0 and parts["first_D"].abs().max() > 0


@torch.no_grad()
def test_scaled_coordinates_multiply_what_the_net_reads_and_are_undone_after():
    net = _net_away_from_identity()
    points, coords = _points()
    plain = transform_coordinates.coordinate_parts(net, points, coords)
    with transform_coordinates.scaled_coordinates(50.0):
        scaled = transform_coordinates.coordinate_parts(net, points, coords)
        inside = net(points, coords)
    torch.testing.assert_close(scaled["coord"], 50.0 * plain["coord"])
    torch.testing.assert_close(scaled["first_D"], 50.0 * plain["first_D"])
    assert not torch.allclose(inside, net(points, coords))
    torch.testing.assert_close(transform_coordinates.coordinate_parts(net, points, coords)["coord"], plain["coord"])


@torch.no_grad()
def test_fixed_matrix_gives_every_clip_the_same_transform():
    net = _net_away_from_identity()
    points, coords = _points(batch=3)
    assert not torch.allclose(transform_coordinates.coordinate_parts(net, points, coords)["matrix_S"][0],
                              transform_coordinates.coordinate_parts(net, points, coords)["matrix_S"][1])
    with transform_coordinates.scaled_coordinates(1.0, fixed_matrix=True):
        matrix = transform_coordinates.coordinate_parts(net, points, coords)["matrix_S"]
        out = net(points, coords)
    torch.testing.assert_close(matrix, matrix[:1].expand_as(matrix))
    # still eq. 10 with that one A: the change is V (Uᵀ [S; D']), so it depends on the points
    assert not torch.allclose(out - points, (out - points)[:1].expand_as(out))


def test_noise_control_perturbs_by_the_relative_size_while_training_and_is_the_identity_at_test():
    net = _net_away_from_identity(channels=256)
    points, coords = _points(batch=4, channels=256, n=50)
    with transform_coordinates.noise_instead_of_transform(0.12):
        net.train()
        change = net(points, coords) - points
        net.eval()
        assert torch.equal(net(points, coords), points)
    ratio = change.norm(dim=1) / points.norm(dim=1)  # per point, E ≈ 0.12 for C = 256
    assert abs(float(ratio.mean()) - 0.12) < 0.01
    assert not torch.allclose(net.eval()(points, coords), points)  # the real transform is back

"""benchmarks/transform_coordinate_scale.py: its split of the transform into a feature part and
a coordinate part adds up to what the transform net computes, and its scaling reaches the net."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from aknet_cli.models.position import TransformNet

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "transform_coordinate_scale.py"
_spec = importlib.util.spec_from_file_location("transform_coordinate_scale", _PATH)
tcs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tcs)


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
    parts = tcs.coordinate_parts(net, points, coords)
    torch.testing.assert_close(parts["change_S"] + parts["change_D"], net(points, coords) - points)
    concat = torch.cat([points, parts["coord"]], dim=1)  # concat(S, D'), built here and only here
    torch.testing.assert_close(parts["first_S"] + parts["first_D"], net.point_mlp[0](concat))
    assert parts["change_D"].abs().max() > 0 and parts["first_D"].abs().max() > 0


@torch.no_grad()
def test_scaled_coordinates_multiply_what_the_net_reads_and_are_undone_after():
    net = _net_away_from_identity()
    points, coords = _points()
    plain = tcs.coordinate_parts(net, points, coords)
    with tcs.scaled_coordinates(50.0):
        scaled = tcs.coordinate_parts(net, points, coords)
        inside = net(points, coords)
    torch.testing.assert_close(scaled["coord"], 50.0 * plain["coord"])
    torch.testing.assert_close(scaled["first_D"], 50.0 * plain["first_D"])
    assert not torch.allclose(inside, net(points, coords))
    torch.testing.assert_close(tcs.coordinate_parts(net, points, coords)["coord"], plain["coord"])


@torch.no_grad()
def test_fixed_matrix_gives_every_clip_the_same_transform():
    net = _net_away_from_identity()
    points, coords = _points(batch=3)
    assert not torch.allclose(tcs.coordinate_parts(net, points, coords)["matrix_S"][0],
                              tcs.coordinate_parts(net, points, coords)["matrix_S"][1])
    with tcs.scaled_coordinates(1.0, fixed_matrix=True):
        matrix = tcs.coordinate_parts(net, points, coords)["matrix_S"]
        out = net(points, coords)
    torch.testing.assert_close(matrix, matrix[:1].expand_as(matrix))
    # still eq. 10 with that one A: the change is V (Uᵀ [S; D']), so it depends on the points
    assert not torch.allclose(out - points, (out - points)[:1].expand_as(out))


def _run_dir(root: Path, name: str, correct: list[int]) -> None:
    folder = root / name / "eval_test"
    folder.mkdir(parents=True)
    rows = [f"{i},{1},{1 if ok else 0}" for i, ok in enumerate(correct)]
    (folder / "predictions.csv").write_text("id,label,top1\n" + "\n".join(reversed(rows)) + "\n")  # one order for every run, as evaluate writes the split


def test_compare_pairs_each_row_with_the_reference_on_the_same_clips(tmp_path):
    # 10 clips; the reference's two seeds get 5 and 6 right, the other row's 8 and 8 (a superset)
    _run_dir(tmp_path, "ref_s0", [1] * 5 + [0] * 5)
    _run_dir(tmp_path, "ref_s1", [1] * 6 + [0] * 4)
    _run_dir(tmp_path, "new_s0", [1] * 8 + [0] * 2)
    _run_dir(tmp_path, "new_s1", [1] * 8 + [0] * 2)
    table = tcs.compare([f"ref={tmp_path}/ref_s?", f"new={tmp_path}/new_s?"], reference="ref")
    ref_line, new_line = table.splitlines()[2:]
    assert ref_line.startswith("| ref | 50.00, 60.00 | 55.00 ± 7.07 | — |")
    # seeds averaged per clip: 0.8 − 0.55 = +25 points; per seed +30 and +20
    assert new_line.startswith("| new | 80.00, 80.00 | 80.00 ± 0.00 | +25.00 [")
    assert new_line.endswith("| +30.00, +20.00 |")


def test_noise_control_perturbs_by_the_relative_size_while_training_and_is_the_identity_at_test():
    net = _net_away_from_identity(channels=256)
    points, coords = _points(batch=4, channels=256, n=50)
    with tcs.noise_instead_of_transform(0.12):
        net.train()
        change = net(points, coords) - points
        net.eval()
        assert torch.equal(net(points, coords), points)
    ratio = change.norm(dim=1) / points.norm(dim=1)  # per point, E ≈ 0.12 for C = 256
    assert abs(float(ratio.mean()) - 0.12) < 0.01
    assert not torch.allclose(net.eval()(points, coords), points)  # the real transform is back

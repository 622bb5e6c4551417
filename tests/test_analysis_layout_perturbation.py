"""analysis.layout_perturbation (studies/keypoint_order_sensitivity.py's hooks): its perturbations
destroy exactly the layout they name.

Each hook is checked against what it must keep: a point's features stay with its own
coordinates when the order is shuffled, the features stay in place when only the coordinates
are, and a 2-D layout shuffle moves every frame of a clip the same way.
"""

from __future__ import annotations

import torch

from aknet_cli.analysis import layout_perturbation
from aknet_cli.models.aknet import build_aknet


def _points_encoding_their_coords(batch: int = 3, n: int = 12):
    """Points whose 3 channels are their own (t, y, x), so a pairing can be read back."""
    coords = torch.stack([torch.randperm(40)[:n] for _ in range(batch)])
    coords = torch.stack([coords // 16, (coords // 4) % 4, coords % 4], dim=-1)
    return coords.transpose(1, 2).float().contiguous(), coords


def test_points_shuffle_moves_each_point_with_its_coordinates():
    points, coords = _points_encoding_their_coords()
    hook = layout_perturbation.selector_hook("points", torch.Generator().manual_seed(0))
    new_points, new_coords = hook(None, (), (points, coords))
    assert torch.equal(new_points.transpose(1, 2), new_coords.float())  # pairs intact
    assert not torch.equal(new_coords, coords)  # but in another order
    for b in range(coords.shape[0]):  # the same points, no duplicates, none lost
        assert sorted(map(tuple, new_coords[b].tolist())) == sorted(map(tuple, coords[b].tolist()))


def test_coordinate_shuffle_keeps_the_features_in_place():
    points, coords = _points_encoding_their_coords()
    hook = layout_perturbation.selector_hook("coords", torch.Generator().manual_seed(0))
    new_points, new_coords = hook(None, (), (points, coords))
    assert torch.equal(new_points, points)
    assert not torch.equal(new_points.transpose(1, 2), new_coords.float())


def test_coordinates_of_another_clip_replace_a_clips_own_and_keep_its_features():
    points, coords = _points_encoding_their_coords()
    hook = layout_perturbation.selector_hook("coords_clip", torch.Generator().manual_seed(0))
    new_points, new_coords = hook(None, (), (points, coords))
    assert torch.equal(new_points, points)
    for b in range(coords.shape[0]):  # clip b now holds clip b-1's coordinates, in their rank order
        assert torch.equal(new_coords[b], coords[b - 1])
        assert sorted(map(tuple, new_coords[b].tolist())) != sorted(map(tuple, coords[b].tolist()))


def test_layout_shuffle_is_one_permutation_per_clip_for_all_frames():
    t, c, h, w = 4, 2, 3, 3
    clip = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).expand(2 * t, c, h, w).clone()
    clip[t:] += 100  # the second clip
    out = layout_perturbation.layout_hook(t, torch.Generator().manual_seed(0))(None, (), clip)
    first, second = out[:t], out[t:]
    assert torch.equal(first, first[:1].expand_as(first))  # every frame of a clip alike
    assert sorted(first[0, 0].flatten().tolist()) == list(range(h * w))  # a permutation
    assert not torch.equal(first[0], clip[0])
    assert not torch.equal(second[0] - 100, first[0])  # each clip its own


def test_bypass_hook_hands_the_points_on_unchanged():
    model = build_aknet("tdn_resnet18", num_classes=5, num_segments=4, alpha=0.5).eval()
    with torch.no_grad():
        model.position.matrix.bias.view(2, -1)[0].normal_()  # U ≠ 0: the transform now changes the points
    feats = torch.randn(4, model.position.channels, 4, 4)
    with torch.no_grad():
        changed = model.after_split(feats)[0]
        model.position.register_forward_hook(layout_perturbation.bypass_hook)
        bypassed = model.after_split(feats)[0]
        model.position = None
        plain = model.after_split(feats)[0]
    assert not torch.allclose(changed, plain)
    assert torch.equal(bypassed, plain)

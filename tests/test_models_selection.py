"""Top-N selection, ranking (eq. 7) and coordinate normalisation (eq. 8), checked against
independent NumPy/Python computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aknet_cli.exceptions import ConfigError
from aknet_cli.models.selection import KeypointSelector, normalize_coordinates, num_keypoints, rank_keypoints


def test_number_of_keypoints_matches_the_paper_setting():
    assert num_keypoints(0.3, 8, 14, 14) == 470  # res4 at 224², α = 0.3
    assert num_keypoints(0.3, 8, 56, 56) == round(0.3 * 8 * 56 * 56)
    assert num_keypoints(1.0, 2, 3, 3) == 18
    assert num_keypoints(1e-6, 2, 3, 3) == 1


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5, 1.0])
def test_selection_returns_the_n_highest_scores_ranked_by_x_plus_y_plus_tau_t(alpha):
    b, t, c, h, w, tau = 3, 4, 5, 6, 7, 2.0
    g = torch.Generator().manual_seed(7)
    feats = torch.randn(b, t, c, h, w, generator=g)
    heat = torch.rand(b, t, h, w, generator=g)
    points, coords = KeypointSelector(alpha, tau=tau)(feats, heat)
    n = int(np.floor(alpha * t * h * w + 0.5))
    assert points.shape == (b, c, n) and coords.shape == (b, n, 3) and coords.dtype == torch.int64
    hn = heat.numpy()
    for i in range(b):
        expected = set(np.argsort(-hn[i].reshape(-1), kind="stable")[:n].tolist())
        got = {int(tt) * h * w + int(yy) * w + int(xx) for tt, yy, xx in coords[i].tolist()}
        assert got == expected
        keys = [xx + yy + tau * tt for tt, yy, xx in coords[i].tolist()]
        assert all(k1 >= k2 for k1, k2 in zip(keys, keys[1:])), "ranking must be descending"
        for j, (tt, yy, xx) in enumerate(coords[i].tolist()):
            torch.testing.assert_close(points[i, :, j], feats[i, tt, :, yy, xx])


def test_selection_is_joint_over_frames():
    heat = torch.zeros(1, 4, 3, 3)
    heat[0, 2] = 1.0  # all the evidence in frame 2
    heat[0, 2, 0, 0] = 0.5
    _, coords = KeypointSelector(9 / 36, tau=2.0)(torch.randn(1, 4, 2, 3, 3), heat)
    assert coords[0, :, 0].tolist() == [2] * 9  # every keypoint from the same frame


def test_ties_in_the_ranking_key_are_broken_by_position():
    # Flat indices over (T=2, H=2, W=2) chosen so that several share x + y + τ·t.
    index = torch.tensor([[7, 0, 5, 3, 6, 1]])
    ranked = rank_keypoints(index, 2, 2, tau=1.0)
    # (t,y,x): 7=(1,1,1) k=3; 0=(0,0,0) k=0; 5=(1,0,1) k=2; 3=(0,1,1) k=2; 6=(1,1,0) k=2; 1=(0,0,1) k=1
    assert ranked.tolist() == [[7, 3, 5, 6, 1, 0]]
    # Independent of the order top-k handed them over.
    assert rank_keypoints(index.flip(1), 2, 2, tau=1.0).tolist() == ranked.tolist()


def test_without_ranking_points_keep_score_order():
    heat = torch.tensor([[[[0.1, 0.9], [0.5, 0.7]]]])
    _, coords = KeypointSelector(0.75, ranking=False)(torch.randn(1, 1, 1, 2, 2), heat)
    assert coords[0].tolist() == [[0, 0, 1], [0, 1, 1], [0, 1, 0]]


def test_normalised_coordinates_are_centred_and_fit_the_unit_ball():
    coords = torch.tensor([[[0, 0, 0], [0, 0, 4], [0, 3, 0], [2, 1, 1]]])
    d = normalize_coordinates(coords)
    mu = coords.float().mean(1, keepdim=True)
    dmax = (coords.float() - mu).norm(dim=2).max()
    torch.testing.assert_close(d, (coords.float() - mu) / dmax)
    torch.testing.assert_close(d.mean(1), torch.zeros(1, 3), atol=1e-6, rtol=0)
    assert abs(d.norm(dim=2).max().item() - 1.0) < 1e-6
    # All points equal: no division by zero.
    assert torch.equal(normalize_coordinates(torch.ones(1, 3, 3)), torch.zeros(1, 3, 3))


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_alpha_outside_unit_interval_is_refused(alpha):
    with pytest.raises(ConfigError, match=str(alpha)):
        KeypointSelector(alpha)

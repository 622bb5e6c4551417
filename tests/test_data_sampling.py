"""TSN sampling indices, checked against hand-computed numbers."""

import numpy as np
import pytest

from aknet_cli.data.sampling import sample_indices
from aknet_cli.exceptions import ConfigError


def test_test_mode_centres_match_tsm():
    # 80 frames, T=8: segment length 10, centres int(5 + 10 i).
    got = sample_indices(80, 8, train=False)
    assert got.shape == (1, 8, 1)
    assert got[0, :, 0].tolist() == [5, 15, 25, 35, 45, 55, 65, 75]
    # 30 frames, T=8: L=3.75 -> int(1.875 + 3.75 i)
    assert sample_indices(30, 8, train=False)[0, :, 0].tolist() == [1, 5, 9, 13, 16, 20, 24, 28]


def test_short_video_repeats_frames():
    assert sample_indices(4, 8, train=False)[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sample_indices(1, 3, train=False)[0, :, 0].tolist() == [0, 0, 0]
    train = sample_indices(3, 8, train=True, rng=np.random.default_rng(0))[0, :, 0]
    assert train.min() >= 0 and train.max() <= 2 and np.all(np.diff(train) >= 0)


def test_multi_clip_offsets_are_evenly_shifted():
    # 40 frames, T=4, L=10; two clips at 1/4 and 3/4 of each segment.
    got = sample_indices(40, 4, train=False, num_clips=2)[:, :, 0]
    assert got.tolist() == [[2, 12, 22, 32], [7, 17, 27, 37]]


def test_train_offsets_stay_inside_their_segment():
    rng = np.random.default_rng(1)
    for _ in range(50):
        got = sample_indices(80, 8, train=True, rng=rng)[0, :, 0]
        assert all(10 * i <= v < 10 * (i + 1) for i, v in enumerate(got))
    draws = {tuple(sample_indices(80, 8, train=True, rng=rng)[0, :, 0]) for _ in range(5)}
    assert len(draws) > 1


def test_tdn_five_frames_centred_and_clamped():
    got = sample_indices(16, 4, train=False, frames_per_segment=5)
    # L=4, centres 2, 6, 10, 14; the last window clamps at 15.
    assert got[0].tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9, 10, 11, 12], [12, 13, 14, 15, 15]]


@pytest.mark.parametrize("kwargs", [dict(num_frames=0), dict(num_segments=0), dict(num_clips=2, train=True)])
def test_bad_arguments(kwargs):
    args = dict(num_frames=10, num_segments=4, train=False) | kwargs
    with pytest.raises(ConfigError):
        sample_indices(args.pop("num_frames"), args.pop("num_segments"), **args)

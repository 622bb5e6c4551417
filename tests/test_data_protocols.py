"""Each protocol's frame indices, resize sizes and crop offsets against values worked out by hand
from the official formulas (TSM's and TDN's ``ops/dataset.py`` / ``ops/transforms.py``,
mmaction2's ``SampleFrames`` / ``Resize`` / ``CenterCrop`` / ``ThreeCrop``), not from the code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aknet_cli.data.protocols import PROTOCOLS, check_views, get_protocol
from aknet_cli.data.sampling import sample_indices
from aknet_cli.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transform,
    centre_offset,
    resize_frames,
    resized_size,
    three_crop_offsets,
)
from aknet_cli.engine.scoring import average_views
from aknet_cli.exceptions import ConfigError


def starts(n, *, protocol, length=1, clips=1, t=8):
    """The first frame of every window, ``(clips, T)``."""
    got = sample_indices(n, t, train=False, frames_per_segment=length, num_clips=clips, protocol=protocol)
    return got[..., 0].tolist()


# ------------------------------------------------------------------------------ test sampling
def test_tsm_centres_and_twice_sample():
    # n = 71, T = 8: tick = 8.875; centres int(4.4375 + 8.875 x), starts int(8.875 x).
    assert starts(71, protocol="tsm", clips=2) == [[4, 13, 22, 31, 39, 48, 57, 66], [0, 8, 17, 26, 35, 44, 53, 62]]
    # n = 5 < T: tick = 0.625; int(0.3125 + 0.625 x) and int(0.625 x): frames repeat in order.
    assert starts(5, protocol="tsm", clips=2) == [[0, 0, 1, 2, 2, 3, 4, 4], [0, 0, 1, 1, 2, 3, 3, 4]]


def test_mmaction2_test_clips_are_tsm_s_with_one_frame():
    # SampleFrames(clip_len=1, num_clips=8, twice_sample=True): avg = n/8, centres, then bases.
    assert starts(71, protocol="mmaction2", clips=2) == [[4, 13, 22, 31, 39, 48, 57, 66],
                                                         [0, 8, 17, 26, 35, 44, 53, 62]]
    assert starts(5, protocol="mmaction2") == [[0, 0, 1, 2, 2, 3, 4, 4]]


def test_tdn_windows():
    # n = 71: tick = (71 - 4)/8 = 8.375; starts int(4.1875 + 8.375 x) (the official numbers).
    got = sample_indices(71, 8, train=False, frames_per_segment=5, protocol="tdn")
    assert got[0, :, 0].tolist() == [4, 12, 20, 29, 37, 46, 54, 62]
    assert got[0, 7].tolist() == [62, 63, 64, 65, 66]
    # n = 12 = T + 4: every window starts at frame 0.
    assert sample_indices(12, 8, train=False, frames_per_segment=5, protocol="tdn")[0].tolist() == [[0, 1, 2, 3, 4]] * 8
    # n = 13: tick = 9/8; int(0.5625 + 1.125 x); the last window 8..12 ends on the last frame.
    got = sample_indices(13, 8, train=False, frames_per_segment=5, protocol="tdn")
    assert got[0, :, 0].tolist() == [0, 1, 2, 3, 5, 6, 7, 8] and got[0, 7].tolist() == [8, 9, 10, 11, 12]
    # n = 3 < T: windows from frame 0, the index stopping at the last frame.
    assert sample_indices(3, 8, train=False, frames_per_segment=5, protocol="tdn")[0, 0].tolist() == [0, 1, 2, 2, 2]
    # The second clip (aknet's extension): TSM's segment starts over TDN's tick, int(8.375 x).
    assert starts(71, protocol="tdn", length=5, clips=2)[1] == [0, 8, 16, 25, 33, 41, 50, 58]


def test_tsm_rule_with_five_frame_windows_has_no_short_clip_fallback():
    # TSM's formula with new_length = 5 (a TDN model under --protocol tsm): n = 6, tick = 2/8:
    # int(0.125 + 0.25 x) = 0 0 0 0 1 1 1 1; n = 4: tick 0, windows clamped at frame 3.
    assert starts(6, protocol="tsm", length=5) == [[0, 0, 0, 0, 1, 1, 1, 1]]
    assert sample_indices(4, 8, train=False, frames_per_segment=5, protocol="tsm")[0, 0].tolist() == [0, 1, 2, 3, 3]


# -------------------------------------------------------------------------- training sampling
@pytest.mark.parametrize(("protocol", "length", "n", "average"), [
    ("tsm", 1, 71, 8),    # (71 - 1 + 1) // 8
    ("tdn", 5, 71, 8),    # (71 - 5 + 1) // 8
    ("tdn", 5, 44, 5),    # 40 // 8
    ("mmaction2", 1, 20, 2),
])
def test_training_starts_one_random_offset_within_each_whole_segment(protocol, length, n, average):
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        got = sample_indices(n, 8, train=True, frames_per_segment=length, rng=rng, protocol=protocol)[0]
        offsets = got[:, 0] - average * np.arange(8)
        assert offsets.min() >= 0 and offsets.max() < average
        assert (np.diff(got, axis=1) == 1).all()  # consecutive frames inside a window
        seen.update(offsets.tolist())
    assert seen == set(range(average))


def test_training_fallbacks_for_short_clips():
    rng = np.random.default_rng(1)
    # TDN, n = 11: (11 - 4) // 8 = 0 and n > T: sorted draws among the 7 starts whose window fits.
    for _ in range(20):
        got = sample_indices(11, 8, train=True, frames_per_segment=5, rng=rng, protocol="tdn")[0, :, 0]
        assert (np.diff(got) >= 0).all() and got.min() >= 0 and got.max() <= 6
    # n <= T: every start at frame 0 (TSM and TDN).
    assert sample_indices(8, 8, train=True, frames_per_segment=5, rng=rng, protocol="tdn")[0, :, 0].tolist() == [0] * 8
    assert sample_indices(5, 8, train=True, rng=rng, protocol="tsm")[0, :, 0].tolist() == [0] * 8
    # n = T: avg = 1, offsets 0: every frame once.
    assert sample_indices(8, 8, train=True, rng=rng, protocol="tsm")[0, :, 0].tolist() == list(range(8))
    # mmaction2, n = 5 < T: round(x * 5/8) = round(0, .625, 1.25, 1.875, 2.5, 3.125, 3.75, 4.375), half to even.
    assert sample_indices(5, 8, train=True, rng=rng, protocol="mmaction2")[0, :, 0].tolist() == [0, 1, 1, 2, 2, 3, 4, 4]


def test_protocol_arguments_are_checked():
    with pytest.raises(ConfigError, match="unknown protocol"):
        sample_indices(10, 4, train=False, protocol="slowfast")
    with pytest.raises(ConfigError, match="1 or 2 clips"):
        sample_indices(10, 4, train=False, num_clips=3, protocol="tsm")
    assert sample_indices(40, 4, train=False, num_clips=3).shape == (3, 4, 1)  # aknet: any number of clips
    with pytest.raises(ConfigError, match="--protocol 'x'"):
        get_protocol("x")
    with pytest.raises(ConfigError, match="use --protocol aknet"):
        check_views(PROTOCOLS["tdn"], clips=3, frames_per_segment=5, model="m")
    with pytest.raises(ConfigError, match="use --protocol tdn"):
        check_views(PROTOCOLS["mmaction2"], clips=1, frames_per_segment=5, model="m")


# ------------------------------------------------------------------------------------ geometry
def test_resized_sizes():
    # A Sth-Sth V1 frame, 100 x 176: 256 * 176 / 100 = 450.56; torchvision floors, mmcv rounds.
    assert resized_size(100, 176, 256, long_side="floor") == (256, 450)
    assert resized_size(100, 176, 256, long_side="round") == (256, 451)
    assert resized_size(176, 100, 256, long_side="round") == (451, 256)  # portrait
    assert resized_size(100, 176, 256, mode="square") == (256, 256)


def test_three_crop_offsets_on_a_450_wide_frame():
    # TSM/TDN GroupFullResSample: s = (450 - 256) // 4 = 48: left 0, right 192, centre 96, top 2*0.
    assert three_crop_offsets(256, 450, 256, placement="quarters") == [(0, 0), (0, 192), (0, 96)]
    # mmaction2 ThreeCrop: s' = 194 // 2 = 97: 0, 194, 97.
    assert three_crop_offsets(256, 450, 256, placement="halves") == [(0, 0), (0, 194), (0, 97)]
    assert three_crop_offsets(256, 450, 256, placement="ends") == [(0, 0), (0, 97), (0, 194)]
    # 455 wide: the three placements all differ (48*4 = 196 vs 2*99 = 198 vs 199).
    assert three_crop_offsets(256, 455, 256, placement="quarters") == [(0, 0), (0, 196), (0, 98)]
    assert three_crop_offsets(256, 455, 256, placement="halves") == [(0, 0), (0, 198), (0, 99)]
    assert three_crop_offsets(256, 455, 256, placement="ends") == [(0, 0), (0, 99), (0, 199)]


def test_three_crop_offsets_on_a_portrait_frame():
    # GroupFullResSample steps along the width only: on a portrait frame w_step = 0 and the three
    # crops coincide at top 2 * ((450 - 256) // 4) = 96, as TSM's and TDN's code take them.
    assert three_crop_offsets(450, 256, 256, placement="quarters") == [(96, 0)] * 3
    assert three_crop_offsets(450, 256, 256, placement="halves") == [(0, 0), (194, 0), (97, 0)]
    assert three_crop_offsets(450, 256, 256, placement="ends") == [(0, 0), (97, 0), (194, 0)]


def test_centre_crop_offsets():
    # 256 x 455, crop 224: margins 32 and 231; torchvision round(115.5) = 116, mmaction2 231 // 2 = 115.
    assert centre_offset(256, 455, 224, rounding="round") == (16, 116)
    assert centre_offset(256, 455, 224, rounding="floor") == (16, 115)
    assert centre_offset(455, 256, 224, rounding="floor") == (115, 16)


# ------------------------------------------------------------------------------------ transform
def _ramp(height, width):
    """uint8 (1, 3, H, W): value = column index (< 256)."""
    return torch.arange(width, dtype=torch.uint8).expand(1, 3, height, width).clone()


def _first_columns(views):
    """Undo channel 0's normalisation and read each view's first column value."""
    pixels = views[:, 0, 0] * IMAGENET_STD[0] * 255 + IMAGENET_MEAN[0] * 255  # (V, h, w)
    return [round(float(v[0, 0])) for v in pixels]


@pytest.mark.parametrize(("protocol", "lefts"), [
    ("tsm", [0, 40, 20]),         # s = (74 - 32) // 4 = 10: 0, 4s, 2s
    ("tdn", [0, 40, 20]),
    ("mmaction2", [0, 42, 21]),   # s' = 42 // 2 = 21: 0, 2s', s'
    ("aknet", [0, 21, 42]),       # start, middle, end
])
def test_three_crops_sit_where_each_protocol_puts_them(protocol, lefts):
    # 32 x 74 frames are already 32 on the short side: no resampling, the crops are exact.
    views, _ = build_transform(train=False, resize=32, crop=32, three_crop=True, protocol=protocol)(_ramp(32, 74), 0)
    assert views.shape == (3, 1, 3, 32, 32)
    assert _first_columns(views) == lefts


@pytest.mark.parametrize("protocol", ["tsm", "aknet", "mmaction2"])
def test_three_views_differ_on_a_non_square_clip_whatever_the_resize_mode(protocol):
    # Issue 28, item 12: a "square" training resize used to give one crop three times.
    frames = torch.randint(0, 255, (2, 3, 40, 80), dtype=torch.uint8)
    views, _ = build_transform(train=False, resize=32, crop=32, resize_mode="square", three_crop=True,
                               protocol=protocol)(frames, 0)
    assert views.shape == (3, 2, 3, 32, 32)
    assert not torch.equal(views[0], views[1]) and not torch.equal(views[1], views[2])
    assert not torch.equal(views[0], views[2])


def test_centre_crop_of_each_protocol():
    # 32 x 75 (already resized), crop 28: margin 47; round(23.5) = 24 (half to even), floor 23.
    frames = _ramp(32, 75)
    for protocol, left in (("tsm", 24), ("mmaction2", 23)):
        clip, _ = build_transform(train=False, resize=32, crop=28, protocol=protocol)(frames, 0)
        assert _first_columns(clip[None]) == [left]


def test_tsm_and_tdn_resize_with_pil_bilinear():
    frames = torch.randint(0, 255, (3, 3, 60, 90), dtype=torch.uint8)
    got = resize_frames(frames, (32, 48), "pil")
    for frame, out in zip(frames, got):
        image = Image.fromarray(frame.permute(1, 2, 0).numpy()).resize((48, 32), Image.BILINEAR)
        assert torch.equal(out, torch.from_numpy(np.array(image)).permute(2, 0, 1))
    clip, _ = build_transform(train=False, resize=32, crop=32, protocol="tdn")(frames, 0)
    pixels = clip * torch.tensor(IMAGENET_STD)[:, None, None] * 255 + torch.tensor(IMAGENET_MEAN)[:, None, None] * 255
    assert torch.allclose(pixels, got[..., :, 8:40].float(), atol=1e-3)  # centre crop left round(16/2) = 8


def test_mmaction2_resizes_without_antialiasing():
    # Halving 0, 100, 200, 250 with half-pixel centres: output j reads input 2j + 0.5 -> 50, 225;
    # an antialiased resize (PIL's, torchvision's) averages over a wider window, OpenCV's INTER_LINEAR does not.
    row = torch.tensor([0, 100, 200, 250], dtype=torch.uint8).expand(1, 3, 2, 4).clone()
    assert resize_frames(row, (1, 2), "bilinear")[0, 0, 0].tolist() == [50, 225]
    assert resize_frames(row, (1, 2), "pil")[0, 0, 0].tolist() != [50, 225]


# ------------------------------------------------------------------------------------- averaging
def test_views_are_averaged_as_logits_or_probabilities():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 6.0, 5.5]])  # two views of one video
    assert average_views(logits, 2, "logits").tolist() == [[2.0, 3.0, 2.75]]
    p0, p1 = torch.softmax(logits, dim=1)
    torch.testing.assert_close(average_views(logits, 2, "prob"), ((p0 + p1) / 2)[None])
    # The two rank differently: mean probabilities ~(0.483, 0.320, 0.197), mean logits (2, 3, 2.75).
    assert average_views(logits, 2, "prob").argmax().item() == 0
    assert average_views(logits, 2, "logits").argmax().item() == 1

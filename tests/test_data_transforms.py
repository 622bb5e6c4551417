"""Clip transforms: shapes, shared crop, normalisation, flip label swap."""

import torch

from aknet_cli.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform


def test_constant_colour_normalises_to_expected_value():
    frames = torch.full((4, 3, 60, 80), 255, dtype=torch.uint8)
    clip, label = build_transform(train=False, resize=64, crop=56)(frames, 3)
    assert clip.shape == (4, 3, 56, 56) and clip.dtype == torch.float32 and label == 3
    for c in range(3):
        expected = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(clip[:, c], torch.tensor(expected), atol=1e-5)


def _ramp(height, width, *, along="width"):
    """uint8 (2, 3, H, W) frames whose value is 2 x the column (or row) index: 0, 2, 4, ..."""
    n = width if along == "width" else height
    line = (2 * torch.arange(n)).to(torch.uint8)
    plane = line.expand(height, width) if along == "width" else line[:, None].expand(height, width)
    return plane.expand(2, 3, height, width).clone()


def _pixels(clip):
    """Undo the normalisation of channel 0: back to 0..255 values."""
    return clip[..., 0, :, :] * IMAGENET_STD[0] * 255 + IMAGENET_MEAN[0] * 255


def test_resize_modes_and_three_crop():
    frames = torch.zeros((2, 3, 60, 120), dtype=torch.uint8)
    square = build_transform(train=False, resize=32, crop=32, resize_mode="square")(frames, 0)[0]
    assert square.shape == (2, 3, 32, 32)
    views = build_transform(train=False, resize=32, crop=32, three_crop=True)(frames, 0)[0]
    assert views.shape == (3, 2, 3, 32, 32)
    # Values: a 64x128 ramp v = 2c. Halving it (short side 64 -> 32) maps output column j
    # to input 2j + 0.5, so v = 4j + 1 away from the borders; "square" squeezes the width 4x
    # (j -> 4j + 1.5, v = 8j + 3). Columns 4..27 of each crop avoid the resize borders.
    ramp = _ramp(64, 128)
    cols = torch.arange(4, 28)
    short = _pixels(build_transform(train=False, resize=32, crop=32)(ramp, 0)[0])  # centre crop: left 16
    assert torch.allclose(short[0, 0, cols], 4.0 * (16 + cols) + 1, atol=1.01)
    square = _pixels(build_transform(train=False, resize=32, crop=32, resize_mode="square")(ramp, 0)[0])
    assert torch.allclose(square[0, 0, 4:28], 8.0 * torch.arange(4, 28) + 3, atol=1.01)
    views = _pixels(build_transform(train=False, resize=32, crop=32, three_crop=True)(ramp, 0)[0])
    for view, left in zip(views, (0, 16, 32)):  # start, centre, end of the 64-wide resized frame
        assert torch.allclose(view[:, :, cols], (4.0 * (left + cols) + 1).expand(2, 32, -1), atol=1.01)
    # A portrait frame is cropped top, centre, bottom instead.
    tall = _pixels(build_transform(train=False, resize=32, crop=32, three_crop=True)(_ramp(128, 64, along="height"), 0)[0])
    for view, top in zip(tall, (0, 16, 32)):
        assert torch.allclose(view[0, cols, 0], 4.0 * (top + cols) + 1, atol=1.01)


def test_random_crop_is_shared_by_all_frames():
    base = torch.randint(0, 255, (1, 3, 40, 40), dtype=torch.uint8)
    frames = base.repeat(6, 1, 1, 1)
    torch.manual_seed(0)
    clip, _ = build_transform(train=True, resize=40, crop=24)(frames, 0)
    assert clip.shape == (6, 3, 24, 24)
    assert all(torch.equal(clip[0], clip[i]) for i in range(6))


def test_flip_swaps_label_and_mirrors_pixels():
    frames = torch.zeros((2, 3, 8, 8), dtype=torch.uint8)
    frames[..., :4] = 255  # left half bright
    transform = build_transform(train=True, resize=8, crop=8, flip=True, flip_map={0: 1, 1: 0})
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        clip, label = transform(frames, 0)
        bright_left = clip[0, 0, 0, 0] > clip[0, 0, 0, 7]
        assert label == (0 if bright_left else 1)
        seen.add(label)
    assert seen == {0, 1}
    off = build_transform(train=True, resize=8, crop=8)  # flip is off by default
    assert all(off(frames, 0)[1] == 0 for _ in range(10))

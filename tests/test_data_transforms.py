"""Clip transforms: shapes, shared crop, normalisation, flip label swap, TSN's multi-scale crop."""

import pytest
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


# ------------------------------------------------------------------ TSN's multi-scale crop
# Worked by hand from TSN's rule (TSM/TDN ops/transforms.py GroupMultiScaleCrop): sides are
# int(short * s) for s in (1, .875, .75, .66), a side within 2 pixels of the crop becomes the
# crop, and heights and widths pair when their scales are at most one step apart.
# Short side 256, crop 224: 256, 224, 192, int(168.96) = 168.
SIZES_256_224 = [(256, 256), (256, 224), (224, 256), (224, 224), (224, 192),
                 (192, 224), (192, 192), (192, 168), (168, 192), (168, 168)]
# The 13 positions in quarters of the margin (rows, columns): 4 corners, centre, 4 edge
# midpoints, 4 inner quarter points.
GRID = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]


def test_multiscale_candidates_by_hand():
    from aknet_cli.data.transforms import multiscale_crop_sizes, multiscale_offsets

    assert multiscale_crop_sizes(256, 340, 224) == SIZES_256_224
    assert multiscale_crop_sizes(340, 256, 224) == SIZES_256_224  # the short side rules, portrait too
    # Short side 255: int(223.125) = 223 is within 2 of 224 and snaps to it; 191, int(168.3) = 168.
    sides = [255, 224, 191, 168]
    assert multiscale_crop_sizes(255, 300, 224) == [(sides[i], sides[j]) for i in range(4) for j in range(4)
                                                    if abs(i - j) <= 1]
    # 256 x 340 frame, crop 224 high and 192 wide: margins 32 and 148, quarters 8 and 37.
    assert multiscale_offsets(256, 340, 224, 192) == [
        (0, 0), (0, 148), (32, 0), (32, 148), (16, 74),
        (16, 0), (16, 148), (32, 74), (0, 74), (8, 37), (8, 111), (24, 37), (24, 111)]
    # A margin of 3 has quarter 0: every position is the top-left corner, as in TSN's code.
    assert set(multiscale_offsets(259, 259, 256, 256)) == {(0, 0)}


def _grid(height, width):
    """uint8 (3, 3, H, W) frames: channel 0 is 4 x the column index, channel 1 is 4 x the row."""
    frames = torch.zeros((3, 3, height, width), dtype=torch.uint8)
    frames[:, 0] = (4 * torch.arange(width)).to(torch.uint8)
    frames[:, 1] = (4 * torch.arange(height)).to(torch.uint8)[:, None]
    return frames


def _box(clip, crop):
    """(top, left, h, w) of the crop that became ``clip``: a linear ramp stays linear under the
    resize, so output pixel j of a side-``w`` box at ``left`` reads 4 (left + (j + 1/2) w / crop - 1/2)."""
    inner = torch.arange(4, crop - 4, dtype=torch.float64)
    found = []
    for values in (_channel(clip, 1)[0, inner.long(), crop // 2], _channel(clip, 0)[0, crop // 2, inner.long()]):
        values = values.double() / 4
        slope = ((values[-1] - values[0]) / (inner[-1] - inner[0])).item()
        side = round(slope * crop)
        start = round((values - ((inner + 0.5) * side / crop - 0.5)).mean().item())
        found.append((start, side))
    (top, h), (left, w) = found
    return top, left, h, w


def _channel(clip, c):
    return clip[:, c] * IMAGENET_STD[c] * 255 + IMAGENET_MEAN[c] * 255


def test_multiscale_crop_takes_one_listed_box_per_clip():
    # A 64 x 64 frame, crop 56: sides 64, 56, 48, int(42.24) = 42 (56 is exact).
    sides = [64, 56, 48, 42]
    sizes = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    transform = build_transform(train=True, resize=64, crop=56, crop_mode="multiscale")
    frames = _grid(64, 64)
    boxes = set()
    for seed in range(120):
        torch.manual_seed(seed)
        clip, label = transform(frames, 5)
        assert clip.shape == (3, 3, 56, 56) and label == 5
        assert torch.equal(clip[0], clip[1]) and torch.equal(clip[0], clip[2])  # one box for the clip
        top, left, h, w = _box(clip, 56)
        assert (h, w) in sizes
        row, col = (64 - h) // 4, (64 - w) // 4
        assert (top, left) in {(r * row, c * col) for r, c in GRID}
        boxes.add((top, left, h, w))
        torch.manual_seed(seed)
        assert torch.equal(transform(frames, 5)[0], clip)  # drawn from torch's generator: reproducible
    # 102 distinct boxes (13 per size, fewer where a margin is 0), drawn uniformly: most show up.
    assert len({(h, w) for _, _, h, w in boxes}) >= 8 and len(boxes) >= 40


def test_crop_mode_is_checked():
    from aknet_cli.exceptions import ConfigError

    with pytest.raises(ConfigError, match="unknown crop mode 'scale'; choose one of random, multiscale"):
        build_transform(train=True, resize=64, crop=56, crop_mode="scale")
    # Evaluation crops the centre whatever the training crop was.
    frames = _grid(64, 64)
    centre = build_transform(train=False, resize=64, crop=56, crop_mode="multiscale")(frames, 0)[0]
    assert torch.equal(centre, build_transform(train=False, resize=64, crop=56)(frames, 0)[0])

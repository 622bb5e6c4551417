"""Clip transforms: one resize, crop and flip shared by every frame of a clip, per protocol.

A clip enters as ``uint8`` ``(N, 3, H, W)`` (all frames of all test clips stacked) and
leaves as normalised ``float32``. torchvision's v2 transforms treat the leading dimension
as a batch and draw their random parameters once per call, which is exactly the "same
crop for every frame" a video model needs.

Where a frame is resized and where its crops sit follow the protocol
(:mod:`~aknet_cli.data.protocols`); the geometry is a set of pure functions
(:func:`resized_size`, :func:`centre_offset`, :func:`three_crop_offsets`) that the overlays
of ``aknet visualize`` reuse to map keypoints back. Training crops either at random
(``crop_mode="random"``, the paper's "random crop 224") or by TSN's multi-scale crop
(``"multiscale"``, what TSM's and TDN's training code does; :func:`multiscale_crop_sizes`,
:func:`multiscale_offsets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..exceptions import ConfigError
from .protocols import get_protocol

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("short", "square")
CROP_MODES = ("random", "multiscale")
#: TSN's multi-scale crop as TSM's and TDN's ``get_augmentation`` call it: crop sides are these
#: fractions of the frame's short side, width and height at most ``MULTISCALE_MAX_DISTORT``
#: steps of this list apart.
MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)
MULTISCALE_MAX_DISTORT = 1
#: The 13 fixed crop positions, in quarters of the free margin ``(rows, columns)``: the 4
#: corners, the centre, the 4 edge midpoints and the 4 inner quarter points.
_MULTISCALE_GRID = ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2),
                    (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3))


# ------------------------------------------------------------------------------ geometry
def resized_size(height: int, width: int, resize: int, *, mode: str = "short", long_side: str = "floor") -> tuple[int, int]:
    """``(h, w)`` of a ``height × width`` frame after the resize step.

    ``mode="square"``: ``resize × resize``. ``"short"``: the short side becomes ``resize`` and
    the long one ``int(resize * long / short)`` (``long_side="floor"``, torchvision) or
    ``int(long * (resize / short) + 0.5)`` (``"round"``, mmcv's ``rescale_size``).
    """
    if mode == "square":
        return resize, resize
    short, long = min(height, width), max(height, width)
    scaled = int(resize * long / short) if long_side == "floor" else int(long * (resize / short) + 0.5)
    return (resize, scaled) if height <= width else (scaled, resize)


def centre_offset(height: int, width: int, crop: int, *, rounding: str = "round") -> tuple[int, int]:
    """``(top, left)`` of a centred ``crop``-square: torchvision rounds half the margin
    (``int(round(m / 2))``, ``rounding="round"``), mmaction2 floors it (``"floor"``)."""
    if rounding == "floor":
        return (height - crop) // 2, (width - crop) // 2
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


def three_crop_offsets(height: int, width: int, size: int, *, placement: str = "ends") -> list[tuple[int, int]]:
    """``(top, left)`` of the three ``size``-square crops of a ``height × width`` frame.

    * ``quarters`` (TSM/TDN ``GroupFullResSample``): ``s = (W - size) // 4`` and
      ``u = (H - size) // 4``; left, right, centre at ``(2u, 0)``, ``(2u, 4s)``, ``(2u, 2s)``.
      On a portrait frame ``s = 0``: the three crops coincide, as in TSM's and TDN's code.
    * ``halves`` (mmaction2 ``ThreeCrop``): ``s' = (long - size) // 2``; offsets ``0, 2s', s'``
      along the long side, 0 across it.
    * ``ends`` (aknet): start, middle ``(long - size) // 2`` and end ``long - size`` of the
      long side, centred across it.
    """
    if placement == "quarters":
        w_step, h_step = (width - size) // 4, (height - size) // 4
        return [(2 * h_step, 0), (2 * h_step, 4 * w_step), (2 * h_step, 2 * w_step)]
    landscape = width >= height
    long, across = (width, height) if landscape else (height, width)
    if placement == "halves":
        step = (long - size) // 2
        along, middle = (0, 2 * step, step), 0
    elif placement == "ends":
        along, middle = (0, (long - size) // 2, long - size), (across - size) // 2
    else:
        raise ConfigError(f"unknown three-crop placement {placement!r}")
    return [(middle, a) if landscape else (a, middle) for a in along]


def multiscale_crop_sizes(height: int, width: int, crop: int, *, scales: tuple[float, ...] = MULTISCALE_SCALES,
                          max_distort: int = MULTISCALE_MAX_DISTORT) -> list[tuple[int, int]]:
    """The ``(h, w)`` crop sizes TSN's multi-scale crop chooses from on a ``height × width`` frame.

    Each side is ``int(short_side * s)`` for a scale ``s``, taken as ``crop`` when it is within 2
    pixels of it (so a 256 short side and crop 224 give exactly 224 at scale .875); a height and
    a width pair up when their scales' positions in ``scales`` differ by at most ``max_distort``
    (the aspect jitter). Heights vary slowest, as in TSM's ``_sample_crop_size``.
    """
    base = min(height, width)
    sides = [crop if abs(int(base * s) - crop) < 3 else max(1, int(base * s)) for s in scales]
    return [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]


def multiscale_offsets(height: int, width: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
    """``(top, left)`` of the 13 fixed positions of a ``crop_h × crop_w`` crop (TSN's
    ``more_fix_crop``): multiples 0..4 of the quarter margins ``(H - crop_h) // 4`` and
    ``(W - crop_w) // 4``, in the order of :data:`_MULTISCALE_GRID`."""
    row, col = (height - crop_h) // 4, (width - crop_w) // 4
    return [(i * row, j * col) for i, j in _MULTISCALE_GRID]


# -------------------------------------------------------------------------------- resize
def resize_frames(frames: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    """``uint8 (N, 3, H, W)`` → ``uint8 (N, 3, *size)`` by ``method`` (see
    :attr:`~aknet_cli.data.protocols.Protocol.resize`); the frames come back unchanged at their size."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    if method == "antialias":
        return F.resize(frames, list(size), antialias=True)
    if method == "bilinear":  # OpenCV's INTER_LINEAR: half-pixel centres, no antialiasing
        out = torch.nn.functional.interpolate(frames.float(), size=size, mode="bilinear", align_corners=False)
        return out.round_().clamp_(0, 255).to(torch.uint8)
    if method == "pil":
        return _pil_resize(frames, size)
    raise ConfigError(f"unknown resize method {method!r}")


def _pil_resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL's bilinear resize frame by frame: what TSM's and TDN's ``GroupScale`` computes
    (torchvision's ``Resize`` hands a PIL image to ``Image.resize``), byte for byte."""
    from PIL import Image

    height, width = size
    pixels = frames.permute(0, 2, 3, 1).numpy()
    out = [np.asarray(Image.fromarray(p).resize((width, height), Image.BILINEAR)) for p in pixels]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- transform
@dataclass
class ClipTransform:
    """Resize, crop, optional flip with label swap, normalise.

    Args:
        train: training crop (+ optional flip) if true, centre crop (or 3 crops) otherwise.
        resize: target of the resize step (256 in TSM and the AK-Net paper).
        crop: side of the square crop (224).
        resize_mode: ``"short"`` scales the short side to ``resize`` keeping the aspect
            ratio (TSM); ``"square"`` scales to ``resize x resize`` (the AK-Net paper).
            Three crops always scale the short side: they are taken along the long one.
        crop_mode: the training crop. ``"random"``: a ``crop``-square anywhere in the resized
            frame (the paper's "random crop 224"). ``"multiscale"``: TSN's multi-scale crop, as
            TSM's and TDN's training code crops: one of :func:`multiscale_crop_sizes` at one of
            the 13 :func:`multiscale_offsets`, resized to ``crop × crop`` by the protocol's
            resize method. Either is drawn once per clip from torch's generator.
        flip: random horizontal flip in training. Off by default: on Sth-Sth a flip changes
            the class, so a flipped clip takes the label ``flip_map[label]``.
        flip_map: label index -> label index of the mirrored class (``dataset.json``).
        three_crop: testing only; three ``crop x crop`` crops placed by the protocol along the
            long side (at full resolution, ``crop = resize``, as ``aknet eval`` takes them); adds
            a view dimension of size 3.
        protocol: ``tsm``, ``tdn``, ``mmaction2`` or ``aknet``: the resize method, the
            rounding of the long side and of the centre crop, the three crops' placement.
        mean, std: normalisation (ImageNet by default).

    Call with ``(frames uint8 (N, 3, H, W), label)``; returns ``(clip, label)`` with clip
    ``float32 (N, 3, crop, crop)``, or ``(3, N, 3, crop, crop)`` with ``three_crop``.
    """

    train: bool
    resize: int = 256
    crop: int = 224
    resize_mode: str = "short"
    crop_mode: str = "random"
    flip: bool = False
    flip_map: dict[int, int] | None = None
    three_crop: bool = False
    protocol: str = "aknet"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"unknown resize mode {self.resize_mode!r}; choose one of {', '.join(RESIZE_MODES)}")
        if self.crop_mode not in CROP_MODES:
            raise ConfigError(f"unknown crop mode {self.crop_mode!r}; choose one of {', '.join(CROP_MODES)}")
        if not 0 < self.crop <= self.resize:
            raise ConfigError(f"crop size {self.crop} must be positive and at most the resize size {self.resize}")
        if self.three_crop and self.train:
            raise ConfigError("three_crop is a test-time option; turn it off for training")
        self._rules = get_protocol(self.protocol, option="protocol")
        self._crop = v2.RandomCrop(self.crop)
        self._to_float = v2.ToDtype(torch.float32, scale=True)
        self._normalize = v2.Normalize(self.mean, self.std)

    @property
    def num_views(self) -> int:
        return 3 if self.three_crop else 1

    def resized(self, frames: torch.Tensor, *, mode: str | None = None) -> torch.Tensor:
        """The frames after the protocol's resize step (``mode`` overrides ``resize_mode``)."""
        height, width = frames.shape[-2:]
        size = resized_size(int(height), int(width), self.resize, mode=mode or self.resize_mode,
                            long_side=self._rules.long_side)
        return resize_frames(frames, size, self._rules.resize)

    def __call__(self, frames: torch.Tensor, label: int) -> tuple[torch.Tensor, int]:
        if self.three_crop:
            # Along the long side of the frame, whatever the training's resize mode: a square
            # frame would give the same crop three times.
            frames = self.resized(frames, mode="short")
            offsets = three_crop_offsets(*frames.shape[-2:], self.crop, placement=self._rules.three_crops)
            views = [F.crop(frames, top, left, self.crop, self.crop) for top, left in offsets]
            return torch.stack([self._finish(v) for v in views]), label
        frames = self.resized(frames)
        if not self.train:
            top, left = centre_offset(*frames.shape[-2:], self.crop, rounding=self._rules.centre)
            return self._finish(F.crop(frames, top, left, self.crop, self.crop)), label
        frames = self._multiscale_crop(frames) if self.crop_mode == "multiscale" else self._crop(frames)
        if self.flip and torch.rand(()) < 0.5:
            frames = F.horizontal_flip(frames)
            label = (self.flip_map or {}).get(label, label)
        return self._finish(frames), label

    def _multiscale_crop(self, frames: torch.Tensor) -> torch.Tensor:
        """One size and one fixed position for the whole clip, then ``crop × crop``."""
        height, width = (int(n) for n in frames.shape[-2:])
        sizes = multiscale_crop_sizes(height, width, self.crop)
        crop_h, crop_w = sizes[int(torch.randint(len(sizes), ()))]
        offsets = multiscale_offsets(height, width, crop_h, crop_w)
        top, left = offsets[int(torch.randint(len(offsets), ()))]
        frames = F.crop(frames, top, left, crop_h, crop_w)
        return resize_frames(frames, (self.crop, self.crop), self._rules.resize)

    def _finish(self, frames: torch.Tensor) -> torch.Tensor:
        return self._normalize(self._to_float(frames))


def build_transform(
    *,
    train: bool,
    resize: int = 256,
    crop: int = 224,
    resize_mode: str = "short",
    crop_mode: str = "random",
    flip: bool = False,
    flip_map: dict[int, int] | None = None,
    three_crop: bool = False,
    protocol: str = "aknet",
) -> ClipTransform:
    """Keyword-only builder for :class:`ClipTransform` (see it for the arguments)."""
    return ClipTransform(train=train, resize=resize, crop=crop, resize_mode=resize_mode, crop_mode=crop_mode,
                         flip=flip, flip_map=flip_map, three_crop=three_crop, protocol=protocol)

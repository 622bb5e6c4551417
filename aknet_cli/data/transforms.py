"""Clip transforms: one random crop / flip shared by every frame of a clip.

A clip enters as ``uint8`` ``(N, 3, H, W)`` (all frames of all test clips stacked) and
leaves as normalised ``float32``. torchvision's v2 transforms treat the leading dimension
as a batch and draw their random parameters once per call, which is exactly the "same
crop for every frame" a video model needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..exceptions import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("short", "square")


@dataclass
class ClipTransform:
    """Resize, crop, optional flip with label swap, normalise.

    Args:
        train: random crop (+ optional flip) if true, centre crop (or 3 crops) otherwise.
        resize: target of the resize step (256 in TSM and the AK-Net paper).
        crop: side of the square crop (224).
        resize_mode: ``"short"`` scales the short side to ``resize`` keeping the aspect
            ratio (TSM); ``"square"`` scales to ``resize x resize`` (the AK-Net paper).
        flip: random horizontal flip in training. Off by default: on Sth-Sth a flip changes
            the class, so a flipped clip takes the label ``flip_map[label]``.
        flip_map: label index -> label index of the mirrored class (``dataset.json``).
        three_crop: testing only; left/centre/right (or top/centre/bottom) crops along the
            long side, each ``crop x crop``; adds a view dimension of size 3.
        mean, std: normalisation (ImageNet by default).

    Call with ``(frames uint8 (N, 3, H, W), label)``; returns ``(clip, label)`` with clip
    ``float32 (N, 3, crop, crop)``, or ``(3, N, 3, crop, crop)`` with ``three_crop``.
    """

    train: bool
    resize: int = 256
    crop: int = 224
    resize_mode: str = "short"
    flip: bool = False
    flip_map: dict[int, int] | None = None
    three_crop: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"unknown resize mode {self.resize_mode!r}; choose one of {', '.join(RESIZE_MODES)}")
        if not 0 < self.crop <= self.resize:
            raise ConfigError(f"crop size {self.crop} must be positive and at most the resize size {self.resize}")
        if self.three_crop and self.train:
            raise ConfigError("three_crop is a test-time option; turn it off for training")
        size = [self.resize] if self.resize_mode == "short" else [self.resize, self.resize]
        self._resize = v2.Resize(size, antialias=True)
        self._crop = v2.RandomCrop(self.crop) if self.train else v2.CenterCrop(self.crop)
        self._to_float = v2.ToDtype(torch.float32, scale=True)
        self._normalize = v2.Normalize(self.mean, self.std)

    @property
    def num_views(self) -> int:
        return 3 if self.three_crop else 1

    def __call__(self, frames: torch.Tensor, label: int) -> tuple[torch.Tensor, int]:
        frames = self._resize(frames)
        if self.three_crop:
            views = torch.stack([self._finish(v) for v in _three_crops(frames, self.crop)])
            return views, label
        frames = self._crop(frames)
        if self.train and self.flip and torch.rand(()) < 0.5:
            frames = F.horizontal_flip(frames)
            label = (self.flip_map or {}).get(label, label)
        return self._finish(frames), label

    def _finish(self, frames: torch.Tensor) -> torch.Tensor:
        return self._normalize(self._to_float(frames))


def _three_crops(frames: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Three ``size``-square crops spread along the long side (start, centre, end)."""
    height, width = frames.shape[-2:]
    if width >= height:
        top = (height - size) // 2
        return [F.crop(frames, top, left, size, size) for left in (0, (width - size) // 2, width - size)]
    left = (width - size) // 2
    return [F.crop(frames, top, left, size, size) for top in (0, (height - size) // 2, height - size)]


def build_transform(
    *,
    train: bool,
    resize: int = 256,
    crop: int = 224,
    resize_mode: str = "short",
    flip: bool = False,
    flip_map: dict[int, int] | None = None,
    three_crop: bool = False,
) -> ClipTransform:
    """Keyword-only builder for :class:`ClipTransform` (see it for the arguments)."""
    return ClipTransform(train=train, resize=resize, crop=crop, resize_mode=resize_mode, flip=flip,
                         flip_map=flip_map, three_crop=three_crop)

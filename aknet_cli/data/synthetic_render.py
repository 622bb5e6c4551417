"""Drawing primitives and per-clip random streams shared by the synthetic sets
(:mod:`.synthetic`'s one-object motions and :mod:`.synthetic_relations`' two-object relations)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

#: Each split draws its clips from its own stream of the seed, so the test clips are new clips,
#: not copies of training or validation ones, and adding them changes no other clip.
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
SPLITS = tuple(SPLIT_STREAMS)


def clip_rng(seed: int, cls: int, split: str, number: int) -> np.random.Generator:
    """The random stream of one clip: everything about it derives from these four numbers."""
    return np.random.default_rng([seed, cls, SPLIT_STREAMS[split], number])


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colour texture with fine grain, ``(size, size, 3)`` float in [0, 255]."""
    coarse = rng.uniform(60, 200, (6, 6, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)
    stripes = 12 * np.sin(np.arange(size) * rng.uniform(0.3, 0.8) + rng.uniform(0, 6.3))[None, :, None]
    return np.clip(smooth + stripes + rng.normal(0, 6, (size, size, 3)), 0, 255)


class DriftingBackground:
    """A textured background seen through a window that drifts slowly (a hand-held camera).

    Args:
        rng: the clip's stream (draws the texture, then the drift).
        size: the frame side.
        frames: the clip length (the texture is padded by the largest offset).
        texture: the texture function (``background`` by default; tests may flatten it).
    """

    def __init__(self, rng: np.random.Generator, size: int, frames: int, texture=background) -> None:
        self.size, self.frames = size, frames
        self.pad = frames // 2 + 2
        self.texture = texture(rng, size + 2 * self.pad)
        speed = rng.uniform(0.15, 0.5)  # drawn before the angle: synth-sth's clips depend on the order
        angle = rng.uniform(0, 2 * math.pi)
        self.drift = speed * np.array([math.cos(angle), math.sin(angle)])

    def frame(self, f: int) -> np.ndarray:
        """Frame ``f``'s view of the texture, ``(size, size, 3)`` float (a copy)."""
        oy, ox = np.round(self.pad + self.drift[::-1] * (f - self.frames / 2)).astype(int)
        return self.texture[oy:oy + self.size, ox:ox + self.size].copy()


def disc(yy, xx, cx, cy, radius):
    """Anti-aliased coverage in [0, 1] of a disc."""
    return np.clip(radius - np.hypot(xx - cx, yy - cy) + 0.5, 0.0, 1.0)


def bar(yy, xx, cx, cy, length, width, angle):
    """Anti-aliased coverage in [0, 1] of a rotated rectangle."""
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    return np.clip(np.minimum(length / 2 - np.abs(u), width / 2 - np.abs(v)) + 0.5, 0.0, 1.0)


def colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated random colour, RGB in [40, 240]."""
    hue = rng.uniform(0, 1)
    rgb = np.array([abs(hue * 6 - 3) - 1, 2 - abs(hue * 6 - 2), 2 - abs(hue * 6 - 4)])
    return 40 + 200 * np.clip(rgb, 0, 1)

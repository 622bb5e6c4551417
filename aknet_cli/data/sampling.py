"""TSN segment sampling, as a pure function of the frame count.

The clip is cut into ``T`` equal segments of length ``L = num_frames / T`` (a float, as in
TSM). Segment ``i`` covers frames ``[L*i, L*(i+1))`` and contributes one frame:

* training: ``floor(L * (i + u_i))`` with ``u_i ~ U[0, 1)`` drawn independently per segment
  (a random offset within each segment);
* testing, one clip: ``int(L/2 + L*i)``, the segment centre (TSM's ``_get_val_indices``);
* testing, ``K`` clips: clip ``k`` takes ``int(L * (i + (k + 0.5) / K))``, i.e. the offsets
  are spread evenly over each segment (``K = 1`` is the centre above).

A video shorter than ``T`` frames has ``L < 1``: the formulas then repeat frames in order
(4 frames, ``T = 8`` -> ``0 0 1 1 2 2 3 3``) instead of rejecting the clip.

TDN (``frames_per_segment = 5``) takes the 5 consecutive frames centred on each sampled
frame, ``f-2 .. f+2``, clamped to ``[0, num_frames - 1]``.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ConfigError


def sample_indices(
    num_frames: int,
    num_segments: int,
    *,
    train: bool,
    frames_per_segment: int = 1,
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """0-based frame indices for one video.

    Args:
        num_frames: frames in the video (>= 1).
        num_segments: ``T``.
        train: random offset per segment (training) or evenly placed (testing).
        frames_per_segment: consecutive frames per segment (1 for TSN/TSM, 5 for TDN).
        num_clips: test clips with evenly shifted offsets (must be 1 in training).
        rng: random generator for training; a fresh unseeded one if ``None``.

    Returns:
        ``int64`` array of shape ``(num_clips, num_segments, frames_per_segment)``, values in
        ``[0, num_frames - 1]``.
    """
    if num_frames < 1:
        raise ConfigError(f"a video needs at least one frame, got num_frames={num_frames}")
    if num_segments < 1:
        raise ConfigError(f"num_segments must be >= 1, got {num_segments}")
    if frames_per_segment < 1:
        raise ConfigError(f"frames_per_segment must be >= 1, got {frames_per_segment}")
    if num_clips < 1 or (train and num_clips != 1):
        raise ConfigError(f"num_clips must be 1 in training and >= 1 in testing, got {num_clips}")
    seg_len = num_frames / num_segments
    segments = np.arange(num_segments, dtype=np.float64)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        offsets = rng.random((1, num_segments))
    else:
        offsets = np.broadcast_to(((np.arange(num_clips) + 0.5) / num_clips)[:, None], (num_clips, num_segments))
    centres = np.floor(seg_len * (segments[None, :] + offsets)).astype(np.int64)
    centres = np.minimum(centres, num_frames - 1)  # guards float rounding at the last segment
    span = np.arange(frames_per_segment) - (frames_per_segment - 1) // 2
    return np.clip(centres[..., None] + span, 0, num_frames - 1)

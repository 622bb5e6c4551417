"""Segment sampling, as a pure function of the frame count, under each protocol.

``n`` frames, ``T`` segments, ``L`` frames per segment (1; TDN: 5). Every rule yields one
window start per segment (0-based); a window is its start and the next ``L - 1`` frames, the
index advancing only while it is inside the clip (``min(start + i, n - 1)``), as TSM's and TDN's
``TSNDataSet.get`` read it. Python's ``int()`` truncation is kept where the official code uses it.

Protocol ``tsm`` (TSM's ``ops/dataset.py``):

* test, ``_get_test_indices``: ``tick = (n - L + 1) / T``, starts ``int(tick/2 + tick*x)`` (the
  segment centres); the second clip of ``twice_sample``: ``int(tick*x)`` (the segment starts);
* training, ``_sample_indices``: ``avg = (n - L + 1) // T``; ``x*avg + randint(avg)`` when
  ``avg > 0``, else sorted ``randint(n - L + 1)`` draws when ``n > T``, else all 0.

Protocol ``tdn`` (TDN's ``ops/dataset.py``): as ``tsm``, except that at test time every start is
0 when ``n <= T + L - 1`` (its ``_get_test_indices``); TDN has no second clip, so the second
clip takes TSM's segment starts (aknet's extension).

Protocol ``mmaction2`` (``SampleFrames`` with ``clip_len=1``): the test starts of ``tsm`` with
``L = 1`` (twice sample likewise); training ``avg = n // T``, ``x*avg + randint(avg)``, else
sorted draws when ``n > T``, else ``round(x * n / T)`` (NumPy's half-to-even).

Protocol ``aknet`` (uniform, the earlier default): segment ``x`` spans ``[n/T*x, n/T*(x+1))``;
training takes ``floor(n/T * (x + u))``, ``u ~ U[0, 1)``; test clip ``k`` of ``K`` takes
``int(n/T * (x + (k + 1/2)/K))``; the ``L`` frames are centred on that frame and clamped.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ConfigError
from .protocols import PROTOCOL_NAMES


def sample_indices(
    num_frames: int,
    num_segments: int,
    *,
    train: bool,
    frames_per_segment: int = 1,
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
    protocol: str = "aknet",
) -> np.ndarray:
    """0-based frame indices for one video.

    Args:
        num_frames: frames in the video (>= 1).
        num_segments: ``T``.
        train: random offsets (training) or the protocol's fixed test positions.
        frames_per_segment: ``L``, consecutive frames per segment (1 for TSN/TSM, 5 for TDN).
        num_clips: test clips (must be 1 in training; at most 2 except under ``aknet``).
        rng: random generator for training; a fresh unseeded one if ``None``.
        protocol: ``tsm``, ``tdn``, ``mmaction2`` or ``aknet`` (module docstring).

    Returns:
        ``int64`` array of shape ``(num_clips, num_segments, frames_per_segment)``, values in
        ``[0, num_frames - 1]``.

    Raises:
        ConfigError: a count out of range, or an unknown protocol.
    """
    _check(num_frames, num_segments, frames_per_segment, num_clips, train, protocol)
    if protocol == "aknet":
        return _uniform(num_frames, num_segments, frames_per_segment, num_clips, train, rng)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        starts = (_mmaction2_train(num_frames, num_segments, rng) if protocol == "mmaction2"
                  else _tsn_train(num_frames, num_segments, frames_per_segment, rng))[None]
    else:
        starts = _test_starts(num_frames, num_segments, frames_per_segment, num_clips,
                              short_to_zero=protocol == "tdn")
    windows = starts[..., None] + np.arange(frames_per_segment)
    return np.clip(windows, 0, num_frames - 1).astype(np.int64)


def _check(num_frames: int, num_segments: int, frames_per_segment: int, num_clips: int, train: bool,
           protocol: str) -> None:
    if num_frames < 1:
        raise ConfigError(f"a video needs at least one frame, got num_frames={num_frames}")
    if num_segments < 1:
        raise ConfigError(f"num_segments must be >= 1, got {num_segments}")
    if frames_per_segment < 1:
        raise ConfigError(f"frames_per_segment must be >= 1, got {frames_per_segment}")
    if num_clips < 1 or (train and num_clips != 1):
        raise ConfigError(f"num_clips must be 1 in training and >= 1 in testing, got {num_clips}")
    if protocol not in PROTOCOL_NAMES:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOL_NAMES)}")
    if protocol != "aknet" and num_clips > 2:
        raise ConfigError(f"the {protocol} protocol tests 1 or 2 clips (TSM's twice sample), got {num_clips}")


def _test_starts(n: int, t: int, length: int, clips: int, *, short_to_zero: bool) -> np.ndarray:
    """``(clips, T)`` window starts: segment centres, then (twice sample) segment starts."""
    if short_to_zero and n <= t + length - 1:
        return np.zeros((clips, t), dtype=np.int64)  # TDN: a clip this short starts every window at frame 0
    tick = (n - length + 1) / float(t)
    x = np.arange(t, dtype=np.float64)
    rows = [tick / 2.0 + tick * x, tick * x][:clips]
    return np.maximum(np.trunc(np.stack(rows)), 0).astype(np.int64)  # int(): truncation, as the official code


def _tsn_train(n: int, t: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """TSM's and TDN's ``_sample_indices``: one random start within each whole segment."""
    span = n - length + 1  # the starts whose window fits in the clip
    average = span // t
    if average > 0:
        return np.arange(t) * average + rng.integers(average, size=t)
    if n > t and span > 0:
        return np.sort(rng.integers(span, size=t))
    return np.zeros(t, dtype=np.int64)


def _mmaction2_train(n: int, t: int, rng: np.random.Generator) -> np.ndarray:
    """mmaction2's ``SampleFrames._get_train_clips`` with ``clip_len=1``."""
    average = n // t
    if average > 0:
        return np.arange(t) * average + rng.integers(average, size=t)
    if n > t:
        return np.sort(rng.integers(n, size=t))
    return np.around(np.arange(t) * (n / t)).astype(np.int64)  # n < T: spread, frames repeated


def _uniform(n: int, t: int, length: int, clips: int, train: bool, rng: np.random.Generator | None) -> np.ndarray:
    """aknet's own sampler: offsets within float-length segments, windows centred."""
    seg_len = n / t
    segments = np.arange(t, dtype=np.float64)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        offsets = rng.random((1, t))
    else:
        offsets = np.broadcast_to(((np.arange(clips) + 0.5) / clips)[:, None], (clips, t))
    centres = np.floor(seg_len * (segments[None, :] + offsets)).astype(np.int64)
    centres = np.minimum(centres, n - 1)  # guards float rounding at the last segment
    span = np.arange(length) - (length - 1) // 2
    return np.clip(centres[..., None] + span, 0, n - 1)

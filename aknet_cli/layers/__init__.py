"""Building blocks shared by several models."""

from .temporal_shift import TemporalShift, frames_merge, frames_view, is_channels_last, temporal_shift

__all__ = ["TemporalShift", "frames_merge", "frames_view", "is_channels_last", "temporal_shift"]

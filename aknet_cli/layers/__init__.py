"""Building blocks shared by several models."""

from .temporal_shift import TemporalShift, temporal_shift

__all__ = ["TemporalShift", "temporal_shift"]

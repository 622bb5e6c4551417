"""TSM's temporal shift (Lin et al., ICCV 2019).

A fraction of the channels is moved one frame backwards in time, the same fraction one frame
forwards, the rest stays; the frames at the ends are zero-padded. It costs no FLOPs and no
parameters yet lets a 2-D convolution mix neighbouring frames.
"""

from __future__ import annotations

import torch
from torch import nn


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a ``(N, C, H, W)`` tensor is laid out NHWC (and not also NCHW, as 1×1 maps are)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def frames_view(x: torch.Tensor, num_segments: int, channels_last: bool | None = None) -> tuple[torch.Tensor, int]:
    """``(B·T, C, H, W)`` frames as clips ``(B, T, ...)`` in their memory order, and the channel dim.

    NCHW frames give ``(B, T, C, H, W)`` (channels at dim 2), NHWC frames ``(B, T, H, W, C)``
    (channels at dim 4), both views without a copy. ``torch.cat`` keeps NHWC for 4-D tensors only:
    concatenated as ``(B, T, C, H, W)``, NHWC frames come out NCHW (and cuDNN transposes them back
    at the next convolution); concatenated along time or channels in this order, they stay NHWC.

    Args:
        x: the frames, the ``T`` of each clip contiguous.
        num_segments: ``T``.
        channels_last: the order to use; default: ``x``'s own (a tensor in the other layout is copied).
    """
    c, h, w = (int(s) for s in x.shape[1:])  # Python ints (fvcore traces); the batch stays symbolic
    if is_channels_last(x) if channels_last is None else channels_last:
        return x.permute(0, 2, 3, 1).reshape(-1, num_segments, h, w, c), 4
    return x.reshape(-1, num_segments, c, h, w), 2


def frames_merge(clips: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """The inverse of :func:`frames_view`: ``(B, T, ...)`` → ``(B·T, C, H, W)``, NHWC when the
    channels are at dim 4 (a copy only where ``clips`` is not in that order already)."""
    if channel_dim == 4:
        h, w, c = (int(s) for s in clips.shape[2:])
        return clips.reshape(-1, h, w, c).permute(0, 3, 1, 2)
    c, h, w = (int(s) for s in clips.shape[2:])
    return clips.reshape(-1, c, h, w)


def temporal_shift(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """Shift ``1/fold_div`` of the channels each way along time.

    Args:
        x: ``(B*T, C, H, W)`` with the ``T`` frames of each clip contiguous, NCHW or NHWC.
        num_segments: ``T``.
        fold_div: ``C // fold_div`` channels go each way.

    Returns:
        Tensor of the same shape and memory layout. Channel block ``[0, fold)`` at frame ``t``
        holds frame ``t+1`` (zero at the last frame); block ``[fold, 2·fold)`` holds frame
        ``t-1`` (zero at the first frame).
    """
    clips, cdim = frames_view(x, num_segments)
    fold = int(clips.shape[cdim]) // fold_div

    def channels(start: int, stop: int | None = None) -> torch.Tensor:
        return clips[(slice(None),) * cdim + (slice(start, stop),)]

    future, past = channels(0, fold), channels(fold, 2 * fold)
    zero = torch.zeros_like(future[:, :1])
    from_future = torch.cat([future[:, 1:], zero], dim=1)
    from_past = torch.cat([zero, past[:, :-1]], dim=1)
    return frames_merge(torch.cat([from_future, from_past, channels(2 * fold)], dim=cdim), cdim)


class TemporalShift(nn.Module):
    """Wrap a layer so its input is temporally shifted first (TSM's *residual* shift).

    Args:
        net: the wrapped layer (the first conv of a residual branch).
        num_segments: ``T``.
        fold_div: ``C // fold_div`` channels are shifted each way.
    """

    #: the output is ``net``'s output, so a BatchNorm after this module folds into ``net``
    #: (:func:`aknet_cli.models.fuse_for_inference`).
    aknet_output_layer = "net"

    def __init__(self, net: nn.Module, num_segments: int, fold_div: int = 8) -> None:
        super().__init__()
        self.net = net
        self.num_segments = num_segments
        self.fold_div = fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(temporal_shift(x, self.num_segments, self.fold_div))

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}, fold_div={self.fold_div}"

    def to_1d(self, convert) -> tuple[nn.Module, str]:
        """After keypoint selection there are no frames left to shift between: the shift is
        dropped and only the wrapped layer is converted."""
        return convert(self.net), "dropped temporal shift (no frame structure after selection)"

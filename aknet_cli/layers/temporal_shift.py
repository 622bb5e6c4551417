"""TSM's temporal shift (Lin et al., ICCV 2019).

A fraction of the channels is moved one frame backwards in time, the same fraction one frame
forwards, the rest stays; the frames at the ends are zero-padded. It costs no FLOPs and no
parameters yet lets a 2-D convolution mix neighbouring frames.
"""

from __future__ import annotations

import torch
from torch import nn


def temporal_shift(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """Shift ``1/fold_div`` of the channels each way along time.

    Args:
        x: ``(B*T, C, H, W)`` with the ``T`` frames of each clip contiguous.
        num_segments: ``T``.
        fold_div: ``C // fold_div`` channels go each way.

    Returns:
        Tensor of the same shape. Channel block ``[0, fold)`` at frame ``t`` holds frame
        ``t+1`` (zero at the last frame); block ``[fold, 2·fold)`` holds frame ``t-1`` (zero
        at the first frame).
    """
    # c, h, w are Python ints (fvcore traces with the JIT); the batch is left to view(-1) so
    # that torch.export keeps it dynamic instead of specialising it.
    c, h, w = (int(s) for s in x.shape[1:])
    clips = x.view(-1, num_segments, c, h, w)
    fold = c // fold_div
    zero = torch.zeros_like(clips[:, :1, :fold])
    from_future = torch.cat([clips[:, 1:, :fold], zero], dim=1)
    from_past = torch.cat([zero, clips[:, :-1, fold : 2 * fold]], dim=1)
    shifted = torch.cat([from_future, from_past, clips[:, :, 2 * fold :]], dim=2)
    return shifted.view(x.shape)


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

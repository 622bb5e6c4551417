"""TDN ResNets: Temporal Difference Networks (Wang et al., CVPR 2021).

Input layout
------------
``(B, T, 5, 3, H, W)``: ``T`` segments (``num_segments``), each bringing
``frames_per_segment = 5`` consecutive RGB frames, the centre one (index 2) going through the
RGB stem. The data sampler reads :attr:`TDNBackbone.frames_per_segment` to decode 5 frames per
segment, and :attr:`TDNBackbone.protocol_family` to place them as TDN's ``ops/dataset.py``
does (windows starting at ``int(tick/2 + tick*x)``, ``tick = (n - 4) / T``, in training and at
test: :mod:`aknet_cli.data.sampling`). Any other layout raises
:class:`~aknet_cli.exceptions.InputShapeError` naming this one.

Architecture (what differs from a frame-wise ResNet)
----------------------------------------------------
* **Short-term TDM** (:class:`ShortTermTDM`, ``backbone.short_term``). The centre frame of each
  segment goes through the ordinary ResNet stem. The 4 RGB differences of consecutive frames,
  stacked to 12 channels, go through a light path at half resolution: 2×2 average pool,
  7×7/2 conv (initialised, as TDN does, from the mean of the RGB stem kernel), BN, ReLU,
  max-pool, and a copy of ``res2``. Its stem output is upsampled (nearest) and fused into the
  RGB stem output, its ``res2`` output into the RGB ``res2`` output:
  ``x ← a·x + b·up(d)`` with ``(a, b) = (0.5, 0.5)`` for 8 segments and ``(0.75, 0.25)``
  otherwise, TDN's values.
* **Long-term TDM** (:class:`LongTermTDM`) inside every block of ``res3``–``res5`` (TDN's code
  attaches it to ``layer2``–``layer4``; ``res2`` keeps plain blocks), after the first
  conv-BN-ReLU of the residual branch and before its second conv, on ``planes`` channels:
  reduce the channels 16×, take the bidirectional cross-segment difference
  ``conv(f[t±1]) − f[t]`` (depthwise 3×3), process it at three scales (identity, 3×3 conv,
  3×3 conv after a 2×2 average pool rounded down as TDN's code rounds, then upsampled),
  average, expand back with a 1×1 conv and excite: ``x + x·(σ(·) − ½)``, averaged over the
  two directions. It is followed by TDN's
  *learnable* temporal shift: a depthwise temporal conv of size 3 initialised to TSM's shift
  (1/8 of the channels from ``t+1``, 1/8 from ``t−1``, the rest unchanged), which equals
  :func:`aknet_cli.layers.temporal_shift` at initialisation.

  TDN's released code applies the backward small-scale conv to the *forward* difference (a
  typo); we apply it to the backward difference as the paper describes.

1-D conversion (AK-Net, eq. 11)
-------------------------------
After keypoint selection there is no frame structure left, so the long-term TDM (differences
between segments, temporal shift) cannot run on a point sequence. :meth:`LongTermTDM.to_1d`
drops it and converts only the wrapped conv, returning ``(converted_conv, description)`` like
:meth:`aknet_cli.layers.TemporalShift.to_1d`; the generic converter calls it, so the backbone
needs no :meth:`~aknet_cli.models.backbone.VideoBackbone.convert_1d` hook (it keeps the
default, ``None``). The short-term TDM only exists before ``res3`` and therefore always lies in
``F``, before any split.

FLOPs (fvcore, eval mode, 8×224²): ``tdn_resnet50`` counts 35.9 G against TDN's published
36 G; see ``aknet flops --backbone tdn_resnet50``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from aknet_cli.exceptions import ConfigError
from aknet_cli.layers import frames_merge, frames_view, is_channels_last
from aknet_cli.models.backbone import STAGE_NAMES, VideoBackbone, check_stage

from . import tdn_layouts  # noqa: F401  (registers official TDN's checkpoint layout)
from ._torchvision import build_torchvision_resnet, resnet_stages


class LearnableShift(nn.Module):
    """TDN's temporal shift: a depthwise conv of size 3 over time, initialised to TSM's shift.

    Args:
        channels: ``C``.
        num_segments: ``T``.
        fold_div: ``C // fold_div`` channels come from ``t+1`` and as many from ``t−1``.
    """

    def __init__(self, channels: int, num_segments: int, fold_div: int = 8) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.fold_div = fold_div
        self.conv = nn.Conv1d(channels, channels, kernel_size=3, padding=1, groups=channels, bias=False)
        fold = channels // fold_div
        with torch.no_grad():
            w = self.conv.weight  # (C, 1, 3): taps at t-1, t, t+1
            w.zero_()
            w[:fold, 0, 2] = 1.0  # from the future, as TSM's first block
            w[fold : 2 * fold, 0, 0] = 1.0  # from the past
            w[2 * fold :, 0, 1] = 1.0  # unchanged

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B*T, C, H, W) -> (B*T, C, H, W)``, in ``x``'s memory layout (NCHW or NHWC)."""
        # The batch stays symbolic (-1) so an exported model keeps a dynamic batch.
        c, h, w = (int(s) for s in x.shape[1:])
        t = self.num_segments
        clips, cdim = frames_view(x, t)  # (B, T, C, H, W) or, NHWC, (B, T, H, W, C)
        to_time_last, back = ((0, 2, 3, 4, 1), (0, 4, 1, 2, 3)) if cdim == 4 else ((0, 3, 4, 2, 1), (0, 4, 3, 1, 2))
        seq = self.conv(clips.permute(*to_time_last).reshape(-1, c, t))  # (B·H·W, C, T)
        return frames_merge(seq.view(-1, h, w, c, t).permute(*back), cdim)

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}, fold_div={self.fold_div}"


class HalfScalePool(nn.Module):
    """TDN's 2×2 average pool with floor rounding (``nn.AvgPool2d(2, 2)``), as its code does.

    Floor rounding drops the last row/column of an odd map (at 224², the 7×7 maps of ``res5``
    pool to 3×3): that is what TDN computes, so its checkpoints give its logits. A side of 1
    (tiny test inputs, where floor rounding would leave nothing) is kept as is, not pooled;
    maps of 2×2 and more are pooled exactly like TDN's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H', W')`` with ``H' = H // 2`` (``H`` if ``H == 1``), same for W."""
        kernel = tuple(2 if int(side) >= 2 else 1 for side in x.shape[-2:])
        return F.avg_pool2d(x, kernel, kernel)


class LongTermTDM(nn.Module):
    """Long-term temporal difference module followed by a learnable shift, then ``net``.

    Wraps the second conv of a residual branch (TDN's ``BottleneckShift``): the excitation and
    the shift act on that conv's input, the identity path of the block is untouched.

    Args:
        net: the wrapped conv (``block.conv2``).
        channels: its input channels (``planes``).
        num_segments: ``T``.
        reduction: channel reduction of the difference branch (TDN: 16).
        fold_div: shift fraction of :class:`LearnableShift`.
    """

    #: the output is ``net``'s output: a BatchNorm after this module folds into ``net``.
    aknet_output_layer = "net"

    def __init__(self, net: nn.Module, channels: int, num_segments: int, reduction: int = 16, fold_div: int = 8) -> None:
        super().__init__()
        if num_segments < 2:
            raise ConfigError(f"TDN's long-term TDM needs at least 2 segments, got {num_segments}")
        r = max(1, channels // reduction)
        self.num_segments = num_segments
        self.net = net
        self.reduce = nn.Sequential(nn.Conv2d(channels, r, 1, bias=False), nn.BatchNorm2d(r))
        # f[t±1] is first passed through a depthwise 3×3 so that the difference is spatially aligned
        self.neighbour = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)
        self.scale_full = nn.Sequential(nn.Conv2d(r, r, 3, padding=1, bias=False), nn.BatchNorm2d(r))
        self.scale_half = nn.Sequential(
            HalfScalePool(), nn.Conv2d(r, r, 3, padding=1, bias=False), nn.BatchNorm2d(r)
        )
        self.expand = nn.Sequential(nn.Conv2d(r, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.shift = LearnableShift(channels, num_segments, fold_div)

    def _excitation(self, diff: torch.Tensor) -> torch.Tensor:
        h, w = int(diff.shape[-2]), int(diff.shape[-1])
        half = F.interpolate(self.scale_half(diff), size=(h, w), mode="nearest")
        mixed = (diff + self.scale_full(diff) + half) / 3.0
        return torch.sigmoid(self.expand(mixed)) - 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B*T, C, H, W) -> net(shift(x + x·y))``."""
        t = self.num_segments
        reduced = self.reduce(x)
        # (B, T, ...) clips in the reduced map's memory order: the differences and their
        # concatenations keep an NHWC map NHWC (frames_view); g follows f's order.
        f, cdim = frames_view(reduced, t)
        g, _ = frames_view(self.neighbour(reduced), t, channels_last=cdim == 4)
        zero = torch.zeros_like(f[:, :1])
        forward_diff = frames_merge(torch.cat([g[:, 1:] - f[:, :-1], zero], dim=1), cdim)
        backward_diff = frames_merge(torch.cat([zero, g[:, :-1] - f[:, 1:]], dim=1), cdim)
        y = 0.5 * self._excitation(forward_diff) + 0.5 * self._excitation(backward_diff)
        return self.net(self.shift(x + x * y))

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}"

    def to_1d(self, convert) -> tuple[nn.Module, str]:
        """After keypoint selection there are no segments to difference or shift between: the
        long-term TDM and its shift are dropped and only the wrapped conv is converted."""
        return convert(self.net), "dropped TDN long-term TDM and shift (no frame structure after selection)"


class DifferenceFusion(nn.Module):
    """``a·x + b·up(d)``: fuse short-term difference features into the RGB features.

    A module of its own so FLOP counters attribute the upsampling to the short-term TDM.
    """

    def __init__(self, weights: tuple[float, float]) -> None:
        super().__init__()
        self.weights = (float(weights[0]), float(weights[1]))

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        d = F.interpolate(d, size=(int(x.shape[-2]), int(x.shape[-1])), mode="nearest")
        return self.weights[0] * x + self.weights[1] * d

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


class ShortTermTDM(nn.Module):
    """TDN's short-term path over stacked RGB differences; fused into ``stem`` and ``res2``.

    Args:
        rgb_conv1: the RGB stem conv, whose kernel (averaged over RGB) initialises ours.
        res2: a copy of the RGB ``res2`` stage, run on the difference features.
        fusion: ``(a, b)`` weights of ``a·rgb + b·difference``.
        num_diffs: differences per segment (``frames_per_segment − 1``).
    """

    def __init__(self, rgb_conv1: nn.Conv2d, res2: nn.Module, fusion: tuple[float, float], num_diffs: int = 4) -> None:
        super().__init__()
        conv = nn.Conv2d(3 * num_diffs, rgb_conv1.out_channels, 7, stride=2, padding=3, bias=False)
        with torch.no_grad():
            conv.weight.copy_(rgb_conv1.weight.mean(dim=1, keepdim=True).expand_as(conv.weight))
        self.stem = nn.Sequential(
            nn.AvgPool2d(2, 2),
            conv,
            nn.BatchNorm2d(rgb_conv1.out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.res2 = res2
        self.fuse = DifferenceFusion(fusion)


def stacked_differences(frames: torch.Tensor, *, channels_last: bool) -> torch.Tensor:
    """``(N, F, 3, H, W)`` frames → ``(N, 3·(F−1), H, W)``: the differences of consecutive frames,
    stacked along channels; NHWC with ``channels_last`` (the clips' frames are NHWC), in one copy
    either way (a plain ``flatten`` of NHWC frames' differences would copy them into NCHW)."""
    diffs = frames[:, 1:] - frames[:, :-1]  # (N, F-1, 3, H, W), each frame in the input's layout
    if not channels_last:
        return diffs.flatten(1, 2)
    k, c, h, w = (int(s) for s in diffs.shape[1:])  # the batch stays symbolic (export)
    return diffs.permute(0, 3, 4, 1, 2).reshape(-1, h, w, k * c).permute(0, 3, 1, 2)


class TDNBackbone(VideoBackbone):
    """A TDN ResNet: :class:`VideoBackbone` plus the short-term TDM (see the module docstring).

    Args:
        short_term: the :class:`ShortTermTDM`.
        **kw: passed to :class:`VideoBackbone`.
    """

    frames_per_segment = 5
    #: sampled, resized, cropped and scored as TDN's own code does (aknet_cli.data.protocols).
    protocol_family = "tdn"

    def __init__(self, *, short_term: ShortTermTDM, **kw) -> None:
        super().__init__(**kw)
        self.short_term = short_term

    def forward_until(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """Run ``(B, T, 5, 3, H, W)`` clips up to and including ``stage``.

        Returns:
            ``(B*T, C, H', W')`` features of that stage (the centre frames' features, fused with
            the short-term difference features for ``stem`` and ``res2``).
        """
        check_stage(stage)
        self.check_input(x)
        frames = x.flatten(0, 1)  # (B*T, 5, 3, H, W)
        centre = frames[:, self.frames_per_segment // 2]
        diffs = stacked_differences(frames, channels_last=is_channels_last(centre))  # (B*T, 12, H, W)
        fuse = self.short_term.fuse
        d = self.short_term.stem(diffs)
        h = fuse(self.stages["stem"](centre), d)
        if stage == "stem":
            return h
        h = fuse(self.stages["res2"](h), self.short_term.res2(d))
        for name in STAGE_NAMES[2:]:
            if STAGE_NAMES.index(name) > STAGE_NAMES.index(stage):
                break
            h = self.stages[name](h)
        return h


def _tdn(arch: str, num_classes: int, num_segments: int, pretrained, *, dropout: float = 0.5,
         fold_div: int = 8, reduction: int = 16, fusion: tuple[float, float] | None = None) -> TDNBackbone:
    net = build_torchvision_resnet(arch, pretrained)
    stages, specs = resnet_stages(net)
    if fusion is None:
        fusion = (0.5, 0.5) if num_segments == 8 else (0.75, 0.25)
    # Copied before the long-term modules go in: TDN's difference path uses plain res2 blocks.
    short_term = ShortTermTDM(net.conv1, copy.deepcopy(stages["res2"]), fusion)
    for name in ("res3", "res4", "res5"):
        for block in stages[name]:
            channels = block.conv2.in_channels
            block.conv2 = LongTermTDM(block.conv2, channels, num_segments, reduction, fold_div)
    return TDNBackbone(
        short_term=short_term,
        stages=stages,
        specs=specs,
        num_classes=num_classes,
        num_segments=num_segments,
        dropout=dropout,
    )


def tdn_resnet50(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> TDNBackbone:
    """TDN with a ResNet-50 (36 GFLOPs at 8×224² published; input ``(B, T, 5, 3, H, W)``)."""
    return _tdn("resnet50", num_classes, num_segments, pretrained, **kw)


def tdn_resnet18(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> TDNBackbone:
    """TDN with a ResNet-18 (basic blocks; the long-term TDM wraps each block's second conv):
    small, for tests and CPU demos."""
    return _tdn("resnet18", num_classes, num_segments, pretrained, **kw)


def tdn_resnet101(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> TDNBackbone:
    """TDN with a ResNet-101 (the long-term TDM in every block of res3-res5, as TDN's code)."""
    return _tdn("resnet101", num_classes, num_segments, pretrained, **kw)

"""A backbone as a third-party package would ship it: its own module types, its own
1-D conversion rule, registered through a (mocked) ``aknet.backbones`` entry point."""

from __future__ import annotations

import torch
from torch import nn

from aknet_cli.models.backbone import StageSpec, VideoBackbone


class FrameGate(nn.Module):
    """A custom temporal layer: mixes each frame with the clip mean (needs frames)."""

    def __init__(self, channels: int, num_segments: int) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.mix = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x):
        nt, c, h, w = x.shape
        clips = x.view(nt // self.num_segments, self.num_segments, c, h, w)
        mixed = clips + self.mix.view(1, 1, c, 1, 1) * clips.mean(dim=1, keepdim=True)
        return mixed.view(nt, c, h, w)


def _stage(cin: int, cout: int, stride: int, num_segments: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        FrameGate(cout, num_segments),
    )


class TinyNet(VideoBackbone):
    def convert_1d(self, module):
        # FrameGate has no frames to mix after selection: it becomes the identity.
        return nn.Identity() if isinstance(module, FrameGate) else None


def tiny_net(*, num_classes: int, num_segments: int, pretrained=False, **kw) -> TinyNet:
    widths = {"stem": 8, "res2": 8, "res3": 16, "res4": 16, "res5": 32}
    strides = {"stem": 4, "res2": 4, "res3": 8, "res4": 16, "res5": 32}
    stages = {
        "stem": nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU()),
        "res2": _stage(8, 8, 1, num_segments),
        "res3": _stage(8, 16, 2, num_segments),
        "res4": _stage(16, 16, 2, num_segments),
        "res5": _stage(16, 32, 2, num_segments),
    }
    specs = {n: StageSpec(n, widths[n], strides[n]) for n in widths}
    return TinyNet(stages=stages, specs=specs, num_classes=num_classes, num_segments=num_segments)

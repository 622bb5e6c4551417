"""TSM ResNets: a residual temporal shift before the first conv of every block."""

from __future__ import annotations

from aknet_cli.layers import TemporalShift
from aknet_cli.models.backbone import VideoBackbone

from . import tsm_layouts  # noqa: F401  (registers official TSM's and mmaction2's checkpoint layouts)
from ._torchvision import make_video_resnet


def _insert_shifts(num_segments: int, fold_div: int):
    def customize(stages) -> None:
        # TSM's code (and mmaction2's ResNetTSM) shifts every other block of a deep ResNet, one
        # whose res4 has 23 blocks or more (ResNet-101), and every block otherwise.
        every = 2 if len(stages["res4"]) >= 23 else 1
        for name in ("res2", "res3", "res4", "res5"):
            for i, block in enumerate(stages[name]):
                if i % every:
                    continue
                # Residual shift: only the residual branch sees shifted features, the
                # identity path keeps each frame's own activations (TSM's best variant).
                block.conv1 = TemporalShift(block.conv1, num_segments, fold_div)

    return customize


def _tsm(arch: str, num_classes: int, num_segments: int, pretrained, fold_div: int = 8, **kw) -> VideoBackbone:
    return make_video_resnet(
        arch,
        num_classes=num_classes,
        num_segments=num_segments,
        pretrained=pretrained,
        customize=_insert_shifts(num_segments, fold_div),
        **kw,
    )


def tsm_resnet50(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> VideoBackbone:
    """TSM with a ResNet-50, 1/8 channels shifted each way in every bottleneck."""
    return _tsm("resnet50", num_classes, num_segments, pretrained, **kw)


def tsm_resnet18(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> VideoBackbone:
    """TSM with a ResNet-18 (basic blocks): small, for tests and CPU demos."""
    return _tsm("resnet18", num_classes, num_segments, pretrained, **kw)


def tsm_resnet101(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> VideoBackbone:
    """TSM with a ResNet-101; as in TSM's code, every other block is shifted (blocks 0, 2, 4, …)."""
    return _tsm("resnet101", num_classes, num_segments, pretrained, **kw)

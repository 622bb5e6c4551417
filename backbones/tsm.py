"""TSM ResNets: a residual temporal shift before the first conv of every block."""

from __future__ import annotations

from aknet_cli.layers import TemporalShift
from aknet_cli.models.backbone import VideoBackbone

from ._torchvision import make_video_resnet


def _insert_shifts(num_segments: int, fold_div: int):
    def customize(stages) -> None:
        for name in ("res2", "res3", "res4", "res5"):
            for block in stages[name]:
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

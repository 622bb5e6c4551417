"""TSN ResNets: a 2-D ResNet on every frame, logits averaged over frames, no temporal modelling."""

from __future__ import annotations

from aknet_cli.models.backbone import VideoBackbone

from ._torchvision import make_video_resnet


def resnet50(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> VideoBackbone:
    """TSN with a ResNet-50 (33 GFLOPs at 8×224²)."""
    return make_video_resnet(
        "resnet50", num_classes=num_classes, num_segments=num_segments, pretrained=pretrained, **kw
    )


def resnet18(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> VideoBackbone:
    """TSN with a ResNet-18: small, for tests and CPU demos."""
    return make_video_resnet(
        "resnet18", num_classes=num_classes, num_segments=num_segments, pretrained=pretrained, **kw
    )


def resnet101(*, num_classes: int, num_segments: int, pretrained: bool | str = False, **kw) -> VideoBackbone:
    """TSN with a ResNet-101."""
    return make_video_resnet(
        "resnet101", num_classes=num_classes, num_segments=num_segments, pretrained=pretrained, **kw
    )

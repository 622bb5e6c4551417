"""A backbone plugin as a third-party lab would ship it, with the layout of the weights it
published: its code keeps the ResNet as ``encoder`` (``conv1``, ``bn1``, ``block1`` … ``block4``)
and the classifier as ``head.linear``. Registered through a (mocked) ``aknet.backbones`` entry
point, ``lab_resnet18 = "_thirdparty_layout:lab_resnet18"``; the layout is registered when
aknet imports this module, as a real plugin's would be."""

from __future__ import annotations

from aknet_backbones.resnet import resnet18
from aknet_cli._registry import Layout, register_checkpoint_layout
from aknet_cli.checkpoints.foreign import infer_resnet_backbone, refuse_layout

# The lab's prefixes → aknet's VideoBackbone names.
PREFIXES = {
    "encoder.conv1.": "stages.stem.0.",
    "encoder.bn1.": "stages.stem.1.",
    "encoder.block1.": "stages.res2.",
    "encoder.block2.": "stages.res3.",
    "encoder.block3.": "stages.res4.",
    "encoder.block4.": "stages.res5.",
    "head.linear.": "fc.",
}
KNOWN_AS = "the lab's code (encoder.block1.*, head.linear.*)"


def lab_resnet18(*, num_classes: int, num_segments: int, pretrained=False, **kw):
    """The lab's network is a frame-wise ResNet-18: an existing factory serves."""
    return resnet18(num_classes=num_classes, num_segments=num_segments, pretrained=pretrained, **kw)


def _renamed(key: str, table: dict[str, str]) -> str | None:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old):]
    return None


def translate(state):
    return {ours: value for key, value in state.items() if (ours := _renamed(key, PREFIXES)) is not None}


def name_in_file(ours: str) -> str:
    return _renamed(ours, {new: old for old, new in PREFIXES.items()}) or ours


@register_checkpoint_layout(KNOWN_AS)
def lab_layout(state):
    if not (any(k.startswith("encoder.block1.") for k in state) and any(k.startswith("head.linear.") for k in state)):
        return None
    if any(".attention." in k for k in state):
        raise refuse_layout("a lab checkpoint with attention blocks", "lab_resnet18 has none")
    return Layout("a lab checkpoint", "lab", "file", translate, name_in_file,
                  lambda ours: infer_resnet_backbone(ours, "lab_"))

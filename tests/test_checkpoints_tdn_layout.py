"""Checkpoints of the official TDN code (MCG-NJU/TDN) read by our ``tdn_*`` backbones.

The official state dicts are built here from our own models through an inverse name table
written from the official code's module names (``ops/models.py``: ``base_model`` / ``new_fc``;
``ops/tdn_net.py``: ``conv1``, ``bn1``, ``conv1_5``, ``resnext_layer1``, ``layer1_bak`` …
``layer4_bak``, the unused ``conv1_temp``/``conv1_temp1``; ``ops/base_module.py``: the fb-ResNet
with biased convs, ``mse`` and ``shift`` beside ``conv2`` in blocks of layer2-layer4), under
DataParallel's ``module.``.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aknet_backbones.tdn_layouts import is_tdn_state_dict, translate_tdn_state_dict
from aknet_backbones.tsm_layouts import is_tsm_state_dict
from aknet_cli import create_backbone
from aknet_cli.checkpoints.foreign import translate_foreign_state_dict
from aknet_cli.exceptions import CheckpointError

T = 8
CLASSES = 7

# Ours → official, by module (the parameter name, e.g. ``weight`` or ``running_mean``, is kept).
_INVERSE_TOP = {
    "stages.stem.0": "base_model.conv1",
    "stages.stem.1": "base_model.bn1",
    "short_term.stem.1": "base_model.conv1_5.0",
    "short_term.stem.2": "base_model.conv1_5.1",
    "fc": "new_fc",
}
_INVERSE_LAYER = {
    "short_term.res2": "resnext_layer1",
    "stages.res2": "layer1_bak",
    "stages.res3": "layer2_bak",
    "stages.res4": "layer3_bak",
    "stages.res5": "layer4_bak",
}
_INVERSE_IN_BLOCK = {  # inside one block, ours → official
    "conv2.net": "conv2",
    "conv2.reduce.0": "mse.conv1",
    "conv2.reduce.1": "mse.bn1",
    "conv2.neighbour": "mse.conv2",
    "conv2.scale_half.1": "mse.conv3_smallscale2",
    "conv2.scale_half.2": "mse.bn3_smallscale2",
    "conv2.scale_full.0": "mse.conv3_smallscale4",
    "conv2.scale_full.1": "mse.bn3_smallscale4",
    "conv2.expand.0": "mse.conv3",
    "conv2.expand.1": "mse.bn3",
    "conv2.shift.conv": "shift.conv",
}
# The fb-ResNet's biased convs (official names) and the BatchNorm each feeds.
_BIASED = {"conv1": "bn1", "conv2": "bn2", "conv3": "bn3", "downsample.0": "downsample.1"}
_CONV_WEIGHT = r"base_model\.((?:resnext_layer1|layer[1-4]_bak)\.\d+\.)?(conv[123]|downsample\.0)\.weight"


def _official_name(ours: str) -> str:
    module, param = ours.rsplit(".", 1)
    if module in _INVERSE_TOP:
        return f"{_INVERSE_TOP[module]}.{param}"
    m = re.fullmatch(r"(short_term\.res2|stages\.res[2-5])\.(\d+)\.(.+)", module)
    assert m, ours
    layer, index, inner = m.groups()
    return f"base_model.{_INVERSE_LAYER[layer]}.{index}.{_INVERSE_IN_BLOCK.get(inner, inner)}.{param}"


def official_state_dict(model: nn.Module, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """What the official TDN code would save for a network computing exactly what ``model``
    computes: official names under ``module.``, a random bias on every fb-ResNet conv with the
    BatchNorm it feeds shifted to match, plus the unused ``conv1_temp``/``conv1_temp1``."""
    g = torch.Generator().manual_seed(seed)
    state = {_official_name(k): v.clone() for k, v in model.state_dict().items()}
    for key in list(state):
        m = re.fullmatch(_CONV_WEIGHT, key)
        if m is None or (m.group(1) is None and m.group(2) != "conv1"):
            continue  # the stem has conv1 only
        block, conv = m.group(1) or "", m.group(2)
        bn = _BIASED[conv]
        bias = torch.randn(state[key].shape[0], generator=g) * 0.1
        state[f"base_model.{block}{conv}.bias"] = bias
        state[f"base_model.{block}{bn}.running_mean"] = state[f"base_model.{block}{bn}.running_mean"] + bias
    for name in ("conv1_temp", "conv1_temp1"):
        state[f"base_model.{name}.weight"] = torch.randn(64, 3, 7, 7, generator=g)
        state[f"base_model.{name}.bias"] = torch.randn(64, generator=g)
    return {f"module.{k}": v for k, v in state.items()}


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so every tensor matters."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def source18():
    torch.manual_seed(0)
    return _randomise(create_backbone("tdn_resnet18", num_classes=CLASSES, num_segments=T), seed=1)


def test_official_names_cover_every_tensor_of_ours(source18):
    official = official_state_dict(source18)
    assert is_tdn_state_dict(official)
    assert not is_tsm_state_dict(official)
    assert "module.base_model.layer2_bak.1.mse.conv3_smallscale2.weight" in official
    assert "module.base_model.layer1_bak.0.conv1.bias" in official
    assert "module.new_fc.weight" in official
    assert not any(".net." in k or "short_term" in k or "stages" in k for k in official)


def test_translated_official_tdn_checkpoint_computes_the_same(source18):
    official = official_state_dict(source18)
    state = translate_tdn_state_dict(official)
    target = create_backbone("tdn_resnet18", num_classes=CLASSES, num_segments=T).eval()
    target.load_state_dict(state, strict=True)
    torch.manual_seed(2)
    x = torch.randn(1, T, 5, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source18(x), rtol=1e-5, atol=1e-5)
    # the dispatcher picks TDN, with or without the DataParallel prefix
    bare = {k[len("module."):]: v for k, v in official.items()}
    assert translate_foreign_state_dict(bare).keys() == state.keys()


def test_resnet50_layout_matches_the_official_bottleneck_shift():
    torch.manual_seed(0)
    model = create_backbone("tdn_resnet50", num_classes=CLASSES, num_segments=T)
    official = official_state_dict(model)
    block = {k.rsplit(".", 1)[0][len("module.base_model.layer2_bak.0."):]
             for k in official if k.startswith("module.base_model.layer2_bak.0.")}
    # ops/base_module.py: BottleneckShift's modules with parameters or buffers
    assert block == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample.0", "downsample.1",
                     "mse.conv1", "mse.bn1", "mse.conv2", "mse.conv3", "mse.bn3", "mse.conv3_smallscale2",
                     "mse.bn3_smallscale2", "mse.conv3_smallscale4", "mse.bn3_smallscale4", "shift.conv"}
    plain = {k.rsplit(".", 1)[0][len("module.base_model.layer1_bak.0."):]
             for k in official if k.startswith("module.base_model.layer1_bak.0.")}
    assert plain == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample.0", "downsample.1"}
    create_backbone("tdn_resnet50", num_classes=CLASSES, num_segments=T).load_state_dict(
        translate_tdn_state_dict(official), strict=True)


def test_bias_folding_is_exact():
    """conv(x)+b → BN equals conv(x) → BN with running_mean − b, in eval and in train mode."""
    torch.manual_seed(3)
    biased = nn.Sequential(nn.Conv2d(4, 6, 3, bias=True), nn.BatchNorm2d(6))
    _randomise(biased, seed=4)
    folded = nn.Sequential(nn.Conv2d(4, 6, 3, bias=False), nn.BatchNorm2d(6))
    state = translate_tdn_state_dict({
        "base_model.conv1.weight": biased[0].weight, "base_model.conv1.bias": biased[0].bias,
        **{f"base_model.bn1.{k}": v for k, v in biased[1].state_dict().items()},
    })
    folded.load_state_dict({k.replace("stages.stem.", ""): v for k, v in state.items()})
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(folded.eval()(x), biased.eval()(x))
        torch.testing.assert_close(folded.train()(x), biased.train()(x))


def test_unrelated_state_dicts_are_not_tdn(source18):
    tsm = {"module.base_model.layer1.0.conv1.net.weight": torch.zeros(1), "module.new_fc.weight": torch.zeros(1)}
    assert not is_tdn_state_dict(tsm)
    assert is_tsm_state_dict({k[len("module."):]: v for k, v in tsm.items()})
    ours = source18.state_dict()
    assert not is_tdn_state_dict(ours)
    assert translate_foreign_state_dict(ours) is ours
    assert not is_tdn_state_dict({"conv1_5.weight": torch.zeros(1), "layer1_bak.0.conv1.weight": torch.zeros(1)})


@pytest.mark.parametrize(("key", "why"), [
    ("module.base_model.layer2_bak.0.mse.conv_mask.weight", "unknown module mse.conv_mask"),
    ("module.base_model.layer1_bak.0.mse.conv1.weight", "no long-term TDM in res2"),
    ("module.consensus.weight", "outside base_model and new_fc"),
])
def test_key_without_counterpart_is_one_line_error(source18, key, why):
    official = official_state_dict(source18)
    official[key] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        translate_foreign_state_dict(official)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert key[len("module."):] in message and why in message


def test_conv_bias_without_batchnorm_statistics_is_refused(source18):
    official = official_state_dict(source18)
    del official["module.base_model.layer3_bak.1.bn2.running_mean"]
    with pytest.raises(CheckpointError, match=r"layer3_bak\.1\.conv2\.bias .*running mean"):
        translate_tdn_state_dict(official)


def test_convert_1d_reads_official_tdn_checkpoints(source18, tmp_path):
    from aknet_cli.convert.stage2 import convert_checkpoint
    from aknet_cli.checkpoints.reader import model_from_checkpoint

    path = tmp_path / "TDN_something_RGB_resnet18_avg_segment8_e60.pth.tar"
    torch.save({"epoch": 60, "arch": "resnet18", "state_dict": official_state_dict(source18)}, path)
    out = tmp_path / "aknet.pt"
    convert_checkpoint(path, out, split="res3", backbone="tdn_resnet18", num_classes=CLASSES, num_segments=T)
    model, _ = model_from_checkpoint(out)
    torch.testing.assert_close(model.backbone.short_term.stem[1].weight, source18.short_term.stem[1].weight)
    torch.testing.assert_close(model.backbone.stages["res3"][1].conv2.scale_half[1].weight,
                               source18.stages["res3"][1].conv2.scale_half[1].weight)


# ------------------------------------------------------------------ the official long-term module
class _OfficialLongTerm(nn.Module):
    """TDN's ``mSEModule`` → ``ShiftModule`` → ``conv2`` (``ops/base_module.py``,
    ``BottleneckShift.forward``), written here from the official code's structure: its own
    ``nn.AvgPool2d(kernel_size=2, stride=2)`` (floor rounding), ``F.pad`` of the differences,
    ``F.interpolate`` with its default (nearest) mode, and the shift as a grouped ``Conv1d``
    over ``(n·h·w, c, t)``. It borrows only the weights of one of our ``LongTermTDM``s."""

    def __init__(self, ours: nn.Module) -> None:
        super().__init__()
        self.t = ours.num_segments
        self.conv1, self.bn1 = ours.reduce[0], ours.reduce[1]
        self.conv2 = ours.neighbour
        self.conv3_smallscale2, self.bn3_smallscale2 = ours.scale_half[1], ours.scale_half[2]
        self.conv3_smallscale4, self.bn3_smallscale4 = ours.scale_full[0], ours.scale_full[1]
        self.conv3, self.bn3 = ours.expand[0], ours.expand[1]
        self.avg_pool2 = nn.AvgPool2d(kernel_size=2, stride=2)
        self.shift_conv = ours.shift.conv
        self.net = ours.net

    def _mse(self, x: torch.Tensor) -> torch.Tensor:
        t = self.t
        bottleneck = self.bn1(self.conv1(x))
        feats = bottleneck.view((-1, t) + bottleneck.size()[1:])
        conv = self.conv2(bottleneck).view((-1, t) + bottleneck.size()[1:])
        forward = F.pad(conv[:, 1:] - feats[:, :-1], (0, 0, 0, 0, 0, 0, 0, 1)).flatten(0, 1)
        backward = F.pad(conv[:, :-1] - feats[:, 1:], (0, 0, 0, 0, 0, 0, 1, 0)).flatten(0, 1)

        def excite(diff):
            small = self.bn3_smallscale2(self.conv3_smallscale2(self.avg_pool2(diff)))
            small = F.interpolate(small, diff.size()[2:])
            full = self.bn3_smallscale4(self.conv3_smallscale4(diff))
            return torch.sigmoid(self.bn3(self.conv3(diff / 3.0 + small / 3.0 + full / 3.0))) - 0.5

        return x + x * (0.5 * excite(forward) + 0.5 * excite(backward))

    def _shift(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.size()
        seq = x.view(nt // self.t, self.t, c, h, w).permute(0, 3, 4, 2, 1).contiguous().view(-1, c, self.t)
        seq = self.shift_conv(seq).view(nt // self.t, h, w, c, self.t)
        return seq.permute(0, 4, 3, 1, 2).contiguous().view(nt, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._shift(self._mse(x)))


def _with_official_long_term(model: nn.Module) -> nn.Module:
    import copy

    from aknet_backbones.tdn import LongTermTDM

    official = copy.deepcopy(model)
    for name in ("res3", "res4", "res5"):
        for block in official.stages[name]:
            assert isinstance(block.conv2, LongTermTDM)
            block.conv2 = _OfficialLongTerm(block.conv2)
    return official.eval()


def test_logits_at_224_equal_the_official_long_term_module():
    """At 224² res5 runs the long-term module on 7×7 maps: TDN floors its 2×2 pool to 3×3 (a
    ceil-rounded pool gives 4×4 and logits off by several percent of their range)."""
    torch.manual_seed(5)
    ours = _randomise(create_backbone("tdn_resnet18", num_classes=CLASSES, num_segments=4), seed=6)
    with torch.no_grad():  # a classifier whose logits spread, so a small change shows
        ours.fc.weight.normal_(0, 0.5)
    official = _with_official_long_term(ours)
    x = torch.randn(1, 4, 5, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        mine, theirs = ours(x), official(x)
        assert ours.forward_until(x, "res5").shape[-2:] == (7, 7)
    spread = float(theirs.max() - theirs.min())
    assert spread > 1.0
    torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5 * spread)


def test_long_term_module_runs_on_one_pixel_maps():
    """A 32² input leaves 1×1 maps in res5, where a floored 2×2 pool would leave nothing."""
    torch.manual_seed(8)
    net = create_backbone("tdn_resnet18", num_classes=CLASSES, num_segments=2).eval()
    with torch.no_grad():
        assert net.forward_until(torch.randn(1, 2, 5, 3, 32, 32), "res5").shape[-2:] == (1, 1)
        assert torch.isfinite(net(torch.randn(1, 2, 5, 3, 32, 32))).all()

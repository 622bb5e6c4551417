"""TDN backbone plugin: layout, short-term and long-term TDMs, 1-D conversion of its modules."""

from __future__ import annotations

import flop_formulas
import numpy as np
import pytest
import torch
from torch import nn

from aknet_cli import create_backbone
from aknet_cli.exceptions import InputShapeError
from aknet_cli.layers import temporal_shift
from aknet_cli.models.kernels_1d import Converter
from aknet_backbones.tdn import LearnableShift, LongTermTDM, TDNBackbone

T = 8


@pytest.fixture(scope="module")
def tdn18() -> TDNBackbone:
    torch.manual_seed(0)
    return create_backbone("tdn_resnet18", num_classes=10, num_segments=T).eval()


def _clip(b: int = 2, size: int = 112) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(b, T, 5, 3, size, size)


def test_registered_and_layout(tdn18):
    assert isinstance(tdn18, TDNBackbone)
    assert tdn18.frames_per_segment == 5
    assert tdn18.input_layout == "(B, 8, 5, 3, H, W)"


def test_output_shape(tdn18):
    x = _clip()
    with torch.no_grad():
        out = tdn18(x)
        feats = tdn18.forward_until(x, "res5").numpy().astype(np.float64)  # (B*T, 512, h, w)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    # TSN's head, computed here: per-frame GAP, the classifier, the mean over the T segments.
    w = tdn18.fc.weight.detach().numpy().astype(np.float64)
    b = tdn18.fc.bias.detach().numpy().astype(np.float64)
    per_frame = feats.mean(axis=(2, 3)) @ w.T + b
    expected = per_frame.reshape(2, T, 10).mean(axis=1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_forward_until_shapes(tdn18):
    x = _clip(1, size=128)
    with torch.no_grad():
        for stage, (c, s) in {"stem": (64, 4), "res2": (64, 4), "res3": (128, 8), "res5": (512, 32)}.items():
            h = tdn18.forward_until(x, stage)
            assert h.shape == (T, c, 128 // s, 128 // s), stage
            assert tdn18.specs[stage].channels == c and tdn18.specs[stage].stride == s


@pytest.mark.parametrize("shape", [(2, 8, 3, 112, 112), (2, 8, 3, 3, 112, 112), (2, 4, 5, 3, 112, 112)])
def test_wrong_layout_names_expected_layout(tdn18, shape):
    with pytest.raises(InputShapeError, match=r"\(B, 8, 5, 3, H, W\)"):
        tdn18(torch.zeros(shape))


def test_short_term_uses_neighbouring_frames(tdn18):
    x = _clip(1)
    y = x.clone()
    y[0, 3, 0] += 1.0  # first (non-centre) frame of segment 3
    with torch.no_grad():
        a, b = tdn18.forward_until(x, "stem"), tdn18.forward_until(y, "stem")
    changed = (a - b).abs().flatten(1).amax(dim=1)
    assert changed[3] > 0, "a non-centre frame must reach its own segment's features"
    assert torch.all(changed[torch.arange(T) != 3] == 0), "stem has no cross-segment mixing"


def test_long_term_mixes_segments_from_res3(tdn18):
    x = _clip(1)
    y = x.clone()
    y[0, 0] += 1.0  # all 5 frames of segment 0
    with torch.no_grad():
        res2 = (tdn18.forward_until(x, "res2") - tdn18.forward_until(y, "res2")).abs()
        res3 = (tdn18.forward_until(x, "res3") - tdn18.forward_until(y, "res3")).abs()
    assert res2[1].max() == 0, "res2 is frame-wise in TDN"
    assert res3[1].max() > 0, "the long-term TDM in res3 must mix segment 0 into segment 1"


def test_long_term_modules_only_in_res3_to_res5(tdn18):
    def count(m: nn.Module) -> int:
        return sum(isinstance(x, LongTermTDM) for x in m.modules())

    assert count(tdn18.stages["stem"]) == count(tdn18.stages["res2"]) == count(tdn18.short_term) == 0
    assert all(count(tdn18.stages[s]) == len(tdn18.stages[s]) for s in ("res3", "res4", "res5"))


def test_learnable_shift_starts_as_tsm_shift():
    shift = LearnableShift(16, num_segments=4, fold_div=8)
    x = torch.randn(2 * 4, 16, 3, 5)
    with torch.no_grad():
        assert torch.allclose(shift(x), temporal_shift(x, 4, 8))
    assert shift.conv.weight.requires_grad


def test_short_term_stem_initialised_from_rgb_stem(tdn18):
    rgb = tdn18.stages["stem"][0].weight
    diff = tdn18.short_term.stem[1].weight
    assert diff.shape == (64, 12, 7, 7)
    assert torch.allclose(diff[:, 0], rgb.mean(dim=1))


def test_backward_pass_reaches_all_parameters():
    net = create_backbone("tdn_resnet18", num_classes=5, num_segments=4).train()
    net(torch.randn(2, 4, 5, 3, 64, 64)).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, missing


def _tiny_convert(module: nn.Module) -> nn.Module:
    """Stand-in for the generic converter: Conv2d k×k -> Conv1d k, weights summed over one axis."""
    if isinstance(module, nn.Conv2d):
        conv = nn.Conv1d(module.in_channels, module.out_channels, module.kernel_size[0],
                         stride=module.stride[0], padding=module.padding[0], groups=module.groups,
                         bias=module.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(module.weight.sum(dim=3))
        return conv
    return module


def test_long_term_to_1d_drops_the_module(tdn18):
    tdm = tdn18.stages["res3"][0].conv2
    assert isinstance(tdm, LongTermTDM)
    converted, note = tdm.to_1d(_tiny_convert)
    assert isinstance(converted, nn.Conv1d)
    assert "dropped" in note and "TDM" in note
    assert torch.equal(converted.weight, tdm.net.weight.sum(dim=3))
    assert converted(torch.randn(2, tdm.net.in_channels, 20)).shape[:2] == (2, tdm.net.out_channels)
    assert tdn18.convert_1d(tdm) is None, "TDN relies on to_1d, not on the backbone hook"


def test_generic_converter_on_tdn_stages(tdn18):
    for name, stage in tdn18.stages_after("res2"):
        module = Converter(hook=tdn18.convert_1d)(stage, name)
        kinds = {type(m) for m in module.modules()}
        assert LongTermTDM not in kinds and LearnableShift not in kinds, name
        assert nn.Conv2d not in kinds and nn.BatchNorm2d not in kinds, name
        if name == "res3":  # runs on a point sequence (B, C_res2, N); a 2×2 stride keeps 1 point in 4
            with torch.no_grad():
                out = module.eval()(torch.randn(2, tdn18.specs["res2"].channels, 30))
            assert out.shape == (2, tdn18.specs["res3"].channels, 8)


def test_tdn_resnet50_flops_near_published_36g():
    """TDN's paper: 36 GFLOPs for ResNet-50, 8 segments, 224² (fvcore convention, eval mode).

    Every part is derived by hand from the architecture (tests/flop_formulas.py) and must match
    the count exactly; the total, 35.893 G, is 0.3% under the published (rounded) 36 G."""
    from aknet_cli.analysis.flops import count

    rep = count("tdn_resnet50", split="none", frames=8, size=224, num_classes=174)
    expected = {name: T * f for name, f in flop_formulas.tdn_resnet50(224, 174).items()}
    got = {p.name: p.flops for p in rep.parts}
    assert got == expected  # no "other" part either: every FLOP is attributed
    assert rep.flops == sum(expected.values())
    assert rep.gflops == pytest.approx(36.0, rel=0.003)
    # the long-term TDMs live in res3-res5: those stages cost more than plain ResNet-50's
    plain_res3 = T * flop_formulas.bottleneck_stage(256, 128, 4, 2, 56)
    assert rep.part("res3").flops > plain_res3
    assert rep.part("res2").flops == T * flop_formulas.bottleneck_stage(64, 64, 3, 1, 56)

"""BatchNorm folding for inference: same function as the unfused eval model, no BN left."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aknet_cli import build_aknet, create_backbone
from aknet_cli.models import fuse_for_inference
from aknet_cli.models.fuse import fold_batchnorm, remaining_batchnorms


def _randomize_batchnorms(model: nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial statistics and affine parameters: with the defaults (μ=0,
    σ²=1, γ=1, β=0) a BN is nearly the identity and a wrong fold could go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)


def _clip(model, batch: int = 2, size: int = 64) -> torch.Tensor:
    backbone = getattr(model, "backbone", model)  # AK-Net keeps the input layout of its backbone
    fps, t = backbone.frames_per_segment, backbone.num_segments
    shape = (batch, t, 3, size, size) if fps == 1 else (batch, t, fps, 3, size, size)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_fold_matches_conv_then_batchnorm(dim, bias):
    torch.manual_seed(dim)
    conv = (nn.Conv1d if dim == 1 else nn.Conv2d)(6, 10, 3, padding=1, groups=2, bias=bias)
    bn = (nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d)(10)
    _randomize_batchnorms(bn)
    seq = nn.Sequential(conv, bn).eval()
    x = torch.randn(3, 6, *([17] if dim == 1 else [9, 11]))
    with torch.no_grad():
        expected = seq(x)
        fused = fuse_for_inference(seq)
        got = fused(x)
    assert remaining_batchnorms(fused) == [] and isinstance(fused[1], nn.Identity)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert isinstance(seq[1], nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d), "default must not touch the input"


def test_batchnorm_without_statistics_is_left_in_place():
    conv, bn = nn.Conv1d(4, 4, 1), nn.BatchNorm1d(4, track_running_stats=False)
    assert fold_batchnorm(conv, bn) is False
    assert remaining_batchnorms(fuse_for_inference(nn.Sequential(conv, bn))) == ["1"]


@pytest.mark.parametrize("name", ["resnet18", "tsm_resnet18", "tdn_resnet18"])
def test_fused_backbone_equals_unfused(name):
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=7, num_segments=4)
    _randomize_batchnorms(model)
    model.eval()
    x = _clip(model)
    fused = fuse_for_inference(model)
    assert remaining_batchnorms(fused) == []
    assert remaining_batchnorms(model), "the unfused model must be left as it was"
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "backbone, split, kw",
    [
        ("tsm_resnet18", "res2", {}),
        ("tsm_resnet18", "res3", {"transform_rank": 8}),
        ("tsm_resnet18", "res4", {}),
        ("tdn_resnet18", "res3", {}),
        ("resnet18", "res2", {"position": "embedding"}),
    ],
)
def test_fused_aknet_equals_unfused(backbone, split, kw):
    torch.manual_seed(0)
    model = build_aknet(backbone, split=split, alpha=0.3, num_classes=7, num_segments=4, **kw)
    _randomize_batchnorms(model)
    if model.position is not None and hasattr(model.position, "matrix"):
        # move A away from the identity, so the point MLP's BN matters to the output
        nn.init.normal_(model.position.matrix.weight, std=0.02)
    model.eval()
    x = _clip(model)
    fused = fuse_for_inference(model)
    assert remaining_batchnorms(fused) == []
    with torch.no_grad():
        logits, keypoints = model(x, return_keypoints=True)
        got_logits, got_keypoints = fused(x, return_keypoints=True)
    assert torch.equal(got_keypoints, keypoints)
    torch.testing.assert_close(got_logits, logits, rtol=1e-4, atol=1e-4)

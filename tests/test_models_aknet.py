"""AK-Net end to end: composition of its parts, shapes for every split, the public contract,
third-party backbones, and clear errors for bad input."""

from __future__ import annotations

import copy
from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch

import aknet_cli._registry as registry
from aknet_cli import build_aknet, create_backbone
from aknet_cli.exceptions import ConfigError, InputShapeError, UnknownBackboneError
from aknet_cli.models.aknet import AKNetConfig, AKNetOutput
from aknet_cli.models.backbone import STAGE_NAMES
from aknet_cli.models.position import TransformNet


def _hand_built_logits(model, backbone2d, x, *, split, alpha, tau, concat_gap=True):
    """Recompose AK-Net from its parts with independent selection/ranking/gathering code."""
    t = backbone2d.num_segments
    h = x.flatten(0, 1)
    for name in STAGE_NAMES[: STAGE_NAMES.index(split) + 1]:
        h = backbone2d.stages[name](h)
    nt, c, hh, ww = h.shape
    feats = h.view(nt // t, t, c, hh, ww)
    heat = model.heatmap(h, t)
    n = int(alpha * t * hh * ww + 0.5)
    logits = []
    for b in range(feats.shape[0]):
        flat = heat[b].reshape(-1)
        chosen = sorted(range(flat.numel()), key=lambda i: -float(flat[i]))[:n]
        coords = [(i // (hh * ww), (i // ww) % hh, i % ww) for i in chosen]
        coords.sort(key=lambda p: (-(p[2] + p[1] + tau * p[0]), p[0] * hh * ww + p[1] * ww + p[2]))
        points = torch.stack([feats[b, tt, :, yy, xx] for tt, yy, xx in coords], dim=1)[None]
        for stage in model.point_net.values():
            points = stage(points)
        pooled = points.mean(dim=2)
        if concat_gap:
            pooled = torch.cat([feats[b].mean(dim=(0, 2, 3))[None], pooled], dim=1)
        logits.append(model.head.fc(pooled))
    return torch.cat(logits)


@pytest.mark.parametrize("rank", [None, 8])
@pytest.mark.parametrize("split", ["res2", "res4"])
def test_model_equals_hand_built_composition_with_transform_at_identity(split, rank):
    torch.manual_seed(0)
    backbone = create_backbone("tsm_resnet18", num_classes=7, num_segments=4)
    reference = copy.deepcopy(backbone).eval()
    model = build_aknet(backbone, split=split, alpha=0.3, transform_rank=rank).eval()
    x = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        got = model(x)
        # Default τ ("auto"): h + w − 1 of the 64-px input's split map keeps frames together.
        side = 64 // reference.specs[split].stride
        expected = _hand_built_logits(model, reference, x, split=split, alpha=0.3, tau=2 * side - 1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_ablation_switches_change_the_computation_as_documented():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18", num_classes=3, num_segments=2)
    reference = copy.deepcopy(backbone).eval()
    model = build_aknet(backbone, split="res3", alpha=0.5, position="none", concat_gap=False, tau=3.0).eval()
    assert model.position is None and model.head.fc.in_features == 512
    x = torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model(x), _hand_built_logits(model, reference, x, split="res3", alpha=0.5, tau=3.0, concat_gap=False),
            rtol=1e-4, atol=1e-4)
    emb = build_aknet("resnet18", split="res3", num_classes=3, num_segments=2, position="embedding").eval()
    assert emb(x).shape == (1, 3)


@pytest.mark.parametrize("size", [112, 224])
@pytest.mark.parametrize("split, stride", [("res2", 4), ("res3", 8), ("res4", 16)])
def test_output_shapes_for_every_split(split, stride, size):
    model = build_aknet("tsm_resnet18", split=split, alpha=0.3, num_classes=11, num_segments=8, transform_rank=16).eval()
    with torch.no_grad():
        logits, keypoints = model(torch.randn(1, 8, 3, size, size), return_keypoints=True)
    side = size // stride
    assert logits.shape == (1, 11)
    assert keypoints.shape == (1, round(0.3 * 8 * side * side), 3)
    assert keypoints.dtype == torch.int64
    assert keypoints[..., 0].max() < 8 and keypoints[..., 1:].max() < side


def _cross_entropy(logits: np.ndarray, target: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(target)), target].mean())


@pytest.mark.parametrize("sparsity_reg", [True, False])
def test_train_mode_returns_everything_the_loss_needs(sparsity_reg):
    torch.manual_seed(0)
    model = build_aknet("tsm_resnet18", split="res3", num_classes=5, num_segments=4, transform_rank=8,
                        tau=2.0, stride_mode="area", sparsity_reg=sparsity_reg).train()
    out = model(torch.randn(2, 4, 3, 64, 64))
    assert isinstance(out, AKNetOutput)
    assert out.logits.shape == out.aux_logits.shape == (2, 5)
    assert out.heatmap.shape == (2, 4, 8, 8) and out.keypoints.shape == (2, round(0.3 * 4 * 64), 3)
    target = torch.tensor([0, 4])
    loss = out.loss(target)
    loss.backward()
    assert torch.isfinite(loss)

    # Eq. 16 recomputed from the outputs: (CE(y_cls, y) + CE(y_aux, y)) / 2 + r_e, with eq. 15's
    # r_e = mean of 4H(1 - H) over the H×W positions (and over frames and clips).
    y = target.numpy()
    logits, aux = out.logits.detach().double().numpy(), out.aux_logits.detach().double().numpy()
    heat = out.heatmap.detach().double().numpy()
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    r_e = float((4 * heat * (1 - heat)).mean(axis=(2, 3)).mean())
    assert r_e > 1e-3  # not binary at initialisation, so dropping it is visible at rel=1e-5
    expected = (_cross_entropy(logits, y) + _cross_entropy(aux, y)) / 2 + (r_e if sparsity_reg else 0.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    terms = out.loss_terms(target)
    assert terms["sparsity"].item() == pytest.approx(r_e if sparsity_reg else 0.0, abs=1e-6)
    assert terms["aux"].item() == pytest.approx(_cross_entropy(aux, y), rel=1e-5)
    # The heatmap learns through the auxiliary head (and r_e): its SE weights get a gradient.
    assert model.heatmap.fc1.weight.grad is not None and model.heatmap.fc1.weight.grad.abs().sum() > 0


def test_paper_configuration_keeps_470_keypoints():
    model = build_aknet("tsm_resnet50", split="res4", alpha=0.3).eval()
    with torch.no_grad():
        logits, keypoints = model(torch.randn(1, 8, 3, 224, 224), return_keypoints=True)
    assert logits.shape == (1, 174)
    assert keypoints.shape == (1, 470, 3)
    # The default transform net is A = I + Q G Pᵀ of rank 64: learned bases Q (1024 + 3)×64 and
    # P 1024×64, and only the 64×64 core G from a 256-wide FC; the paper's full matrix,
    # (1024 + 3)² outputs, is transform_rank=None.
    assert (model.config.transform, model.config.transform_rank) == ("core", 64)
    assert model.position.matrix.out_features == 64 * 64
    assert model.position.basis_in.shape == (1027, 64) and model.position.basis_out.shape == (1024, 64)
    assert TransformNet(1024, rank=None).matrix.out_features == 1027 * 1027


def test_third_party_backbone_through_a_mocked_entry_point(monkeypatch):
    real = registry.entry_points

    def fake_entry_points(*, group):
        extra = EntryPoint("tiny_thirdparty", "_thirdparty_backbone:tiny_net", group)
        return [extra, *real(group=group)]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    assert "tiny_thirdparty" in registry.backbone_names()
    model = build_aknet("tiny_thirdparty", split="res3", num_classes=4, num_segments=4).eval()
    assert any(r.action == "plugin" for r in model.conversion)
    with torch.no_grad():
        assert model(torch.randn(2, 4, 3, 64, 64)).shape == (2, 4)


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.randn(8, 3, 64, 64), r"\(B, 4, 3, H, W\), got \(8, 3, 64, 64\)"),
        (torch.randn(1, 7, 3, 64, 64), r"expected 4 frames per clip \(dim 1\), got 7"),
        (torch.randn(1, 4, 1, 64, 64), r"3 colour channels, got 1"),
    ],
)
def test_bad_input_tensor_is_named(x, message):
    model = build_aknet("resnet18", split="res3", num_classes=3, num_segments=4, position="none").eval()
    with pytest.raises(InputShapeError, match=message):
        model(x)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"backbone": "no_such_net"}, UnknownBackboneError, r"no_such_net.*available: .*tsm_resnet50"),
        ({"alpha": 0.0}, ConfigError, r"alpha must be in \(0, 1\], got 0.0"),
        ({"alpha": 1.2}, ConfigError, r"got 1.2"),
        ({"split": "res5"}, ConfigError, r"unknown split 'res5'.*res2, res3, res4"),
        ({"position": "sinusoid"}, ConfigError, r"'sinusoid'"),
        ({"ranking_mode": "x"}, ConfigError, r"unknown AK-Net option\(s\) ranking_mode"),
    ],
)
def test_bad_configuration_is_named(kwargs, error, message):
    kwargs = {"backbone": "resnet18", "num_classes": 3, "num_segments": 2, **kwargs}
    with pytest.raises(error, match=message):
        build_aknet(kwargs.pop("backbone"), **kwargs)



@pytest.mark.parametrize("bad", [0, True, 2.0, "64"])
def test_config_refuses_a_rank_of_the_wrong_type(bad):
    with pytest.raises(ConfigError, match="transform_rank must be 'auto', a positive integer or None"):
        AKNetConfig(transform_rank=bad).validate()


def test_auto_rank_is_the_forms_default_where_it_saves_something():
    """``core``: rank 64, at most C + 3 (ResNet-18's res2 has C = 64: bases of rank 67 already
    span everything). ``uv``: U and V of rank r have 2·(C+3)·r entries against the full matrix's
    (C+3)², so rank 64 only where 128 < C + 3, else the paper's full matrix."""
    small = build_aknet("tsm_resnet18", split="res2", num_classes=5, num_segments=4)
    assert (small.config.transform, small.config.transform_rank) == ("core", 64)
    assert small.position.matrix.out_features == 64 * 64 and small.position.basis_in.shape == (67, 64)
    small_uv = build_aknet("tsm_resnet18", split="res2", num_classes=5, num_segments=4, transform="uv")
    assert small_uv.config.transform_rank is None and small_uv.position.matrix.out_features == 67 * 67
    large = build_aknet("tsm_resnet18", split="res4", num_classes=5, num_segments=4, transform="uv")
    assert large.config.transform_rank == 64 and large.position.matrix.out_features == 2 * 259 * 64
    forced = build_aknet("tsm_resnet18", split="res2", num_classes=5, num_segments=4, transform="uv", transform_rank=64)
    assert forced.config.transform_rank == 64 and forced.position.matrix.out_features == 2 * 67 * 64  # as asked
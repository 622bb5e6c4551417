"""BatchNorm recalibration of the 1-D subnet after conversion (issue #9, item 5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aknet_cli.convert.calibrate import point_net_batchnorms, recalibrate_bn
from aknet_cli.exceptions import ConfigError, DataError
from aknet_cli.models.aknet import build_aknet


def _model():
    torch.manual_seed(0)
    return build_aknet("resnet18", split="res3", alpha=0.3, num_classes=4, num_segments=2, position="none")


def _batches(k: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    # Batches of different brightness, so a cumulative and an exponential average differ.
    return [torch.randn(2, 2, 3, 64, 64, generator=g) * (1 + i) + i for i in range(k)]


def test_statistics_are_the_plain_average_over_batches_and_nothing_else_moves():
    model = _model().train()
    others = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("point_net.")}
    bns = point_net_batchnorms(model)
    assert len(bns) == 10  # res4 and res5 of ResNet-18: 2 blocks × 2 BN + 1 shortcut BN each
    seen: dict[str, list[torch.Tensor]] = {name: [] for name, _ in bns}
    hooks = [bn.register_forward_hook(lambda m, i, o, name=name: seen[name].append(i[0].detach().clone()))
             for name, bn in bns]
    batches = _batches(3)
    labels = [torch.zeros(2, dtype=torch.long)] * 3
    report = recalibrate_bn(model, zip(batches, labels), num_batches=3)  # (clip, label) pairs
    for h in hooks:
        h.remove()

    assert report["batches"] == 3 and report["clips"] == 6
    for name, bn in bns:
        xs = seen[name]
        assert len(xs) == 3
        # First principles: a cumulative average is the mean of the per-batch statistics
        # (BatchNorm's running variance uses the unbiased batch variance).
        mean = torch.stack([x.mean(dim=(0, 2)) for x in xs]).mean(0)
        var = torch.stack([x.var(dim=(0, 2), unbiased=True) for x in xs]).mean(0)
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-5)
        assert bn.momentum == 0.1  # restored
    # F, heatmap, heads (and the aux head's BN) untouched; the model is back in train mode.
    after = model.state_dict()
    for k, v in others.items():
        torch.testing.assert_close(after[k], v)
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_first_layer_matches_what_it_sees_at_inference_and_the_report_is_the_ratio():
    model = _model().eval()
    name, first = point_net_batchnorms(model)[0]
    old_var = first.running_var.clone()
    batches = _batches(2, seed=1)
    report = recalibrate_bn(model, batches, num_batches=5)  # runs out after 2: uses 2
    assert report["batches"] == 2
    assert not model.training and not any(m.training for m in model.modules())
    # Upstream of the first 1-D BN everything is in eval mode in both passes, so at inference
    # it receives exactly what it was calibrated on.
    seen = []
    h = first.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        for x in batches:
            model(x)
    h.remove()
    torch.testing.assert_close(first.running_mean, torch.stack([x.mean(dim=(0, 2)) for x in seen]).mean(0),
                               rtol=1e-4, atol=1e-5)
    ratio = first.running_var / old_var
    layer = report["layers"][name]
    assert layer["var_ratio_mean"] == pytest.approx(float(ratio.mean()), rel=1e-5)
    assert layer["var_ratio_min"] == pytest.approx(float(ratio.min()), rel=1e-5)


def test_a_wrapped_model_is_calibrated_through_its_module():
    model = _model().eval()
    wrapped = nn.DataParallel(model)  # CPU: a plain wrapper with .module
    name, bn = point_net_batchnorms(model)[0]
    before = bn.running_var.clone()
    report = recalibrate_bn(wrapped, _batches(1), num_batches=1)
    assert name in report["layers"] and not torch.equal(bn.running_var, before)


def test_refusals():
    model = _model()
    with pytest.raises(ConfigError, match="num_batches"):
        recalibrate_bn(model, _batches(1), num_batches=0)
    with pytest.raises(DataError, match="empty"):
        recalibrate_bn(model, [], num_batches=2)
    with pytest.raises(DataError, match="clip tensors"):
        recalibrate_bn(model, ["not a clip"], num_batches=1)
    with pytest.raises(ConfigError, match="point_net"):
        recalibrate_bn(nn.Sequential(nn.Linear(2, 2)), _batches(1), num_batches=1)
    # A failed pass leaves the statistics as they were.
    name, bn = point_net_batchnorms(model)[0]
    before = bn.running_var.clone()
    with pytest.raises(DataError):
        recalibrate_bn(model, [_batches(1)[0], "oops"], num_batches=2)
    torch.testing.assert_close(bn.running_var, before)


def test_convert_1d_calibrate_from_the_command_line(tmp_path):
    import json

    from cli_helpers import assert_one_line_error
    from typer.testing import CliRunner

    from aknet_cli import create_backbone
    from aknet_cli.cli.main import app
    from aknet_cli.checkpoints.format import save_checkpoint
    from aknet_cli.checkpoints.reader import build_model, read_checkpoint

    runner = CliRunner()
    data = tmp_path / "synth"
    prep = runner.invoke(app, ["prepare", "synthetic", "--out", str(data), "--classes", "2", "--train-per-class", "4",
                               "--val-per-class", "1", "--test-per-class", "2", "--size", "32", "--frames", "8", "--workers", "1"])
    assert prep.exit_code == 0, prep.output
    torch.manual_seed(0)
    net = create_backbone("tsm_resnet18", num_classes=2, num_segments=4)
    stage1 = tmp_path / "stage1.pt"
    save_checkpoint(stage1, kind="backbone", config={"backbone": "tsm_resnet18", "num_classes": 2, "num_segments": 4},
                    state_dict=net.state_dict())
    out = tmp_path / "aknet.pt"
    args = ["convert-1d", "-c", str(stage1), "-o", str(out), "--split", "res3", "--transform-rank", "2",
            "--calibrate", str(data), "--batches", "2", "--batch-size", "2", "--crop", "32"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    cal = json.loads(result.output)["bn_calibration"]
    assert cal["batches"] == 2 and cal["clips"] == 4 and len(cal["layers"]) == 10
    ckpt = read_checkpoint(out)
    model = build_model(ckpt)
    assert ckpt.raw["meta"]["bn_calibration"]["batches"] == 2
    # The 1-D statistics moved away from the copied 2-D ones; F's did not.
    bn1d, bn2d = model.point_net["res4"][0].bn1, net.stages["res4"][0].bn1
    assert not torch.allclose(bn1d.running_var, bn2d.running_var)
    torch.testing.assert_close(model.backbone.stages["res3"][0].bn1.running_var, net.stages["res3"][0].bn1.running_var)
    # User mistakes are one line.
    assert_one_line_error(runner.invoke(app, [*args[:-6], "--batches", "0", "-o", str(tmp_path / "x.pt")]), "--batches")
    assert_one_line_error(runner.invoke(app, [*args[:3], "-o", str(tmp_path / "y.pt"), "--calibrate",
                                              str(tmp_path / "nowhere")]), "nowhere")

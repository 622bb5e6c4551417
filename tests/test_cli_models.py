"""`aknet backbones` and `aknet convert-1d` from the command line."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import assert_one_line_error, write_stage1_checkpoint
from typer.testing import CliRunner

from aknet_cli.cli.main import app
from aknet_cli.checkpoints.format import read_checkpoint_file
from aknet_cli.checkpoints.reader import build_model, model_from_checkpoint, read_checkpoint

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("backbones", "convert-1d"):
        assert cmd in result.output


def test_backbones_json_lists_builtins_with_their_package():
    result = runner.invoke(app, ["backbones", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    for name in ("resnet18", "resnet50", "tsm_resnet18", "tsm_resnet50"):
        assert rows[name]["package"] == "aknet"


@pytest.fixture()
def stage1(tmp_path):
    path = tmp_path / "stage1.pt"
    return path, write_stage1_checkpoint(path, ddp_prefix=True)  # keys as DDP saves them


def test_convert_1d_copies_f_and_compacts_p(tmp_path, stage1):
    path, net = stage1
    out = tmp_path / "aknet.pt"
    result = runner.invoke(app, ["convert-1d", "-c", str(path), "--split", "res3", "--alpha", "0.25",
                                 "--transform-rank", "8", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["converted"]["dropped TemporalShift"] == 4  # res4 and res5 have 2 basic blocks each
    assert report["converted"]["converted Conv2d"] == 10
    ckpt = read_checkpoint(out)
    model = build_model(ckpt)
    assert ckpt.kind == "aknet" and ckpt.config["aknet"]["alpha"] == 0.25
    # F is copied exactly.
    torch.testing.assert_close(model.backbone.stages["res3"][0].conv2.weight, net.stages["res3"][0].conv2.weight)
    # Q's first conv is the stage-1 kernel summed over its width (eq. 11).
    w2d = net.stages["res4"][0].conv1.net.weight
    torch.testing.assert_close(model.point_net["res4"][0].conv1.weight, w2d.sum(dim=-1))
    # The head scores pooled point features with the stage-1 classifier.
    fc = model.head.fc
    torch.testing.assert_close(fc.weight[:, -512:], net.fc.weight)
    assert torch.count_nonzero(fc.weight[:, :-512]) == 0
    # A second run refuses to overwrite without --force.
    again = runner.invoke(app, ["convert-1d", "-c", str(path), "-o", str(out)])
    assert_one_line_error(again, "already exists", "--force")


def test_convert_1d_errors_are_one_line(tmp_path, stage1):
    path, _ = stage1
    assert_one_line_error(runner.invoke(app, ["convert-1d", "-c", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "o.pt")]),
                    "missing.pt", "not found")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    assert_one_line_error(runner.invoke(app, ["convert-1d", "-c", str(corrupt), "-o", str(tmp_path / "o.pt")]),
                    "corrupt.pt")
    assert_one_line_error(runner.invoke(app, ["convert-1d", "-c", str(path), "-o", str(tmp_path / "o.pt"), "--alpha", "1.5"]),
                    "alpha", "1.5")
    assert_one_line_error(runner.invoke(app, ["convert-1d", "-c", str(path), "-o", str(tmp_path / "o.pt"), "--split", "res5"]),
                    "res5")
    plain = tmp_path / "plain.pt"
    torch.save(read_checkpoint_file(path)["state_dict"], plain)
    # A plain state dict: the backbone is read from its keys, the frame count must be given.
    assert_one_line_error(runner.invoke(app, ["convert-1d", "-c", str(plain), "-o", str(tmp_path / "o.pt")]),
                    "plain.pt", "--num-segments")
    assert_one_line_error(runner.invoke(app, ["convert-1d", "-c", str(plain), "-o", str(tmp_path / "o.pt"),
                                        "--backbone", "tsm_resnet50", "--num-classes", "6", "--num-segments", "4"]),
                    "plain.pt", "--backbone tsm_resnet50 contradicts", "tsm_resnet18")
    assert not (tmp_path / "o.pt").exists()


def test_convert_1d_reads_official_tsm_checkpoints(tmp_path):
    """The TSM code base saves {'state_dict': {'module.base_model.layer1.0.conv1.net.weight', ...,
    'module.new_fc.weight'}}: build one from a torchvision ResNet the way TSM wraps it."""
    import torchvision

    from aknet_cli.layers import TemporalShift

    torch.manual_seed(4)
    base = torchvision.models.resnet18()
    for layer in (base.layer1, base.layer2, base.layer3, base.layer4):
        for block in layer:
            block.conv1 = TemporalShift(block.conv1, num_segments=4)
    new_fc = torch.nn.Linear(512, 6)
    state = {f"module.base_model.{k}": v for k, v in base.state_dict().items() if not k.startswith("fc.")}
    state.update({f"module.new_fc.{k}": v for k, v in new_fc.state_dict().items()})
    path = tmp_path / "TSM_something_RGB_resnet18_shift8_blockres_avg_segment4_e45.pth.tar"
    torch.save({"epoch": 45, "state_dict": state}, path)
    out = tmp_path / "aknet.pt"
    result = runner.invoke(app, ["convert-1d", "-c", str(path), "-o", str(out), "--backbone", "tsm_resnet18",
                                 "--num-classes", "6", "--num-segments", "4", "--split", "res3"])
    assert result.exit_code == 0, result.output
    model, _ = model_from_checkpoint(out)
    torch.testing.assert_close(model.backbone.stages["res3"][1].conv1.net.weight, base.layer2[1].conv1.net.weight)
    torch.testing.assert_close(model.backbone.stages["stem"][1].running_var, base.bn1.running_var)
    torch.testing.assert_close(model.head.fc.weight[:, -512:], new_fc.weight)


def test_convert_1d_set_stores_ablation_switches(tmp_path, stage1):
    path, _ = stage1
    out = tmp_path / "abl.pt"
    result = runner.invoke(app, ["convert-1d", "-c", str(path), "-o", str(out), "--split", "res3", "--transform-rank", "4",
                                 "--set", "ranking=false", "--set", "concat_gap=off", "--set", "stride_mode=axis"])
    assert result.exit_code == 0, result.output
    ckpt = read_checkpoint(out)
    model = build_model(ckpt)
    cfg = ckpt.config["aknet"]
    assert (cfg["ranking"], cfg["concat_gap"], cfg["stride_mode"], cfg["transform_rank"]) == (False, False, "axis", 4)
    assert model.selector.ranking is False and model.head.fc.in_features == 512
    assert model.point_net["res4"][0].conv1.stride == (2,)  # BasicBlock strides in its first conv
    for args, fragment in (
        (["--set", "ranking=maybe"], "expected a bool"),
        (["--set", "nonsense=1"], "unknown AK-Net option 'nonsense'"),
        (["--set", "tau"], "KEY=VALUE"),
        (["--set", "tau=3", "--tau", "2"], "given both"),
        (["--set", "alpha=0.5"], "--alpha"),
    ):
        assert_one_line_error(runner.invoke(app, ["convert-1d", "-c", str(path), "-o", str(tmp_path / "x.pt"), *args]), fragment)


def test_flops_set_passes_switches_to_the_model():
    base = runner.invoke(app, ["flops", "--backbone", "resnet18", "--split", "res2", "--size", "64", "--frames", "2",
                               "--transform-rank", "4", "--json"])
    axis = runner.invoke(app, ["flops", "--backbone", "resnet18", "--split", "res2", "--size", "64", "--frames", "2",
                               "--transform-rank", "4", "--set", "stride_mode=axis", "--json"])
    assert base.exit_code == 0 and axis.exit_code == 0, base.output + axis.output
    area, literal = json.loads(base.output), json.loads(axis.output)
    assert literal["config"]["options"]["stride_mode"] == "axis"
    # Halving instead of quartering the points at each strided stage costs more in res3-res5.
    assert literal["by_part"]["res5 (1-D)"]["gflops"] > 1.5 * area["by_part"]["res5 (1-D)"]["gflops"]
    assert_one_line_error(runner.invoke(app, ["flops", "--split", "res4", "--set", "stride_mode=diagonal"]), "diagonal")


def test_flops_counts_the_rank_64_transform_net_by_default_and_the_papers_on_request():
    """The last FC of T (256 wide) outputs the 64×64 core G by default, beside the learned bases
    Q ((C+3)×64) and P (C×64), and the paper's (C+3)² with --transform-rank none; C = 256 at res4
    of a ResNet-18."""
    args = ["flops", "--backbone", "tsm_resnet18", "--split", "res4", "--size", "64", "--frames", "4", "--json"]
    default, paper = runner.invoke(app, args), runner.invoke(app, [*args, "--transform-rank", "none"])
    assert default.exit_code == 0 and paper.exit_code == 0, default.output + paper.output
    default, paper = json.loads(default.output), json.loads(paper.output)
    d = 256 + 3
    fc_default, fc_paper = 256 * 64 * 64 + 64 * 64 + d * 64 + 256 * 64, 256 * d * d + d * d  # weights + biases (+ bases)
    point_mlp = d * 64 + 64 * 128 + 128 * 1024 + 2 * (64 + 128 + 1024)  # convs + BN affine
    global_mlp = 1024 * 512 + 512 + 512 * 256 + 256
    assert default["config"]["options"] == {} and paper["config"]["options"] == {"transform_rank": None}
    assert round(default["by_part"]["transform net"]["params_m"] * 1e6) == fc_default + point_mlp + global_mlp
    assert round(paper["by_part"]["transform net"]["params_m"] * 1e6) == fc_paper + point_mlp + global_mlp

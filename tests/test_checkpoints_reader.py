"""Checkpoints of other code bases, built here from their published layouts, not from our names.

The reference network is a torchvision ResNet with the residual temporal shift written here
after mmaction2's ``TemporalShift.shift`` (and the official TSM's, which computes the same),
wrapped the way each code base wraps it:

* mmaction2 1.x (``mmaction/models/backbones/resnet.py``, ``resnet_tsm.py``, ``heads/tsm_head.py``):
  ``backbone.`` + mmcv ``ConvModule`` names (``conv1.conv``, ``conv1.bn``, ``downsample.conv``/
  ``.bn``), the shift wrapping ``conv1.conv`` as ``.net``, the classifier ``cls_head.fc_cls``,
  logits averaged over segments; mmengine's ``meta`` with the config text beside the weights.
* official TSM (``ops/models.py``, ``ops/temporal_shift.py``): ``module.base_model.`` + torchvision
  names, the shift wrapping ``conv1`` as ``.net``, the classifier ``new_fc`` or, trained with
  ``--dropout 0``, ``base_model.fc``.
"""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from torch import nn
from typer.testing import CliRunner

from aknet_cli.cli.main import app
from aknet_cli.checkpoints.reader import fit_classes, model_from_checkpoint, read_checkpoint
from aknet_cli.exceptions import CheckpointError, ConfigError
from cli_helpers import assert_one_line_error

runner = CliRunner()
T = 4
CLASSES = 4


class _Shift(nn.Module):
    """mmaction2's ``TemporalShift``: 1/div of the channels from t+1, 1/div from t-1, zero-filled."""

    def __init__(self, net: nn.Module, segments: int, div: int = 8) -> None:
        super().__init__()
        self.net, self.segments, self.div = net, segments, div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        x = x.view(-1, self.segments, c, h * w)
        fold = c // self.div
        left, mid, right = x[:, :, :fold], x[:, :, fold:2 * fold], x[:, :, 2 * fold:]
        left = torch.cat((left[:, 1:], torch.zeros_like(left[:, :1])), 1)
        mid = torch.cat((torch.zeros_like(mid[:, :1]), mid[:, :-1]), 1)
        return self.net(torch.cat((left, mid, right), 2).view(n, c, h, w))


class _ReferenceTSM(nn.Module):
    """torchvision ResNet + residual shift in every ``shift_every``-th block + an averaged head."""

    def __init__(self, arch: str = "resnet18", classes: int = CLASSES, shift_every: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.resnet = getattr(torchvision.models, arch)()
        self.resnet.fc = nn.Identity()
        for layer in (self.resnet.layer1, self.resnet.layer2, self.resnet.layer3, self.resnet.layer4):
            for i, block in enumerate(layer):
                if i % shift_every == 0:
                    block.conv1 = _Shift(block.conv1, T)
        width = 512 if arch == "resnet18" else 2048
        self.fc_cls = nn.Linear(width, classes)
        with torch.no_grad():
            self.fc_cls.weight.normal_(0, 0.3)
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return self.fc_cls(self.resnet(x.flatten(0, 1))).view(b, T, -1).mean(1)

    def torchvision_state(self) -> dict[str, torch.Tensor]:
        """The ResNet's keys as torchvision names them (a shifted conv1 under ``.net``)."""
        return {k[len("resnet."):]: v for k, v in self.state_dict().items() if k.startswith("resnet.")}


def _mmaction2_name(tv: str) -> str:
    """A torchvision ResNet key → mmaction2 1.x ResNet(TSM): ConvModule's ``conv``/``bn``."""
    if m := re.fullmatch(r"conv1\.(.+)", tv):
        return f"backbone.conv1.conv.{m.group(1)}"
    if m := re.fullmatch(r"bn1\.(.+)", tv):
        return f"backbone.conv1.bn.{m.group(1)}"
    block, rest = re.fullmatch(r"(layer\d\.\d+)\.(.+)", tv).groups()
    if m := re.fullmatch(r"conv(\d)\.(net\.)?(.+)", rest):
        return f"backbone.{block}.conv{m.group(1)}.conv.{m.group(2) or ''}{m.group(3)}"
    if m := re.fullmatch(r"bn(\d)\.(.+)", rest):
        return f"backbone.{block}.conv{m.group(1)}.bn.{m.group(2)}"
    part, param = re.fullmatch(r"downsample\.([01])\.(.+)", rest).groups()
    return f"backbone.{block}.downsample.{'conv' if part == '0' else 'bn'}.{param}"


def mmaction2_checkpoint(ref: _ReferenceTSM, path, *, segments_in_config: bool = True, depth: int = 18):
    import numpy as np

    state = {_mmaction2_name(k): v for k, v in ref.torchvision_state().items()}
    state.update({f"cls_head.fc_cls.{k}": v for k, v in ref.fc_cls.state_dict().items()})
    segments = f"num_segments={T}, " if segments_in_config else ""
    cfg = (f"model = dict(\n    type='Recognizer2D',\n    backbone=dict(\n        type='ResNetTSM',\n        depth={depth},\n"
           f"        {segments}shift_div=8,\n        norm_eval=False),\n    cls_head=dict(\n        type='TSMHead',\n"
           f"        num_classes={ref.fc_cls.out_features},\n        {segments}in_channels=512))\n")
    torch.save({"meta": {"cfg": cfg, "mmengine_version": "0.10.3", "dataset_meta": {}, "seed": 0, "epoch": 50,
                         "iter": 6000, "experiment_name": "tsm", "time": "20240101_000000",
                         "best_score": np.float64(40.5)},
                "state_dict": state}, path)
    return path


def official_tsm_checkpoint(ref: _ReferenceTSM, path, *, dropout0: bool = False):
    state = {f"module.base_model.{k}": v for k, v in ref.torchvision_state().items()}
    head = "module.base_model.fc" if dropout0 else "module.new_fc"
    state.update({f"{head}.{k}": v for k, v in ref.fc_cls.state_dict().items()})
    torch.save({"epoch": 45, "arch": "resnet18", "state_dict": state, "best_prec1": 40.1}, path)
    return path


@pytest.fixture(scope="module")
def ref():
    return _ReferenceTSM()


def _clip():
    return torch.randn(2, T, 3, 64, 64, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------ formats
def test_mmaction2_tsm_checkpoint_computes_what_mmaction2_computes(ref, tmp_path):
    path = mmaction2_checkpoint(ref, tmp_path / "tsm_r18_1x1x4_sthv1.pth")
    ckpt = read_checkpoint(path)
    assert ckpt.format == "an mmaction2 TSM checkpoint"
    assert ckpt.config["backbone"] == "tsm_resnet18" and ckpt.config["num_segments"] == T  # from meta's config
    assert ckpt.label_order == "file"
    model, description = model_from_checkpoint(path)
    x = _clip()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref(x), rtol=1e-5, atol=1e-5)
    assert description["num_classes"] == CLASSES and description["format"] == ckpt.format


@pytest.mark.parametrize("dropout0", [False, True], ids=["new_fc", "base_model.fc"])
def test_official_tsm_checkpoints_of_both_classifier_names(ref, tmp_path, dropout0):
    path = official_tsm_checkpoint(ref, tmp_path / f"TSM_something_RGB_resnet18_shift8_blockres_avg_segment{T}_e45.pth",
                                   dropout0=dropout0)
    model, description = model_from_checkpoint(path)
    assert description["format"] == "an official TSM checkpoint" and description["label_order"] == "sorted"
    assert any("read from the file name" in note for note in description["notes"])
    x = _clip()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref(x), rtol=1e-5, atol=1e-5)


def test_official_tsm_resnet101_shifts_every_other_block(tmp_path):
    ref = _ReferenceTSM("resnet101", shift_every=2)
    tv = ref.torchvision_state()
    assert "layer3.0.conv1.net.weight" in tv and "layer3.1.conv1.weight" in tv
    path = official_tsm_checkpoint(ref, tmp_path / "TSM_kinetics_RGB_resnet101_shift8_blockres_avg_segment4_e50.pth")
    model, description = model_from_checkpoint(path)
    assert description["backbone"] == "tsm_resnet101"
    x = torch.randn(1, T, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref(x), rtol=1e-4, atol=1e-5)


def test_a_layout_nobody_writes_gets_a_one_line_diagnosis(tmp_path):
    path = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8),
                "features.3.weight": torch.zeros(8, 8, 3, 3), "classifier.0.weight": torch.zeros(4, 8)}, path)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert "vgg.pth" in message and "features.* (3 keys)" in message and "classifier.* (1 keys)" in message
    for known in ("official TSM", "official TDN", "mmaction2 1.x", "aknet"):
        assert known in message


@pytest.mark.parametrize(("keys", "named"), [
    (["backbone.conv1_5.0.weight", "backbone.layer1_bak.0.conv1.conv.weight"], "ResNetTDN"),
    (["backbone.layer1.0.block.conv1.conv.weight", "backbone.layer1.0.tam.G.0.weight"], "TANet"),
])
def test_mmaction2_layouts_aknet_cannot_build_are_refused_by_name(tmp_path, keys, named):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {**{k: torch.zeros(1) for k in keys}, "cls_head.fc_cls.weight": torch.zeros(3, 1)}}, path)
    with pytest.raises(CheckpointError, match=named) as err:
        read_checkpoint(path)
    assert "other.pth" in str(err.value) and len(str(err.value).splitlines()) == 1


def test_a_mismatch_names_keys_as_the_file_names_them(ref, tmp_path):
    import torch as _torch

    path = mmaction2_checkpoint(ref, tmp_path / "m.pth")
    obj = _torch.load(path, weights_only=False)
    del obj["state_dict"]["backbone.layer2.1.conv1.conv.net.weight"]
    _torch.save(obj, path)
    with pytest.raises(CheckpointError) as err:
        model_from_checkpoint(path)
    message = str(err.value)
    assert "backbone.layer2.1.conv1.conv.net.weight" in message and "an mmaction2 TSM checkpoint" in message


def test_options_fill_in_or_contradict_what_the_file_says(ref, tmp_path):
    path = mmaction2_checkpoint(ref, tmp_path / "no_segments.pth", segments_in_config=False)
    with pytest.raises(ConfigError, match="--num-segments"):
        read_checkpoint(path)
    assert read_checkpoint(path, num_segments=T).config["num_segments"] == T
    with pytest.raises(ConfigError, match="--backbone tsm_resnet50 contradicts .*tsm_resnet18"):
        read_checkpoint(path, backbone="tsm_resnet50", num_segments=T)
    with pytest.raises(ConfigError, match="--label-order"):
        read_checkpoint(path, num_segments=T, label_order="alphabetical")


def test_format_1_tdn_checkpoints_say_they_pooled_differently(tmp_path):
    from aknet_cli import create_backbone

    net = create_backbone("tdn_resnet18", num_classes=3, num_segments=2)
    path = tmp_path / "old_tdn.pt"
    torch.save({"format": "aknet-checkpoint/1", "kind": "backbone", "state_dict": net.state_dict(), "meta": {},
                "config": {"backbone": "tdn_resnet18", "num_classes": 3, "num_segments": 2}}, path)
    ckpt = read_checkpoint(path)
    assert not ckpt.verified and any("before aknet's TDN pooled" in note for note in ckpt.notes)


# ------------------------------------------------------------------------------ classes
NAMES_FILE = ["push", "pull", "lift", "drop"]  # a labels file's order; sorted: drop, lift, pull, push


def test_sorted_checkpoint_rows_are_reordered_for_a_file_ordered_dataset(ref, tmp_path):
    path = official_tsm_checkpoint(ref, tmp_path / f"TSM_something_RGB_resnet18_segment{T}.pth")
    model, description = model_from_checkpoint(path)
    x = _clip()
    with torch.no_grad():
        before = model.eval()(x)
    notes = fit_classes(model, description, classes=NAMES_FILE, label_order="file", dataset_format="sthv1",
                        source="ckpt", where="data")
    assert notes and description["classes"] == NAMES_FILE
    ranked = sorted(NAMES_FILE)
    with torch.no_grad():
        after = model(x)
    for i, name in enumerate(NAMES_FILE):  # the dataset's class i is the checkpoint's sorted row of that name
        torch.testing.assert_close(after[:, i], before[:, ranked.index(name)])


def test_file_ordered_checkpoint_on_a_sorted_dataset_is_refused_unless_told(ref, tmp_path):
    path = mmaction2_checkpoint(ref, tmp_path / "m.pth")
    model, description = model_from_checkpoint(path)
    with pytest.raises(CheckpointError, match="--label-order file"):
        fit_classes(model, description, classes=sorted(NAMES_FILE), label_order="sorted", dataset_format="sthv1",
                    source="m.pth", where="data")
    model, description = model_from_checkpoint(path, label_order="sorted")
    assert fit_classes(model, description, classes=sorted(NAMES_FILE), label_order="sorted",
                       dataset_format="sthv1", source="m.pth", where="data") == []
    with pytest.raises(CheckpointError, match="predicts 4 classes but data has 3"):
        fit_classes(model, description, classes=NAMES_FILE[:3], label_order="file", dataset_format="sthv1",
                    source="m.pth", where="data")


def test_official_code_sorts_only_sth_sth(ref, tmp_path):
    path = official_tsm_checkpoint(ref, tmp_path / f"TSM_diving48_segment{T}.pth")
    model, description = model_from_checkpoint(path)
    assert fit_classes(model, description, classes=NAMES_FILE, label_order="file", dataset_format="diving48",
                       source="ckpt", where="data") == []


# ------------------------------------------------------------------------------ commands
@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """synth-sth (4 classes, sthv1 frames) prepared twice: sorted (the default) and file order."""
    root = tmp_path_factory.mktemp("synth")
    made = runner.invoke(app, ["prepare", "synthetic", "--out", str(root / "sorted"), "--classes", "4",
                               "--train-per-class", "2", "--val-per-class", "2", "--size", "32", "--frames", "8"])
    assert made.exit_code == 0, made.output
    again = runner.invoke(app, ["prepare", "sthv1", "--root", str(root / "sorted" / "raw"), "--out",
                                str(root / "file"), "--label-order", "file"])
    assert again.exit_code == 0, again.output
    return root / "sorted", root / "file"


def _eval(ckpt, data, out, *extra):
    import json

    result = runner.invoke(app, ["eval", str(ckpt), "--data", str(data), "--out", str(out), "--json",
                                 "--workers", "0", *extra])
    assert result.exit_code == 0, result.output
    import pandas as pd

    return json.loads(result.stdout), pd.read_csv(out / "predictions.csv")


def test_eval_reads_mmaction2_and_official_tsm_in_either_label_order(ref, datasets, tmp_path):
    sorted_data, file_data = datasets
    mm = mmaction2_checkpoint(ref, tmp_path / "tsm_mmaction2.pth")
    assert_one_line_error(runner.invoke(app, ["eval", str(mm), "--data", str(sorted_data)]),
                          "tsm_mmaction2.pth", "--label-order file")
    metrics, by_file = _eval(mm, file_data, tmp_path / "e1")
    assert metrics["checkpoint_format"] == "an mmaction2 TSM checkpoint"
    _, told = _eval(mm, sorted_data, tmp_path / "e2", "--label-order", "sorted")
    assert len(by_file) == len(told) == 8
    # The official TSM file holds the same network: on the file-ordered dataset its sorted rows
    # are reordered, so each clip gets the class name it gets on the sorted dataset.
    official = official_tsm_checkpoint(ref, tmp_path / f"TSM_something_RGB_resnet18_segment{T}.pth")
    _, official_sorted = _eval(official, sorted_data, tmp_path / "e3")
    _, official_file = _eval(official, file_data, tmp_path / "e4")
    assert official_sorted.set_index("id")["top1_class"].to_dict() == official_file.set_index("id")["top1_class"].to_dict()
    assert official_sorted["top1_score"].tolist() == pytest.approx(official_file["top1_score"].tolist(), abs=1e-6)


def test_convert_1d_and_stage2_training_start_from_an_mmaction2_checkpoint(ref, datasets, tmp_path):
    from aknet_cli.engine.config import load_config
    from aknet_cli.engine.trainer import train

    _, file_data = datasets
    mm = mmaction2_checkpoint(ref, tmp_path / "tsm_mmaction2.pth")
    out = tmp_path / "aknet.pt"
    converted = runner.invoke(app, ["convert-1d", "-c", str(mm), "--split", "res3", "-o", str(out), "--json"])
    assert converted.exit_code == 0, converted.output
    ak = read_checkpoint(out)
    assert ak.kind == "aknet" and ak.config["backbone"] == "tsm_resnet18" and ak.label_order == "file"
    config = tmp_path / "stage2.toml"
    config.write_text(f"""
name = "from_mmaction2"
[model]
backbone = "tsm_resnet18"
stage = 2
init_from = "{mm}"
num_segments = {T}
[model.aknet]
split = "res3"
transform_rank = 4
[data]
dataset = "{file_data}"
resize = 36
crop = 32
num_workers = 0
[optim]
batch_size = 4
base_batch_size = 4
epochs = 1
milestones = [1]
[train]
amp = false
""")
    result = train(load_config(config), work_dir=tmp_path / "work", progress=False)
    trained = read_checkpoint(result.best_checkpoint)
    assert trained.kind == "aknet" and trained.config["classes"] == list(datasets_classes(file_data))
    sorted_data, _ = datasets
    with pytest.raises(CheckpointError, match="--label-order file"):
        train(load_config(config, [f"data.dataset={sorted_data}"]), work_dir=tmp_path / "w2", progress=False)
    assert not (tmp_path / "w2" / "last.pt").exists()


def datasets_classes(folder):
    from aknet_cli.data import load_manifest

    return load_manifest(folder).classes


def test_a_bare_aknet_state_dict_is_explained(tmp_path):
    from aknet_cli.models.aknet import build_aknet

    model = build_aknet("tsm_resnet18", split="res3", num_classes=3, num_segments=2, transform_rank=4)
    path = tmp_path / "weights_only.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="weights_only.pt is a bare AK-Net state dict"):
        read_checkpoint(path)


def test_eval_reads_an_official_tdn_checkpoint_as_it_is(datasets, tmp_path):
    from aknet_cli import create_backbone
    from test_checkpoints_tdn_layout import _randomise, official_state_dict

    sorted_data, _ = datasets
    torch.manual_seed(4)
    source = _randomise(create_backbone("tdn_resnet18", num_classes=CLASSES, num_segments=T), seed=5)
    path = tmp_path / f"TDN_something_RGB_resnet18_avg_segment{T}_e60.pth.tar"
    torch.save({"epoch": 60, "arch": "resnet18", "state_dict": official_state_dict(source)}, path)
    metrics, predictions = _eval(path, sorted_data, tmp_path / "tdn")
    assert metrics["checkpoint_format"] == "an official TDN checkpoint" and len(predictions) == 8
    model, description = model_from_checkpoint(path)
    assert description["backbone"] == "tdn_resnet18" and description["num_segments"] == T
    x = torch.randn(1, T, 5, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), source(x), rtol=1e-5, atol=1e-5)


def test_an_aknet_checkpoint_of_an_unknown_kind_is_named_not_read_as_a_foreign_file(tmp_path):
    """aknet's own container with a kind this version does not build (a newer aknet's): one
    line naming the kind, instead of a request for --num-segments as if it were TSM's file."""
    from aknet_cli import create_backbone
    from aknet_cli.checkpoints.format import save_checkpoint

    net = create_backbone("resnet18", num_classes=3, num_segments=2)
    path = tmp_path / "teacher.pt"
    save_checkpoint(path, kind="teacher", config={"backbone": "resnet18", "num_classes": 3, "num_segments": 2},
                    state_dict=net.state_dict())
    with pytest.raises(CheckpointError, match=r"teacher.pt is an aknet checkpoint of kind 'teacher'"):
        read_checkpoint(path)


def test_a_checkpoint_from_before_the_transform_forms_loads_as_the_uv_form_it_was(tmp_path):
    """Checkpoints written before ``transform`` existed record only a rank, which then meant
    A = I + U Vᵀ: they load as that form, to the same logits."""
    from dataclasses import asdict

    from aknet_cli import build_aknet
    from aknet_cli.checkpoints.format import save_checkpoint
    from aknet_cli.checkpoints.reader import model_from_checkpoint

    torch.manual_seed(0)
    model = build_aknet("resnet18", split="res4", num_classes=3, num_segments=2, transform="uv", transform_rank=4).eval()
    with torch.no_grad():  # away from the identity, so that a wrong form would change the logits
        model.position.matrix.bias.normal_()
    switches = asdict(model.config)
    del switches["transform"]  # as the older writer recorded it
    path = tmp_path / "old.pt"
    save_checkpoint(path, kind="aknet", config={"backbone": "resnet18", "num_classes": 3, "num_segments": 2,
                                                "aknet": switches}, state_dict=model.state_dict())
    loaded, _ = model_from_checkpoint(path)
    assert (loaded.config.transform, loaded.config.transform_rank) == ("uv", 4)
    x = torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x))

"""Training and evaluation on tiny synthetic data: both stages, exact resume, eval views (torchrun/gloo:
test_engine_ddp.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from aknet_cli.cli.main import app
from aknet_cli.checkpoints.format import read_checkpoint_file
from aknet_cli.engine.config import load_config
from aknet_cli.engine.steplog import read_step_log
from aknet_cli.engine.trainer import TrainingDiverged, train
from aknet_cli.exceptions import CheckpointError
from cli_helpers import assert_one_line_error

runner = CliRunner()

TINY = """
name = "tiny"
[model]
backbone = "resnet18"
num_segments = 4
dropout = 0.5
[data]
dataset = "{dataset}"
resize = 36
crop = 32
resize_mode = "square"
num_workers = 0
[optim]
name = "adamw"
lr = 0.001
base_batch_size = 4
batch_size = 4
epochs = 2
milestones = [1]
[train]
seed = 3
amp = false
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """4 classes × 4 training clips (2 val) of 32² synth-sth, 8 frames: 4 steps an epoch at batch 4."""
    root = tmp_path_factory.mktemp("tiny")
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(root / "synth"), "--classes", "4",
                                 "--train-per-class", "4", "--val-per-class", "2", "--test-per-class", "2", "--size", "32", "--frames", "8"])
    assert result.exit_code == 0, result.output
    config = root / "tiny.toml"
    config.write_text(TINY.format(dataset=root / "synth"))
    return config


@pytest.fixture(scope="module")
def stage1(tiny, tmp_path_factory):
    work = tmp_path_factory.mktemp("stage1")
    return train(load_config(tiny), work_dir=work, progress=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_stage1_writes_everything_a_run_promises(stage1):
    work = stage1.work_dir
    for name in ("config.toml", "metrics.csv", "curves.png", "last.pt", "best.pt"):
        assert (work / name).is_file(), name
    metrics = pd.read_csv(work / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    assert {"lr", "train_loss", "val_top1", "val_top5", "clips_per_s", "data_wait", "seconds"} <= set(metrics)
    assert metrics["lr"].tolist() == pytest.approx([1e-3, 1e-4])  # ×0.1 at the milestone epoch 1
    last = torch.load(work / "last.pt", map_location="cpu", weights_only=True)  # loadable without pickle
    assert last["kind"] == "backbone" and last["config"]["num_classes"] == 4 and last["config"]["classes"]
    state = last["train_state"]
    assert {"optimizer", "scheduler", "scaler", "epoch", "step_in_epoch", "rng", "sampler"} <= set(state)
    assert stage1.best_top1 == pytest.approx(metrics["val_top1"].max())


def test_stage2_converts_the_stage1_checkpoint_and_trains_with_eq16(stage1, tiny, tmp_path):
    cfg = load_config(tiny, ["model.stage=2", f"model.init_from={stage1.best_checkpoint}", "optim.epochs=1",
                             "model.aknet.split='res4'", "model.aknet.alpha=0.5", "model.aknet.transform_rank=8"])
    result = train(cfg, work_dir=tmp_path, progress=False)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    row = metrics.iloc[0]
    for key in ("train_cls", "train_aux", "train_sparsity"):
        assert row[key] == row[key] and row[key] >= 0  # finite, present: eq. 16's terms
    ckpt = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["kind"] == "aknet" and ckpt["config"]["aknet"]["alpha"] == 0.5
    assert (tmp_path / "converted.pt").is_file()  # the same conversion as `aknet convert-1d`


def test_stage2_refuses_a_stage1_checkpoint_of_another_dataset(stage1, tiny, tmp_path):
    other = tmp_path / "other"
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(other), "--classes", "3",
                                 "--train-per-class", "2", "--val-per-class", "1", "--test-per-class", "2", "--size", "32", "--frames", "8"])
    assert result.exit_code == 0, result.output
    cfg = load_config(tiny, ["model.stage=2", f"model.init_from={stage1.best_checkpoint}", f"data.dataset={other}"])
    with pytest.raises(CheckpointError, match="num_classes 4"):
        train(cfg, work_dir=tmp_path / "w", progress=False)
    assert not (tmp_path / "w" / "last.pt").exists()


class Killed(Exception):
    """Stands for a SIGKILL between two steps: nothing after it runs."""


def test_resume_after_a_kill_is_bit_identical(tiny, tmp_path):
    straight = train(load_config(tiny), work_dir=tmp_path / "straight", progress=False)

    def kill_after_step_7(step: int) -> None:  # epoch 2, step 3 of 4; last.pt was last written at step 6
        if step == 7:
            raise Killed

    # a record every step: the stopped run's record of step 7, past last.pt, must go on resuming
    interrupted = load_config(tiny, ["ckpt.every_steps=3", "data.num_workers=1", "train.log_every=1"])
    with pytest.raises(Killed):
        train(interrupted, work_dir=tmp_path / "resumed", progress=False, on_step_end=[kill_after_step_7])
    saved = torch.load(tmp_path / "resumed" / "last.pt", map_location="cpu", weights_only=True)
    assert (saved["train_state"]["epoch"], saved["train_state"]["step_in_epoch"]) == (1, 2)
    resumed = train(interrupted, work_dir=tmp_path / "resumed", resume="auto", progress=False)
    a, b = weights(straight.last_checkpoint), weights(resumed.last_checkpoint)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert pd.read_csv(tmp_path / "straight" / "metrics.csv")["train_loss"].tolist() == \
        pd.read_csv(tmp_path / "resumed" / "metrics.csv")["train_loss"].tolist()
    records = read_step_log(tmp_path / "resumed" / "steps.jsonl")
    assert [r["global_step"] for r in records] == list(range(1, 9))  # each step once
    last = {r["global_step"]: r for r in read_step_log(tmp_path / "straight" / "steps.jsonl")}[8]
    assert (records[-1]["loss_epoch"], records[-1]["top1_epoch"]) == (last["loss_epoch"], last["top1_epoch"])


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    cfg = load_config(tiny, ["optim.name=sgd", "optim.lr=1e30", "optim.clip_grad_norm=0", "ckpt.every_steps=1",
                             "model.dropout=0.0"])
    with pytest.raises(TrainingDiverged) as err:
        train(cfg, work_dir=tmp_path, progress=False)
    assert "step" in str(err.value)
    if (tmp_path / "last.pt").exists():  # whatever was saved is finite
        assert all(torch.isfinite(v).all() for v in weights(tmp_path / "last.pt").values() if v.is_floating_point())


def test_eval_in_1x1_and_2x3_views(stage1, tiny, tmp_path):
    data = str(Path(load_config(tiny).data.dataset))
    ckpt = str(stage1.best_checkpoint)
    one = runner.invoke(app, ["eval", ckpt, "--data", data, "--out", str(tmp_path / "1x1"), "--json", "--workers", "0"])
    assert one.exit_code == 0, one.output
    r1 = json.loads(one.output)
    assert {"top1", "top5", "mean_class_acc", "num_clips", "views", "gflops"} <= set(r1)
    assert r1["num_clips"] == 8 and r1["views"] == "1x1"
    # Trained by TSM's _sample_indices (data.protocol auto, a ResNet: TSM's family), recorded, scored so.
    assert read_checkpoint_file(ckpt)["config"]["data"]["protocol"] == "tsm" and r1["protocol"] == "tsm"
    preds = pd.read_csv(tmp_path / "1x1" / "predictions.csv")
    assert r1["top1"] == pytest.approx(100 * (preds["top1"] == preds["label"]).mean())  # recomputed from the file
    hits5 = preds.apply(lambda r: r["label"] in [r[f"top{k}"] for k in range(1, 5)], axis=1)  # 4 classes: top-4
    assert r1["top5"] == pytest.approx(100 * hits5.mean())
    for name in ("per_class.csv", "per_class.png", "confusion.png", "metrics.json"):
        assert (tmp_path / "1x1" / name).is_file()
    six = runner.invoke(app, ["eval", ckpt, "--data", data, "--views", "2x3", "--out", str(tmp_path / "2x3"),
                              "--json", "--workers", "0", "--compare", ckpt])
    assert six.exit_code == 0, six.output
    r6 = json.loads(six.output)
    assert r6["num_views"] == 6 and r6["crop"] == 36  # three full-resolution crops (crop = resize)
    assert r6["gflops"] == pytest.approx(6 * r6["gflops_per_view"])
    assert r6["gflops_per_view"] > r1["gflops_per_view"]  # 36² views cost more than 32² ones
    assert r6["compare"]["top1"] == r6["top1"]
    fused = runner.invoke(app, ["eval", ckpt, "--data", data, "--out", str(tmp_path / "fused"), "--json",
                                "--workers", "0", "--fuse"])
    assert fused.exit_code == 0, fused.output
    assert pd.read_csv(tmp_path / "fused" / "predictions.csv")["top1"].tolist() == preds["top1"].tolist()
    assert json.loads(fused.output)["top1"] == r1["top1"]  # folding BatchNorm changes no prediction
    assert json.loads(fused.output)["gflops"] == r1["gflops"]  # counted by the convention either way


def test_eval_mismatch_and_bad_views_are_one_line(stage1, tmp_path):
    other = tmp_path / "other"
    runner.invoke(app, ["prepare", "synthetic", "--out", str(other), "--classes", "3", "--train-per-class", "1",
                        "--val-per-class", "1", "--test-per-class", "2", "--size", "32", "--frames", "8"])
    ckpt = str(stage1.best_checkpoint)
    assert_one_line_error(runner.invoke(app, ["eval", ckpt, "--data", str(other)]), "4 classes", "has 3")
    assert_one_line_error(runner.invoke(app, ["eval", ckpt, "--data", str(other), "--views", "2x2"]), "--views")
    state = tmp_path / "plain.pt"
    torch.save(weights(stage1.best_checkpoint), state)
    assert_one_line_error(runner.invoke(app, ["eval", str(state), "--data", str(other)]), "plain.pt", "--num-segments")


def _five_classes(path: Path) -> Path:
    from aknet_cli import create_backbone
    from aknet_cli.checkpoints.format import save_checkpoint

    net = create_backbone("resnet18", num_classes=5, num_segments=4)
    save_checkpoint(path, kind="backbone", config={"backbone": "resnet18", "num_classes": 5, "num_segments": 4},
                    state_dict=net.state_dict())
    return path


def _flipped_copy(source: Path, path: Path) -> Path:
    raw = bytearray(source.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(b ^ 0xFF for b in raw[middle:middle + 64])
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda s1, t: t / "missing.pt", "checkpoint not found"),
    (lambda s1, t: _five_classes(t / "five.pt"), "predicts 5 classes"),
    (lambda s1, t: _flipped_copy(s1, t / "flipped.pt"), "corrupt"),
], ids=["missing", "another class count", "flipped bytes"])
def test_a_compare_checkpoint_that_cannot_serve_is_refused_before_any_model_is_scored(stage1, tiny, tmp_path,
                                                                                     monkeypatch, make, fragment):
    from aknet_cli.engine import evaluate as evaluate_module

    scored = []

    def score(*args, **kwargs):
        scored.append(args)
        raise AssertionError("a model was scored")

    monkeypatch.setattr(evaluate_module, "collect_scores", score)
    data = str(Path(load_config(tiny).data.dataset))
    compare = make(stage1.best_checkpoint, tmp_path)
    result = runner.invoke(app, ["eval", str(stage1.best_checkpoint), "--data", data, "--out", str(tmp_path / "ev"),
                                 "--workers", "0", "--compare", str(compare)])
    assert_one_line_error(result, compare.name, fragment)
    assert scored == []


def test_the_test_split_never_enters_training_or_selection(tiny, tmp_path, monkeypatch):
    from aknet_cli.data import dataset as dataset_module

    opened = []
    real_init = dataset_module.VideoDataset.__init__

    def spy(self, dataset_dir, split, **kwargs):
        opened.append(split)
        real_init(self, dataset_dir, split, **kwargs)

    monkeypatch.setattr(dataset_module.VideoDataset, "__init__", spy)
    result = train(load_config(tiny), work_dir=tmp_path, progress=False)
    assert sorted(set(opened)) == ["train", "val"]  # best.pt is chosen on val; test is never read
    assert result.best_top1 == pytest.approx(pd.read_csv(tmp_path / "metrics.csv")["val_top1"].max())

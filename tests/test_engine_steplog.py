"""The per-interval record of a training run (engine/steplog.py): steps.jsonl, pruned on a
resume, plotted by curves.png; and the time-based line of a run whose output is a log file."""

from __future__ import annotations

import json
import re

import pytest

from aknet_cli.engine.config import load_config
from aknet_cli.engine.reports import write_curves
from aknet_cli.engine.steplog import prune_step_log, read_step_log
from aknet_cli.engine.trainer import train
from train_fixtures import make_synth, write_config


def _records(steps: range) -> str:
    return "".join(json.dumps({"epoch": 1 + (s - 1) // 4, "step": 1 + (s - 1) % 4, "steps": 4, "global_step": s,
                               "loss": 2.0 - s / 10}) + "\n" for s in steps)


def test_prune_drops_what_a_stopped_run_recorded_past_its_resume_point(tmp_path):
    log = tmp_path / "steps.jsonl"
    log.write_text(_records(range(1, 6)) + '{"epoch": 2, "st')  # killed while writing a line
    assert [r["global_step"] for r in read_step_log(log)] == [1, 2, 3, 4, 5]
    prune_step_log(log, after=3)
    assert [r["global_step"] for r in read_step_log(log)] == [1, 2, 3]
    before = log.stat()
    prune_step_log(log, after=3)  # nothing to drop: the file is left as it is
    assert (log.stat().st_ino, log.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    prune_step_log(tmp_path / "missing.jsonl", after=0)
    assert not (tmp_path / "missing.jsonl").exists() and read_step_log(tmp_path / "missing.jsonl") == []


def test_curves_plot_the_loss_of_every_interval(tmp_path):
    history = [{"epoch": e, "train_loss": 1.5 / e, "train_top1": 30.0 * e, "val_top1": float("nan"),
                "val_top5": float("nan")} for e in (1, 2)]
    write_curves(history, tmp_path / "curves.png", intervals=read_step_log(tmp_path / "none.jsonl"))
    (tmp_path / "steps.jsonl").write_text(_records(range(1, 9)))
    write_curves(history, tmp_path / "with.png", intervals=read_step_log(tmp_path / "steps.jsonl"))
    assert (tmp_path / "with.png").stat().st_size > 0 and (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.parametrize("seconds,lines", [("0", [1, 2, 3, 4]), ("3600", [4])])
def test_a_log_file_gets_a_line_at_least_every_n_seconds(tmp_path, capsys, monkeypatch, seconds, lines):
    """log_every far beyond the epoch: the lines come by time (rank 0 reads its own sums then),
    and the epoch's last step always has one; each line is also a steps.jsonl record."""
    monkeypatch.setenv("AKNET_LOG_SECONDS", seconds)
    dataset = make_synth(tmp_path, classes=4, train=4, val=1, test=1)
    cfg = load_config(write_config(tmp_path / "tiny.toml", dataset), ["optim.epochs=1", "optim.milestones=[]",
                                                                      "train.log_every=100"])
    train(cfg, work_dir=tmp_path / "work", progress=True)
    err = capsys.readouterr().err
    assert [int(s) for s in re.findall(r"epoch 1/1 \| step (\d)/4 \| loss", err)] == lines
    assert [r["step"] for r in read_step_log(tmp_path / "work" / "steps.jsonl")] == lines

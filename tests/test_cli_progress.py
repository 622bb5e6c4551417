"""A long run followed from a log file (issue 35): `aknet train`, `eval` and `prepare` with their
output in a pipe print plain progress lines as they go, with no escape codes; training also
records every log interval in steps.jsonl and TensorBoard, on the global-step axis."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from train_fixtures import make_synth, write_config

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  "
STEP_LINE = re.compile(STAMP + r"epoch 1/2 \| step (\d)/4 \| loss \d+\.\d{4} \| top-1 \d+\.\d% \| lr \S+ \| "
                       r"\S+ clips/s \| data wait \d+% \| elapsed \d:\d\d:\d\d \| eta \d:\d\d:\d\d \| "
                       r"run eta \d:\d\d:\d\d$")
EPOCH_LINE = re.compile(r"^epoch 1/2 \| lr ")


def _env(**extra: str) -> dict[str, str]:
    """The environment of a run whose output goes to a file: no variable that would make Rich
    draw for a terminal anyway, no progress setting but the ones given."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "AKNET_PROGRESS", "AKNET_LOG_SECONDS", "COLUMNS")}
    return {**env, **extra}


def _follow(args: list[str], cwd: Path, **env: str) -> tuple[list[str], int | None, int]:
    """Run ``aknet ARGS`` with stdout and stderr into one pipe, reading it as ``tail -f`` would.

    Returns:
        ``(lines, first, rc)``: every line, the index of the first line that arrived while the
        process was still running (``None``: everything came at the end), the exit status.
    """
    proc = subprocess.Popen([sys.executable, "-m", "aknet_cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env(**env))
    lines, first = [], None
    for line in proc.stdout:
        if first is None and proc.poll() is None:
            first = len(lines)
        lines.append(line.rstrip("\n"))
    return lines, first, proc.wait()


@pytest.fixture(scope="module")
def followed_run(tmp_path_factory):
    """A 2-epoch run of 4 steps an epoch, log_every=1, its output in a pipe."""
    root = tmp_path_factory.mktemp("followed")
    dataset = make_synth(root, classes=4, train=4, val=1, test=1)
    config = write_config(root / "tiny.toml", dataset)
    work = root / "work"
    lines, first, rc = _follow(["train", str(config), "--work-dir", str(work), "--set", "train.log_every=1",
                                "--set", "optim.epochs=2"], root)
    assert rc == 0, "\n".join(lines[-20:])
    return {"root": root, "dataset": dataset, "work": work, "lines": lines, "first": first}


def test_train_into_a_pipe_prints_step_lines_before_the_epoch_ends(followed_run):
    lines = followed_run["lines"]
    text = "\n".join(lines)
    assert "\x1b[" not in text and "\r" not in text
    epoch_end = next(i for i, line in enumerate(lines) if EPOCH_LINE.match(line))
    steps = [int(m.group(1)) for line in lines[:epoch_end] if (m := STEP_LINE.match(line))]
    assert steps == [1, 2, 3, 4], text
    # read as it was written, not flushed at the exit
    assert followed_run["first"] is not None and followed_run["first"] <= epoch_end


def test_steps_jsonl_holds_every_log_interval(followed_run):
    records = [json.loads(line) for line in (followed_run["work"] / "steps.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in records] == list(range(1, 9))
    assert [(r["epoch"], r["step"]) for r in records[3:5]] == [(1, 4), (2, 1)]
    for key in ("loss", "loss_epoch", "top1_epoch", "lr", "clips_per_s", "data_wait", "eta_epoch_s", "eta_run_s"):
        assert all(isinstance(r[key], float) for r in records), key
    # the lr a step used: epoch 2 (after milestone 1) runs at a tenth of epoch 1's
    assert records[3]["lr"] == pytest.approx(0.001) and records[4]["lr"] == pytest.approx(0.0001)
    assert records[-1]["eta_run_s"] == 0.0


def test_tensorboard_holds_per_step_scalars(followed_run):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra: pip install aknet[tensorboard]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = EventAccumulator(str(followed_run["work"] / "tensorboard" / "steps"))
    steps.Reload()
    tags = set(steps.Tags()["scalars"])
    assert {"step/loss", "step/top1_epoch", "step/lr", "step/clips_per_s", "step/data_wait"} <= tags
    assert [e.step for e in steps.Scalars("step/loss")] == list(range(1, 9))
    epochs = EventAccumulator(str(followed_run["work"] / "tensorboard"))  # today's per-epoch rows beside them
    epochs.Reload()
    assert [e.step for e in epochs.Scalars("train_loss")] == [1, 2]


def test_eval_into_a_pipe_prints_batch_lines_before_its_results(followed_run):
    lines, first, rc = _follow(["--log-seconds", "0", "eval", str(followed_run["work"] / "best.pt"), "--data",
                                str(followed_run["dataset"]), "--batch-size", "1", "--workers", "0",
                                "--out", str(followed_run["root"] / "eval")], followed_run["root"])
    assert rc == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "\x1b[" not in text
    batches = [m.group(1) for line in lines if (m := re.match(STAMP + r"best\.pt \(1x1, tsm\) \| batch (\d/4) \| \S+ "
                                                               r"clips/s \| elapsed", line))]
    assert batches == ["1/4", "2/4", "3/4", "4/4"], text
    assert first is not None and first < len(batches)
    assert text.index("batch 4/4") < text.index("top-1")  # before the results table


def test_prepare_into_a_pipe_prints_clip_lines_before_its_summary(tmp_path):
    env = {"AKNET_LOG_SECONDS": "0"}  # the environment's form of --log-seconds
    lines, first, rc = _follow(["prepare", "synthetic", "--out", str(tmp_path / "s"), "--classes", "2",
                                "--train-per-class", "2", "--val-per-class", "1", "--test-per-class", "1",
                                "--size", "32", "--frames", "8", "--workers", "1"], tmp_path, **env)
    assert rc == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "\x1b[" not in text
    counted = [m.group(1) for line in lines if (m := re.match(STAMP + r"frames sthv1 \| clip (\d/8) \| [\d,.]+ "
                                                              r"clips/s \|", line))]
    assert counted[-1] == "8/8" and len(counted) >= 2, text
    assert first is not None and text.index("frames sthv1 | clip 8/8") < text.index("Prepared")


def test_a_bad_progress_setting_is_one_line_before_any_work(tmp_path):
    lines, _, rc = _follow(["--progress", "loud", "prepare", "synthetic", "--out", str(tmp_path / "s")], tmp_path)
    assert rc == 1 and len(lines) == 1 and "--progress / AKNET_PROGRESS is 'loud'" in lines[0]
    assert not (tmp_path / "s").exists()

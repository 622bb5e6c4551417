"""Several ranks on one decision (gloo, CPU): a plain torchrun launch into a used work dir,
``aknet eval`` on a split with fewer clips than ranks, files that one rank does not see (a stale
NFS view, a disk not shared between nodes), and the BatchNorm statistics DDP leaves each rank.

The run: resnet18, 4 classes × 2 training clips of 32², global batch 4 (2 a rank): 2 steps an
epoch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rank_runner import HANG, run_ranks
from train_fixtures import make_synth, write_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict[str, Path]:
    """A finished 1-epoch run (``run``) of the tiny config (``config``), and a 1-clip split ``one``."""
    from aknet_cli.engine.config import load_config
    from aknet_cli.engine.trainer import train

    root = tmp_path_factory.mktemp("ranks")
    data = make_synth(root, classes=4, train=2, val=1, test=1)
    config = write_config(root / "run.toml", data, optim="sgd", lr=0.05, dropout=0.0)
    val = (data / "val.csv").read_text().splitlines()
    (data / "one.csv").write_text("\n".join(val[:2]) + "\n")
    train(load_config(config, ["optim.epochs=1", "model.norm_eval=true"]), work_dir=root / "run", progress=False)
    return {"config": config, "data": data, "run": root / "run"}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m",
           "aknet_cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)


# --------------------------------------------------------------------------- item 1
def test_a_plain_torchrun_launch_into_a_used_work_dir_is_one_line_and_changes_nothing(finished, tmp_path):
    work = tmp_path / "used"
    shutil.copytree(finished["run"], work)
    before = _files(work)
    result = _torchrun(2, "train", str(finished["config"]), "--work-dir", str(work), "--quiet",
                       "--set", "optim.epochs=1")
    text = result.stdout + result.stderr
    assert result.returncode != 0
    ours = [line for line in text.splitlines() if "already holds a run" in line]
    assert len(ours) == 1 and ours[0].startswith("error: --work-dir"), text[-3000:]  # rank 0 alone says it
    assert not [line for line in text.splitlines() if line.startswith("[rank")], text[-3000:]  # no worker traceback
    assert _files(work) == before


# --------------------------------------------------------------------------- item 2
def test_eval_under_torchrun_scores_a_split_with_fewer_clips_than_ranks(finished, tmp_path):
    result = _torchrun(2, "eval", str(finished["run"] / "best.pt"), "--data", str(finished["data"]), "--split", "one",
                       "--workers", "0", "--out", str(tmp_path / "eval"), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)  # rank 0's report only, once
    assert report["num_clips"] == 1 and report["top1"] in (0.0, 100.0)
    assert (tmp_path / "eval" / "predictions.csv").read_text().count("\n") == 2


# --------------------------------------------------------------------------- item 3
def _blind(hidden: set[Path]) -> None:
    """This rank's filesystem view lacks ``hidden`` (a stale NFS cache, a node's own disk)."""
    real_is_file, real_exists = Path.is_file, Path.exists
    Path.is_file = lambda self: self.absolute() not in hidden and real_is_file(self)
    Path.exists = lambda self, **kw: self.absolute() not in hidden and real_exists(self, **kw)


def _train_on_rank(rank: int, config: Path, work: Path, resume: str, sets: list[str], hidden_on_1: set[Path]):
    from aknet_cli.engine.config import load_config
    from aknet_cli.engine.trainer import train

    if rank == 1:
        _blind(hidden_on_1)
    result = train(load_config(config, sets), work_dir=work, resume=resume, progress=False)
    return result.best_top1


def test_a_resume_one_rank_cannot_see_stops_every_rank_with_one_message(finished, tmp_path):
    work = tmp_path / "resumed"
    shutil.copytree(finished["run"], work)
    before = _files(work)
    outcomes = run_ranks(_train_on_rank, 2, finished["config"], work, "auto", ["optim.epochs=2"],
                         {work / "last.pt"}, timeout=90)
    assert HANG not in outcomes.values(), outcomes
    kinds = {outcome[0] for outcome in outcomes.values()}
    messages = {outcome[1] for outcome in outcomes.values()}
    assert kinds == {"CheckpointError"} and len(messages) == 1, outcomes  # the same line on both ranks
    assert "is not visible to every process" in messages.pop()
    assert {k: v for k, v in _files(work).items() if k != ".aknet-train.lock"} == \
        {k: v for k, v in before.items() if k != ".aknet-train.lock"}


def test_the_best_so_far_is_carried_by_rank_0s_view_for_every_rank(finished, tmp_path):
    # lr 1e-12 and BatchNorm on running statistics: epoch 2 scores as epoch 1 did, so best.pt
    # stays the one carried over; a rank that did not see it would save a best.pt of its own
    # (a collective the other rank never enters).
    work = tmp_path / "elsewhere"
    sets = ["optim.epochs=2", "optim.lr=1e-12", "model.norm_eval=true"]
    outcomes = run_ranks(_train_on_rank, 2, finished["config"], work, str(finished["run"] / "last.pt"), sets,
                         {finished["run"] / "best.pt"}, timeout=120)
    assert [o[0] for o in outcomes.values()] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1]
    assert (work / "best.pt").read_bytes() == (finished["run"] / "best.pt").read_bytes()

"""Resuming and work dirs: what a resumed config may change (and what it then does), what it
may not, incomplete checkpoints, torchrun restarts, the work-dir lock and a killed writer's
debris."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from aknet_cli.checkpoints.format import save_checkpoint
from aknet_cli.engine.config import load_config
from aknet_cli.engine.resume import refuse_overwrite, resume_source
from aknet_cli.engine.trainer import train
from aknet_cli.engine.workdir import LOCK_NAME, WorkDirInUse
from aknet_cli.exceptions import CheckpointError, ConfigError, UnknownBackboneError
from train_fixtures import Killed, kill_at, make_synth, write_config


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """resnet18, 4 classes × 4 clips at 32², batch 4: 4 steps an epoch, 2 epochs, ×0.1 after epoch 1."""
    root = tmp_path_factory.mktemp("resume")
    return write_config(root / "run.toml", make_synth(root))


@pytest.fixture
def killed(config, tmp_path) -> Path:
    """A work dir whose run was killed after step 5 (epoch 2, step 1; last.pt written at step 4)."""
    work = tmp_path / "killed"
    with pytest.raises(Killed):
        train(load_config(config, ["ckpt.every_steps=2"]), work_dir=work, progress=False, on_step_end=[kill_at(5)])
    return work


def test_a_resume_with_a_new_lr_runs_at_it_and_records_it(config, killed, capsys):
    train(load_config(config, ["ckpt.every_steps=2", "optim.lr=0.01"]), work_dir=killed, resume="auto")
    metrics = pd.read_csv(killed / "metrics.csv")
    # Epoch 2 runs after the milestone: the new lr × 0.1, not the recorded lr × 0.1 (1e-4).
    assert metrics["lr"].tolist() == pytest.approx([1e-3, 1e-3])
    assert "optim.lr 0.001 → 0.01" in capsys.readouterr().out
    assert load_config(killed / "config.toml", check_paths=False).optim.lr == 0.01  # what ran is what is recorded


@pytest.mark.parametrize("override,key", [
    ("optim.batch_size=8", "optim.batch_size"), ("optim.name=sgd", "optim.name"), ("train.seed=1", "train.seed"),
    ("model.dropout=0.2", "model.dropout"), ("data.crop=28", "data.crop"),
])
def test_a_resume_that_would_train_something_else_is_refused_naming_both_values(config, killed, override, key):
    before = (killed / "last.pt").stat().st_mtime_ns, (killed / "metrics.csv").read_text()
    with pytest.raises(ConfigError, match=rf"{key} is .* in this config but .* in the run being resumed"):
        train(load_config(config, ["ckpt.every_steps=2", override]), work_dir=killed, resume="auto", progress=False)
    assert ((killed / "last.pt").stat().st_mtime_ns, (killed / "metrics.csv").read_text()) == before
    assert load_config(killed / "config.toml", check_paths=False).optim.batch_size == 4  # still the running one


def test_fewer_epochs_than_already_finished_is_refused(config, tmp_path):
    train(load_config(config), work_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="finished 2 epochs"):
        train(load_config(config, ["optim.epochs=1"]), work_dir=tmp_path, resume="auto", progress=False)


def test_a_checkpoint_without_rng_state_is_refused_in_one_line(config, killed):
    ckpt = torch.load(killed / "last.pt", map_location="cpu", weights_only=True)
    del ckpt["train_state"]["rng"]  # written again with its digest: what another tool might write
    save_checkpoint(killed / "edited.pt", kind=ckpt["kind"], config=ckpt["config"], state_dict=ckpt["state_dict"],
                    meta=ckpt["meta"], train_state=ckpt["train_state"])
    with pytest.raises(CheckpointError, match="lacks rng"):
        train(load_config(config, ["ckpt.every_steps=2"]), work_dir=killed, resume=str(killed / "edited.pt"),
              progress=False)


def _stamp_job(path: Path, job: str | None) -> None:
    """Write ``path`` again as if the torchrun job ``job`` had saved it."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    save_checkpoint(path, kind=ckpt["kind"], config=ckpt["config"], state_dict=ckpt["state_dict"],
                    meta={**ckpt["meta"], "torchrun_job": job}, train_state=ckpt["train_state"])


def test_a_torchrun_restart_continues_from_the_work_dirs_newer_last_pt(killed, tmp_path, monkeypatch):
    older = tmp_path / "started_from.pt"
    ckpt = torch.load(killed / "last.pt", map_location="cpu", weights_only=True)
    ckpt["train_state"]["epoch"], ckpt["train_state"]["step_in_epoch"] = 0, 2
    save_checkpoint(older, kind=ckpt["kind"], config=ckpt["config"], state_dict=ckpt["state_dict"], meta=ckpt["meta"],
                    train_state=ckpt["train_state"])
    assert resume_source(str(older), killed) == older
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    _stamp_job(killed / "last.pt", "job-a")  # saved by an earlier attempt of this job
    assert resume_source(str(older), killed) == killed / "last.pt"  # not back to where the job first started
    assert resume_source(None, killed) == killed / "last.pt"
    refuse_overwrite(None, killed)  # a restart of the job that saved last.pt is no fresh start


def test_only_a_restart_of_the_job_that_saved_last_pt_continues_it(killed, monkeypatch):
    """torchrun sets RANK on every launch; what tells a restart is its restart count, and a
    restart continues only what its own job saved (--max-restarts after a refused launch must
    not turn the refusal into a resume)."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")
    with pytest.raises(ConfigError, match="already holds a run"):
        refuse_overwrite(None, killed)  # the first attempt of job-b: a fresh start
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    with pytest.raises(ConfigError, match="already holds a run"):
        refuse_overwrite(None, killed)  # job-b restarted, last.pt is not job-b's
    assert resume_source(None, killed) is None
    refuse_overwrite("auto", killed)  # --resume says so


def _hold_lock(work: Path) -> subprocess.Popen:
    code = ("import sys, time; from aknet_cli.engine.workdir import WorkDirLock; "
            "lock = WorkDirLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(work)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_in_a_locked_work_dir_is_refused_naming_the_holder(config, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    holder = _hold_lock(work)
    try:
        with pytest.raises(WorkDirInUse, match=rf"in use by another training run \(pid {holder.pid} on "):
            train(load_config(config, ["optim.epochs=1"]), work_dir=work, progress=False)
        assert sorted(p.name for p in work.iterdir()) == [LOCK_NAME]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The lock died with its holder: the next run takes it.
    train(load_config(config, ["optim.epochs=1"]), work_dir=work, progress=False)
    assert (work / "best.pt").is_file()


def test_a_run_in_progress_is_named_in_use_even_once_it_has_a_last_pt(killed):
    """From its first checkpoint on, a running job's work dir holds ``last.pt``: a second launch
    must hear that the dir is in use (whatever --resume says), not that it holds a finished run."""
    holder = _hold_lock(killed)
    try:
        for resume in (None, "auto"):
            with pytest.raises(WorkDirInUse, match=rf"in use by another training run \(pid {holder.pid} on "):
                refuse_overwrite(resume, killed)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with pytest.raises(ConfigError, match="already holds a run"):  # the holder gone: a finished run again
        refuse_overwrite(None, killed)


def test_the_temporaries_of_a_killed_writer_are_removed_when_the_next_run_starts(config, killed, capsys):
    debris = [killed / ".last.pt.ab12cd34.tmp", killed / ".metrics.csv.x9y8z7w6.aknet-partial.csv"]
    for path in debris:
        path.write_bytes(b"\0" * 1024)
    (killed / ".keep").write_text("the user's")
    train(load_config(config, ["ckpt.every_steps=2"]), work_dir=killed, resume="auto")
    assert not any(p.exists() for p in debris)
    assert (killed / ".keep").exists()
    assert "removed 2 temporary file(s)" in capsys.readouterr().out


def test_the_lock_is_released_when_a_run_fails(config, tmp_path):
    with pytest.raises(Killed):
        train(load_config(config), work_dir=tmp_path, progress=False, on_step_end=[kill_at(1)])
    from aknet_cli.engine.workdir import WorkDirLock

    WorkDirLock(tmp_path).acquire().release()  # would raise WorkDirInUse if the failed run still held it


def test_a_run_stopped_between_the_epoch_end_writes_never_records_a_best_that_is_not_on_disk(config, tmp_path, monkeypatch):
    """Ctrl-C after the first of the two checkpoints an improving epoch writes: a last.pt that
    records a best top-1 must have that best.pt beside it, or the resumed run, never beating it,
    finishes without any best.pt."""
    import aknet_cli.engine.trainer as trainer

    real, written = trainer.save, []

    def save_then_stop(run, name, *args, **kwargs):
        real(run, name, *args, **kwargs)
        written.append(name)
        if len(written) == 1:
            raise KeyboardInterrupt  # the user's Ctrl-C, landing between the two writes

    monkeypatch.setattr(trainer, "save", save_then_stop)
    work = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        train(load_config(config), work_dir=work, progress=False)
    if (work / "last.pt").is_file():
        recorded = torch.load(work / "last.pt", map_location="cpu", weights_only=True)["train_state"]["best_top1"]
        assert recorded < 0 or (work / "best.pt").is_file(), written  # < 0: no best yet
    assert (work / "best.pt").is_file(), written  # the first epoch always improves on nothing


def test_an_unknown_backbone_is_refused_before_the_work_dir_exists(config, tmp_path):
    work = tmp_path / "never"
    with pytest.raises(UnknownBackboneError, match="unknown backbone 'nope_net'"):
        train(load_config(config, ["model.backbone=nope_net"]), work_dir=work, progress=False)
    assert not work.exists()


def test_a_run_resumed_into_another_work_dir_brings_its_best_checkpoint(config, tmp_path):
    """--resume A/last.pt --work-dir B: when no epoch run in B beats the recorded best (an lr
    that changes nothing), B must still hold the best.pt its last.pt and the CLI name."""
    first = tmp_path / "a"
    train(load_config(config, ["optim.epochs=1"]), work_dir=first, progress=False)
    second = tmp_path / "b"
    result = train(load_config(config, ["optim.epochs=2", "optim.lr=1e-12"]), work_dir=second,
                   resume=str(first / "last.pt"), progress=False)
    assert result.best_checkpoint.is_file()
    recorded = torch.load(second / "last.pt", map_location="cpu", weights_only=True)["train_state"]["best_top1"]
    assert recorded == result.best_top1 == max(pd.read_csv(second / "metrics.csv")["val_top1"])
    best = torch.load(second / "best.pt", map_location="cpu", weights_only=True)
    assert best["meta"]["best_top1"] == recorded


def test_aknet_train_into_a_work_dir_holding_a_run_without_resume_is_refused_and_changes_nothing(config, killed):
    from typer.testing import CliRunner

    from aknet_cli.cli.main import app
    from cli_helpers import assert_one_line_error

    before = {p.name: p.read_bytes() for p in killed.iterdir() if p.is_file()}
    result = CliRunner().invoke(app, ["train", str(config), "--work-dir", str(killed), "--quiet"])
    assert_one_line_error(result, f"--work-dir {killed} already holds a run", "--resume")
    assert {p.name: p.read_bytes() for p in killed.iterdir() if p.is_file()} == before


def test_a_finished_run_resumed_into_a_new_work_dir_leaves_a_complete_run_there(config, tmp_path):
    from aknet_cli.engine.trainer import run_finished

    train(load_config(config, ["optim.epochs=1"]), work_dir=tmp_path / "a", progress=False)
    train(load_config(config, ["optim.epochs=1"]), work_dir=tmp_path / "b", resume=str(tmp_path / "a" / "last.pt"),
          progress=False)
    carried, original = pd.read_csv(tmp_path / "b" / "metrics.csv"), pd.read_csv(tmp_path / "a" / "metrics.csv")
    pd.testing.assert_frame_equal(carried, original)
    assert run_finished(tmp_path / "b", 1) and (tmp_path / "b" / "best.pt").is_file()

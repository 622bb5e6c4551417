"""``aknet train``: configs with every kind of bad value, broken datasets and checkpoints,
resumes that would train something else, two runs in one work dir, an interrupt."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from .case import CLEAN, OK, USAGE, Case, Outcome
from .checks import all_of, checkpoint, csv_rows, expect_equal, files, stdout_has, toml_file
from .inputs import UNWRITABLE, Inputs
from .parametrize import each_case
from .runner import finish, spawn

pytestmark = pytest.mark.hostile

#: ``(key, bad value)`` for ``--set`` on the stage-1 config: every range of the schema, NaN,
#: infinities, words where numbers belong, choices that do not exist.
BAD_VALUES = [
    ("optim.lr", "nan"), ("optim.lr", "-1"), ("optim.lr", "abc"), ("model.dropout", "1.5"),
    ("optim.momentum", "-1"), ("optim.gamma", "-1"), ("optim.gamma", "2"), ("optim.weight_decay", "-1"),
    ("ckpt.every_steps", "-3"), ("optim.epochs", "0"), ("optim.batch_size", "0"),
    ("model.num_segments", "0"), ("data.crop", "0"), ("train.seed", "-1"), 
    ("optim.clip_grad_norm", "-1"), ("model.stage", "3"), ("optim.milestones", "5"), ("optim.name", "lbfgs"),
    ("data.backend", "bogus"), ("train.device", "tpu"), ("model.backbone", "nope_net"), ("data.crop", "1000"),
]
#: The same for the AK-Net switches of a stage-2 config.
BAD_AKNET = [
    ("model.aknet.alpha", "abc"), ("model.aknet.alpha", "nan"), ("model.aknet.split", "res5"),
    ("model.aknet.position", "bogus"), ("model.aknet.unknown_switch", "1"),
]
BROKEN_DATASETS = {
    "ds_empty_val": "val.csv", "ds_label_out_of_range": "train.csv", "ds_dup_id": "train.csv",
    "ds_bad_frames": "train.csv", "ds_no_manifest": "dataset.json", "ds_media_gone": "nowhere",
}


def _train(fx: Inputs, cfg: str = "cfg_good", *sets: str, work: str = "w", extra: tuple[str, ...] = ()) -> list[str]:
    argv = ["train", fx[cfg], "--work-dir", work, "--quiet", *extra]
    for s in sets:
        argv += ["--set", s]
    return argv


def _trained(epochs: int = 1, kind: str = "backbone", work: str = "w"):
    return all_of(
        csv_rows(f"{work}/metrics.csv", epochs),
        checkpoint(f"{work}/best.pt", lambda c: expect_equal("best.pt kind", c["kind"], kind)),
        checkpoint(f"{work}/last.pt", lambda c: None if c["train_state"] else "last.pt has no training state"),
    )


def config_cases(fx: Inputs) -> list[Case]:
    c = fx.path
    return [
        Case("train", "config missing", ["train", fx["missing"], "--work-dir", "w"], CLEAN, (fx["missing"],)),
        Case("train", "config is a folder", ["train", fx["cfg_dir"], "--work-dir", "w"], CLEAN, (fx["cfg_dir"],)),
        Case("train", "config with a TOML syntax error", _train(fx, "cfg_syntax"), CLEAN, (fx["cfg_syntax"],)),
        Case("train", "config of binary bytes", _train(fx, "cfg_binary"), CLEAN, (fx["cfg_binary"],)),
        Case("train", "config in Latin-1", _train(fx, "cfg_latin1"), CLEAN, (fx["cfg_latin1"],)),
        Case("train", "an empty config", _train(fx, "cfg_empty"), CLEAN, ("data.dataset",)),
        Case("train", "a misspelt key", _train(fx, "cfg_unknown_key"), CLEAN, ("bakbone",)),
        Case("train", "a word where a number belongs", _train(fx, "cfg_wrong_type"), CLEAN, ("epochs",)),
        Case("train", "config with a UTF-8 BOM", _train(fx, "cfg_bom"), OK, check=_trained()),
        Case("train", "config with CRLF line ends", _train(fx, "cfg_crlf"), OK, check=_trained()),
        Case("train", "data.dataset is a raw release", _train(fx, "cfg_raw_dataset"), CLEAN, (fx["v1_raw"],)),
        Case("train", "stage 2 without init_from", _train(fx, "cfg_stage2_no_init"), CLEAN, ("init_from",)),
        Case("train", "[model.aknet] in a stage-1 config", _train(fx, "cfg_aknet_on_stage1"), CLEAN, ("model.aknet",)),
        Case("train", "a shipped config without its data", ["train", "tsm_r50_sthv1_stage1", "--work-dir", "w"], CLEAN,
             ("data.dataset",)),
        Case("train", "no config at all", ["train", "--work-dir", "w"], USAGE, ("CONFIG",)),
        Case("train", "--print-config", ["train", fx["cfg_good"], "--print-config", "--set", "optim.lr=0.5"], OK,
             check=lambda o, d: None if "lr = 0.5" in o.stdout else "the override is not in the printed config"),
        Case("train", "--list-configs", ["train", "--list-configs"], OK, check=stdout_has("demo_tsn_stage1", "tsm_r50_sthv2_stage1")),
    ] + [Case("train", f"dataset: {name[3:].replace('_', ' ')}", _train(fx, "cfg_good", f"data.dataset={c(name)}"), CLEAN,
              (fragment,)) for name, fragment in BROKEN_DATASETS.items()]


def value_cases(fx: Inputs) -> list[Case]:
    cases = [Case("train", f"--set {key}={value}", _train(fx, "cfg_good", f"{key}={value}"), CLEAN, (key.split(".")[-1],),
                  check=lambda o, d: "the work dir was created" if (d / "w").exists() else None)
             for key, value in BAD_VALUES]
    cases += [Case("train", f"--set {key}={value} (stage 2)", _train(fx, "cfg_s2", f"{key}={value}"), CLEAN,
                   (key.split(".")[-1],)) for key, value in BAD_AKNET]
    cases += [
        Case("train", "--set without '='", _train(fx, "cfg_good", "optim.lr"), CLEAN, ("optim.lr",)),
        Case("train", "--set of an unknown table", _train(fx, "cfg_good", "trainer.fast=true"), CLEAN, ("trainer",)),
        Case("train", "model.sync_bn on the CPU", _train(fx, "cfg_good", "model.sync_bn=true"), CLEAN, ("sync_bn",)),
        Case("train", "pretrained weights offline", _train(fx, "cfg_good", "model.pretrained=IMAGENET1K_V1"), CLEAN,
             ("TORCH_HOME",)),
        Case("train", "pretrained file missing", _train(fx, "cfg_good", f"model.pretrained={fx['missing']}"), CLEAN,
             (fx["missing"],)),
        Case("train", "init_from missing", _train(fx, "cfg_s2", f"model.init_from={fx['missing']}"), CLEAN, (fx["missing"],)),
        Case("train", "init_from with flipped bytes", _train(fx, "cfg_s2", f"model.init_from={fx['ck_flipped']}"), CLEAN,
             (fx["ck_flipped"], "corrupt")),
        Case("train", "init_from a malicious pickle", _train(fx, "cfg_s2", f"model.init_from={fx['ck_malicious']}"), CLEAN,
             (fx["ck_malicious"],), check=lambda o, d: "the pickle ran" if fx.path("pwned").exists() else None),
        Case("train", "init_from an AK-Net checkpoint", _train(fx, "cfg_s2", f"model.init_from={fx['ak']}"), CLEAN, (fx["ak"],)),
        Case("train", "--seed -5", _train(fx, extra=("--seed", "-5")), CLEAN, ("seed",)),
        Case("train", "--device tpu", _train(fx, extra=("--device", "tpu")), CLEAN, ("tpu",)),
        Case("train", "--device cuda without a GPU", _train(fx, extra=("--device", "cuda")), CLEAN, ("cuda",)),
        Case("train", "--nproc 0", _train(fx, extra=("--nproc", "0")), CLEAN, ("--nproc",)),
        Case("train", "--nproc abc", _train(fx, extra=("--nproc", "abc")), USAGE, ("--nproc",)),
    ]
    return cases


def _in_the_way(d: Path) -> None:
    (d / "taken").write_text("the user's file\n")


def output_cases(fx: Inputs) -> list[Case]:
    return [
        Case("train", "--work-dir is a file", _train(fx, work="taken"), CLEAN, ("taken",), setup=_in_the_way),
        Case("train", "--work-dir under a file", _train(fx, work="taken/w"), CLEAN, ("taken",), setup=_in_the_way),
        Case("train", "--work-dir unwritable", _train(fx, work=UNWRITABLE), CLEAN, (UNWRITABLE,)),
    ]


def _stale_temporary(d: Path) -> None:
    (d / "w").mkdir()
    (d / "w" / ".last.pt.k3j4h5g6.aknet-partial.tmp").write_bytes(b"\0" * 100_000)
    (d / "w" / ".last.pt.a1b2c3d4.tmp").write_bytes(b"\0" * 100_000)


HOLDER_EPOCHS = 40


def _two_at_once(case: Case, case_dir: Path, env: dict, aknet: str) -> Outcome:
    """Start a long run, wait until it holds the work dir, then start the case's run there.

    Long: the second process takes seconds to import torch before it asks for the lock, and 3
    one-step epochs were over by then on a quiet machine (it then trained in the finished work dir).
    """
    first = spawn([aknet, *case.argv[:-2], "--set", f"optim.epochs={HOLDER_EPOCHS}"], case_dir, env)
    started = time.monotonic()
    lock = case_dir / "w" / ".aknet-train.lock"
    while time.monotonic() - started < 90 and not (lock.is_file() and "pid" in lock.read_text()):
        time.sleep(0.05)
    second = finish(spawn([aknet, *case.argv], case_dir, env), case.timeout, time.monotonic())
    first_done = finish(first, case.timeout, started)
    (case_dir / "first.json").write_text(json.dumps({"rc": first_done.rc, "lines": first_done.lines[-5:]}))
    return second


def _first_run_finished(outcome: Outcome, case_dir: Path):
    first = json.loads((case_dir / "first.json").read_text())
    if first["rc"] != 0:
        return f"the run holding the work dir ended with exit {first['rc']}: {first['lines']}"
    return _trained(HOLDER_EPOCHS)(outcome, case_dir)


def _interrupted_then_resumed(case: Case, case_dir: Path, env: dict, aknet: str) -> Outcome:
    """Ctrl-C a run once it has written a checkpoint, then run the case (a resume). The first run
    is set to 30 epochs, so the signal lands mid-run however fast the machine (the case's own 3
    tiny epochs can end before it arrives); the resume then asks for the case's epochs."""
    longer = [a if not a.startswith("optim.epochs=") else "optim.epochs=30" for a in case.argv if a != "--resume"]
    first = spawn([aknet, *longer], case_dir, env)
    started = time.monotonic()
    while time.monotonic() - started < 120 and not (case_dir / "w" / "last.pt").is_file():
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # the process this case started
    interrupted = finish(first, 60, started)
    (case_dir / "interrupted.json").write_text(json.dumps({"rc": interrupted.rc, "lines": interrupted.lines}))
    return finish(spawn([aknet, *case.argv], case_dir, env), case.timeout, time.monotonic())


def _interrupt_was_clean(outcome: Outcome, case_dir: Path):
    first = json.loads((case_dir / "interrupted.json").read_text())
    if first["rc"] in (0, None) or any("Traceback" in line for line in first["lines"]) or len(first["lines"]) > 1:
        return f"the interrupted run: exit {first['rc']}, {first['lines'][-3:]}"
    return None


def run_cases(fx: Inputs) -> list[Case]:
    last = fx["s1_last"]

    def copy_run(d: Path) -> None:
        shutil.copytree(fx.path("s1"), d / "w")

    def recorded(key: str, value):
        section, name = key.split(".")
        return toml_file("w/config.toml", lambda t: expect_equal(f"config.toml {key}", t[section][name], value))

    return [
        Case("train", "one step of stage 1", _train(fx), OK, check=all_of(_trained(), files("w/curves.png", "w/config.toml"))),
        Case("train", "one step of stage 2", _train(fx, "cfg_s2"), OK, check=_trained(kind="aknet")),
        Case("train", "on a WebM dataset", _train(fx, "cfg_good", f"data.dataset={fx['v2']}"), OK, check=_trained()),
        Case("train", "a corrupt JPEG in the training clips", _train(fx, "cfg_good", f"data.dataset={fx['ds_corrupt_jpeg']}"),
             CLEAN, ("00001.jpg",)),
        Case("train", "a corrupt JPEG, data.on_error=skip",
             _train(fx, "cfg_good", f"data.dataset={fx['ds_corrupt_jpeg']}", "data.on_error=skip"), OK, check=_trained()),
        Case("train", "checkpoint every step", _train(fx, "cfg_good", "ckpt.every_steps=1"), OK, check=_trained()),
        Case("train", "a killed run's temporaries are removed", _train(fx), OK, setup=_stale_temporary,
             check=all_of(_trained(), lambda o, d: "stale temporaries left" if list((d / "w").glob(".last.pt.*")) else None)),
        Case("train", "two runs in one work dir", _train(fx, "cfg_good", "optim.epochs=1"), CLEAN, ("in use", "pid"),
             run=_two_at_once, check=_first_run_finished, timeout=300),
        Case("train", "Ctrl-C, then --resume", _train(fx, "cfg_good", "optim.epochs=3", "ckpt.every_steps=1",
                                                      extra=("--resume",)), OK,
             run=_interrupted_then_resumed, check=all_of(_trained(3), _interrupt_was_clean), timeout=300),
        Case("train", "--nproc 2 (gloo)", _train(fx, extra=("--nproc", "2")), OK, check=_trained(), timeout=400),
        Case("train", "--resume with a new lr and more epochs", _train(fx, "cfg_good", "optim.lr=0.5", "optim.epochs=2",
                                                                       extra=("--resume", last)), OK,
             check=all_of(_trained(2), recorded("optim.lr", 0.5))),
        Case("train", "--resume of the work dir's last.pt", _train(fx, "cfg_good", "optim.epochs=2", extra=("--resume",)), OK,
             setup=copy_run, check=_trained(2)),
        Case("train", "--resume of a finished run", _train(fx, extra=("--resume", last)), OK, check=csv_rows("w/metrics.csv", 1)),
        Case("train", "--resume changing the batch size", _train(fx, "cfg_good", "optim.batch_size=2", extra=("--resume", last)),
             CLEAN, ("optim.batch_size", "2", "4")),
        Case("train", "--resume changing the optimizer", _train(fx, "cfg_good", "optim.name=adamw", extra=("--resume", last)),
             CLEAN, ("optim.name", "adamw", "sgd")),
        Case("train", "--resume changing the backbone", _train(fx, "cfg_good", "model.backbone=resnet18", extra=("--resume", last)),
             CLEAN, ("model.backbone",)),
        Case("train", "--resume a stage-1 run as stage 2", _train(fx, "cfg_s2", extra=("--resume", last)), CLEAN, ("model.",)),
        Case("train", "--resume a state without RNG", _train(fx, extra=("--resume", fx["ck_no_rng"])), CLEAN, ("rng",)),
        Case("train", "--resume a best.pt", _train(fx, extra=("--resume", fx["s1_best"])), CLEAN, (fx["s1_best"],)),
        Case("train", "--resume, nothing to resume", _train(fx, extra=("--resume",)), CLEAN, ("last.pt",)),
        Case("train", "--resume with flipped bytes", _train(fx, extra=("--resume", fx["ck_flipped"])), CLEAN, ("corrupt",)),
        Case("train", "--resume a malicious pickle", _train(fx, extra=("--resume", fx["ck_malicious"])), CLEAN,
             (fx["ck_malicious"],), check=lambda o, d: "the pickle ran" if fx.path("pwned").exists() else None),
    ]


def train_cases(fx: Inputs) -> list[Case]:
    return config_cases(fx) + value_cases(fx) + output_cases(fx) + run_cases(fx)


# ---------------------------------------------------------------------------- the tests
@pytest.mark.usefixtures("misc", "datasets", "prepared_variants", "checkpoints", "configs")
@each_case(train_cases)
def test_train(case: Case, run_case) -> None:
    run_case(case)

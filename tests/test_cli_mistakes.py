"""User mistakes by class, each caught by one mechanism before any work starts:

* an output that cannot be written (under a file, a folder where a file is expected, a place
  nobody may write): one line naming the option and the path, for every command that writes;
* a config value out of its range, NaN or infinite: one line naming the key, for every ranged
  key of the schema (TOML, ``--set`` and the Python API share the check);
* a usage error (a value of the wrong type, an unknown command, a stray argument): one line
  with exit status 2 (Click's convention for usage errors).
"""

from __future__ import annotations

import dataclasses
import errno
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aknet_cli._atomic import atomic_output
from aknet_cli.cli.main import app
from aknet_cli.engine import config as C
from aknet_cli.exceptions import ConfigError, OutputError
from aknet_cli.models.aknet import AKNetConfig
from cli_helpers import assert_one_line_error, write_stage1_checkpoint

runner = CliRunner()
#: Exists for root too, and nobody can create files in it.
UNWRITABLE = Path("/proc/aknet-test-output")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mistakes")
    a_file = root / "a_file.txt"
    a_file.write_text("not a folder")
    a_dir = root / "a_dir"
    a_dir.mkdir()
    ckpt = root / "stage1.pt"
    write_stage1_checkpoint(ckpt)
    config = root / "run.toml"
    config.write_text(f'[data]\ndataset = "{root}"\n')
    (root / "dataset.json").write_text("{}")
    return {"file": a_file, "dir": a_dir, "ckpt": ckpt, "config": config, "root": root}


def _commands(f):
    """(name, argv with OUT where the output goes, whether OUT is a file or a folder)."""
    return [
        ("prepare synthetic", ["prepare", "synthetic", "--out", "OUT", "--classes", "2"], "dir"),
        ("prepare synthetic --raw", ["prepare", "synthetic", "--out", str(f["root"] / "new"), "--raw", "OUT"], "dir"),
        ("prepare sthv1", ["prepare", "sthv1", "--root", str(f["dir"]), "--out", "OUT"], "dir"),
        ("train --work-dir", ["train", str(f["config"]), "--work-dir", "OUT"], "dir"),
        ("convert-1d --out", ["convert-1d", "-c", str(f["ckpt"]), "--out", "OUT"], "file"),
        ("eval --out", ["eval", str(f["ckpt"]), "--data", str(f["root"]), "--out", "OUT"], "dir"),
        ("visualize --out", ["visualize", "--video", str(f["dir"]), "--out", "OUT"], "dir"),
        ("export --out", ["export", str(f["ckpt"]), "--format", "onnx", "--out", "OUT"], "file"),
        ("flops --plot", ["flops", "--plot", "OUT"], "file"),
        ("bench --plot", ["bench", "--backbone", "resnet18", "--split", "res4", "--size", "32", "--frames", "2",
                          "--runs", "1", "--warmup", "0", "--plot", "OUT"], "file"),
        ("ablate --work-dir", ["ablate", "--table", "vi", "--data", str(f["root"]), "--work-dir", "OUT"], "dir"),
    ]


def _bad_outputs(f, kind):
    under_a_file = f["file"] / ("x.png" if kind == "file" else "sub")
    cases = [("under a file", under_a_file, "is a file"), ("unwritable", UNWRITABLE / "x.png", "cannot write")]
    if kind == "file":
        cases.append(("an existing folder", f["dir"], "is a folder"))
    else:
        cases.append(("an existing file", f["file"], "is a file"))
    return cases


@pytest.mark.parametrize("index", range(11))
def test_every_output_that_cannot_be_written_is_one_line_before_any_work(files, index):
    name, argv, kind = _commands(files)[index]
    for label, bad, fragment in _bad_outputs(files, kind):
        args = [str(bad) if a == "OUT" else a for a in argv]
        result = runner.invoke(app, args)
        assert_one_line_error(result, str(bad), fragment)
        assert result.exit_code == 1, (name, label, result.output)
    assert sorted(p.name for p in files["root"].iterdir()) == ["a_dir", "a_file.txt", "dataset.json", "run.toml",
                                                               "stage1.pt"]  # nothing was written anywhere


def test_a_full_disk_during_an_atomic_write_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old")
    with pytest.raises(OutputError, match=r"cannot write .*metrics\.csv: No space left on device"):
        with atomic_output(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def _ranged_fields():
    """Every field of the config schema and of the AK-Net switches that declares a range."""
    for section, cls in C._SECTIONS.items():
        for f in dataclasses.fields(cls):
            if "range" in f.metadata:
                yield f"{section}.{f.name}", f.metadata["range"], cls.__annotations__[f.name]
    for f in dataclasses.fields(AKNetConfig):
        if "range" in f.metadata:
            yield f"model.aknet.{f.name}", f.metadata["range"], AKNetConfig.__annotations__[f.name]


def _outside(bounds) -> float:
    if bounds.get("ge") is not None:
        return bounds["ge"] - 1
    if bounds.get("gt") is not None:
        return bounds["gt"] - 1 if bounds["gt"] != 0 else -1
    return (bounds.get("le") if bounds.get("le") is not None else bounds["lt"]) + 1


RANGED = list(_ranged_fields())


def _load(key: str, value: str, tmp_path: Path):
    sets = [f"{key}={value}", f"data.dataset={tmp_path}"]
    if key.startswith("model.aknet."):
        sets += ["model.stage=2", "model.init_from=x.pt"]
    return C.load_config("demo_tdn_stage1", sets, check_paths=False)


@pytest.mark.parametrize("key,bounds,hint", RANGED, ids=[r[0] for r in RANGED])
def test_every_ranged_key_refuses_values_outside_its_range_nan_and_words(key, bounds, hint, tmp_path):
    value = _outside(bounds)
    value = str(int(value)) if hint in ("int", int) else repr(float(value))
    with pytest.raises(ConfigError, match=re.escape(key.split(".")[-1]) + r".*must be"):
        _load(key, value, tmp_path)
    for word in (("nan", "inf", '"abc"') if hint in ("float", float) else ('"abc"', "1.5")):
        with pytest.raises(ConfigError, match=re.escape(key.split(".")[-1])):
            _load(key, word, tmp_path)


@pytest.mark.parametrize("key,value,fragment", [
    ("optim.lr", "nan", "finite"), ("model.dropout", "1.5", "[0, 1)"), ("optim.momentum", "-1", "[0, 1)"),
    ("optim.gamma", "-1", "(0, 1]"), ("optim.weight_decay", "-1", ">= 0"), ("ckpt.every_steps", "-3", ">= 0"),
    ("model.aknet.alpha", '"abc"', "must be a number"), ("optim.milestones", "[1.5]", "must be int"),
])
def test_the_reported_bad_values_are_one_line_from_the_cli(files, key, value, fragment):
    sets = ["--set", f"{key}={value}"]
    if key.startswith("model.aknet."):
        sets += ["--set", "model.stage=2", "--set", f"model.init_from={files['ckpt']}"]
    result = runner.invoke(app, ["train", str(files["config"]), "--work-dir", str(files["root"] / "w"), *sets])
    assert_one_line_error(result, key.split(".")[-1], fragment)
    assert not (files["root"] / "w").exists()


def test_a_device_that_is_not_cpu_or_cuda_is_refused_by_name(files):
    result = runner.invoke(app, ["eval", str(files["ckpt"]), "--data", str(files["root"]), "--device", "tpu"])
    assert_one_line_error(result, "'tpu'", "cpu")
    assert "NVIDIA" not in result.output


@pytest.mark.parametrize("argv,fragment", [
    (["prepare", "synthetic", "--out", "x", "--classes", "abc"], "'--classes'"),
    (["flops", "--alpha", "abc"], "'--alpha'"),
    (["frobnicate"], "frobnicate"),
    (["flops", "stray"], "stray"),
    (["eval"], "checkpoint"),
    (["train", "--work-dir", "never_made"], "CONFIG"),  # optional only beside --list-configs, still missing
    (["bench", "--no-such-option"], "--no-such-option"),
])
def test_usage_errors_are_one_line_with_exit_status_2(argv, fragment):
    result = runner.invoke(app, argv)
    assert_one_line_error(result, fragment, "--help")
    assert result.exit_code == 2
    assert "╭" not in result.output and "Usage:" not in result.output


def test_the_ranges_are_the_schema_not_a_list_beside_it():
    # Every number a run reads is declared with its range, so a new key cannot be added unchecked.
    for section, cls in C._SECTIONS.items():
        for f in dataclasses.fields(cls):
            if cls.__annotations__[f.name] in ("int", "float"):
                assert "range" in f.metadata, f"{section}.{f.name} has no declared range"

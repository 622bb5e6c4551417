"""aknet ablate: the paper's rows as switches, one shared stage 1, rows reused and redone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from aknet_cli.analysis import paper
from aknet_cli.analysis.ablation import run_table
from aknet_cli.cli.main import app
from cli_helpers import assert_one_line_error

runner = CliRunner()

STAGE1 = """
name = "s1"
[model]
backbone = "resnet18"
num_segments = 4
[data]
dataset = "unset"
resize = 32
crop = 32
resize_mode = "square"
num_workers = 0
[optim]
name = "adamw"
lr = 0.001
base_batch_size = 4
batch_size = 4
epochs = 1
milestones = [5]
"""
STAGE2 = STAGE1.replace('name = "s1"', 'name = "s2"').replace(
    "num_segments = 4", 'num_segments = 4\nstage = 2\ninit_from = "unset.pt"\n[model.aknet]\ntransform_rank = 4')


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    result = runner.invoke(app, ["prepare", "synthetic", "--out", str(root / "synth"), "--classes", "3",
                                 "--train-per-class", "4", "--val-per-class", "1", "--test-per-class", "2", "--size", "32", "--frames", "8"])
    assert result.exit_code == 0, result.output
    (root / "s1.toml").write_text(STAGE1)
    (root / "s2.toml").write_text(STAGE2)
    return root


def options(root: Path) -> dict:
    return {"data": root / "synth", "config": str(root / "s2.toml"), "stage1_config": str(root / "s1.toml"),
            "work_dir": root / "work", "progress": False}


def test_dry_run_lists_the_papers_rows_with_their_switches_and_gflops(setup):
    result = runner.invoke(app, ["ablate", "--table", "iv", "--dry-run", "--json", "--data", str(setup / "synth"),
                                 "--config", str(setup / "s2.toml"), "--stage1-config", str(setup / "s1.toml"),
                                 "--work-dir", str(setup / "dry")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rows = out["rows"]
    assert [r["name"] for r in rows] == [r.name for r in paper.TABLE_IV] and len(rows) == 6
    # Table IV's first row is the bare 1-D subnet; its last switches every component on.
    assert rows[0]["switches"] == {"split": "res2", "ranking": False, "sparsity_reg": False, "position": "none",
                                   "concat_gap": False}
    assert rows[-1]["switches"]["position"] == "transform" and rows[-1]["switches"]["sparsity_reg"] is True
    assert [r["paper_top1"] for r in rows] == [33.1, 45.8, 46.0, 46.9, 47.1, 47.3]
    assert all(r["gflops"] > 0 and r["top1"] is None for r in rows)
    assert all(r["status"] == "planned" for r in out["runs"])
    # the transform net costs FLOPs: "Q+R+T" counts more than "Q+R"
    assert rows[3]["gflops"] > rows[1]["gflops"]
    assert not (setup / "dry" / "stage1").exists()  # a dry run trains nothing


def _test_top1(work: Path) -> float:
    """Top-1 of a run's best.pt on the test split, recomputed from its predictions file."""
    preds = pd.read_csv(work / "eval_test" / "predictions.csv")
    return round(100 * float((preds["top1"] == preds["label"]).mean()), 2)


def test_table_v_trains_each_row_from_one_shared_stage1_scores_the_test_split_then_reuses_them(setup):
    first = run_table("v", **options(setup))
    assert first["split"] == "test" and [r["status"] for r in first["runs"]] == ["trained"] * 3
    stage1 = setup / "work" / "stage1" / "best.pt"
    assert first["stage1"] == str(stage1)
    for run, row in zip(first["runs"], first["rows"]):
        work = setup / "work" / "v" / row["name"].replace("+ ", "").replace(" ", "_") / "seed_0"
        assert run["work_dir"] == str(work) and (work / "converted.pt").is_file()
        cfg = (work / "config.toml").read_text()
        assert f'init_from = "{stage1}"' in cfg and f'position = "{row["switches"]["position"]}"' in cfg
        assert "seed = 0" in cfg
        assert row["top1"] == _test_top1(work)  # reported on the held-out split, not on val
        assert run["val_top1"] == pytest.approx(pd.read_csv(work / "metrics.csv")["val_top1"].max())
    table = pd.read_csv(setup / "work" / "v" / "results.csv")
    assert table["paper_top1"].tolist() == [45.3, 46.1, 46.9]
    assert (setup / "work" / "v" / "table_v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stamp = (setup / "work" / "stage1" / "best.pt").stat().st_mtime_ns
    again = run_table("v", **options(setup))
    assert [r["status"] for r in again["runs"]] == ["reused"] * 3
    assert [r["top1"] for r in again["rows"]] == [r["top1"] for r in first["rows"]]
    assert (setup / "work" / "stage1" / "best.pt").stat().st_mtime_ns == stamp  # stage 1 trained once

    forced = run_table("v", **options(setup), force=True)
    assert [r["status"] for r in forced["runs"]] == ["trained"] * 3
    assert [r["top1"] for r in forced["rows"]] == [r["top1"] for r in first["rows"]]  # same seed, same run


def test_seeds_train_each_row_per_seed_resume_a_killed_one_and_pair_rows_on_common_seeds(setup):
    from aknet_cli.analysis.ablation import plan, row_config
    from aknet_cli.engine.config import load_config
    from aknet_cli.engine.trainer import train
    from train_fixtures import Killed, kill_at

    opts = {**options(setup), "work_dir": setup / "seeds"}
    rows = ("baseline", "+ feature transform")
    base_cfg = load_config(opts["config"], [f"data.dataset={opts['data']}"], check_paths=False)
    planned = plan("v", base_cfg=base_cfg, work_dir=opts["work_dir"], seeds=(0, 1), rows=rows)
    assert [(r.name, r.seed) for r in planned] == [(n, s) for n in rows for s in (0, 1)]
    # one run killed half-way: the table resumes it
    stage1 = setup / "work" / "stage1" / "best.pt"
    cfg = row_config(planned[1], base_source=opts["config"], stage1=stage1, data=str(opts["data"]), epochs=None,
                     overrides=["ckpt.every_steps=1"])
    with pytest.raises(Killed):
        train(cfg, work_dir=planned[1].work_dir, progress=False, on_step_end=[kill_at(2)])
    result = run_table("v", **opts, seeds=(0, 1), rows=rows, stage1=stage1, overrides=["ckpt.every_steps=1"])
    assert [r["status"] for r in result["runs"]] == ["trained"] * 4
    straight = setup / "seeds_straight"
    train(cfg, work_dir=straight, progress=False)
    a = torch.load(straight / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(planned[1].work_dir / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the resumed run is the run that was killed
    s0 = torch.load(planned[0].work_dir / "last.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(s0[k], b[k]) for k in s0)  # another seed is another run
    base, transform = result["rows"]
    assert base["seeds"] == transform["seeds"] == [0, 1] and base["baseline"] is None
    assert transform["baseline"] == "baseline"
    per_seed = [transform["top1_by_seed"][s] - base["top1_by_seed"][s] for s in (0, 1)]
    assert transform["diff"] == pytest.approx(sum(per_seed) / 2, abs=0.01)
    assert transform["diff_ci"][0] <= transform["diff"] <= transform["diff_ci"][1]
    assert transform["top1"] == pytest.approx(sum(transform["top1_by_seed"].values()) / 2, abs=0.01)
    # a later invocation with one more seed for one row summarises every seed found on disk
    more = run_table("v", **opts, seeds=(2,), rows=("+ feature transform",), stage1=stage1,
                     overrides=["ckpt.every_steps=1"])
    assert {r["name"]: r["seeds"] for r in more["rows"]} == {"+ feature transform": [0, 1, 2], "baseline": [0, 1]}
    assert [r["gflops"] for r in more["rows"]] == [r["gflops"] for r in result["rows"]]  # rows it did not train too
    assert (opts["work_dir"] / "v" / "runs.csv").is_file() and "± " in (opts["work_dir"] / "v" / "results.md").read_text()


def test_tau_rows_are_derived_from_the_split_map(setup):
    out = run_table("tau", **options(setup), dry_run=True)
    # 32² input, res4 (stride 16): a 2×2 map, so w = 2 and h + w = 4
    assert [r["switches"]["tau"] for r in out["rows"]] == [1.0, 2.0, 2.0, 4.0]


def test_transform_rows_compare_the_forms_with_the_previous_default(setup):
    """The config's rank (4 here) does not leak into the rows: each row builds its own form, the
    paper's full matrix included, and each is compared with the first row (uv, rank 64)."""
    from aknet_cli.analysis.ablation import plan, row_config
    from aknet_cli.engine.config import load_config
    from aknet_cli.models.aknet import AKNetConfig

    out = run_table("transform", **options(setup), dry_run=True)
    names = [r["name"] for r in out["rows"]]
    assert names[0] == "uv r=64" and {"core r=64", "full (paper)", "no position"} <= set(names)
    base = load_config(str(setup / "s2.toml"), [f"data.dataset={setup / 'synth'}"], check_paths=False)
    for run in plan("transform", base_cfg=base, work_dir=setup / "work"):
        cfg = row_config(run, base_source=str(setup / "s2.toml"), stage1=setup / "x.pt", data=str(setup / "synth"),
                         epochs=None, overrides=[])
        config = AKNetConfig(**cfg.model.aknet).validate()
        want = {"uv r=64": ("uv", 64), "core r=64": ("core", 64), "core r=16": ("core", 16), "full (paper)": ("full", None)}
        if run.name in want:
            assert (config.transform, config.transform_rank) == want[run.name], run.name
        else:
            assert config.position == "none"


def test_bad_table_and_missing_data_are_one_line(setup):
    assert_one_line_error(runner.invoke(app, ["ablate", "--table", "ix", "--dry-run", "--data", str(setup / "synth"),
                                              "--config", str(setup / "s2.toml")]), "unknown table")
    assert_one_line_error(runner.invoke(app, ["ablate", "--table", "iv", "--data", str(setup / "nowhere")]),
                          "not a prepared dataset")
    assert_one_line_error(runner.invoke(app, ["ablate", "--table", "v", "--dry-run", "--data", str(setup / "synth"),
                                              "--config", str(setup / "s2.toml"), "--seeds", "0,x"]), "--seeds")
    assert_one_line_error(runner.invoke(app, ["ablate", "--table", "v", "--dry-run", "--data", str(setup / "synth"),
                                              "--config", str(setup / "s2.toml"), "--seeds", "1,1"]), "distinct")
    assert_one_line_error(runner.invoke(app, ["ablate", "--table", "v", "--dry-run", "--data", str(setup / "synth"),
                                              "--config", str(setup / "s2.toml"), "--rows", "nope"]), "'nope'")
    for option, value in (("--seeds", "0,,1"), ("--rows", "baseline,")):
        assert_one_line_error(runner.invoke(app, ["ablate", "--table", "v", "--dry-run", "--data", str(setup / "synth"),
                                                  "--config", str(setup / "s2.toml"), option, value]), option, "empty")


def test_a_given_stage1_that_cannot_serve_is_one_line_before_any_row(setup, tmp_path):
    aknet_ckpt = next((setup / "work" / "v").glob("*/seed_0/best.pt"), None) or pytest.skip("needs the table-V runs")
    work = tmp_path / "ab"
    result = runner.invoke(app, ["ablate", "--table", "v", "--data", str(setup / "synth"), "--config",
                                 str(setup / "s2.toml"), "--stage1", str(aknet_ckpt), "--work-dir", str(work)])
    assert_one_line_error(result, "already an AK-Net checkpoint")
    assert not (work / "v").exists()  # no row was started


def _stage1_file(path: Path, *, backbone: str = "resnet18", weights_of: str | None = None, classes: int = 3,
                 **description) -> Path:
    """A stage-1 checkpoint for the setup's dataset (3 classes, 4 frames); ``weights_of`` puts
    another backbone's tensors under this description."""
    from aknet_cli import create_backbone
    from aknet_cli.checkpoints.format import save_checkpoint

    net = create_backbone(weights_of or backbone, num_classes=classes, num_segments=4)
    config = {"backbone": backbone, "num_classes": classes, "num_segments": 4, **description}
    save_checkpoint(path, kind="backbone", config=config, state_dict=net.state_dict())
    return path


def _flipped(path: Path) -> Path:
    raw = bytearray(_stage1_file(path).read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(b ^ 0xFF for b in raw[middle:middle + 64])
    path.write_bytes(bytes(raw))
    return path


def _empty_val(setup: Path, folder: Path) -> Path:
    import shutil

    shutil.copytree(setup / "synth", folder, ignore=shutil.ignore_patterns("raw"))
    data = json.loads((folder / "dataset.json").read_text())
    data["media_root"] = str(setup / "synth" / "raw")
    (folder / "dataset.json").write_text(json.dumps(data))
    (folder / "val.csv").write_text((folder / "val.csv").read_text().splitlines()[0] + "\n")
    return folder


#: What a real run refuses before its first training: option → value (built in tmp), and a
#: fragment of the one line.
REFUSED_BEFORE_TRAINING = {
    "a stage-1 file with flipped bytes": (lambda s, t: {"--stage1": _flipped(t / "s1.pt")}, "corrupt"),
    "a stage-1 description outside its schema": (
        lambda s, t: {"--stage1": _stage1_file(t / "s1.pt", backbone_kwargs={"bogus": 1})}, "config.backbone_kwargs"),
    "a stage-1 file of another class count": (lambda s, t: {"--stage1": _stage1_file(t / "s1.pt", classes=5)},
                                              "num_classes 5"),
    "stage-1 weights of another backbone than described": (
        lambda s, t: {"--stage1": _stage1_file(t / "s1.pt", weights_of="tsm_resnet18")}, "does not match the model"),
    "data whose val split is empty": (lambda s, t: {"--stage1": _stage1_file(t / "s1.pt"),
                                                    "--data": _empty_val(s, t / "data")}, "split 'val'"),
    "a stage-1 config of an unknown backbone": (
        lambda s, t: {"--stage1-config": _write(t / "s1.toml", STAGE1.replace('"resnet18"', '"nope_net"'))}, "nope_net"),
    "a work dir under a file": (lambda s, t: {"--stage1": _stage1_file(t / "s1.pt"),
                                              "--work-dir": _write(t / "taken", "") / "ab"}, "taken"),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", REFUSED_BEFORE_TRAINING)
def test_a_dry_run_refuses_in_one_line_what_the_real_run_refuses_before_it_trains(setup, tmp_path, case):
    """A dry run is how a command is checked before a long job: it must refuse the same input
    with the same line as the real run does before its first training, and write nothing."""
    make, fragment = REFUSED_BEFORE_TRAINING[case]
    chosen = {"--data": setup / "synth", "--config": setup / "s2.toml", "--stage1-config": setup / "s1.toml",
              "--work-dir": tmp_path / "work", **make(setup, tmp_path)}
    argv = ["ablate", "--table", "vi", "--rows", "ours α=0.3", "--epochs", "1",
            *[str(a) for pair in chosen.items() for a in pair]]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    dry = runner.invoke(app, [*argv, "--dry-run"])
    assert_one_line_error(dry, fragment)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    real = runner.invoke(app, argv)
    assert_one_line_error(real, fragment)
    assert dry.output == real.output

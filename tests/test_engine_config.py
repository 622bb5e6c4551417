"""Training configs: every shipped config loads; bad keys, types and paths fail in one line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aknet_cli.cli.main import app
from aknet_cli.engine.config import (
    RunConfig,
    apply_override,
    build_config,
    load_config,
    packaged_configs,
    resolve_config_path,
    to_toml,
)
from aknet_cli.engine.optim import lr_factor
from aknet_cli.exceptions import ConfigError
from cli_helpers import assert_one_line_error

runner = CliRunner()
PAPER = [f"{net}_r50_{ds}_stage{s}" for net in ("tsm", "tdn") for ds in ("sthv1", "sthv2", "diving48") for s in (1, 2)]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dataset.json").write_text("{}")
    return folder


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return path


def test_every_paper_setting_ships_with_the_papers_recipe():
    shipped = packaged_configs()
    assert set(PAPER) <= set(shipped)
    for name in PAPER:
        # Stage 1 follows its backbone's official code where §IV-A is silent or loose; the
        # paper's sentence is --set recipe=paper. Stage 2 keeps the paper's recipe.
        overrides = ["recipe=paper"] if name.endswith("stage1") else []
        cfg = load_config(name, overrides, check_paths=False)
        assert cfg.model.num_segments == 8 and cfg.data.crop == 224 and cfg.data.resize == 256
        assert (cfg.data.resize_mode, cfg.data.crop_mode, cfg.data.flip) == ("square", "random", False)
        assert cfg.optim.base_batch_size == 64 and cfg.optim.milestones == [20, 40]
        if "diving48" in name:  # §IV-A: Adam, 5e-4, 45 epochs on Diving48
            assert (cfg.optim.name, cfg.optim.lr, cfg.optim.epochs) == ("adam", 5e-4, 45)
        else:  # SGD, 0.01, 50 epochs on Sth-Sth
            assert (cfg.optim.name, cfg.optim.lr, cfg.optim.epochs) == ("sgd", 0.01, 50)
        if name.endswith("stage2"):  # Table II rows: res4, alpha 0.3
            assert cfg.model.stage == 2 and cfg.model.aknet["split"] == "res4" and cfg.model.aknet["alpha"] == 0.3
            assert cfg.model.init_from.endswith(name.replace("stage2", "stage1") + "/best.pt")


def test_stage1_configs_follow_their_backbones_official_code():
    for net in ("tsm", "tdn"):
        for ds in ("sthv1", "sthv2", "diving48"):
            cfg = load_config(f"{net}_r50_{ds}_stage1", check_paths=False)
            paper = load_config(f"{net}_r50_{ds}_stage1", ["recipe=paper"], check_paths=False)
            # TSN's multi-scale crop on aspect-kept frames, in both codes.
            assert (cfg.data.resize_mode, cfg.data.crop_mode) == ("short", "multiscale")
            # TDN flips Sth-Sth with the left/right label swap (GroupRandomHorizontalFlip_sth); TSM
            # does not flip Sth-Sth; both flip other sets keeping the label (GroupRandomHorizontalFlip).
            assert cfg.data.flip is (net == "tdn" or ds == "diving48")
            assert cfg.data.flip_labels == ("keep" if ds == "diving48" else "swap")
            # fc lr: TSM x5/x10 (fc_lr5 from ImageNet), TDN x1/x2 (normal_weight / normal_bias).
            assert (cfg.optim.fc_lr_mult, cfg.optim.fc_bias_lr_mult) == ((5.0, 10.0) if net == "tsm" else (1.0, 2.0))
            assert (paper.optim.fc_lr_mult, paper.optim.fc_bias_lr_mult) == (cfg.optim.fc_lr_mult,
                                                                             cfg.optim.fc_bias_lr_mult)
            schedule = (cfg.optim.epochs, cfg.optim.milestones)
            if ds == "diving48":  # the paper's; neither code has a Diving48 recipe
                assert schedule == (45, [20, 40]) and cfg.optim.name == "adam"
            else:  # TDN's train_something.sh: 60 epochs at 30/45/55; TSM's 50 at 20/40
                assert schedule == ((60, [30, 45, 55]) if net == "tdn" else (50, [20, 40]))
            # Nothing but the recipe's keys differ.
            changed = {f"{section}.{key}" for section, table in cfg.to_dict().items() if isinstance(table, dict)
                       for key, value in table.items() if paper.to_dict()[section][key] != value}
            assert changed <= {"data.resize_mode", "data.crop_mode", "data.flip", "optim.epochs", "optim.milestones"}
    official = load_config("tdn_r50_sthv1_stage2_from_official", check_paths=False)
    assert official.data.resize_mode == "short"  # the official checkpoint never saw a squeezed frame


def test_recipes_apply_under_explicit_overrides_and_unknown_ones_fail(tmp_path, dataset):
    text = (f"[data]\ndataset = '{dataset}'\ncrop_mode = 'multiscale'\n"
            f"[recipes.paper.data]\ncrop_mode = 'random'\nresize_mode = 'square'\n"
            f"[recipes.paper.optim]\nepochs = 7\n")
    assert load_config(write(tmp_path, text)).data.crop_mode == "multiscale"  # no recipe: the file's values
    cfg = load_config(write(tmp_path, text), ["recipe=paper", "optim.epochs=9"])
    assert (cfg.data.crop_mode, cfg.data.resize_mode, cfg.optim.epochs) == ("random", "square", 9)  # --set wins
    assert load_config(write(tmp_path, "recipe = 'paper'\n" + text)).optim.epochs == 7  # chosen in the file
    with pytest.raises(ConfigError, match=r"'recipe' = 'fast' is not defined in this file \(its recipes: paper\)"):
        load_config(write(tmp_path, text), ["recipe=fast"])
    with pytest.raises(ConfigError, match=r"unknown key 'data.crop_size'"):
        load_config(write(tmp_path, text.replace("resize_mode", "crop_size")), ["recipe=paper"])
    with pytest.raises(ConfigError, match="'data.crop_mode' must be one of random, multiscale, got 'scaled'"):
        load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\ncrop_mode = 'scaled'\n"))


def test_config_names_resolve_with_or_without_suffix_and_paths_win(tmp_path):
    assert resolve_config_path("demo_tdn_stage1") == resolve_config_path("demo_tdn_stage1.toml")
    local = write(tmp_path, "name = 'x'\n")
    assert resolve_config_path(local) == local
    with pytest.raises(ConfigError, match="not found"):
        resolve_config_path("no_such_config")


def test_unknown_key_names_the_key_and_the_file(tmp_path, dataset):
    path = write(tmp_path, f"[data]\ndataset = '{dataset}'\n[optim]\nlrr = 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "optim.lrr" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(ConfigError, match="unknown key 'sections'"):
        load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\n[sections]\n"))


@pytest.mark.parametrize("line, key", [
    ("[optim]\nlr = 'fast'", "optim.lr"),
    ("[optim]\nepochs = 2.5", "optim.epochs"),
    ("[train]\namp = 1", "train.amp"),
    ("[optim]\nmilestones = 20", "optim.milestones"),
    ("[optim]\nname = 'lamb'", "optim.name"),
    ("[optim]\nbatch_size = 0", "optim.batch_size"),
])
def test_wrong_types_and_values_fail(tmp_path, dataset, line, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\n{line}\n"))


def test_int_is_accepted_where_a_float_is_expected(tmp_path, dataset):
    cfg = load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\n[optim]\nlr = 1\n"))
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)


def test_missing_dataset_and_stage2_checks(tmp_path, dataset):
    with pytest.raises(ConfigError, match="data.dataset"):
        load_config(write(tmp_path, "[data]\ndataset = 'nowhere'\n"))
    with pytest.raises(ConfigError, match="empty"):
        load_config(write(tmp_path, "name = 'x'\n"))
    with pytest.raises(ConfigError, match="init_from"):
        load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\n[model]\nstage = 2\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\n[model]\nstage = 2\ninit_from = 'x.pt'\n"))
    with pytest.raises(ConfigError, match="model.aknet.alhpa"):
        load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\n[model]\nstage = 2\ninit_from = 'x.pt'\n"
                                    f"[model.aknet]\nalhpa = 0.3\n"), check_paths=False)


def test_set_overrides_are_typed_toml_values(tmp_path, dataset):
    cfg = load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\n"),
                      ["optim.lr=0.02", "optim.milestones=[5, 9]", "data.flip=true", "optim.name=adamw",
                       "model.stage=2", f"model.init_from={dataset}/dataset.json", "model.aknet.alpha=0.5"])
    assert cfg.optim.lr == 0.02 and cfg.optim.milestones == [5, 9] and cfg.data.flip is True
    assert cfg.optim.name == "adamw" and cfg.model.aknet == {"alpha": 0.5}
    full = load_config("demo_aknet_tdn_stage2", ['model.aknet.transform_rank="none"'], check_paths=False)
    assert full.model.aknet["transform_rank"] is None  # the paper's full transform net, one switch away
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_override({}, "optim.lr")
    with pytest.raises(ConfigError, match="'optim.lr' must be float"):
        load_config(write(tmp_path, f"[data]\ndataset = '{dataset}'\n"), ["optim.lr=abc"])


def test_resolved_config_round_trips_through_toml(tmp_path, dataset):
    cfg = load_config("tdn_r50_sthv1_stage2", [f"data.dataset={dataset}"], check_paths=False)
    again = build_config(tomllib.loads(to_toml(cfg)), source="round trip")
    assert again == cfg


def test_linear_scaling_warmup_and_step_decay():
    cfg = RunConfig()
    cfg.optim.batch_size, cfg.optim.base_batch_size, cfg.optim.lr = 128, 64, 0.01
    assert cfg.scaled_lr == pytest.approx(0.02)  # the paper's 0.01 at 64, scaled linearly
    cfg.optim.milestones, cfg.optim.gamma, cfg.optim.warmup_epochs = [20, 40], 0.1, 2
    steps = 10
    assert lr_factor(0, steps, cfg) == pytest.approx(1 / 20)  # first of 20 warm-up steps
    assert lr_factor(19, steps, cfg) == pytest.approx(1.0)
    assert lr_factor(199, steps, cfg) == pytest.approx(1.0)  # epoch 19.9
    assert lr_factor(200, steps, cfg) == pytest.approx(0.1)  # epoch 20
    assert lr_factor(400, steps, cfg) == pytest.approx(0.01)


def test_cli_list_and_print_config():
    listed = runner.invoke(app, ["train", "--list-configs"])
    assert listed.exit_code == 0 and all(name in listed.output for name in PAPER)
    shown = runner.invoke(app, ["train", "tsm_r50_sthv2_stage1", "--print-config", "--set", "optim.lr=0.05"])
    assert shown.exit_code == 0, shown.output
    parsed = tomllib.loads(shown.output)
    assert parsed["optim"]["lr"] == 0.05 and parsed["model"]["backbone"] == "tsm_resnet50"


def test_cli_config_errors_are_one_line(tmp_path):
    assert_one_line_error(runner.invoke(app, ["train", "nope"]), "not found")
    assert_one_line_error(runner.invoke(app, ["train", "tsm_r50_sthv1_stage1", "--set", "optim.lrr=1"]), "optim.lrr")
    assert_one_line_error(runner.invoke(app, ["train", "tsm_r50_sthv1_stage1"]), "data.dataset", "aknet prepare")
    bad = write(tmp_path, "[optim\n")
    assert_one_line_error(runner.invoke(app, ["train", str(bad)]), "not valid TOML")


def test_stage_2s_position_module_gets_its_own_lr_multiplier():
    from aknet_cli import build_aknet
    from aknet_cli.engine.optim import param_groups

    model = build_aknet("resnet18", split="res4", num_classes=3, num_segments=2, transform_rank=4)
    cfg = load_config("demo_aknet_tdn_stage2", ["optim.position_lr_mult=0.1", "data.dataset=x"], check_paths=False)
    groups = param_groups(model, cfg)
    position = {id(p) for p in model.position.parameters()}
    slow = [g for g in groups if g["lr_mult"] == 0.1]
    assert {id(p) for g in slow for p in g["params"]} == position
    assert all(g["lr"] == pytest.approx(cfg.scaled_lr * 0.1) for g in slow)
    stage1 = load_config("demo_tdn_stage1", ["optim.position_lr_mult=0.1", "data.dataset=x"], check_paths=False)
    assert {g["lr_mult"] for g in param_groups(model, stage1)} == {1.0}  # stage 1 has no fresh position module


def test_a_config_saved_with_a_utf8_byte_order_mark_reads_as_without(tmp_path):
    """Windows editors start UTF-8 with a BOM, which tomllib alone refuses at line 1, column 1."""
    text = 'name = "bom"\n[model]\nbackbone = "tsm_resnet18"\nnum_segments = 4\n'
    plain, marked = tmp_path / "plain.toml", tmp_path / "marked.toml"
    plain.write_text(text, encoding="utf-8")
    marked.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_config(marked, check_paths=False).model == load_config(plain, check_paths=False).model

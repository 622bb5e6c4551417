"""AK-Net options written as text (``--set``, ``--transform-rank``/``--tau``/``--position``, a
config's ``transform_rank = "none"``): one parser, the same words and refusals in every command."""

from __future__ import annotations

import re

import pytest
from cli_helpers import assert_one_line_error
from typer.testing import CliRunner

from aknet_cli.cli.main import app
from aknet_cli.engine.aknet_options import command_options, parse_options, parse_rank
from aknet_cli.exceptions import ConfigError
from aknet_cli.models.aknet import AKNetConfig

runner = CliRunner()


# ----------------------------------------------------------------------------- --set pairs
def test_set_pairs_take_the_type_of_their_field():
    options = parse_options(["alpha=0.5", "reduction=8", "stride_mode=axis", "ranking=false", "heat-scale=0.2",
                             " dropout = 0 "])
    assert options == {"alpha": 0.5, "reduction": 8, "stride_mode": "axis", "ranking": False, "heat_scale": 0.2,
                       "dropout": 0.0}
    assert type(options["reduction"]) is int and type(options["dropout"]) is float
    AKNetConfig(**options).validate()  # what the parser returns, the model accepts as it is


def test_a_later_pair_wins_over_an_earlier_one_for_the_same_key():
    assert parse_options(["ranking=false", "ranking=true"]) == {"ranking": True}


@pytest.mark.parametrize("word, value", [("true", True), ("1", True), ("YES", True), ("on", True),
                                         ("false", False), ("0", False), ("No", False), ("off", False)])
def test_boolean_switches_accept_the_usual_words(word, value):
    assert parse_options([f"concat_gap={word}"]) == {"concat_gap": value}


@pytest.mark.parametrize("pair, fragment", [
    ("ranking=maybe", "--set ranking='maybe': expected a bool"),
    ("ranking=", "--set ranking='': expected a bool"),
    ("reduction=abc", "--set reduction='abc'"),
    ("dropout=half", "--set dropout='half'"),
    ("tau=soon", "--set tau='soon': expected a number or 'auto'"),
])
def test_a_value_of_the_wrong_type_names_the_pair(pair, fragment):
    with pytest.raises(ConfigError, match="^" + re.escape(fragment)):
        parse_options([pair])


def test_an_unknown_key_is_named_with_the_known_ones():
    with pytest.raises(ConfigError) as err:
        parse_options(["ranking=true", "turbo=1"])
    message = str(err.value)
    assert "unknown AK-Net option 'turbo'" in message and "stride_mode" in message and "transform_rank" in message


@pytest.mark.parametrize("pair", ["ranking", "=1", "  =x", ""])
def test_a_pair_without_key_and_value_is_refused(pair):
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE"):
        parse_options([pair])


# ----------------------------------------------------------------------------- rank words and tau
@pytest.mark.parametrize("text, rank", [("64", 64), (" 8 ", 8), ("none", None), ("Full", None), ("paper", None),
                                        ("NULL", None), (16, 16), (None, None), ("auto", "auto"), ("Auto", "auto")])
def test_transform_rank_accepts_integers_auto_and_the_papers_full_matrix(text, rank):
    assert parse_rank(text) == rank
    if text is not None:
        assert parse_options([f"transform_rank={text}"]) == {"transform_rank": rank}


@pytest.mark.parametrize("bad", ["0", "-3", "sixty-four", "6.5", "", True])
def test_transform_rank_refuses_what_is_not_a_rank(bad):
    with pytest.raises(ConfigError, match="positive integer or 'none'"):
        parse_rank(bad)


def test_tau_is_auto_or_a_number_and_its_range_is_the_models_to_check():
    assert parse_options(["tau=2"]) == {"tau": 2.0}
    assert parse_options(["tau=AUTO"]) == {"tau": "auto"}
    assert command_options([], dedicated={"tau": "3.5"}) == {"tau": 3.5}
    assert AKNetConfig().tau == "auto"
    for bad in ("tau=soon", "tau=-1", "tau=nan"):
        with pytest.raises(ConfigError, match="tau"):
            AKNetConfig(**parse_options([bad])).validate()


def test_a_dedicated_tau_that_is_no_number_names_the_option():
    with pytest.raises(ConfigError, match=r"^--tau 'soon': expected 'auto' or a number > 0$"):
        command_options([], dedicated={"tau": "soon"})


# ----------------------------------------------------------------------------- merging
def test_dedicated_options_join_the_set_pairs_and_unset_ones_are_left_out():
    options = command_options(["ranking=off"], dedicated={"tau": None, "position": "embedding",
                                                          "transform_rank": "none"})
    assert options == {"ranking": False, "position": "embedding", "transform_rank": None}


@pytest.mark.parametrize("key, option, text", [("transform_rank", "--transform-rank", "4"), ("tau", "--tau", "2"),
                                               ("position", "--position", "none")])
def test_a_switch_given_both_ways_is_refused_even_with_equal_values(key, option, text):
    with pytest.raises(ConfigError, match=f"^{key} is given both as {option} and in --set; give it once$"):
        command_options([f"{key}={text}"], dedicated={key: text})


@pytest.mark.parametrize("pair", ["split=res2", "alpha=0.5"])
def test_split_and_alpha_belong_to_their_own_options(pair):
    with pytest.raises(ConfigError, match="use --split and --alpha, not --set"):
        command_options([pair])
    assert len(command_options([pair], split_and_alpha_in_set=True)) == 1


def test_a_training_configs_rank_word_is_read_by_the_same_parser():
    from aknet_cli.engine.config import load_config

    cfg = load_config("demo_aknet_tdn_stage2", ['model.aknet.transform_rank="paper"'], check_paths=False)
    assert cfg.model.aknet["transform_rank"] is None
    with pytest.raises(ConfigError, match="positive integer or 'none'"):
        load_config("demo_aknet_tdn_stage2", ['model.aknet.transform_rank="most"'], check_paths=False)


# ----------------------------------------------------------------------------- the three commands alike
def _command(name, tmp_path):
    """Arguments that reach a command's option parsing and fail nowhere before it."""
    return {"flops": ["flops", "--split", "res4"],
            "bench": ["bench", "--split", "res4"],
            "convert-1d": ["convert-1d", "-c", str(tmp_path / "stage1.pt"), "-o", str(tmp_path / "ak.pt")]}[name]


COMMANDS = ("flops", "bench", "convert-1d")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_rank_given_both_ways(command, tmp_path):
    result = runner.invoke(app, [*_command(command, tmp_path), "--transform-rank", "8", "--set", "transform_rank=4"])
    assert_one_line_error(result, "transform_rank is given both as --transform-rank and in --set; give it once")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("args, fragment", [
    (["--set", "turbo=1"], "unknown AK-Net option 'turbo'"),
    (["--set", "ranking"], "--set expects KEY=VALUE, got 'ranking'"),
    (["--set", "ranking=maybe"], "--set ranking='maybe': expected a bool"),
    (["--transform-rank", "0"], "positive integer or 'none'"),
])
def test_every_command_reads_set_and_the_rank_alike(command, args, fragment, tmp_path):
    assert_one_line_error(runner.invoke(app, [*_command(command, tmp_path), *args]), fragment)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_the_sampling_rate_in_set(command, tmp_path):
    # flops names it through its counter's own check, the others before any work starts.
    assert_one_line_error(runner.invoke(app, [*_command(command, tmp_path), "--set", "alpha=0.5"]), "alpha")


@pytest.mark.parametrize("args, fragment", [
    (["--tau", "2", "--set", "tau=3"], "tau is given both as --tau and in --set"),
    (["--position", "none", "--set", "position=embedding"], "position is given both as --position and in --set"),
])
def test_convert_1d_refuses_its_other_dedicated_options_given_both_ways(args, fragment, tmp_path):
    assert_one_line_error(runner.invoke(app, [*_command("convert-1d", tmp_path), *args]), fragment)

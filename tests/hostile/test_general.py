"""``aknet`` itself, ``--help`` of every command, and ``aknet backbones``."""

from __future__ import annotations

import os

import pytest

from .case import CLEAN, OK, QUIET, USAGE, Case
from .checks import stdout_has, stdout_json
from .inputs import Inputs
from .parametrize import each_case
from .runner import run_reader_gone

pytestmark = pytest.mark.hostile

COMMANDS = ("backbones", "train", "eval", "convert-1d", "flops", "bench", "ablate", "visualize", "predict", "export",
            "prepare sthv1", "prepare sthv2", "prepare diving48", "prepare synthetic", "prepare folder", "prepare list")
BUILT_IN = {f"{family}resnet{depth}" for family in ("", "tsm_", "tdn_") for depth in (18, 50, 101)}


def _help_has_example(outcome, case_dir):
    text = outcome.stdout
    if "Usage:" not in text:
        return "no usage line"
    return None if ("Example" in text and "aknet " in text.split("Usage:", 1)[1]) else "no example in --help"


def _lists_built_ins(payload):
    names = {row["name"] if isinstance(row, dict) else row for row in (payload if isinstance(payload, list) else payload.get("backbones", []))}
    missing = BUILT_IN - names
    return f"--json lacks {sorted(missing)[:3]}" if missing else None


def _lists_broken_plugin(payload):
    rows = payload if isinstance(payload, list) else payload.get("backbones", [])
    names = {row["name"] if isinstance(row, dict) else row for row in rows}
    return None if "broken_net" in names and BUILT_IN <= names else f"names listed: {sorted(names)}"


def root_cases(fx: Inputs) -> list[Case]:
    cases = [Case("aknet", f"{cmd} --help has an example", [*cmd.split(), "--help"], OK, check=_help_has_example)
             for cmd in COMMANDS]
    cases += [
        Case("aknet", "--version", ["--version"], OK, check=stdout_has("aknet 0.")),
        Case("aknet", "unknown subcommand", ["frobnicate"], USAGE, ("frobnicate",)),
        Case("aknet", "misspelt subcommand", ["trian"], USAGE, ("trian",)),
        Case("aknet", "unknown prepare format", ["prepare", "kinetics"], USAGE, ("kinetics",)),
        Case("aknet", "unknown root option", ["--verbose"], USAGE, ("--verbose",)),
        Case("aknet", "option before the subcommand", ["--json", "backbones"], USAGE, ("--json",)),
        Case("aknet", "an empty-string subcommand", [""], USAGE),
    ]
    for argv in (["backbones"], ["backbones", "--json"], ["ablate", "--help"], ["--version"],
                 ["flops", "--backbone", "resnet18", "--size", "32", "--frames", "2", "--json"]):
        cases.append(Case("aknet", f"{' '.join(argv)} | head, head gone", argv, QUIET, run=run_reader_gone))
    for cmd in ("backbones", "train", "eval", "prepare sthv1", "prepare list", "visualize", "export", "ablate"):
        cases.append(Case("aknet", f"{cmd}: unknown option", [*cmd.split(), "--no-such-option"], USAGE, ("--no-such-option",)))
    return cases


def backbones_cases(fx: Inputs) -> list[Case]:
    broken_env = {"PYTHONPATH": fx["plugin_site"] + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return [
        Case("backbones", "plain listing", ["backbones"], OK, check=stdout_has("tsm_resnet50", "tdn_resnet18")),
        Case("backbones", "--json", ["backbones", "--json"], OK, check=stdout_json(_lists_built_ins)),
        Case("backbones", "stray argument", ["backbones", "resnet18"], USAGE, ("resnet18",)),
        Case("backbones", "--json given a value", ["backbones", "--json=yes"], USAGE, ("--json",)),
        Case("backbones", "misspelt --json", ["backbones", "--jsn"], USAGE, ("--jsn",)),
        Case("backbones", "a broken third-party plugin is listed", ["backbones", "--json"], OK,
             check=stdout_json(_lists_broken_plugin), env=broken_env),
        Case("backbones", "a broken plugin used by flops", ["flops", "--backbone", "broken_net", "--size", "32", "--frames", "2"],
             CLEAN, ("broken_net",), env=broken_env),
        Case("backbones", "a broken plugin used by bench", ["bench", "--backbone", "broken_net", "--size", "32",
                                                            "--frames", "2", "--runs", "1"], CLEAN, ("broken_net",), env=broken_env),
        Case("backbones", "a broken plugin in a config", ["train", fx["cfg_good"], "--set", "model.backbone=broken_net",
                                                          "--work-dir", "w"], CLEAN, ("broken_net",), env=broken_env),
    ]


# ---------------------------------------------------------------------------- the tests
@each_case(root_cases)
def test_aknet(case: Case, run_case) -> None:
    run_case(case)


@pytest.mark.usefixtures("misc", "datasets", "configs", "plugin")
@each_case(backbones_cases)
def test_backbones(case: Case, run_case) -> None:
    run_case(case)

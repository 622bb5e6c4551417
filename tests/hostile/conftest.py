"""Session fixtures of the hostile sweep: the aknet executable, the scratch inputs (one fixture
per build step of :mod:`.inputs`, so a session builds only what its selected tests read), the
environment every case runs in, and ``run_case``, which runs a case in its own ``tmp_path`` and
asserts on the outcome."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable

import pytest

from .case import Case, assert_as_expected
from .inputs import Inputs
from .parametrize import case_named
from .runner import changes, fingerprint, run_plain
from .summary import CommandSummary

#: Variables that would make a case part of someone else's distributed job.
_FOREIGN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "TORCHELASTIC_RESTART_COUNT", "CUDA_VISIBLE_DEVICES")


def pytest_addoption(parser: pytest.Parser) -> None:
    # Given on the command line only where tests/hostile is too (pytest reads the options of a
    # conftest it loads before collecting: `pytest -m hostile tests/hostile --hostile-inputs DIR`).
    group = parser.getgroup("hostile", "the hostile-input sweep (tests/hostile)")
    group.addoption("--hostile-inputs", metavar="DIR", default=None,
                    help="build the sweep's scratch inputs in DIR and reuse them in later sessions "
                         "[default: a fresh folder under pytest's temporary directory]")
    group.addoption("--aknet", metavar="PATH", default=None,
                    help="the aknet executable the sweep runs [default: the one beside this Python, else PATH's]")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CommandSummary(), "hostile-summary")


# ---------------------------------------------------------------------------- the session
@pytest.fixture(scope="session")
def aknet(pytestconfig: pytest.Config) -> str:
    chosen = pytestconfig.getoption("aknet")
    if chosen:
        return chosen
    beside = Path(sys.executable).with_name("aknet")
    found = str(beside) if beside.is_file() else shutil.which("aknet")
    if not found:
        pytest.fail("no aknet executable beside this Python or on PATH; pass --aknet", pytrace=False)
    return found


@pytest.fixture(scope="session")
def inputs(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory, aknet: str):
    """The scratch inputs (``fx`` in the case tables); at the end of the session, every file a
    build step made must still hold the bytes it was built with."""
    kept = pytestconfig.getoption("hostile_inputs")
    root = Path(kept).resolve() if kept else tmp_path_factory.mktemp("inputs", numbered=False)
    fx = Inputs(root, aknet)
    yield fx
    changed = fx.changed_since_built()
    if changed:
        pytest.fail(f"the sweep changed the user's files (SHA-256 when built and at the end): {', '.join(changed[:10])}",
                    pytrace=False)


# One fixture per build step; a step's parameters are the steps it reads (inputs.DEPENDS).
@pytest.fixture(scope="session")
def misc(inputs: Inputs) -> None:
    inputs.build("misc")


@pytest.fixture(scope="session")
def datasets(inputs: Inputs) -> None:
    inputs.build("datasets")


@pytest.fixture(scope="session")
def prepared_variants(inputs: Inputs, datasets: None) -> None:
    inputs.build("prepared_variants")


@pytest.fixture(scope="session")
def sthv1_releases(inputs: Inputs, datasets: None) -> None:
    inputs.build("sthv1_releases")


@pytest.fixture(scope="session")
def sthv2_releases(inputs: Inputs, datasets: None) -> None:
    inputs.build("sthv2_releases")


@pytest.fixture(scope="session")
def diving48_releases(inputs: Inputs, datasets: None) -> None:
    inputs.build("diving48_releases")


@pytest.fixture(scope="session")
def user_trees(inputs: Inputs) -> None:
    inputs.build("user_trees")


@pytest.fixture(scope="session")
def checkpoints(inputs: Inputs, datasets: None) -> None:
    inputs.build("checkpoints")


@pytest.fixture(scope="session")
def configs(inputs: Inputs) -> None:
    inputs.build("configs")


@pytest.fixture(scope="session")
def videos(inputs: Inputs) -> None:
    inputs.build("videos")


@pytest.fixture(scope="session")
def label_files(inputs: Inputs) -> None:
    inputs.build("label_files")


@pytest.fixture(scope="session")
def plugin(inputs: Inputs) -> None:
    inputs.build("plugin")


@pytest.fixture(scope="session")
def reference_eval(inputs: Inputs, datasets: None, checkpoints: None) -> None:
    inputs.build("reference_eval")


@pytest.fixture(scope="session")
def case_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The user's environment, minus distributed-job variables, with an empty torch hub cache
    (so that pretrained weights are as offline as on a cluster's compute node) and no GPU (so
    that the answers are the same on a machine with one)."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch_home", numbered=False))
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# ---------------------------------------------------------------------------- one case
@pytest.fixture
def case(request: pytest.FixtureRequest, inputs: Inputs) -> Case:
    """The case a test is parametrized with (parametrize.each_case), laid out at the real inputs."""
    table, name = request.param
    found = case_named(table, name, inputs)
    # for the per-command summary (summary.py)
    request.node.user_properties += [("command", found.command), ("expect", found.expect)]
    return found


@pytest.fixture
def run_case(inputs: Inputs, case_env: dict[str, str], tmp_path: Path) -> Callable[[Case], None]:
    """Run a case in ``tmp_path`` (its working directory), with the inputs fingerprinted before and
    after, and assert that it did what it expects."""
    def run(case: Case) -> None:
        if case.setup:
            case.setup(tmp_path)
        env = {**case_env, **case.env}
        before = fingerprint(inputs.root)
        outcome = (case.run or run_plain)(case, tmp_path, env, inputs.aknet)
        assert_as_expected(case, outcome, changes(before, fingerprint(inputs.root)), tmp_path)
    return run

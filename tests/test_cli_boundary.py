"""The command boundary itself (found by the hostile sweep, tests/hostile):

* a bug keeps its own traceback: the boundary must not replace it with one of its own, and an
  end of input (Typer's ``Abort``) is one line;
* a broken third-party plugin (its entry point names a module that does not exist) is one line
  naming the package that registered it, wherever a backbone is built; a built-in's failure
  stays a traceback;
* a reader that left (``aknet ... | head``) ends the run quietly.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from aknet_cli import _registry
from aknet_cli.cli._common import OneLineErrors, domain_errors
from aknet_cli.cli.main import app
from aknet_cli.exceptions import PluginError
from cli_helpers import assert_one_line_error

runner = CliRunner()


def _app_raising(exc: BaseException) -> typer.Typer:
    tiny = typer.Typer(cls=OneLineErrors)

    @tiny.command("boom")
    @domain_errors
    def boom() -> None:
        raise exc

    @tiny.command("other")
    def other() -> None:  # a second command keeps "boom" a subcommand
        pass

    return tiny


def test_a_bug_keeps_its_own_exception():
    result = runner.invoke(_app_raising(RuntimeError("the real bug")), ["boom"])
    assert isinstance(result.exception, RuntimeError), repr(result.exception)
    assert str(result.exception) == "the real bug"


def test_end_of_input_is_one_line_with_exit_status_1():
    result = runner.invoke(_app_raising(EOFError()), ["boom"])
    assert result.exit_code == 1
    assert_one_line_error(result, "aborted")


@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    """A distribution whose ``aknet.backbones`` entry point names a module nobody installed."""
    info = tmp_path / "broken_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[aknet.backbones]\nbroken_net = no_such_module_anywhere.nets:broken_net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "broken_net"


def test_a_broken_plugin_is_a_plugin_error_naming_its_package(broken_plugin):
    assert broken_plugin in _registry.backbone_names()  # listing never imports it
    with pytest.raises(PluginError, match=r"broken-plugin 0\.3.*no_such_module_anywhere.*reinstall or uninstall"):
        _registry.create_backbone(broken_plugin, num_classes=2, num_segments=2)
    with pytest.raises(ImportError):  # still what a library user would catch
        _registry.create_backbone(broken_plugin, num_classes=2, num_segments=2)


@pytest.mark.parametrize("argv", [
    ["flops", "--backbone", "broken_net", "--size", "32", "--frames", "2"],
    ["bench", "--backbone", "broken_net", "--size", "32", "--frames", "2", "--runs", "1"],
])
def test_a_broken_plugin_is_one_line_from_the_cli(broken_plugin, argv):
    assert_one_line_error(runner.invoke(app, argv), "broken_net", "broken-plugin")


def test_a_built_in_that_fails_to_import_keeps_its_traceback(monkeypatch):
    real = _registry._entry_points()["resnet18"]

    class Failing:
        name, value, dist = real.name, real.value, real.dist

        def load(self):
            raise ImportError("our own bug")

    monkeypatch.setattr(_registry, "_entry_points", lambda: {"resnet18": Failing()})
    with pytest.raises(ImportError, match="our own bug") as caught:
        _registry.get_backbone_factory("resnet18")
    assert not isinstance(caught.value, PluginError)


@pytest.mark.parametrize("argv", [["backbones", "--json"], ["backbones"]])
def test_a_reader_that_left_ends_the_run_quietly(argv):
    """`aknet backbones --json | head -c1` once head has gone: no "Exception ignored", status 1
    (what Click gives a broken pipe met mid-command), with stdout buffered as in a user's shell."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before the first write
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    try:
        result = subprocess.run([sys.executable, "-m", "aknet_cli", *argv], stdout=write_end, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1

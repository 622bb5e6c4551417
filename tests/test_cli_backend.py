"""--backend on the commands: a decoder this machine lacks is one line, before any work."""

from cli_helpers import assert_one_line_error
from data_fixtures import make_sthv2
from typer.testing import CliRunner

from aknet_cli.cli.main import app
from aknet_cli.data import torchcodec_io

runner = CliRunner()


def _without_ffmpeg(monkeypatch):
    fake = {major: tuple(name + ".absent" for name in names) for major, names in torchcodec_io.FFMPEG_SONAMES.items()}
    monkeypatch.setattr(torchcodec_io, "FFMPEG_SONAMES", fake)
    torchcodec_io.ffmpeg_major.cache_clear()


def test_prepare_with_torchcodec_but_no_ffmpeg_is_one_line_before_any_work(tmp_path, monkeypatch):
    root = make_sthv2(tmp_path / "raw")
    _without_ffmpeg(monkeypatch)
    try:
        result = runner.invoke(app, ["prepare", "sthv2", "--root", str(root), "--out", str(tmp_path / "ds"),
                                     "--backend", "torchcodec"])
        if "not installed" in result.output:  # torchcodec itself is absent here: that line instead
            assert_one_line_error(result, "pip install 'aknet[torchcodec]'")
        else:
            assert_one_line_error(result, "torchcodec", "libavcodec", "apt-get install ffmpeg")
        assert result.exit_code == 1 and not (tmp_path / "ds").exists()
        # The default does not need FFmpeg: it falls back and prepares the release.
        ok = runner.invoke(app, ["prepare", "sthv2", "--root", str(root), "--out", str(tmp_path / "ds2"), "--json"])
        assert ok.exit_code == 0, ok.output
    finally:
        monkeypatch.undo()
        torchcodec_io.ffmpeg_major.cache_clear()


def test_unknown_backend_lists_the_choices(tmp_path):
    root = make_sthv2(tmp_path / "raw")
    result = runner.invoke(app, ["prepare", "sthv2", "--root", str(root), "--out", str(tmp_path / "ds"),
                                 "--backend", "opencv"])
    assert_one_line_error(result, "opencv", "torchcodec, decord, pyav")

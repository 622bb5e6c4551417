"""The one progress module (aknet_cli._progress): a bar that keeps its numbers at 80 columns,
plain lines without escape codes where the console is not a terminal, and its settings."""

from __future__ import annotations

import io
import re

import pytest
from rich.cells import cell_len
from rich.console import Console

from aknet_cli._progress import MIN_BAR, LoopBar, StepProgress, fit_parts, plain_output, settings
from aknet_cli.exceptions import ConfigError

TRAIN_STATS = {"loss": 5.396, "top1": 0.4, "lr": 0.01, "rate": 19.9, "wait": 0.01, "eta": 1620.0,
               "eta_run": 13_000.0, "mem": 10.2}


def _terminal(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def _bar_lines(progress: StepProgress, width: int) -> list[str]:
    """What the live display draws, as text, on a terminal ``width`` columns wide."""
    out = Console(file=io.StringIO(), width=width, color_system=None)
    out.print(progress._bar.make_tasks_table(progress._bar.tasks))
    return [line.rstrip() for line in out.file.getvalue().splitlines()]


def _epoch_bar(width: int, stats: dict | None = None) -> list[str]:
    progress = StepProgress("epoch 1/8", 1695, console=_terminal(width), reads_stats=True)
    for _ in range(119):
        progress.update()
    progress.update(**(stats if stats is not None else TRAIN_STATS))
    return _bar_lines(progress, width)


@pytest.mark.parametrize("width", [80, 120])
def test_the_bar_keeps_step_count_rate_and_eta_at_80_and_120_columns(width):
    """The issue's 80-column bar read `epoch 1/8 ━━━ 1… loss 5.396 … eta 1:0…`: the numbers
    that say how far and how fast were the ones cut."""
    lines = _epoch_bar(width)
    assert all(cell_len(line) <= width for line in lines), lines
    main = lines[0]
    assert "epoch 1/8" in main and " 120/1695 " in main and "19.9 clips/s" in main and "eta 0:27:00" in main
    assert "…" not in "".join(lines)
    # the statistics, on their own line when they do not fit beside the numbers
    text = " ".join(lines)
    for part in ("loss 5.3960", "top-1 0.4%", "lr 0.01", "data wait 1%", "run eta 3:36:40", "mem 10.2 GiB"):
        assert part in text, lines


def test_before_its_first_statistics_a_training_bar_has_no_rate_rather_than_steps_per_second():
    progress = StepProgress("epoch 1/8", 1695, console=_terminal(80), reads_stats=True)
    progress.update()
    assert "- clips/s" in _bar_lines(progress, 80)[0]


def test_at_120_columns_short_statistics_share_the_line_and_the_elapsed_time_stays():
    lines = _epoch_bar(120, {"loss": 1.2, "top1": 50.0, "rate": 19.9})
    assert len(lines) == 1 and "loss 1.2000" in lines[0] and re.search(r" \d:\d\d:\d\d eta ", lines[0]), lines


def test_narrower_terminals_give_up_the_bar_and_the_description_before_the_numbers():
    for width in (60, 40):
        lines = _epoch_bar(width)
        assert all(cell_len(line) <= width for line in lines), lines
        assert "120/1695" in lines[0] and "clips/s" in lines[0] and "eta 0:27:00" in lines[0], lines


def test_fit_parts_gives_way_in_order():
    widths = {"description": 9, "count": 9, "rate": 12, "elapsed": 7, "eta": 11}
    parts, bar, inline = fit_parts(widths, 200, bar_width=24, stats=40)
    assert inline and bar == 24 and parts == widths
    parts, bar, inline = fit_parts(widths, 80, bar_width=24, stats=60)
    assert not inline and bar == 24 and "elapsed" in parts
    parts, bar, inline = fit_parts(widths, 60, bar_width=24)
    assert "elapsed" not in parts and MIN_BAR <= bar
    parts, bar, inline = fit_parts(widths, 40, bar_width=24)
    assert bar == 0 and parts["description"] < 9 and {"count", "rate", "eta"} <= set(parts)
    assert sum(parts.values()) + len(parts) - 1 <= 40


def test_plain_lines_where_the_console_is_not_a_terminal(monkeypatch):
    """A file or a pipe: one flushed line per report, with the fields a log reader greps for,
    no escape codes; nothing in between (a line every step would drown the log)."""
    monkeypatch.delenv("AKNET_LOG_SECONDS", raising=False)
    console = Console(file=io.StringIO(), width=80)
    assert plain_output(console) and not plain_output(_terminal(80))
    with StepProgress("epoch 2/8", 40, console=console, done=10, reads_stats=True) as progress:
        progress.update()
        assert console.file.getvalue() == "" and not progress.due()
        progress.update(**TRAIN_STATS)
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 1 and "\x1b" not in lines[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  epoch 2/8 \| step 12/40 \| loss 5\.3960 \| top-1 0\.4% \| "
                        r"lr 0\.01 \| 19\.9 clips/s \| data wait 1% \| elapsed 0:00:00 \| eta 0:27:00 \| "
                        r"run eta 3:36:40 \| mem 10\.2 GiB", lines[0]), lines[0]


def test_plain_lines_come_by_time_and_at_the_end(monkeypatch):
    """Without statistics (evaluation, prepare): a line at least every AKNET_LOG_SECONDS and one
    when the loop finishes; a failed loop leaves no line of its end."""
    monkeypatch.setenv("AKNET_LOG_SECONDS", "0")
    console = Console(file=io.StringIO(), width=80)
    with StepProgress("validating", 3, console=console, unit="batch") as progress:
        for _ in range(3):
            progress.update(clips=4)
    lines = console.file.getvalue().splitlines()
    assert [re.search(r"batch (\d/3)", line).group(1) for line in lines] == ["1/3", "2/3", "3/3"]
    assert all("clips/s" in line for line in lines)

    monkeypatch.setenv("AKNET_LOG_SECONDS", "3600")
    console = Console(file=io.StringIO(), width=80)
    with pytest.raises(RuntimeError), LoopBar(console, unit="clip") as bar:
        task = bar.add_task("frames sthv1", total=8)
        bar.advance(task, 3)
        raise RuntimeError
    assert console.file.getvalue() == ""


def test_control_characters_of_a_name_do_not_reach_the_log():
    console = Console(file=io.StringIO(), width=80)
    with LoopBar(console, unit="batch") as bar:
        task = bar.add_task("\x1b[31mred\udce9.pt", total=1)
        bar.advance(task)
    assert "\x1b" not in console.file.getvalue() and "?[31mred?.pt | batch 1/1" in console.file.getvalue()


def test_ablate_style_lines_in_a_terminal_too():
    console = _terminal(80)
    bar = LoopBar(console, unit="run", rate=False, plain=True)
    task = bar.add_task("ablate table vi", total=4)
    bar.update(task, advance=1, stats={})
    line = console.file.getvalue()
    assert "ablate table vi | run 1/4 | elapsed" in line and "clips/s" not in line and "\x1b" not in line


@pytest.mark.parametrize("name,value", [("AKNET_PROGRESS", "fancy"), ("AKNET_LOG_SECONDS", "-1"),
                                        ("AKNET_LOG_SECONDS", "soon"), ("AKNET_LOG_SECONDS", "inf")])
def test_bad_settings_are_refused_in_one_line(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        settings()


def test_plain_mode_is_asked_for_in_a_terminal_too(monkeypatch):
    monkeypatch.setenv("AKNET_PROGRESS", "plain")
    monkeypatch.setenv("AKNET_LOG_SECONDS", "12.5")
    assert settings() == ("plain", 12.5)
    console = _terminal(80)
    bar = LoopBar(console, unit="clip")
    assert bar.plain and bar.every_s == 12.5

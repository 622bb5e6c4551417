"""Progress of the long loops: a Rich bar in a terminal, plain lines in a log file.

One module for every long loop (training steps, evaluation batches, ``prepare``'s clips,
``bench``'s rounds, ``ablate``'s runs), below every layer that has one, so that each of them
says the same things the same way.

On a cluster ``aknet train`` runs under a scheduler or ``nohup`` with its output in a file that
people follow with ``tail -f``. A live bar needs a terminal: in a file Rich draws nothing, and a
run of hours would be silent until its first epoch ends. So where the console is not a terminal
(or with ``AKNET_PROGRESS=plain``) a loop prints plain, flushed, timestamped lines instead, with
no escape codes: at every point its caller has fresh numbers (training: every
``train.log_every`` steps), and at least every ``AKNET_LOG_SECONDS`` seconds (default 30).

In a terminal the bar keeps what says how far and how fast (the count, the rate, the ETA) at
any width: the statistics move to a second line first, then the bar narrows, the elapsed time
goes, the bar goes, and the description is cut last.
"""

from __future__ import annotations

import math
import os
import time
from datetime import timedelta
from typing import Any, Callable

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.progress import Progress, ProgressBar, Task, TaskID
from rich.table import Table
from rich.text import Text

from .exceptions import ConfigError

MODE_ENV = "AKNET_PROGRESS"
SECONDS_ENV = "AKNET_LOG_SECONDS"
MODES = ("auto", "plain")
DEFAULT_SECONDS = 30.0
#: The narrowest bar worth drawing; narrower, the cells go to the numbers.
MIN_BAR = 10

#: How each statistic a loop reports reads, in the order a line gives them.
STATS: dict[str, Callable[[Any], str]] = {
    "loss": lambda v: f"loss {v:.4f}",
    "top1": lambda v: f"top-1 {v:.1f}%",
    "lr": lambda v: f"lr {v:.3g}",
    "wait": lambda v: f"data wait {v:.0%}",
    "eta_run": lambda v: f"run eta {clock(v)}",
    "mem": lambda v: f"mem {v:.1f} GiB",
}


def settings() -> tuple[str, float]:
    """``(mode, seconds)``: ``AKNET_PROGRESS`` (auto or plain) and ``AKNET_LOG_SECONDS``.

    Raises:
        ConfigError: a value that is neither (the root command checks both before any work).
    """
    mode = os.environ.get(MODE_ENV, "").strip().lower() or "auto"
    if mode not in MODES:
        raise ConfigError(f"--progress / {MODE_ENV} is {os.environ[MODE_ENV]!r}: expected auto (a bar in a terminal, plain lines "
                          f"otherwise) or plain (plain lines always)")
    text = os.environ.get(SECONDS_ENV, "").strip()
    try:
        seconds = float(text) if text else DEFAULT_SECONDS
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"--log-seconds / {SECONDS_ENV} is {text!r}: expected a number of seconds >= 0 between two progress lines "
                          f"(0: a line at every step)")
    return mode, seconds


def plain_output(console: Console, mode: str = "auto") -> bool:
    """Whether ``console`` gets plain lines rather than a live bar: it is not a terminal (a file,
    a pipe; Jupyter draws bars), it is a dumb one (Emacs' shell), or ``mode`` asks for lines."""
    if mode == "plain":
        return True
    return not ((console.is_terminal and not console.is_dumb_terminal) or console.is_jupyter)


def clock(seconds: float | None) -> str:
    """``H:MM:SS`` (``1 day, H:MM:SS`` past a day), as Rich's time columns write it; ``-:--:--``
    when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    return str(timedelta(seconds=max(0, int(seconds))))


def rate_text(rate: float | None) -> str:
    """``19.9 clips/s``, ``12,340 clips/s``; ``- clips/s`` before there is a rate."""
    if rate is None or not math.isfinite(rate) or rate <= 0:
        return "- clips/s"
    return f"{rate:,.0f} clips/s" if rate >= 100 else f"{rate:.3g} clips/s"


def printable(text: str) -> str:
    """``text`` with control characters (an escape code in a file name) and undecodable bytes
    shown as ``?``: a progress line must not move a terminal's cursor or break a log file."""
    return "".join(c if c.isprintable() else "?" for c in text)


def line_stamp() -> str:
    """The local time a plain line starts with (runs last days: the date too)."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def write_line(console: Console, line: str) -> None:
    """``line`` on ``console``'s stream as it is (no markup, no wrapping), flushed at once so
    that ``tail -f`` sees it now."""
    stream = console.file
    stream.write(line + "\n")
    stream.flush()


# ------------------------------------------------------------------------ one task's numbers
def task_stats(task: Task) -> dict[str, Any]:
    """The statistics the loop last reported for ``task`` (training: loss, top-1, lr, ...)."""
    return task.fields.get("stats") or {}


def task_rate(task: Task) -> float | None:
    """Clips per second: the loop's own figure when it gives one (training counts the data
    wait in), else clips counted over the elapsed time (evaluation), else the task's own
    items: Rich's recent speed while running, the average once finished (the last few
    advances landing together would read tens of thousands of clips/s)."""
    stats = task_stats(task)
    if "rate" in stats:
        return stats["rate"]
    if "clips" in task.fields:
        return task.fields["clips"] / task.elapsed if task.elapsed else None
    if task.finished and task.elapsed:
        return task.completed / task.elapsed
    return task.speed


def task_elapsed(task: Task) -> float | None:
    return task.finished_time if task.finished else task.elapsed


def task_eta(task: Task) -> float | None:
    """Seconds left: the loop's own estimate when it gives one, else Rich's from the speed of
    the last 30 s, else (items slower than that: ``ablate``'s runs) the average so far."""
    stats = task_stats(task)
    if "eta" in stats:
        return stats["eta"]
    if task.time_remaining is not None:
        return task.time_remaining
    if task.completed and task.total is not None and task.elapsed:
        return task.elapsed / task.completed * max(task.total - task.completed, 0)
    return None


def count_text(task: Task) -> str:
    total = int(task.total or 0)
    return f"{int(task.completed):>{len(str(total))}}/{total}"


def stats_parts(task: Task, keys) -> list[str]:
    stats = task_stats(task)
    return [STATS[k](stats[k]) for k in keys if stats.get(k) is not None]


def plain_line(task: Task, unit: str, *, rate: bool = True) -> str:
    """One line of a log file: time, what, how far, the statistics, how fast, how long.

    ``2025-05-01 12:00:03  epoch 1/8 | step 20/1695 | loss 5.3960 | top-1 0.4% | lr 0.01 |
    19.9 clips/s | data wait 1% | elapsed 0:01:02 | eta 0:27:00 | run eta 3:40:00``
    """
    parts = [printable(task.description), f"{unit} {count_text(task).strip()}"]
    parts += stats_parts(task, ("loss", "top1", "lr"))
    parts += [rate_text(task_rate(task))] if rate else []
    parts += stats_parts(task, ("wait",))
    parts += [f"elapsed {clock(task_elapsed(task))}", f"eta {clock(task_eta(task))}"]
    parts += stats_parts(task, ("eta_run", "mem"))
    return f"{line_stamp()}  " + " | ".join(parts)


# ------------------------------------------------------------------------ fitting a bar line
def fit_parts(widths: dict[str, int], width: int, *, bar_width: int,
              stats: int = 0) -> tuple[dict[str, int], int, bool]:
    """Which parts of a bar line fit ``width`` cells, and how wide the bar is.

    Args:
        widths: the cells of each text part (``description``, ``count``, ``rate``, ``elapsed``,
            ``eta``), one cell apart on the line.
        bar_width: the widest bar drawn.
        stats: the cells of the statistics, 0 for none.

    Returns:
        ``(parts, bar, stats_inline)``: the parts kept with their widths (the description may
        be cut), the bar's width (0: none) and whether the statistics share the line (else
        they go on a line of their own).
    """
    def room(parts: dict[str, int], extra: int = 0) -> int:  # cells left for the bar and its gap
        return width - sum(parts.values()) - (len(parts) - 1) - extra - 1

    parts = dict(widths)
    if stats and room(parts, stats + 1) >= MIN_BAR:
        return parts, min(bar_width, room(parts, stats + 1)), True
    # the statistics have a line of their own; then the elapsed time and the bar give way
    if room(parts) < MIN_BAR:
        parts.pop("elapsed", None)
    if room(parts) >= MIN_BAR:
        return parts, min(bar_width, room(parts)), False
    over = -(room(parts) + 1)  # cells still missing without a bar
    if over > 0 and "description" in parts:
        parts["description"] -= over
        if parts["description"] < 4:  # a stub says nothing: the numbers get the cells
            parts.pop("description")
    return parts, 0, False


def crop_stats(parts: list[str], width: int, gap: str = "  ") -> str:
    """The statistics that fit ``width`` cells, the later (less important) ones dropped first."""
    while parts and cell_len(gap.join(parts)) > width:
        parts = parts[:-1]
    return gap.join(parts)


class LoopBar(Progress):
    """A Rich :class:`~rich.progress.Progress` that fits its terminal, or prints plain lines.

    Used as Rich's own (``add_task``, ``advance``, ``update``). A task's statistics are the
    ``stats`` field (a dict: ``loss``, ``top1``, ``lr``, ``wait``, ``rate``, ``eta``,
    ``eta_run``, ``mem``); a ``clips`` field counts clips when the items are batches.

    In plain mode a task prints a line when ``stats`` are given, when it finishes, and, unless
    ``reads_stats`` (the caller then asks :meth:`due` and gives fresh statistics), at least
    every ``AKNET_LOG_SECONDS`` seconds. With ``console=None`` it shows nothing.

    Args:
        unit: what a task counts, singular (``step``, ``batch``, ``clip``, ``round``).
        rate: show clips/s (not for loops whose items are not clips).
        keep_when_done: a finished bar stays on screen (it is part of the result); an error
            takes it away, so that the error's one line is all a failed run leaves.
        plain: lines in a terminal too (a loop whose items draw bars of their own).
    """

    def __init__(self, console: Console | None, *, unit: str, rate: bool = True, bar_width: int = 24,
                 transient: bool = True, keep_when_done: bool = False, reads_stats: bool = False,
                 plain: bool = False) -> None:
        mode, self.every_s = settings()
        self.enabled = console is not None
        console = console if console is not None else Console(stderr=True)
        self.plain = self.enabled and (plain or plain_output(console, mode))
        super().__init__(console=console, transient=transient and not keep_when_done,
                         disable=self.plain or not self.enabled)
        self.unit, self.show_rate, self.bar_width = unit, rate, bar_width
        self.keep_when_done, self.reads_stats = keep_when_done, reads_stats
        self._last_line: dict[TaskID, float] = {}
        self._printed: dict[TaskID, float] = {}

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.keep_when_done:
            self.live.transient = True
        super().__exit__(exc_type, exc, tb)

    def add_task(self, description: str, *args, **kwargs) -> TaskID:
        task_id = super().add_task(description, *args, **kwargs)
        self._last_line[task_id] = time.monotonic()
        return task_id

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._after_change(task_id, fresh="stats" in kwargs)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._after_change(task_id, fresh=False)

    def due(self, task_id: TaskID) -> bool:
        """A plain line is due by time (``AKNET_LOG_SECONDS`` since the last one); never for a bar."""
        return self.plain and time.monotonic() - self._last_line[task_id] >= self.every_s

    def _after_change(self, task_id: TaskID, *, fresh: bool) -> None:
        if not self.plain:
            return
        task = self._tasks[task_id]
        newly_done = task.finished and self._printed.get(task_id) != task.completed
        if fresh or newly_done or (not self.reads_stats and self.due(task_id)):
            write_line(self.console, plain_line(task, self.unit, rate=self.show_rate))
            self._last_line[task_id], self._printed[task_id] = time.monotonic(), task.completed

    # -------------------------------------------------------------------- the bar
    def make_tasks_table(self, tasks) -> Table:
        """Each visible task's line, fitted to the console's width, and its statistics' line
        when they do not fit beside it."""
        table = Table.grid()
        for task in tasks:
            if task.visible:
                for row in self._rows(task, self.console.width):
                    table.add_row(row)
        return table

    def _rows(self, task: Task, width: int) -> list[RenderableType]:
        cells = {"description": Text(printable(task.description), style="bold"),
                 "count": Text(count_text(task), style="green"),
                 "rate": Text(rate_text(task_rate(task)), style="red") if self.show_rate else None,
                 "elapsed": Text(clock(task_elapsed(task)), style="yellow"),
                 "eta": Text(f"eta {clock(task_eta(task))}", style="cyan")}
        cells = {k: v for k, v in cells.items() if v is not None}
        stats = stats_parts(task, ("loss", "top1", "lr", "wait", "eta_run", "mem"))
        stats_text = "  ".join(stats)
        parts, bar, inline = fit_parts({k: v.cell_len for k, v in cells.items()}, width, bar_width=self.bar_width,
                                       stats=cell_len(stats_text))
        line = Table.grid(padding=(0, 1))
        row: list[RenderableType] = []
        for name in ("description", "bar", "count", "rate", "elapsed", "eta"):
            if name == "bar" and bar:
                row.append(ProgressBar(total=max(0, task.total or 0), completed=max(0, task.completed), width=bar,
                                       pulse=not task.started, animation_time=task.get_time()))
            elif name in parts:
                text = cells[name]
                text.truncate(parts[name], overflow="ellipsis")
                row.append(text)
        if inline and stats_text:
            row.append(Text(stats_text))
        for _ in row:
            line.add_column(no_wrap=True)
        line.add_row(*row)
        rows: list[RenderableType] = [line]
        if stats and not inline:
            rows.append(Text("  " + crop_stats(stats, width - 2), no_wrap=True, overflow="crop"))
        return rows


class StepProgress:
    """One task over the steps of an epoch (or the batches of an evaluation), on stderr.

    ``update(**stats)`` advances one step and, with statistics, shows them (and in a log file
    prints a line); ``clips=n`` counts the clips of a batch for the rate. A disabled one (other
    ranks, ``--quiet``) does nothing.
    """

    def __init__(self, description: str, total: int, *, enabled: bool = True, done: int = 0, unit: str = "step",
                 reads_stats: bool = False, console: Console | None = None) -> None:
        self.enabled = enabled
        console = (console or Console(stderr=True)) if enabled else None
        self._bar = LoopBar(console, unit=unit, reads_stats=reads_stats, transient=True)
        # items are steps or batches, not clips: the rate is the caller's, or from the clips it counts
        self._task = self._bar.add_task(description, total=total, completed=done, stats={}, clips=0)
        self._clips = 0

    def __enter__(self) -> "StepProgress":
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def due(self) -> bool:
        """A line is due in a log file by time: the caller should read its statistics now."""
        return self.enabled and self._bar.due(self._task)

    def update(self, advance: int = 1, *, clips: int = 0, **stats: float) -> None:
        """Advance; with stats, show them (without, the last ones shown stay)."""
        fields: dict[str, Any] = {}
        if clips:
            self._clips += clips
            fields["clips"] = self._clips
        if stats:
            fields["stats"] = stats
        self._bar.update(self._task, advance=advance, **fields)

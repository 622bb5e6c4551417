"""Rich progress bars for training and evaluation: rate, data-wait share and ETA in view."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class StepProgress:
    """One bar over the steps of an epoch (or the batches of an evaluation).

    ``update(**stats)`` advances one step and shows the stats that were given: ``loss``,
    ``top1`` (running, %), ``rate`` (clips/s) and ``wait`` (share of time spent waiting for
    data). A disabled bar (other ranks, ``--quiet``) does nothing.
    """

    def __init__(self, description: str, total: int, *, enabled: bool = True, done: int = 0) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True, disable=not enabled,
        )
        self._task = self._progress.add_task(description, total=total, completed=done, stats="")

    def __enter__(self) -> "StepProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def update(self, advance: int = 1, **stats: float) -> None:
        """Advance; with stats, show them (without, the last ones shown stay)."""
        if not stats:
            self._progress.update(self._task, advance=advance)
            return
        labels = {"loss": ("loss", "{:.3f}"), "top1": ("top-1", "{:.1f}%"), "rate": ("", "{:.1f} clips/s"),
                  "wait": ("data wait", "{:.0%}")}
        text = "  ".join(f"{labels[k][0]} {labels[k][1].format(v)}".strip() for k, v in stats.items() if k in labels)
        self._progress.update(self._task, advance=advance, stats=text)

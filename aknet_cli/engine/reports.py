"""What a person reads after training or evaluation: CSV tables and PNG plots, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._atomic import atomic_output
from ..data.atomic import write_csv
from ..exceptions import ConfigError

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_cls", "train_aux", "train_sparsity", "train_top1",
                  "val_top1", "val_top5", "clips_per_s", "data_wait", "seconds")


#: How numbers are written in the tables a person reads (6 significant digits).
FLOAT_FORMAT = "%.6g"


def write_metrics(history: list[dict[str, Any]], path: Path) -> None:
    """``metrics.csv``: one row per epoch (eq. 16's terms are empty for stage 1)."""
    write_csv(path, pd.DataFrame(history, columns=list(METRIC_COLUMNS)), float_format=FLOAT_FORMAT)


def pyplot():
    """matplotlib's pyplot on the Agg backend: plots are files, no display is needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def atomic_savefig(fig, path: Path, *, dpi: int = 120, option: str = "--plot") -> None:
    """Save ``fig`` as a PNG at ``path`` atomically (the one writer of every plot we make).

    ``option`` names the CLI option in the error a wrong file name raises.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"{option} expects a .png file name, got {path}")
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def _subplots(*args, **kwargs):
    plt = pyplot()
    return plt, plt.subplots(*args, **kwargs)


def save_figure(fig, path: Path) -> None:
    """PNG at the reports' resolution, written atomically; the figure is closed."""
    atomic_savefig(fig, path, dpi=110)
    pyplot().close(fig)


def write_curves(history: list[dict[str, Any]], path: Path, *, title: str = "",
                 intervals: Sequence[dict[str, Any]] = ()) -> None:
    """``curves.png``: the loss (and its eq. 16 terms) and top-1 per epoch; with the run's
    per-interval records (``steps.jsonl``), the loss of every log interval behind them, at the
    fraction of the epoch it ended (epoch ``e``'s row is plotted at ``e``, where it ended)."""
    plt, (fig, (ax_loss, ax_acc)) = _subplots(1, 2, figsize=(10, 3.6))
    frame = pd.DataFrame(history)
    points = [r for r in intervals if r.get("loss") is not None and r.get("steps")]
    if points:
        ax_loss.plot([r["epoch"] - 1 + r["step"] / r["steps"] for r in points], [r["loss"] for r in points],
                     lw=0.8, alpha=0.45, color="tab:gray", label="loss per log interval")
    keys = [("train_loss", "loss")]
    if "train_aux" in frame and frame["train_aux"].notna().any():  # stage 2: eq. 16's terms too
        keys += [("train_cls", "CE(y_cls)"), ("train_aux", "CE(y_aux)"), ("train_sparsity", "r_e")]
    for key, label in keys:
        ax_loss.plot(frame["epoch"], frame[key], marker="o", ms=3, label=label)
    ax_loss.set_xlabel("epoch"), ax_loss.set_ylabel("training loss"), ax_loss.legend(fontsize=8)
    ax_acc.plot(frame["epoch"], frame["train_top1"], marker="o", ms=3, label="train top-1")
    if frame["val_top1"].notna().any():
        ax_acc.plot(frame["epoch"], frame["val_top1"], marker="s", ms=3, label="val top-1")
        ax_acc.plot(frame["epoch"], frame["val_top5"], ls="--", label="val top-5")
    ax_acc.set_xlabel("epoch"), ax_acc.set_ylabel("accuracy (%)"), ax_acc.set_ylim(0, 100), ax_acc.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)


def write_per_class_plot(per_class: dict[str, pd.DataFrame], path: Path) -> None:
    """A Fig. 4-style bar plot of per-class accuracy; several models side by side per class."""
    names = list(per_class)
    classes = per_class[names[0]]["class"].tolist()
    height = max(3.0, 0.22 * len(classes) + 1.0)
    plt, (fig, ax) = _subplots(figsize=(8, height))
    width = 0.8 / len(names)
    ys = np.arange(len(classes))
    for i, name in enumerate(names):
        acc = per_class[name]["accuracy"].to_numpy()
        ax.barh(ys + (i - (len(names) - 1) / 2) * width, acc, height=width, label=name)
    ax.set_yticks(ys, [c if len(c) < 48 else c[:45] + "…" for c in classes], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("top-1 accuracy per class (%)"), ax.set_xlim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def write_confusion_plot(matrix: np.ndarray, classes: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix (rows: true class, columns: predicted)."""
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    side = max(4.0, 0.25 * len(classes) + 2)
    plt, (fig, ax) = _subplots(figsize=(side, side))
    image = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1)
    if len(classes) <= 60:
        short = [c if len(c) < 32 else c[:29] + "…" for c in classes]
        ax.set_xticks(range(len(classes)), short, rotation=90, fontsize=6)
        ax.set_yticks(range(len(classes)), short, fontsize=6)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    save_figure(fig, path)

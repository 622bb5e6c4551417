"""Plots of the analysis commands (matplotlib, Agg backend, PNGs written atomically)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping

from ..engine.reports import atomic_savefig, pyplot
from ..exceptions import ConfigError, DataError
from .flops import SPLITS, count


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of an accuracy CSV: ``model`` or ``backbone``, ``split``, ``top1``, optional ``gflops``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"results file not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        if not ({"model", "backbone"} & cols) or not {"split", "top1"} <= cols:
            raise DataError(f"{path}: need columns model (or backbone), split, top1 [, gflops]; got {sorted(cols)}")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                rows.append({
                    "backbone": (r.get("backbone") or r.get("model") or "").strip(),
                    "split": (r.get("split") or "none").strip() or "none",
                    "top1": float(r["top1"]),
                    "gflops": float(r["gflops"]) if (r.get("gflops") or "").strip() else None,
                    "label": (r.get("label") or r.get("model") or "").strip(),
                })
            except ValueError as exc:
                raise DataError(f"{path} line {i}: {exc}") from None
    if not rows:
        raise DataError(f"{path} has no rows")
    return rows


def plot_splits(path: Path, backbones: list[str], *, alpha: float = 0.3, frames: int = 8, size: int = 224,
                num_classes: int = 174, options: Mapping[str, Any] | None = None,
                results: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Fig. 5-style plot. Without ``results``: GFLOPs of each split beside the plain backbone,
    grouped by backbone. With ``results``: top-1 against GFLOPs (counted where the CSV has none).

    Returns the plotted points.
    """
    plt = pyplot()

    def gfl(backbone: str, split: str) -> float:
        return count(backbone, split=split, alpha=alpha, frames=frames, size=size, num_classes=num_classes,
                     options=options).gflops

    points: list[dict[str, Any]] = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if results is None:
        splits = ("res2", "res3", "res4", "none")
        width = 0.8 / len(backbones)
        for j, bb in enumerate(backbones):
            vals = [gfl(bb, s) for s in splits]
            xs = [i + (j - (len(backbones) - 1) / 2) * width for i in range(len(splits))]
            bars = ax.bar(xs, vals, width, label=bb)
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
            points += [{"backbone": bb, "split": s, "gflops": v} for s, v in zip(splits, vals)]
        ax.set_xticks(range(len(splits)), [f"AK-Net ({s})" for s in splits[:-1]] + ["plain backbone"])
        ax.set_ylabel(f"GFLOPs per clip ({frames}x{size}²)")
        ax.set_title(f"AK-Net GFLOPs by separating layer (α={alpha})")
    else:
        for r in results:
            if r["split"] not in SPLITS:
                raise DataError(f"results: unknown split {r['split']!r}; use one of {', '.join(SPLITS)}")
            g = r["gflops"] if r["gflops"] is not None else gfl(r["backbone"], r["split"])
            points.append({**r, "gflops": g})
        for bb in sorted({p["backbone"] for p in points}):
            mine = sorted((p for p in points if p["backbone"] == bb and p["split"] != "none"), key=lambda p: p["gflops"])
            if mine:
                ax.plot([p["gflops"] for p in mine], [p["top1"] for p in mine], "o-", label=f"AK-Net on {bb}")
                for p in mine:
                    ax.annotate(p["split"], (p["gflops"], p["top1"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
            plain = [p for p in points if p["backbone"] == bb and p["split"] == "none"]
            if plain:
                ax.plot([p["gflops"] for p in plain], [p["top1"] for p in plain], "s", label=plain[0].get("label") or f"{bb} (plain)")
        ax.set_xlabel(f"GFLOPs per clip ({frames}x{size}²)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title("Accuracy vs GFLOPs by separating layer")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    try:
        atomic_savefig(fig, path)
    finally:
        plt.close(fig)
    return points




def plot_bench(path: Path, result: dict[str, Any]) -> None:
    """``aknet bench --plot``: per split, AK-Net's latency ratio beside F's (the floor) and the
    FLOPs ratio, one panel per batch size."""
    plt = pyplot()
    rows = [r for r in result["rows"] if r["split"] != "none"]
    batches = sorted({r["batch"] for r in rows})
    if not rows:
        raise ConfigError("--plot needs at least one AK-Net split in --split")
    fig, axes = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4), squeeze=False)
    series = (("latency_ratio", "AK-Net latency / backbone"), ("floor_ratio", "F alone (floor)"),
              ("flops_ratio", "AK-Net FLOPs / backbone"))
    for ax, b in zip(axes[0], batches):
        mine = [r for r in rows if r["batch"] == b]
        width = 0.8 / len(series)
        for j, (key, label) in enumerate(series):
            xs = [i + (j - 1) * width for i in range(len(mine))]
            bars = ax.bar(xs, [r[key] or 0.0 for r in mine], width, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1.3 * max([1.0] + [r[k] or 0.0 for r in mine for k, _ in series]))
        ax.set_xticks(range(len(mine)), [r["split"] for r in mine])
        ax.set_ylabel("ratio to the plain backbone")
        ax.set_title(f"batch {b}")
        ax.grid(alpha=0.3, axis="y")
    env, cfg = result["environment"], result["config"]
    fig.suptitle(f"{cfg['backbone']}, {cfg['frames']}×{cfg['size']}², {env['device']}, {env['threads']} threads",
                 fontsize=10)
    axes[0][0].legend(fontsize=8, loc="upper left")
    try:
        atomic_savefig(fig, path)
    finally:
        plt.close(fig)


def plot_ablation(path: Path, table: str, rows: list[Mapping[str, Any]], *, title: str = "") -> None:
    """An ablation table beside the paper's: top-1 vs α for Table VI, grouped bars otherwise;
    error bars are the standard deviation over training seeds (none with one seed).

    ``rows`` are ``{"name", "switches", "top1", "top1_std", "paper_top1"}`` dicts. The paper's
    numbers are on Something-Something V2 at ResNet-50; ours on the data the rows were trained
    on, so compare the shapes (which row helps, where the curve peaks), not the levels.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    value = lambda r: r["top1"] if r["top1"] is not None else float("nan")  # noqa: E731
    spread = lambda r: r.get("top1_std") or 0.0  # noqa: E731
    if table == "vi":
        for variant, marker in (("baseline", "o"), ("ours", "s")):
            mine = [r for r in rows if r["name"].startswith(variant)]
            alphas = [100 * r["switches"]["alpha"] for r in mine]
            line = ax.errorbar(alphas, [value(r) for r in mine], yerr=[spread(r) for r in mine], marker=marker,
                               capsize=3, label=f"{variant} (measured, ± std over seeds)")[0]
            ax.plot(alphas, [r["paper_top1"] for r in mine], marker=marker, ls="--", color=line.get_color(),
                    alpha=0.6, label=f"{variant} (paper, Sth-Sth V2)")
        ax.set_xlabel("point sampling rate α (%)")
    else:
        names = [r["name"] for r in rows]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["top1"] if r["top1"] is not None else 0 for r in rows], width=0.4,
               yerr=[spread(r) for r in rows], capsize=3, label="measured (± std over seeds)")
        paper_values = [r["paper_top1"] for r in rows]
        if any(v is not None for v in paper_values):
            ax.bar([x + 0.2 for x in xs], [v if v is not None else 0 for v in paper_values], width=0.4,
                   label="paper (Sth-Sth V2)", alpha=0.6)
        ax.set_xticks(list(xs), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    atomic_savefig(fig, path)
    plt.close(fig)

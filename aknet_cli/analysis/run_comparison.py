"""Rows of finished runs side by side, each paired against a reference row on the same clips
(``studies/transform_coordinate_scale.py compare``)."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from ..engine.evaluate import correct_per_clip_from_csv
from ..engine.statistics import compare_paired, mean_std


def compare(rows: list[str], reference: str) -> str:
    """A markdown table of rows ``NAME=GLOB`` (run dirs, one per seed, each with the
    ``eval_test/predictions.csv`` that ``aknet ablate`` and the studies' ``score`` leave): test top-1 per
    seed, mean ± std, and each row's paired difference to the row named ``reference`` (seeds
    averaged per clip, matched by their order for the per-seed differences)."""
    correct = {}
    for spec in rows:
        name, _, pattern = spec.partition("=")
        found = sorted(Path(p) for p in glob.glob(pattern))
        if not found:
            raise SystemExit(f"{spec!r}: no run dirs match {pattern!r}")
        correct[name] = np.stack([correct_per_clip_from_csv(d / "eval_test" / "predictions.csv") for d in found])
    if reference not in correct:
        raise SystemExit(f"--reference {reference!r} is none of the rows ({', '.join(correct)})")
    ref = correct[reference]
    lines = [f"| row | test top-1 per seed | mean ± std | − {reference} [95% CI] | per seed |", "|:--|:--|:--|:--|:--|"]
    for name, c in correct.items():
        top1 = 100 * c.mean(axis=1)
        mean, std, _ = mean_std(top1)
        diff = per_seed = "—"
        if name != reference:
            paired = compare_paired(c.mean(axis=0), ref.mean(axis=0)).as_dict()
            diff = f"{paired['difference']:+.2f} [{paired['ci'][0]:+.2f}, {paired['ci'][1]:+.2f}]"
            per_seed = ", ".join(f"{100 * (a.mean() - b.mean()):+.2f}" for a, b in zip(c, ref))
        lines.append(f"| {name} | {', '.join(f'{v:.2f}' for v in top1)} | {mean:.2f} ± {std:.2f} | {diff} | {per_seed} |")
    return "\n".join(lines)

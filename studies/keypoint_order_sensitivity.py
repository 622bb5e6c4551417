"""How much a trained model uses the layout of its points: test top-1 with that layout destroyed.

What AK-Net's full model adds over Table VI's baseline is layout: the ranking (eq. 7) puts
spatial neighbours next to each other in the 1-D sequence, and the transform (eqs. 8-10) reads
each point's coordinates. Neither can help if the stages after the split do not use layout.
This measures, without training, how much each trained model does:

* an AK-Net checkpoint is scored as trained, with its **points shuffled** (a random order per
  clip; each point keeps its own coordinates), and, where it has a position module, with its
  **coordinates shuffled** (the points keep their order, each gets another point's coordinates
  of the same clip: the clip's set of coordinates is kept, only their pairing with the features
  is lost), with the **coordinates of another clip** (the next clip of the batch, each point
  keeping its rank: the clip's own coordinates are lost entirely) and with the module
  **bypassed** (its input passed on unchanged: how much it changes at all);
* a 2-D checkpoint (stage 1) is scored as trained and with the **layout shuffled after a
  stage**: one random permutation of the ``H·W`` positions per clip, the same for every frame
  (so the temporal modules still see each position's own history).

Every variant is scored on the same clips, so each comes with its paired difference to the
trained model and a 95% paired-bootstrap interval (``engine.statistics``); rows with several
seeds average the seeds' correctness per clip first, as ``aknet ablate`` does.
The hooks themselves are :mod:`aknet_cli.analysis.layout_perturbation` (tested there).

    python studies/keypoint_order_sensitivity.py --data runs/demo/synth \\
        --aknet "ours α=0.3=runs/ablate/vi/ours_alpha_0_3" --aknet "baseline α=0.3=runs/ablate/vi/baseline_alpha_0_3" \\
        --backbone "TDN=runs/demo/tdn/best.pt" --after res2,res4 --out benchmarks/results/keypoint_order.json

An ``--aknet`` value is ``NAME=DIR``: every ``DIR/seed_*/best.pt`` is one seed of that row (a
single ``best.pt`` path is one seed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from aknet_cli.analysis.layout_perturbation import MODES, SHUFFLE_SEED, correctness
from aknet_cli.engine.statistics import compare_paired, mean_std


def seeds_of(spec: str) -> tuple[str, list[Path]]:
    name, _, where = spec.rpartition("=")
    path = Path(where)
    found = [path] if path.is_file() else sorted(path.glob("seed_*/best.pt"))
    if not name or not found:
        raise SystemExit(f"{spec!r}: expected NAME=DIR with DIR/seed_*/best.pt, or NAME=CHECKPOINT")
    return name, found


def has_position(checkpoint: Path) -> bool:
    from aknet_cli.checkpoints.reader import model_from_checkpoint

    model, _ = model_from_checkpoint(checkpoint)
    return getattr(model, "position", None) is not None


def measure_row(name: str, checkpoints: list[Path], data: str, variants: list[tuple[str, str, str | None]]) -> list[dict]:
    """Each variant of one row against its trained model, seeds averaged per clip."""
    trained = [correctness(c, data, "trained") for c in checkpoints]
    rows = [{"row": name, "variant": "as trained", "seeds": len(checkpoints),
             "top1_by_seed": [round(100 * t.mean(), 2) for t in trained]}]
    for label, mode, stage in variants:
        scored = [correctness(c, data, mode, stage) for c in checkpoints]
        paired = compare_paired(np.mean(scored, axis=0), np.mean(trained, axis=0)).as_dict()
        rows.append({"row": name, "variant": label, "seeds": len(checkpoints),
                     "top1_by_seed": [round(100 * s.mean(), 2) for s in scored],
                     "diff": paired["difference"], "diff_ci": paired["ci"]})
    for row in rows:
        mean, std, _ = mean_std(row["top1_by_seed"])
        row["top1"], row["top1_std"] = round(mean, 2), round(std, 2)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| row | variant | test top-1 per seed | mean | change [95% CI] |", "|:--|:--|:--|--:|:--|"]
    for r in rows:
        change = "—" if "diff" not in r else f"{r['diff']:+.2f} [{r['diff_ci'][0]:+.2f}, {r['diff_ci'][1]:+.2f}]"
        lines.append(f"| {r['row']} | {r['variant']} | {', '.join(f'{v:.2f}' for v in r['top1_by_seed'])} "
                     f"| {r['top1']:.2f} | {change} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="prepared dataset with a test split")
    parser.add_argument("--aknet", action="append", default=[], help="NAME=DIR of an ablation row (repeatable)")
    parser.add_argument("--backbone", action="append", default=[], help="NAME=CHECKPOINT of a 2-D model (repeatable)")
    parser.add_argument("--after", default="res2,res4", help="stages after which a 2-D model's layout is shuffled")
    parser.add_argument("--variants", default=",".join(MODES), help=f"which perturbations (of {', '.join(MODES)})")
    parser.add_argument("--out", required=True, help="JSON file for the results (a .md beside it)")
    args = parser.parse_args()
    modes = set(args.variants.split(","))
    if not modes <= set(MODES):
        parser.error(f"--variants: unknown {', '.join(sorted(modes - set(MODES)))}; choose from {', '.join(MODES)}")
    torch.set_num_threads(1)
    rows: list[dict] = []
    for spec in args.aknet:
        name, checkpoints = seeds_of(spec)
        variants = [("points shuffled", "points", None)]
        if has_position(checkpoints[0]):
            variants += [("coordinates shuffled", "coords", None), ("coordinates of another clip", "coords_clip", None),
                         ("position module bypassed", "bypass", None)]
        variants = [v for v in variants if v[1] in modes]
        rows += measure_row(name, checkpoints, args.data, variants)
        print(markdown(rows), flush=True)
    for spec in args.backbone:
        name, checkpoints = seeds_of(spec)
        variants = [(f"layout shuffled after {s}", "layout", s) for s in args.after.split(",") if "layout" in modes]
        rows += measure_row(name, checkpoints, args.data, variants)
        print(markdown(rows), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": args.data, "shuffle_seed": SHUFFLE_SEED, "rows": rows}, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows) + "\n")


if __name__ == "__main__":
    main()

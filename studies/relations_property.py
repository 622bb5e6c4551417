"""Does the layout of the points matter on a dataset? Measured on baselines, not on AK-Net.

A synthetic set built so that where things are matters (``aknet prepare synthetic --kind
relations``) has to show it on the models that do not come from AK-Net's design choices:

* **2-D vs a bag of its own points**: the 2-D TDN (stage 1) against Table VI's baseline at
  α = 100% fine-tuned from it (every res4 point, no ranking, no position: the same features
  with their layout taken away). The acceptance test: TDN − bag, paired on the same test clips,
  with a 95% interval that excludes 0, over the seeds (each seed trains its own TDN, and its bag
  from that TDN).
* **TSN on the reversed pairs**: a frame-averaging model sees the same set of frames in both
  classes of a time-reversed pair, so among its pair-class predictions that land in the right
  pair, it should be right about half the time (``within-pair`` accuracy, chance 50%).

Each model is scored on the held-out test split; accuracy is also reported per group of
classes (``layout``: told apart only by where the objects are relative to each other; ``local``:
by what happens where they touch). Trainings go through ``aknet train``'s and ``aknet
ablate``'s Python entry points: finished runs are reused, interrupted ones resume.

    python studies/relations_property.py --data runs/relations/data --work runs/relations/property \\
        --seeds 0,1,2 --out benchmarks/results/relations_property.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from aknet_cli.analysis.ablation import run_table
from aknet_cli.data import load_manifest
from aknet_cli.data.synthetic import class_names
from aknet_cli.data.synthetic_relations import LAYOUT_CLASSES
from aknet_cli.engine.config import load_config
from aknet_cli.engine.evaluate import evaluate
from aknet_cli.engine.statistics import compare_paired, mean_std
from aknet_cli.engine.trainer import run_finished, train

BAG_ROW = "baseline α=1"
STAGE1 = {"TSN": "relations_tsn_stage1", "TDN": "relations_tdn_stage1"}
STAGE2 = "relations_aknet_tdn_stage2"


def train_stage1(name: str, data: str, work: Path, seed: int, sets: list[str]) -> Path:
    """One stage-1 training (reused when finished); its ``best.pt``."""
    cfg = load_config(STAGE1[name], [f"data.dataset={data}", f"train.seed={seed}", *sets])
    if not run_finished(work, cfg.optim.epochs):
        train(cfg, work_dir=work, resume="auto" if (work / "last.pt").is_file() else None, progress=False)
    return work / "best.pt"


def train_bag(data: str, stage1: Path, work: Path, seed: int, sets: list[str]) -> Path:
    """Table VI's baseline at α = 100% from ``stage1`` (``aknet ablate --rows``); its ``best.pt``."""
    run_table("vi", data=data, config=STAGE2, stage1=stage1, seeds=(seed,), rows=(BAG_ROW,), work_dir=work,
              overrides=sets, progress=False)
    return work / "vi" / "baseline_alpha_1" / f"seed_{seed}" / "best.pt"


def predictions(checkpoint: Path, data: str) -> pd.DataFrame:
    """``predictions.csv`` of ``checkpoint`` on the test split (cached beside it)."""
    out = checkpoint.parent / "eval_test"
    path = out / "predictions.csv"
    if not (path.is_file() and path.stat().st_mtime >= checkpoint.stat().st_mtime):
        evaluate(checkpoint, data, split="test", out=out, num_workers=1, progress=False)
    return pd.read_csv(path)


def group_accuracy(table: pd.DataFrame, manifest) -> dict[str, float]:
    """Top-1 (%) per group of classes, and TSN's within-pair accuracy (chance 50%)."""
    kind_names = list(class_names("relations"))
    layout = {manifest.classes.index(kind_names[i]) for i in LAYOUT_CLASSES if kind_names[i] in manifest.classes}
    correct = table["top1"] == table["label"]
    in_layout = table["label"].isin(layout)
    out = {"layout": 100 * correct[in_layout].mean(), "local": 100 * correct[~in_layout].mean()}
    hits = total = 0
    for a, b in manifest.reversed_pairs:
        rows = table[table["label"].isin((a, b)) & table["top1"].isin((a, b))]
        hits += int((rows["top1"] == rows["label"]).sum())
        total += len(rows)
    out["within_pair"] = 100 * hits / total if total else float("nan")
    out["within_pair_n"] = total
    return out


def summarize(name: str, tables: list[pd.DataFrame], manifest) -> dict:
    top1 = [100 * float((t["top1"] == t["label"]).mean()) for t in tables]
    mean, std, _ = mean_std(top1)
    groups = [group_accuracy(t, manifest) for t in tables]
    return {"model": name, "seeds": len(tables), "top1": round(mean, 2), "top1_std": round(std, 2) if len(tables) > 1 else None,
            "top1_by_seed": [round(v, 2) for v in top1],
            **{f"{k}_top1": round(float(np.mean([g[k] for g in groups])), 2) for k in ("layout", "local", "within_pair")},
            "within_pair_by_seed": [round(g["within_pair"], 1) for g in groups]}


def correct(table: pd.DataFrame) -> np.ndarray:
    return (table["top1"] == table["label"]).to_numpy(dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a prepared synth-relations dataset")
    parser.add_argument("--work", type=Path, required=True, help="where the trainings go")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tsn-seeds", default=None, help="TSN's seeds (default: --seeds)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override for every run")
    parser.add_argument("--out", type=Path, help="JSON of the results")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    tsn_seeds = seeds if args.tsn_seeds is None else [int(s) for s in args.tsn_seeds.split(",")]
    manifest = load_manifest(Path(args.data))

    runs: dict[str, list[pd.DataFrame]] = {"TDN": [], "bag": [], "TSN": []}
    for seed in seeds:
        tdn = train_stage1("TDN", args.data, args.work / "tdn" / f"seed_{seed}", seed, args.sets)
        bag = train_bag(args.data, tdn, args.work / "bag" / f"from_tdn_{seed}", seed, args.sets)
        runs["TDN"].append(predictions(tdn, args.data))
        runs["bag"].append(predictions(bag, args.data))
    for seed in tsn_seeds:
        tsn = train_stage1("TSN", args.data, args.work / "tsn" / f"seed_{seed}", seed, args.sets)
        runs["TSN"].append(predictions(tsn, args.data))

    rows = [summarize(name, tables, manifest) for name, tables in runs.items() if tables]
    tdn, bag = (np.mean([correct(t) for t in runs[k]], axis=0) for k in ("TDN", "bag"))
    paired = compare_paired(tdn, bag).as_dict()
    per_seed = [round(100 * float(correct(a).mean() - correct(b).mean()), 2) for a, b in zip(runs["TDN"], runs["bag"])]
    result = {"data": args.data, "seeds": seeds, "rows": rows,
              "tdn_minus_bag": {**paired, "per_seed": per_seed,
                                "note": "paired bootstrap over test clips of the seed-averaged correctness"}}
    print(pd.DataFrame(rows).drop(columns=["top1_by_seed", "within_pair_by_seed"]).to_markdown(index=False))
    low, high = paired["ci"]
    print(f"\nTDN − bag of its points: {paired['difference']:+.2f} [{low:+.2f}, {high:+.2f}] (per seed {per_seed}); "
          f"the property holds: {low > 0}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

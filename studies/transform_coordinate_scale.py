"""Why no trained transform net uses the keypoints' coordinates: their scale against the features'.

The transform net (eqs. 8-10) reads ``concat(S, D')``: ``C`` feature channels and the 3
normalised coordinates of eq. 8, which lie in the unit ball. This measures how much of what the
net computes comes from each part, and retrains with the coordinates scaled up to see whether
the net then uses them.

``measure CKPT... --data DIR``: on the test split, for each AK-Net checkpoint with a rank-``r``
transform net, the mean per-point norms ``‖S_i‖`` and ``‖D'_i‖``, and the coordinates' share of

* the first layer of the point MLP: ``‖W_D D'‖ / ‖W_S S‖`` (``W = [W_S, W_D]``),
* the transform's change to the points: ``‖V_S U_Dᵀ D'‖ / ‖V_S U_Sᵀ S‖``
  (``T(S) = S + V_S (U_Sᵀ S + U_Dᵀ D')``, position.py),

how much the feature matrix ``M = V_S U_Sᵀ`` differs between the clips of a batch
(``mean ‖M_b − M̄‖ / ‖M̄‖``: 0 when the transform is the same linear map for every clip),

with the mean column norms of ``W_S`` and ``W_D`` (both start at the same default init) and,
where the run's ``converted.pt`` (its fine-tuning start) lies beside the checkpoint, how far
each has moved from it. Nothing is trained.

``retrain --config RUN/config.toml --scale K --out DIR``: the run of that config again with
``D'`` multiplied by ``K`` inside the transform net (eq. 8 has no such factor, so it is patched
here), then scored on the test split as trained, with the coordinates shuffled among the
points, with another clip's coordinates and with the transform bypassed
(``keypoint_order_sensitivity.py``'s perturbations, :mod:`aknet_cli.analysis.layout_perturbation`),
paired on the same clips. With ``--fixed-matrix`` the point MLP reads zeros,
so ``A`` is learned but the same for every clip (a control for how much its dependence on the
input matters). With ``--noise R`` the transform is replaced by random noise of relative size
``R`` while training and by nothing at test (a control for a transform that only perturbs the
points while training). ``score CKPT --scale K --data DIR [--fixed-matrix]`` scores such a run again.

``compare NAME=GLOB... --reference NAME``: those runs' test top-1 side by side, each paired
against the reference row.

The parts and patches of the transform net are :mod:`aknet_cli.analysis.transform_coordinates`,
the table :mod:`aknet_cli.analysis.run_comparison` (tested there).

    python studies/transform_coordinate_scale.py measure runs/ablate/vi/ours_alpha_0_3/seed_0/best.pt \\
        --data runs/demo/synth
    python studies/transform_coordinate_scale.py retrain --config runs/ablate/vi/ours_alpha_0_3/seed_0/config.toml \\
        --scale 50 --out runs/coord_scale/k50_s0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from aknet_cli.analysis.layout_perturbation import correctness
from aknet_cli.analysis.run_comparison import compare
from aknet_cli.analysis.transform_coordinates import coordinate_terms, noise_instead_of_transform, scaled_coordinates
from aknet_cli.engine.evaluate import correct_per_clip_from_csv
from aknet_cli.engine.config import DataConfig, load_config
from aknet_cli.engine.distributed import setup
from aknet_cli.engine.evaluate import evaluate
from aknet_cli.engine.run_loaders import build_eval_loader
from aknet_cli.checkpoints.reader import model_from_checkpoint
from aknet_cli.engine.statistics import compare_paired
from aknet_cli.engine.trainer import train
from aknet_cli.exceptions import AKNetError
from aknet_cli.models import position


@torch.no_grad()
def measure(checkpoint: str, data: str) -> dict:
    """``coordinate_terms`` over the test split, and the first layer's column norms."""
    model, description = model_from_checkpoint(checkpoint)
    model.eval()
    net = model.position
    if not isinstance(net, position.TransformNet) or net.rank is None:
        raise SystemExit(f"{checkpoint}: measure needs an AK-Net with a rank-r transform net")
    stored = description.get("data") or {}
    cfg = DataConfig(dataset=data, resize=int(stored.get("resize", 72)), crop=int(stored.get("crop", 64)),
                     resize_mode=stored.get("resize_mode", "square"), num_workers=0, pin_memory=False)
    loader = build_eval_loader(cfg, setup("cpu"), split="test", frames_per_segment=model.backbone.frames_per_segment,
                               num_segments=model.num_segments, batch_size=16)
    seen: list[dict[str, float]] = []
    hook = net.register_forward_hook(lambda mod, inputs, _out: seen.append(coordinate_terms(mod, *inputs)))
    for clips, _labels in loader:
        model(clips)
    hook.remove()
    mean = {k: float(np.mean([s[k] for s in seen])) for k in seen[0]}
    w = net.point_mlp[0].weight[:, :, 0]
    return {
        "checkpoint": checkpoint, "batches": len(seen), **moved_from_start(checkpoint, w, net.channels),
        "point_norm_S": round(mean["point_norm_S"], 3), "point_norm_D": round(mean["point_norm_D"], 3),
        "first_layer_coordinate_share": round(mean["first_D"] / mean["first_S"], 4),
        "change_coordinate_share": round(mean["change_D"] / mean["change_S"], 4),
        "change_over_points": round(mean["change_S"] / mean["points"], 4),
        "matrix_spread": round(mean["matrix_spread"], 4),
        "W_S_column_norm": round(float(w[:, :net.channels].norm(dim=0).mean()), 4),
        "W_D_column_norm": round(float(w[:, net.channels:].norm(dim=0).mean()), 4),
    }


def moved_from_start(checkpoint: str, w: torch.Tensor, channels: int) -> dict[str, float]:
    """``‖W − W₀‖ / ‖W₀‖`` of the first layer's feature and coordinate columns, against the
    ``converted.pt`` that ``aknet ablate`` leaves beside each run (its fine-tuning start)."""
    start = Path(checkpoint).parent / "converted.pt"
    if not start.is_file():
        return {}
    w0 = model_from_checkpoint(start)[0].position.point_mlp[0].weight[:, :, 0]
    return {f"W_{part}_moved": round(float((w[:, cols] - w0[:, cols]).norm() / w0[:, cols].norm()), 4)
            for part, cols in (("S", slice(None, channels)), ("D", slice(channels, None)))}


def retrain(config: str, scale: float, out: str, data: str | None, seed: int | None, fixed_matrix: bool,
            noise: float | None = None) -> dict:
    overrides = ([f"data.dataset={data}"] if data else []) + ([f"train.seed={seed}"] if seed is not None else [])
    cfg = load_config(config, overrides)
    variant = noise_instead_of_transform(noise) if noise is not None else scaled_coordinates(scale, fixed_matrix)
    with variant:
        result = train(cfg, work_dir=Path(out), progress=False)
    if noise is not None:  # the trained model has no transform left to perturb or measure
        table = evaluate(result.best_checkpoint, cfg.data.dataset, split="test", out=Path(out) / "eval_test",
                         num_workers=1, progress=False)
        return {"config": config, "seed": cfg.train.seed, "noise": noise, "test_top1": table["top1"]}
    return {"config": config, "seed": cfg.train.seed,
            **score(str(result.best_checkpoint), cfg.data.dataset, scale, fixed_matrix)}


def score(checkpoint: str, data: str, scale: float, fixed_matrix: bool = False) -> dict:
    """Test top-1 of a run trained with ``scale · D'``, as trained and with its coordinates
    destroyed (:mod:`aknet_cli.analysis.layout_perturbation`), paired on the same clips."""
    with scaled_coordinates(scale, fixed_matrix):
        out = Path(checkpoint).parent / "eval_test"  # kept, as `aknet ablate` keeps each run's
        evaluate(checkpoint, data, split="test", out=out, num_workers=1, progress=False)
        trained = correct_per_clip_from_csv(out / "predictions.csv")
        result = {"checkpoint": checkpoint, "scale": scale, "fixed_matrix": fixed_matrix, "test_top1": round(100 * trained.mean(), 2)}
        for name, mode in (("coordinates_shuffled", "coords"), ("coordinates_of_another_clip", "coords_clip"),
                           ("transform_bypassed", "bypass")):
            perturbed = correctness(Path(checkpoint), data, mode)
            paired = compare_paired(perturbed, trained).as_dict()
            result |= {f"{name}_top1": round(100 * perturbed.mean(), 2), f"{name}_change": paired["difference"],
                       f"{name}_ci": paired["ci"]}
        return result | {k: v for k, v in measure(checkpoint, data).items() if k != "checkpoint"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    look = sub.add_parser("measure")
    look.add_argument("checkpoints", nargs="+")
    look.add_argument("--data", required=True)
    look.add_argument("--scale", type=float, default=1.0, help="the K the checkpoints were trained with")
    again = sub.add_parser("retrain")
    again.add_argument("--config", required=True)
    again.add_argument("--scale", type=float, required=True)
    again.add_argument("--out", required=True)
    again.add_argument("--data", help="another dataset than the config's")
    again.add_argument("--seed", type=int, help="another train.seed than the config's")
    again.add_argument("--fixed-matrix", action="store_true", help="A the same for every clip (see scaled_coordinates)")
    again.add_argument("--noise", type=float, help="train with relative noise instead of the transform (and score without)")
    rescore = sub.add_parser("score")
    rescore.add_argument("checkpoint")
    rescore.add_argument("--scale", type=float, required=True, help="the K it was trained with")
    rescore.add_argument("--data", required=True)
    rescore.add_argument("--fixed-matrix", action="store_true", help="if it was trained with it")
    table = sub.add_parser("compare")
    table.add_argument("rows", nargs="+", help="NAME=GLOB of run dirs, one per seed")
    table.add_argument("--reference", required=True, help="the row the others are paired against")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        run_command(args)
    except AKNetError as err:  # a wrong path or a corrupt file: the library's one line, no traceback
        raise SystemExit(f"error: {err}") from None


def run_command(args: argparse.Namespace) -> None:
    if args.command == "measure":
        for checkpoint in args.checkpoints:
            with scaled_coordinates(args.scale):
                print(json.dumps(measure(checkpoint, args.data)), flush=True)
    elif args.command == "compare":
        print(compare(args.rows, args.reference))
    elif args.command == "score":
        print(json.dumps(score(args.checkpoint, args.data, args.scale, args.fixed_matrix)), flush=True)
    else:
        print(json.dumps(retrain(args.config, args.scale, args.out, args.data, args.seed, args.fixed_matrix, args.noise)), flush=True)


if __name__ == "__main__":
    main()

"""Why eq. 15's sparsity regulariser r_e costs Table IV's res2 rows points on synth-sth.

``gradients CKPT...``: on a few training batches, the gradient norms of the classification
loss ``(CE_cls + CE_aux) / 2`` and of ``r_e`` on the split features F, the heatmap module and
everything after the split, their cosine, the value of ``r_e`` and the share of saturated
heatmap values (below 0.05 or above 0.95). Nothing is trained.

``retrain --config RUN/config.toml --weight W --out DIR``: the run of that config again, with
``r_e`` scaled by ``W`` (eq. 16 has no weight on it, so the loss is patched here), then
scored on the test split.

    python studies/sparsity_reg_res2.py gradients runs/ablate/iv/q_r/seed_0/converted.pt \\
        runs/ablate/iv/q_r_r_e/seed_0/best.pt --data runs/demo/synth
    python studies/sparsity_reg_res2.py retrain --config runs/ablate/iv/q_r_r_e/seed_0/config.toml \\
        --weight 0.05 --out runs/re_weight/w0.05_s0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from aknet_cli.engine.config import DataConfig, load_config
from aknet_cli.engine.distributed import setup
from aknet_cli.engine.evaluate import evaluate
from aknet_cli.engine.run_loaders import build_eval_loader
from aknet_cli.checkpoints.reader import model_from_checkpoint
from aknet_cli.engine.trainer import train
from aknet_cli.models import loss


def _flat_grad(value: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def gradient_shares(checkpoint: str, data: str, batches: int, crop: int, resize: int) -> dict:
    """Mean over ``batches`` training batches of each part's two gradient norms and cosine."""
    model, _ = model_from_checkpoint(checkpoint)
    model.train()  # the training forward: heatmap in [0, 1] and the auxiliary head
    cfg = DataConfig(dataset=data, resize=resize, crop=crop, resize_mode="square", num_workers=0, pin_memory=False)
    loader = build_eval_loader(cfg, setup("cpu"), split="train", frames_per_segment=model.backbone.frames_per_segment,
                               num_segments=model.num_segments, batch_size=16)
    named = list(model.named_parameters())
    parts = {"F": [p for n, p in named if n.startswith("features.")],
             "heatmap": [p for n, p in named if n.startswith("heatmap.")],
             "after split": [p for n, p in named if not n.startswith(("features.", "heatmap."))]}
    totals: dict[str, float] = {}
    used = 0
    for clips, labels in loader:
        if used == batches:
            break
        out = model(clips)
        terms = out.loss_terms(labels)
        classification = (terms["cls"] + terms["aux"]) / 2
        sparsity = loss.sparsity_regularizer(out.heatmap)
        for part, params in parts.items():
            g_cls, g_re = _flat_grad(classification, params), _flat_grad(sparsity, params)
            cosine = torch.nn.functional.cosine_similarity(g_cls, g_re, dim=0) if g_re.norm() > 0 else torch.tensor(0.0)
            for key, value in ((f"{part}: |grad cls|", g_cls.norm()), (f"{part}: |grad r_e|", g_re.norm()),
                               (f"{part}: cosine", cosine)):
                totals[key] = totals.get(key, 0.0) + float(value)
        heat = out.heatmap.detach()
        totals["r_e"] = totals.get("r_e", 0.0) + float(sparsity.detach())
        totals["saturated"] = totals.get("saturated", 0.0) + float(((heat < 0.05) | (heat > 0.95)).float().mean())
        used += 1
    return {"checkpoint": checkpoint, "batches": used, **{k: round(v / max(used, 1), 4) for k, v in totals.items()}}


def retrain(config: str, weight: float, out: str, data: str | None) -> dict:
    original = loss.sparsity_regularizer
    loss.sparsity_regularizer = lambda heat: weight * original(heat)
    try:
        cfg = load_config(config, [f"data.dataset={data}"] if data else [])
        result = train(cfg, work_dir=Path(out), progress=False)
    finally:
        loss.sparsity_regularizer = original
    test = evaluate(result.best_checkpoint, cfg.data.dataset, split="test", out=Path(out) / "eval_test",
                    num_workers=1, progress=False)
    return {"config": config, "weight": weight, "test_top1": test["top1"], "test_top1_ci": test["top1_ci"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    grads = sub.add_parser("gradients")
    grads.add_argument("checkpoints", nargs="+")
    grads.add_argument("--data", required=True)
    grads.add_argument("--batches", type=int, default=4)
    grads.add_argument("--crop", type=int, default=64)
    grads.add_argument("--resize", type=int, default=72)
    again = sub.add_parser("retrain")
    again.add_argument("--config", required=True)
    again.add_argument("--weight", type=float, required=True)
    again.add_argument("--out", required=True)
    again.add_argument("--data", help="another dataset than the config's")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.command == "gradients":
        for checkpoint in args.checkpoints:
            print(json.dumps(gradient_shares(checkpoint, args.data, args.batches, args.crop, args.resize)), flush=True)
    else:
        print(json.dumps(retrain(args.config, args.weight, args.out, args.data)), flush=True)


if __name__ == "__main__":
    main()

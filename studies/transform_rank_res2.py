"""Why the rank-64 transform net collapsed Table V's res2 row: the transform's effect on the
points, the gradients its parts receive, and the loss, step by step, for variants of it.

Each variant is Table V's "+ feature transform" row (split res2, ranking on, position
transform) fine-tuned by ``aknet train`` from one stage-1 checkpoint, with hooks that record
at every step:

* the relative change the transform makes to the points, ``‖T(S) − S‖ / ‖S‖`` (0 at the start:
  ``A = I``);
* the gradient norms of the last FC's ``U`` outputs, its ``V`` outputs (rank variants; the
  full matrix has one block), the rest of the transform net, and the whole model (before the
  trainer's clipping at ``optim.clip_grad_norm``);
* the training loss;

and then scores ``best.pt`` on the test split.

    python studies/transform_rank_res2.py --stage1 runs/demo/tdn/best.pt --data runs/demo/synth \\
        --out benchmarks/results/transform_rank_res2 [--variants rank64,full,rank64_lr0.1,rank64_v0.01]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from aknet_cli.engine.config import load_config
from aknet_cli.engine.evaluate import evaluate
from aknet_cli.engine.reports import atomic_savefig, pyplot
from aknet_cli.engine.trainer import train
from aknet_cli.models import position

VARIANTS = {
    # name: (transform_rank, T-net lr multiplier, std of V's initial bias or None for the default)
    "rank64": (64, 1.0, None),
    "full": ("none", 1.0, None),
    "rank64_lr0.1": (64, 0.1, None),
    "rank64_v0.01": (64, 1.0, 0.01),
    "rank16": (16, 1.0, None),
}


class Recorder:
    """Per-step records of the transform nets built while it is installed."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.current: dict[str, float] = {}

    def install(self, v_std: float | None) -> None:
        recorder = self
        original_init, original_forward = position.TransformNet.__init__, position.TransformNet.forward

        def init(net, channels, rank=None):
            original_init(net, channels, rank)
            if v_std is not None and rank is not None:
                with torch.no_grad():
                    torch.nn.init.normal_(net.matrix.bias.view(2, channels + 3, rank)[1], std=v_std)
            half = None if rank is None else (channels + 3) * rank  # the FC's outputs: U first, then V

            def weight_hook(grad):
                if half is None:
                    recorder.current["grad_A"] = float(grad.norm())
                else:
                    recorder.current["grad_U"] = float(grad[:half].norm())
                    recorder.current["grad_V"] = float(grad[half:].norm())
                return grad

            net.matrix.weight.register_hook(weight_hook)
            for name, p in net.named_parameters():
                if not name.startswith("matrix."):
                    p.register_hook(lambda g: recorder._add("grad_tnet_rest", g))

        def forward(net, points, coords):
            out = original_forward(net, points, coords)
            if net.training:
                recorder.current["perturbation"] = float((out - points).detach().norm() / points.detach().norm().clamp_min(1e-12))
            return out

        original_clip = torch.nn.utils.clip_grad_norm_

        def clip(parameters, max_norm, *a, **k):  # the trainer clips every step: its norm is all of them
            total = original_clip(parameters, max_norm, *a, **k)
            recorder.current["grad_total"] = float(total)
            return total

        position.TransformNet.__init__, position.TransformNet.forward = init, forward
        torch.nn.utils.clip_grad_norm_ = clip
        self._originals = (original_init, original_forward, original_clip)

    def uninstall(self) -> None:
        position.TransformNet.__init__, position.TransformNet.forward, torch.nn.utils.clip_grad_norm_ = self._originals

    def _add(self, key: str, grad: torch.Tensor) -> None:
        self.current[key] = math.sqrt(self.current.get(key, 0.0) ** 2 + float(grad.norm()) ** 2)

    def end_step(self, step: int) -> None:
        self.steps.append({"step": step, **self.current})
        self.current = {}


def run_variant(name: str, args) -> dict:
    rank, lr_mult, v_std = VARIANTS[name]
    recorder = Recorder()
    recorder.install(v_std)
    # set explicitly: the base config has its own position_lr_mult (0.1, the fix this measures)
    sets = [f"data.dataset={args.data}", f"model.init_from={args.stage1}", "model.aknet.split=res2",
            "model.aknet.ranking=true", "model.aknet.position=transform", f"model.aknet.transform_rank={rank}",
            f"optim.epochs={args.epochs}", f"optim.position_lr_mult={lr_mult}",
            f"train.seed={args.seed}", "train.log_every=1"]
    work = Path(args.out) / name
    try:
        result = train(load_config("demo_aknet_tdn_stage2", sets), work_dir=work, progress=False,
                       resume="auto" if (work / "last.pt").is_file() else None,
                       on_step_end=[lambda step: recorder.end_step(step)])
    finally:
        recorder.uninstall()
    import pandas as pd

    metrics = pd.read_csv(work / "metrics.csv")
    test = evaluate(result.best_checkpoint, args.data, split="test", out=work / "eval_test", num_workers=1,
                    progress=False)
    return {"variant": name, "rank": rank, "tnet_lr_mult": lr_mult, "v_init_std": v_std, "steps": recorder.steps,
            "train_loss": metrics["train_loss"].tolist(), "val_top1": metrics["val_top1"].tolist(),
            "test_top1": test["top1"], "test_top1_ci": test["top1_ci"]}


def plot(results: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for r in results:
        steps = [s["step"] for s in r["steps"]]
        line = axes[0].plot(steps, [s.get("perturbation", math.nan) for s in r["steps"]], label=r["variant"])[0]
        for key, ls in (("grad_U", "-"), ("grad_V", "--"), ("grad_A", "-")):
            values = [s.get(key, math.nan) for s in r["steps"]]
            if any(not math.isnan(v) for v in values):
                axes[1].plot(steps, values, ls=ls, color=line.get_color(), label=f"{r['variant']} {key[5:]}")
        axes[2].plot(range(1, len(r["train_loss"]) + 1), r["train_loss"], marker="o", color=line.get_color(),
                     label=f"{r['variant']} (test {r['test_top1']:.1f})")
    axes[0].set(xlabel="step", ylabel="‖T(S) − S‖ / ‖S‖", yscale="log", title="what the transform does")
    axes[1].set(xlabel="step", ylabel="gradient norm", yscale="log", title="last FC: U, V (rank) or A (full)")
    axes[2].set(xlabel="epoch", ylabel="training loss", title="loss")
    for ax in axes:
        ax.legend(fontsize=7)
    atomic_savefig(fig, path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage1", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="benchmarks/results/transform_rank_res2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    results = []
    for name in args.variants.split(","):
        results.append(run_variant(name, args))
        r = results[-1]
        late = r["steps"][-1]
        print(f"{name}: test top-1 {r['test_top1']:.2f} {r['test_top1_ci']}, loss {r['train_loss']}, "
              f"perturbation at the end {late.get('perturbation', math.nan):.3g}", flush=True)
    summary = [{k: v for k, v in r.items() if k != "steps"} | {"perturbation_by_step": [s.get("perturbation")
               for s in r["steps"]]} for r in results]
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": summary,
                                                  "steps": {r["variant"]: r["steps"] for r in results}}, indent=1))
    plot(results, out / "transform_rank_res2.png")


if __name__ == "__main__":
    main()

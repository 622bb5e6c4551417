"""`make demo`: the method working, measured with its noise, on 2 CPU cores.

prepare synth-sth (train / val / a held-out test split) → train TSN (stage 1) → train TDN
(stage 1) → AK-Net on that TDN (stage 2) → score all three on the **test** split (best.pt was
chosen on val) with 95% intervals, and AK-Net against TDN paired on the same clips → one summary
table (test top-1 and its interval, top-1 on the time-reversed class pairs, GFLOPs, CPU latency
per clip), printed and written to RUN_DIR/summary.csv and .md → the keypoints AK-Net picks on
one validation clip (RUN_DIR/overlay/keypoints.png).

Each step is an `aknet` command, printed before it runs. Re-running reuses finished steps
(a finished training is skipped, an interrupted one resumes). Before anything is trained, the
time the demo will take on this machine is estimated from one timed training step of each
model. TSM is not in the demo: trained from scratch on this data it does not learn the
reversed pairs within the CPU budget (see docs/training.md); TDN, the paper's second backbone,
does.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from aknet_cli._machine import cpu_description

STEPS = [  # (label in the table, work dir name, shipped config)
    ("TSN-R18", "tsn", "demo_tsn_stage1"),
    ("TDN-R18", "tdn", "demo_tdn_stage1"),
    ("AK-Net-TDN-R18 (res4, α 0.3)", "aknet_tdn", "demo_aknet_tdn_stage2"),
]
REPORT_SPLIT = "test"


def run(aknet: str, *args: str) -> None:
    print(f"\n$ aknet {shlex.join(args)}", flush=True)
    subprocess.run([aknet, *args], check=True)


def finished(work: Path) -> bool:
    """A training is finished when its metrics hold every epoch its config asks for."""
    from aknet_cli.engine.config import load_config
    from aknet_cli.engine.trainer import run_finished

    config = work / "config.toml"
    return config.is_file() and run_finished(work, load_config(config, check_paths=False).optim.epochs)


def _models_of(configs: list):
    """The demo's three models, randomly initialised, as their configs build them."""
    import torch

    from aknet_cli import build_aknet, create_backbone

    torch.manual_seed(0)
    models = []
    for cfg in configs:
        if cfg.model.stage == 1:
            models.append(create_backbone(cfg.model.backbone, num_classes=12, num_segments=cfg.model.num_segments))
        else:
            models.append(build_aknet(cfg.model.backbone, num_classes=12, num_segments=cfg.model.num_segments,
                                      **cfg.model.aknet))
    return models


def step_seconds(cfg, model) -> float:
    """Seconds of one training step (forward, backward, AdamW) of ``model`` at ``cfg``'s batch
    and crop on random clips: the median of 3 after a warm-up."""
    import torch

    from aknet_cli.engine.loop import loss_terms

    fps = getattr(model, "backbone", model).frames_per_segment
    b, t, c = cfg.optim.batch_size, cfg.model.num_segments, cfg.data.crop
    x = torch.randn((b, t, 3, c, c) if fps == 1 else (b, t, fps, 3, c, c))
    y = torch.randint(0, 12, (b,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for _ in range(4):
        tic = time.perf_counter()
        loss = loss_terms(model(x), y)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - tic)
    return statistics.median(times[1:])


def estimate(data: Path) -> tuple[float, str]:
    """Seconds the trainings and evaluations will take here: each model's step time × its
    steps, plus validation and the test evaluation (a forward costs about a third of a step)."""
    from aknet_cli.data import load_manifest
    from aknet_cli.engine.config import load_config

    configs = [load_config(config, [f"data.dataset={data}", "model.init_from=x.pt"], check_paths=False)
               for _, _, config in STEPS]
    sizes = load_manifest(data).data["splits"]
    train_clips, val_clips, test_clips = sizes["train"], sizes["val"], sizes[REPORT_SPLIT]
    total, parts = 0.0, []
    for (label, _, _), cfg, model in zip(STEPS, configs, _models_of(configs)):
        seconds = step_seconds(cfg, model)
        steps = cfg.optim.epochs * (train_clips // cfg.optim.batch_size)
        forward_batches = (cfg.optim.epochs * val_clips + test_clips) / cfg.optim.batch_size
        total += seconds * (steps + forward_batches / 3)
        parts.append(f"{label.split(' ')[0]} {seconds:.2f} s/step × {steps}")
    return total, ", ".join(parts)


def latency_ms(checkpoints: list[Path], *, runs: int = 40, warmup: int = 5) -> tuple[list[float], dict]:
    """Median CPU latency of one clip (batch 1) of each model, the models timed interleaved
    round by round, and the last model's latency over the one before it (AK-Net / TDN): the
    median of the per-round ratios, with their quartiles and extremes."""
    import torch

    from aknet_cli.analysis.bench import ratio_summary, time_interleaved
    from aknet_cli.checkpoints.reader import model_from_checkpoint

    models, inputs = [], []
    for path in checkpoints:
        model, desc = model_from_checkpoint(path)
        model.eval()
        backbone = getattr(model, "backbone", model)
        crop = int((desc.get("data") or {}).get("crop", 224))
        shape = (1, desc["num_segments"], 3, crop, crop)
        if backbone.frames_per_segment > 1:
            shape = (1, desc["num_segments"], backbone.frames_per_segment, 3, crop, crop)
        models.append(model)
        inputs.append(torch.randn(shape))
    fns = {i: (lambda m=m, x=x: m(x)) for i, (m, x) in enumerate(zip(models, inputs))}
    times = time_interleaved(fns, runs=runs, warmup=warmup, device=torch.device("cpu"))
    last = len(models) - 1
    return [1000 * statistics.median(times[i]) for i in range(len(models))], ratio_summary(times[last], times[last - 1])


def overlay_clip(aknet: str, data: Path, out: Path) -> None:
    """Draw AK-Net's keypoints on the first validation clip of a left-to-right motion."""
    from aknet_cli.data import load_manifest

    manifest = load_manifest(data)
    table = manifest.split_table("val")
    wanted = manifest.classes.index("Moving something from left to right")
    clip = manifest.media_root / table.loc[table["label"].astype(int) == wanted, "path"].iloc[0]
    run(aknet, "visualize", "--video", str(clip), "--checkpoint", str(out / "aknet_tdn" / "best.pt"),
        "--out", str(out / "overlay"))


def prepare(aknet: str, data: Path) -> None:
    """synth-sth with its held-out test split (a dataset prepared before the split existed is
    regenerated: its train and val clips come out byte-identical)."""
    from aknet_cli.data import load_manifest

    if (data / "dataset.json").is_file() and REPORT_SPLIT in load_manifest(data).data.get("splits", {}):
        return
    run(aknet, "prepare", "synthetic", "--out", str(data), "--force")


def train_all(aknet: str, data: Path, out: Path, timings: dict[str, float]) -> None:
    for label, name, config in STEPS:
        tic = time.perf_counter()
        work = out / name
        if finished(work):
            print(f"\n{label}: finished earlier in {work}, reused")
        else:
            extra = ["--resume"] if (work / "last.pt").is_file() else []
            sets = ["--set", f"data.dataset={data}"]
            if config.endswith("stage2"):
                sets += ["--set", f"model.init_from={out / 'tdn' / 'best.pt'}"]
            run(aknet, "train", config, "--work-dir", str(work), *sets, *extra)
        timings[f"train {label}"] = time.perf_counter() - tic


def score_all(data: Path, out: Path) -> tuple[list[dict], dict]:
    """Each model on the test split; AK-Net and TDN paired on the same clips."""
    from aknet_cli.analysis.ablation import best_val_top1
    from aknet_cli.engine.evaluate import evaluate

    (tsn_label, tsn, _), (tdn_label, tdn, _), (ak_label, ak, _) = STEPS
    print(f"\n$ aknet eval {out / tsn / 'best.pt'} --data {data} --split {REPORT_SPLIT}", flush=True)
    tsn_result = evaluate(out / tsn / "best.pt", data, split=REPORT_SPLIT, out=out / tsn / f"eval_{REPORT_SPLIT}",
                          num_workers=1, progress=False)
    print(f"$ aknet eval {out / ak / 'best.pt'} --data {data} --split {REPORT_SPLIT} --compare {out / tdn / 'best.pt'}",
          flush=True)
    both = evaluate(out / ak / "best.pt", data, split=REPORT_SPLIT, compare=out / tdn / "best.pt",
                    out=out / ak / f"eval_{REPORT_SPLIT}_vs_tdn", num_workers=1, progress=False)
    rows = []
    for label, result, name in ((tsn_label, tsn_result, tsn), (tdn_label, both["compare"], tdn), (ak_label, both, ak)):
        rows.append({"model": label, "top1": result["top1"], "ci_low": result["top1_ci"][0],
                     "ci_high": result["top1_ci"][1], "reversed_pairs_top1": result.get("reversed_pairs_top1"),
                     "val_top1_selected": best_val_top1(out / name), "gflops": result["gflops"]})
    return rows, both["paired"]


def claim(rows: list[dict], paired: dict, latency: dict) -> str:
    """What the paired interval supports, in one sentence, and the measured latency ratio."""
    low, high = paired["ci"]
    saving = 1 - rows[2]["gflops"] / rows[1]["gflops"]
    if low > 0:
        verdict = f"AK-Net is above TDN, by {low:.1f} to {high:.1f} points"
    elif high < 0:
        verdict = f"AK-Net is below TDN, by {-high:.1f} to {-low:.1f} points"
    else:
        verdict = (f"AK-Net and TDN are not distinguishable on these clips: AK-Net is between {-low:.1f} points "
                   f"below and {high:.1f} points above TDN")
    return (f"AK-Net − TDN on the {paired['clips']} test clips: {paired['difference']:+.2f} points "
            f"(95% CI {low:+.2f} to {high:+.2f}, paired bootstrap; McNemar p = {paired['mcnemar_p']:.2g}) at "
            f"{saving:.0%} fewer GFLOPs: {verdict} (one trained seed; the interval covers the clips, not the "
            f"training noise). CPU latency, batch 1: AK-Net / TDN = {latency['median']:.3f} (quartiles "
            f"{latency['p25']:.3f}–{latency['p75']:.3f}, range {latency['min']:.3f}–{latency['max']:.3f} over "
            f"{latency['rounds']} interleaved rounds).")


def report(rows: list[dict], paired: dict, latency: dict, out: Path) -> str:
    import pandas as pd

    table = pd.DataFrame(rows)
    with open(out / "summary.csv", "w", encoding="utf-8") as fh:
        table.to_csv(fh, index=False, float_format="%.2f")
    pretty = pd.DataFrame({
        "model": table["model"], "test top-1 (%)": table["top1"].map("{:.2f}".format),
        "95% CI": [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "reversed pairs (%)": table["reversed_pairs_top1"].map("{:.2f}".format),
        "val top-1 (selected on)": table["val_top1_selected"].map("{:.2f}".format),
        "GFLOPs": table["gflops"].map("{:.2f}".format), "CPU ms / clip": table["cpu_ms_per_clip"].map("{:.2f}".format),
    })
    markdown = (pretty.to_markdown(index=False) + "\n\n" + claim(rows, paired, latency) + "\n\n"
                + f"Measured on {cpu_description()}.\n")
    (out / "summary.md").write_text(markdown, encoding="utf-8")
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aknet", default="aknet", help="the aknet executable")
    parser.add_argument("--out", default="runs/demo", help="run folder")
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    timings: dict[str, float] = {}

    tic = time.perf_counter()
    data = out / "synth"
    prepare(args.aknet, data)
    timings["prepare synth-sth"] = time.perf_counter() - tic
    if not all(finished(out / name) for _, name, _ in STEPS):
        seconds, parts = estimate(data)
        print(f"\nestimated time of the trainings and evaluations on this machine ({cpu_description()}): "
              f"{seconds / 60:.1f} min "
              f"({parts}; timed on random clips, before loading and validation overheads)", flush=True)
    train_all(args.aknet, data, out, timings)

    tic = time.perf_counter()
    rows, paired = score_all(data, out)
    timings["evaluate (test split)"] = time.perf_counter() - tic
    tic = time.perf_counter()
    medians, latency = latency_ms([out / name / "best.pt" for _, name, _ in STEPS])
    for row, ms in zip(rows, medians):
        row["cpu_ms_per_clip"] = ms
    timings["latency"] = time.perf_counter() - tic

    tic = time.perf_counter()
    overlay_clip(args.aknet, data, out)
    timings["keypoint overlay"] = time.perf_counter() - tic

    print(f"\n== summary (held-out {REPORT_SPLIT} split of synth-sth, 600 clips, 1 clip × centre crop, chance 8.3%; "
          f"best.pt chosen on val; 95% Wilson intervals)\n")
    print(report(rows, paired, latency, out))
    print("== wall time per step")
    for step, seconds in timings.items():
        print(f"  {step:<40} {seconds:7.1f} s")
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s (without installation) on {cpu_description()}; "
          f"files in {out}/", flush=True)


if __name__ == "__main__":
    sys.exit(main())

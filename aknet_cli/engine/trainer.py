"""``train()``: the two-stage training of the paper, one process or many (torchrun).

Stage 1 trains the 2-D backbone (TSN/TSM/TDN) with cross-entropy. Stage 2 converts a
stage-1 checkpoint into AK-Net with the code of ``aknet convert-1d`` and fine-tunes every
module with eq. 16. Both write, in the work directory: ``config.toml`` (the resolved
config), ``metrics.csv`` and ``curves.png`` (rewritten every epoch), ``last.pt`` (every epoch,
and every ``ckpt.every_steps`` steps) and ``best.pt`` (by validation top-1), atomically.

``last.pt`` carries everything an exact resume needs, so a run killed at a step boundary and
resumed ends with bit-identical weights to one that never stopped (on CPU; cuDNN kernels
may not be deterministic).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .._atomic import atomic_output
from ..data import load_manifest
from ..exceptions import AKNetError, CheckpointError, ConfigError
from .checkpoint import load_checkpoint, load_state_strict, save_checkpoint
from .config import RunConfig, to_toml
from .distributed import DistContext, all_reduce_sum, barrier, setup
from .evaluate import accuracy_counts, collect_scores
from .loaders import build_eval_loader, build_train_loader
from .optim import apply_partial_bn, build_optimizer, build_scheduler
from .progress import StepProgress
from .reports import write_curves, write_metrics
from . import rng


class TrainingDiverged(AKNetError, FloatingPointError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    work_dir: Path
    best_top1: float
    epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best_checkpoint(self) -> Path:
        return self.work_dir / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.work_dir / "last.pt"


StepCallback = Callable[[int], None]


# --------------------------------------------------------------------------- building
def _model_description(cfg: RunConfig, manifest, model: nn.Module) -> dict[str, Any]:
    from ..models.aknet import AKNet

    description = {
        "backbone": cfg.model.backbone,
        "num_classes": manifest.num_classes,
        "num_segments": cfg.model.num_segments,
        "backbone_kwargs": {"dropout": cfg.model.dropout},
        "classes": manifest.classes,
        "data": {"resize": cfg.data.resize, "crop": cfg.data.crop, "resize_mode": cfg.data.resize_mode},
    }
    if isinstance(model, AKNet):
        description["aknet"] = asdict(model.config)
    return description


def _check_stage1_checkpoint(cfg: RunConfig, manifest) -> None:
    """Fail before any work when the stage-1 checkpoint cannot serve this dataset."""
    path = Path(cfg.model.init_from)
    stored = load_checkpoint(path)
    if stored["kind"] == "aknet":
        raise CheckpointError(f"model.init_from = {path} is already an AK-Net checkpoint; stage 2 starts from a "
                              f"stage-1 backbone checkpoint")
    desc = stored["config"]
    checks = (("backbone", cfg.model.backbone, "model.backbone"),
              ("num_classes", manifest.num_classes, f"the dataset {cfg.data.dataset}"),
              ("num_segments", cfg.model.num_segments, "model.num_segments"))
    for key, want, where in checks:
        have = desc.get(key)
        if have is not None and have != want:
            raise CheckpointError(f"model.init_from = {path} has {key} {have}, but {where} gives {want}; "
                                  f"use a stage-1 checkpoint trained on this dataset with this backbone")


def build_model(cfg: RunConfig, manifest, work_dir: Path, ctx: DistContext) -> nn.Module:
    """Stage 1: a fresh (or pretrained) backbone. Stage 2: AK-Net converted from ``init_from``."""
    from .._registry import create_backbone
    from .convert_1d import convert_checkpoint
    from .loading import load_model_from_checkpoint

    if cfg.model.stage == 1:
        return create_backbone(cfg.model.backbone, num_classes=manifest.num_classes,
                               num_segments=cfg.model.num_segments, pretrained=cfg.model.pretrained or False,
                               dropout=cfg.model.dropout)
    _check_stage1_checkpoint(cfg, manifest)
    converted = work_dir / "converted.pt"
    switches = dict(cfg.model.aknet)
    switches.setdefault("dropout", cfg.model.dropout)
    if ctx.is_main:
        convert_checkpoint(cfg.model.init_from, converted, overwrite=True, backbone=cfg.model.backbone,
                           num_classes=manifest.num_classes, num_segments=cfg.model.num_segments,
                           label_order=cfg.model.init_label_order or None, dataset=manifest, **switches)
    barrier(ctx)
    model, _ = load_model_from_checkpoint(converted)
    return model


def set_train_mode(model: nn.Module, cfg: RunConfig) -> None:
    """``train()``, then TSM's partial BN or mmaction2's ``norm_eval`` (every BN on running stats)."""
    model.train()
    if cfg.model.norm_eval:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    elif cfg.model.partial_bn:
        apply_partial_bn(model)


def autocast_dtype(ctx: DistContext, amp: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16 (with a GradScaler); no autocast on CPU."""
    if not amp or ctx.device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# --------------------------------------------------------------------------- the loop
def _loss_terms(out, target: torch.Tensor) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        loss = nn.functional.cross_entropy(out, target)
        return {"loss": loss, "cls": loss, "logits": out}
    terms = dict(out.loss_terms(target))
    terms["logits"] = out.logits
    return terms


def _resume_path(resume: str | None, work_dir: Path) -> Path | None:
    if resume is None:
        # Under torchrun's restart-on-failure, a restarted worker picks up where the job died.
        if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0 and (work_dir / "last.pt").is_file():
            return work_dir / "last.pt"
        return None
    path = work_dir / "last.pt" if resume == "auto" else Path(resume)
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} does not exist"
                              + (" (no epoch of this work dir has finished yet)" if resume == "auto" else ""))
    return path


def train(
    cfg: RunConfig,
    *,
    work_dir: str | Path,
    resume: str | None = None,
    progress: bool = True,
    on_step_end: Iterable[StepCallback] = (),
) -> TrainResult:
    """Train one config.

    Args:
        cfg: a validated :class:`RunConfig` (see :func:`~aknet_cli.engine.config.load_config`).
        work_dir: where checkpoints, metrics and plots go (created).
        resume: ``None`` (fresh start; under a torchrun restart, resumes by itself), ``"auto"``
            (the work dir's ``last.pt``) or a checkpoint path.
        progress: show Rich progress bars and epoch lines (rank 0 only).
        on_step_end: callables receiving the global step after each optimizer step.

    Returns:
        A :class:`TrainResult`.
    """
    work_dir = Path(work_dir)
    ctx = setup(cfg.train.device)
    manifest = load_manifest(Path(cfg.data.dataset))
    if cfg.optim.batch_size % ctx.world_size:
        raise ConfigError(f"optim.batch_size {cfg.optim.batch_size} (global) is not divisible by the "
                          f"{ctx.world_size} processes")
    batch = cfg.optim.batch_size // ctx.world_size
    if ctx.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(work_dir / "config.toml") as tmp:
            tmp.write_text(to_toml(cfg), encoding="utf-8")
    resume_from = _resume_path(resume, work_dir)

    rng.seed_everything(cfg.train.seed)
    resumed = None  # the resume checkpoint, read once
    if resume_from is not None and cfg.model.stage == 2:
        from . import loading

        resumed_ckpt = loading.read_checkpoint(resume_from)  # AK-Net's architecture is in the file
        model, resumed = loading.build_model(resumed_ckpt), resumed_ckpt.raw
    else:
        model = build_model(cfg, manifest, work_dir, ctx)
    description = _model_description(cfg, manifest, model)
    backbone = getattr(model, "backbone", model)
    fps = backbone.frames_per_segment
    model.to(ctx.device)
    if ctx.device.type == "cuda" and cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    set_train_mode(model, cfg)

    train_loader, sampler = build_train_loader(cfg.data, ctx, frames_per_segment=fps,
                                               num_segments=cfg.model.num_segments, batch_size=batch,
                                               seed=cfg.train.seed)
    val_loader = build_eval_loader(cfg.data, ctx, split=cfg.data.val_split, frames_per_segment=fps,
                                   num_segments=cfg.model.num_segments,
                                   batch_size=cfg.data.val_batch_size or batch)
    steps_per_epoch = len(sampler) // batch
    if steps_per_epoch < 1:
        raise ConfigError(f"one epoch of {cfg.data.dataset} is shorter than one batch of {batch} per process")

    if (cfg.model.stage == 2 and resume_from is None and cfg.model.calibrate_batches > 0):
        from .calibrate import recalibrate_bn

        report = recalibrate_bn(model, (x.to(ctx.device) for x, _ in train_loader),
                                num_batches=cfg.model.calibrate_batches)
        set_train_mode(model, cfg)
        if ctx.is_main and progress:
            print(f"recalibrated the 1-D subnet's BatchNorm statistics on {cfg.model.calibrate_batches} batches: "
                  f"{report}")

    ddp_model = model
    if ctx.distributed:
        if cfg.model.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, steps_per_epoch, cfg)
    amp_dtype = autocast_dtype(ctx, cfg.train.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start_epoch, start_step, history, best = 0, 0, [], -1.0
    meters: dict[str, float] = {}
    if resume_from is not None:
        ckpt = resumed or load_checkpoint(resume_from)
        state = ckpt.get("train_state")
        if not state:
            raise CheckpointError(f"{resume_from} holds weights only, no training state; resume from a last.pt")
        if resumed is None:  # stage 2 loaded its weights while rebuilding the model
            load_state_strict(model, ckpt["state_dict"], str(resume_from))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, start_step = int(state["epoch"]), int(state["step_in_epoch"])
        history, best, meters = list(state["history"]), float(state["best_top1"]), dict(state["meters"])
        rng.restore(state["rng"])
        if start_step >= steps_per_epoch:
            start_epoch, start_step, meters = start_epoch + 1, 0, {}

    def save(name: str, epoch: int, step_in_epoch: int, with_state: bool) -> None:
        if not ctx.is_main:
            return
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            # Never overwrite the last good checkpoint with diverged weights.
            raise TrainingDiverged(f"the weights became NaN/inf at epoch {epoch + 1}, step {step_in_epoch}; "
                                   f"{work_dir / name} keeps the last good state; lower optim.lr")
        state = None
        if with_state:
            state = {
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epoch, "step_in_epoch": step_in_epoch,
                "sampler": {"seed": sampler.seed, "epoch": epoch}, "history": history, "best_top1": best,
                "meters": meters, "rng": rng.capture(),
            }
        save_checkpoint(work_dir / name, kind="aknet" if cfg.model.stage == 2 else "backbone", config=description,
                        state_dict=model.state_dict(),
                        meta={"epoch": epoch, "step_in_epoch": step_in_epoch, "best_top1": best,
                              "train_config": cfg.to_dict(), "dataset": str(cfg.data.dataset)},
                        train_state=state)

    show = progress and ctx.is_main
    for epoch in range(start_epoch, cfg.optim.epochs):
        sampler.set_epoch(epoch)
        step0 = start_step if epoch == start_epoch else 0
        sampler.set_start(step0 * batch)
        if step0 == 0:
            meters = {}
        set_train_mode(model, cfg)
        bar = StepProgress(f"epoch {epoch + 1}/{cfg.optim.epochs}", steps_per_epoch, enabled=show, done=step0)
        group = optimizer.param_groups[0]
        epoch_lr = group["lr"] / group.get("lr_mult", 1.0)  # the base lr this epoch runs at (after warm-up)
        tic = last = time.perf_counter()
        wait = 0.0
        step = step0
        with bar:
            for clips, target in train_loader:
                now = time.perf_counter()
                wait += now - last
                clips = clips.to(ctx.device, non_blocking=True)
                target = target.to(ctx.device, non_blocking=True)
                with torch.autocast(ctx.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    terms = _loss_terms(ddp_model(clips), target)
                loss = terms["loss"]
                finite = all_reduce_sum([float(torch.isfinite(loss).item())], ctx)[0] == ctx.world_size
                if not finite:
                    parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items() if k != "logits")
                    raise TrainingDiverged(
                        f"loss is not finite at epoch {epoch + 1}, step {epoch * steps_per_epoch + step + 1} ({parts}); "
                        f"{work_dir / 'last.pt'} holds the last good state; lower optim.lr or check the data")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.optim.clip_grad_norm > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                correct = (terms["logits"].argmax(1) == target).sum().item()
                for key, value in terms.items():
                    if key != "logits":
                        meters[key] = meters.get(key, 0.0) + float(value.detach()) * len(target)
                meters["correct"] = meters.get("correct", 0.0) + correct
                meters["seen"] = meters.get("seen", 0.0) + len(target)
                global_step = epoch * steps_per_epoch + step
                last = time.perf_counter()
                elapsed = last - tic
                bar.update(loss=meters["loss"] / meters["seen"], top1=100 * meters["correct"] / meters["seen"],
                           rate=(step - step0) * batch * ctx.world_size / max(elapsed, 1e-9),
                           wait=wait / max(elapsed, 1e-9))
                if cfg.ckpt.every_steps and global_step % cfg.ckpt.every_steps == 0 and step < steps_per_epoch:
                    save("last.pt", epoch, step, with_state=True)
                for callback in on_step_end:
                    callback(global_step)
        seconds = time.perf_counter() - tic
        totals = all_reduce_sum([meters.get(k, 0.0) for k in ("loss", "cls", "aux", "sparsity", "correct", "seen")], ctx)
        seen = max(totals[5], 1.0)
        row: dict[str, Any] = {
            "epoch": epoch + 1, "lr": epoch_lr,
            "train_loss": totals[0] / seen, "train_cls": totals[1] / seen,
            "train_aux": totals[2] / seen if cfg.model.stage == 2 else math.nan,
            "train_sparsity": totals[3] / seen if cfg.model.stage == 2 else math.nan,
            "train_top1": 100 * totals[4] / seen,
            "clips_per_s": (steps_per_epoch - step0) * batch * ctx.world_size / seconds,
            "data_wait": wait / seconds, "seconds": seconds,
        }
        if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.optim.epochs:
            model.eval()
            scores, labels = collect_scores(model, val_loader, ctx, amp_dtype=amp_dtype,
                                            progress=show, description="validating")
            top1, top5, n = accuracy_counts(scores, labels)
            top1, top5, n = all_reduce_sum([top1, top5, n], ctx)
            row["val_top1"], row["val_top5"] = 100 * top1 / n, 100 * top5 / n
        else:
            row["val_top1"] = row["val_top5"] = math.nan
        history.append(row)
        improved = not math.isnan(row["val_top1"]) and row["val_top1"] > best
        if improved:
            best = row["val_top1"]
        meters = {}
        save("last.pt", epoch, steps_per_epoch, with_state=True)
        if improved:
            save("best.pt", epoch, steps_per_epoch, with_state=False)
        if ctx.is_main:
            write_metrics(history, work_dir / "metrics.csv")
            write_curves(history, work_dir / "curves.png", title=cfg.name)
            _tensorboard(work_dir, row)
            if progress:
                print(_epoch_line(row, cfg.optim.epochs), flush=True)
        barrier(ctx)
    return TrainResult(work_dir=work_dir, best_top1=best, epochs=cfg.optim.epochs, history=history)


def run_finished(work_dir: str | Path, epochs: int) -> bool:
    """A run in ``work_dir`` is finished when ``best.pt`` exists and ``metrics.csv`` has ``epochs`` rows."""
    work_dir = Path(work_dir)
    metrics = work_dir / "metrics.csv"
    if not (metrics.is_file() and (work_dir / "best.pt").is_file()):
        return False
    return len(metrics.read_text(encoding="utf-8").strip().splitlines()) - 1 >= epochs


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"lr {row['lr']:.3g}", f"loss {row['train_loss']:.4f}",
             f"train top-1 {row['train_top1']:.1f}%"]
    if not math.isnan(row["val_top1"]):
        parts.append(f"val top-1 {row['val_top1']:.1f}% top-5 {row['val_top5']:.1f}%")
    parts += [f"{row['clips_per_s']:.1f} clips/s", f"data wait {100 * row['data_wait']:.0f}%",
              f"{row['seconds']:.0f} s"]
    return " | ".join(parts)


def _tensorboard(work_dir: Path, row: dict[str, Any]) -> None:
    """TensorBoard event files, when the optional ``tensorboard`` package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    with SummaryWriter(str(work_dir / "tensorboard")) as writer:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, float) and not math.isnan(value):
                writer.add_scalar(key, value, row["epoch"])

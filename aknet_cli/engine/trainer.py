"""``train()``: the two-stage training of the paper, one process or many (torchrun).

Stage 1 trains the 2-D backbone (TSN/TSM/TDN) with cross-entropy. Stage 2 converts a
stage-1 checkpoint into AK-Net with the code of ``aknet convert-1d`` and fine-tunes every
module with eq. 16. Both write, in the work directory: ``config.toml`` (the config running),
``metrics.csv`` and ``curves.png`` (rewritten every epoch), ``last.pt`` (every epoch, and every
``ckpt.every_steps`` steps) and ``best.pt`` (by validation top-1), atomically; and
``steps.jsonl``, a line appended every log interval (:mod:`~aknet_cli.engine.steplog`).

The run is laid out as timm's and mmengine's are: :func:`prepare_run` builds everything (and
restores a checkpoint), :func:`~aknet_cli.engine.loop.train_one_epoch` runs the steps,
:func:`finish_epoch` validates, checkpoints (:mod:`~aknet_cli.engine.checkpoint_saver`) and
reports. ``last.pt`` carries everything an exact resume needs, so a run killed at a step
boundary and resumed ends with bit-identical weights to one that never stopped (on CPU; cuDNN
kernels may not be deterministic), on the same number of processes.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from .._atomic import atomic_output
from .._registry import get_backbone_factory
from ..data import load_manifest
from ..data.video_io import check_backend
from ..exceptions import AKNetError, CheckpointError, ConfigError, OutputError
from . import rng
from ..checkpoints.format import read_checkpoint_file, load_state_strict
from ..checkpoints.schema import check_model_config
from .checkpoint_saver import save
from .config import RunConfig, check_config, to_toml
from ..convert.stage2 import convert_checkpoint, load_stage1
from .distributed import DistContext, agree, barrier, decided_by_rank0, pick_device, setup
from .run_loaders import build_eval_loader, build_train_loader
from ..checkpoints.reader import read_checkpoint
from .loop import StepCallback, epoch_row, set_train_mode, train_one_epoch, validate
from .optim import build_optimizer, build_scheduler
from .precision import autocast_dtype, grad_scaler, restore_scaler
from .protocol import check_training_protocol, training_protocol
from .reports import write_curves, write_metrics
from .resume import apply_schedule, check_resumable, read_train_state, restore_meters, resume_source
from .state import Position, Run, TrainingDiverged
from .steplog import STEP_LOG, read_step_log
from .workdir import claim

__all__ = ["TrainResult", "TrainingDiverged", "run_finished", "train"]


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
        cfg: a :class:`RunConfig` (see :func:`~aknet_cli.engine.config.load_config`); it is
            checked again here, so a config built in Python gets the same checks as a file.
        work_dir: where checkpoints, metrics and plots go (created, and locked for the run).
        resume: ``None`` (fresh start; under a torchrun restart, resumes by itself), ``"auto"``
            (the work dir's ``last.pt``) or a checkpoint path (see
            :mod:`~aknet_cli.engine.resume` for which config changes a resume accepts).
        progress: show Rich progress bars and epoch lines (rank 0 only).
        on_step_end: callables receiving the global step after each optimizer step.

    Returns:
        A :class:`TrainResult`.
    """
    manifest = check_before_training(cfg)  # before the work dir exists
    work_dir = Path(work_dir)
    ctx = setup(cfg.train.device)
    lock = _claim_work_dir(work_dir, ctx, progress)
    try:
        run, position = prepare_run(cfg, ctx, manifest, work_dir, resume, progress=progress)
        if position.epoch >= cfg.optim.epochs:  # a resume of a finished run: nothing to train
            # its history written here, where no epoch will: a finished run resumed into a new
            # work dir leaves a complete run there (best.pt carried by the resume), as
            # run_finished recognises
            if run.ctx.is_main and position.history:
                _write_history(run, position)
            barrier(run.ctx)
        for epoch in range(position.epoch, cfg.optim.epochs):
            timing = train_one_epoch(run, position, epoch, on_step_end)
            finish_epoch(run, position, epoch, timing)
    finally:
        if lock is not None:
            lock.release()
    return TrainResult(work_dir=work_dir, best_top1=position.best, epochs=cfg.optim.epochs, history=position.history)


def check_before_training(cfg: RunConfig, *, stage1_exists: bool = False):
    """What :func:`train` refuses before it writes or trains anything, checked without either
    (``aknet ablate --dry-run`` refuses what its real run would): the config, the backbone (an
    unknown or broken plugin), the device, the video backend, and the splits training reads.
    With ``stage1_exists``, a stage-2 config's stage-1 checkpoint too, as its conversion reads it.

    Returns:
        The dataset's :class:`~aknet_cli.data.manifest.Manifest`.
    """
    check_config(cfg)
    get_backbone_factory(cfg.model.backbone)
    check_training_protocol(cfg.data.protocol, cfg.model.backbone, num_segments=cfg.model.num_segments)
    pick_device(cfg.train.device)
    check_backend(cfg.data.backend)
    manifest = load_manifest(Path(cfg.data.dataset))
    manifest.check_for_training(cfg.data.train_split, cfg.data.val_split)
    if stage1_exists and cfg.model.stage == 2:
        check_stage1_checkpoint(cfg, manifest)
        load_stage1(cfg.model.init_from, **_stage1_options(cfg, manifest))
    return manifest


def _stage1_options(cfg: RunConfig, manifest) -> dict[str, Any]:
    """How stage 2 reads its stage-1 checkpoint (the checks and the conversion alike)."""
    return {"backbone": cfg.model.backbone, "num_classes": manifest.num_classes,
            "num_segments": cfg.model.num_segments, "label_order": cfg.model.init_label_order or None,
            "dataset": manifest}


def _claim_work_dir(work_dir: Path, ctx: DistContext, progress: bool):
    """Rank 0 creates and locks the work dir; every rank learns whether it could."""
    lock, error = None, None
    if ctx.is_main:
        try:
            lock, removed = claim(work_dir)
        except AKNetError as exc:
            error = exc
        else:
            if removed and progress:
                print(f"removed {len(removed)} temporary file(s) a killed run left in {work_dir}: "
                      f"{', '.join(p.name for p in removed[:3])}", flush=True)
    if not agree(error is None, ctx):
        raise error or OutputError(f"rank 0 could not open the work dir {work_dir}; see its error")
    return lock


# --------------------------------------------------------------------------- building
def model_description(cfg: RunConfig, manifest, model: nn.Module) -> dict[str, Any]:
    """What a checkpoint records so that the model can be rebuilt without the config."""
    from ..models.aknet import AKNet

    description = {
        "backbone": cfg.model.backbone,
        "num_classes": manifest.num_classes,
        "num_segments": cfg.model.num_segments,
        "backbone_kwargs": {"dropout": cfg.model.dropout},
        "classes": manifest.classes,
        "data": {"resize": cfg.data.resize, "crop": cfg.data.crop, "resize_mode": cfg.data.resize_mode,
                 "protocol": training_protocol(cfg.data.protocol, model)},
    }
    if isinstance(model, AKNet):
        description["aknet"] = asdict(model.config)
    return description


def check_stage1_checkpoint(cfg: RunConfig, manifest) -> None:
    """Fail before any work when the stage-1 checkpoint cannot serve this dataset."""
    path = Path(cfg.model.init_from)
    stored = read_checkpoint_file(path)
    if stored["kind"] == "aknet":
        raise CheckpointError(f"model.init_from = {path} is already an AK-Net checkpoint; stage 2 starts from a "
                              f"stage-1 backbone checkpoint")
    if stored["kind"] == "backbone":  # aknet's own file: its description is checked before it is compared
        check_model_config(stored["kind"], stored["config"], path)
    desc = stored["config"]
    checks = (("backbone", cfg.model.backbone, "model.backbone"),
              ("num_classes", manifest.num_classes, f"the dataset {cfg.data.dataset}"),
              ("num_segments", cfg.model.num_segments, "model.num_segments"))
    for key, want, where in checks:
        have = desc.get(key)
        if have is not None and have != want:
            raise CheckpointError(f"model.init_from = {path} has {key} {have}, but {where} gives {want}; "
                                  f"use a stage-1 checkpoint trained on this dataset with this backbone")


def build_training_model(cfg: RunConfig, manifest, work_dir: Path, ctx: DistContext, resumed) -> nn.Module:
    """Stage 1: a fresh (or pretrained) backbone. Stage 2: AK-Net converted from ``init_from``
    (by rank 0, into ``WORK/converted.pt``, which every rank then reads), or, when resuming,
    rebuilt from the checkpoint (a :class:`~aknet_cli.checkpoints.reader.Checkpoint`) that records
    its architecture."""
    from .._registry import create_backbone
    from ..checkpoints.reader import build_model, model_from_checkpoint

    if cfg.model.stage == 1:
        return create_backbone(cfg.model.backbone, num_classes=manifest.num_classes,
                               num_segments=cfg.model.num_segments, pretrained=cfg.model.pretrained or False,
                               dropout=cfg.model.dropout)
    if resumed is not None:
        return build_model(resumed)
    check_stage1_checkpoint(cfg, manifest)
    converted = work_dir / "converted.pt"
    switches = dict(cfg.model.aknet)
    switches.setdefault("dropout", cfg.model.dropout)
    if ctx.is_main:
        convert_checkpoint(cfg.model.init_from, converted, overwrite=True, **_stage1_options(cfg, manifest),
                           **switches)
    barrier(ctx)
    _require_everywhere(converted, ctx, "the stage-1 model converted by rank 0")
    model, _ = model_from_checkpoint(converted)
    return model


def _require_everywhere(path: Path, ctx: DistContext, what: str) -> None:
    """Multi-node runs read rank 0's files: refuse in one line when a node cannot see them."""
    if not agree(path.is_file(), ctx):
        raise CheckpointError(f"{path} ({what}) is not visible to every process: with several nodes the work dir "
                              f"must be on a filesystem all nodes share (see docs/training.md, many machines)")


def _wrap(model: nn.Module, cfg: RunConfig, ctx: DistContext) -> tuple[nn.Module, nn.Module]:
    """``(model, what the steps call)``: SyncBN, then DDP, in timm's order, under torchrun.

    ``broadcast_buffers=False`` (as mmcv/mmaction2 wrap their models): each rank's BatchNorm
    running statistics follow its own clips, and :func:`~.distributed.average_batchnorm_buffers`
    averages them over the ranks before every validation and every checkpoint. PyTorch's default
    would copy rank 0's statistics to every rank before each forward, so the statistics would
    be estimated from rank 0's clips alone and the average before validation one of copies.
    """
    if not ctx.distributed:
        return model, model
    if cfg.model.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
                                              broadcast_buffers=False)
    return model, ddp


def prepare_run(cfg: RunConfig, ctx: DistContext, manifest, work_dir: Path, resume: str | None, *,
                progress: bool) -> tuple[Run, Position]:
    """Build the model, loaders and optimizer of a run, and restore a checkpoint if resuming."""
    if cfg.optim.batch_size % ctx.world_size:
        raise ConfigError(f"optim.batch_size {cfg.optim.batch_size} (global) is not divisible by the "
                          f"{ctx.world_size} processes")
    if cfg.model.sync_bn and ctx.device.type != "cuda":
        raise ConfigError("model.sync_bn = true needs CUDA GPUs (SyncBatchNorm has no CPU implementation); "
                          "set model.sync_bn = false for this run")
    source = resume_source(resume, work_dir, ctx)
    resumed = ckpt = None
    if source is not None:
        _require_everywhere(source, ctx, "the checkpoint to resume from")
        resumed = read_checkpoint(source)  # read once: the weights, the description, the training state
        ckpt = resumed.raw
    schedule = check_resumable(cfg, ckpt["meta"].get("train_config"), source) if ckpt else {}
    rng.seed_everything(cfg.train.seed, ctx.rank)
    model = build_training_model(cfg, manifest, work_dir, ctx, resumed if cfg.model.stage == 2 else None)
    run = _assemble(cfg, ctx, work_dir, manifest, model, fresh=ckpt is None, progress=progress)
    position = restore_position(run, ckpt, source, schedule) if ckpt else Position()
    if source is not None:
        carry_best(run, position, source)
    if ctx.is_main:
        with atomic_output(work_dir / "config.toml") as tmp:
            tmp.write_text(to_toml(cfg), encoding="utf-8")
    return run, position


def _assemble(cfg: RunConfig, ctx: DistContext, work_dir: Path, manifest, model: nn.Module, *, fresh: bool,
              progress: bool) -> Run:
    """Device, layout, loaders, BN recalibration (a fresh stage 2), DDP, optimizer, precision."""
    batch = cfg.optim.batch_size // ctx.world_size
    description = model_description(cfg, manifest, model)
    protocol = description["data"]["protocol"]
    fps = getattr(model, "backbone", model).frames_per_segment
    model.to(ctx.device)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = not torch.backends.cudnn.deterministic
        if cfg.train.channels_last:
            model.to(memory_format=torch.channels_last)
    set_train_mode(model, cfg)
    train_loader, sampler = build_train_loader(cfg.data, ctx, frames_per_segment=fps,
                                               num_segments=cfg.model.num_segments, batch_size=batch,
                                               seed=cfg.train.seed, protocol=protocol)
    val_loader = build_eval_loader(cfg.data, ctx, split=cfg.data.val_split, frames_per_segment=fps,
                                   num_segments=cfg.model.num_segments,
                                   batch_size=cfg.data.val_batch_size or batch, protocol=protocol)
    steps_per_epoch = len(sampler) // batch
    if steps_per_epoch < 1:
        raise ConfigError(f"one epoch of {cfg.data.dataset} is shorter than one batch of {batch} per process")
    if cfg.model.stage == 2 and fresh and cfg.model.calibrate_batches > 0:
        _recalibrate(model, train_loader, cfg, ctx, show=progress and ctx.is_main)
    model, ddp_model = _wrap(model, cfg, ctx)
    optimizer = build_optimizer(model, cfg)
    amp_dtype = autocast_dtype(ctx.device, cfg.train.amp)
    return Run(cfg=cfg, ctx=ctx, work_dir=work_dir, model=model, ddp_model=ddp_model, optimizer=optimizer,
               scheduler=build_scheduler(optimizer, steps_per_epoch, cfg), scaler=grad_scaler(ctx.device, amp_dtype),
               amp_dtype=amp_dtype, train_loader=train_loader, sampler=sampler, val_loader=val_loader,
               steps_per_epoch=steps_per_epoch, batch=batch, description=description, show=progress and ctx.is_main)


def _recalibrate(model: nn.Module, loader, cfg: RunConfig, ctx: DistContext, *, show: bool) -> None:
    from ..convert.calibrate import recalibrate_bn

    report = recalibrate_bn(model, (x.to(ctx.device) for x, _ in loader), num_batches=cfg.model.calibrate_batches)
    set_train_mode(model, cfg)
    if show:
        print(f"recalibrated the 1-D subnet's BatchNorm statistics on {cfg.model.calibrate_batches} batches: "
              f"{report}")


# --------------------------------------------------------------------------- resuming
def restore_position(run: Run, ckpt: dict[str, Any], source: Path, schedule: dict[str, tuple]) -> Position:
    """Load a ``last.pt``'s weights (stage 1), optimizer, scheduler, scaler and RNG streams.

    ``schedule`` holds the lr-schedule keys this config changes (:func:`check_resumable`);
    they take effect from the step resumed at, and are said.
    """
    cfg, ctx = run.cfg, run.ctx
    state = read_train_state(ckpt, source)
    if cfg.model.stage == 1:  # stage 2 rebuilt its model from this very checkpoint
        load_state_strict(run.model, ckpt["state_dict"], str(source))
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    notes = [restore_scaler(run.scaler, state["scaler"]), rng.restore_rank(state["rng"], ctx, seed=cfg.train.seed)]
    if schedule:
        apply_schedule(run.optimizer, run.scheduler, cfg, run.steps_per_epoch)
        notes.append("the lr schedule follows this config from the resumed step on: "
                     + ", ".join(f"{k} {then!r} → {now!r}" for k, (then, now) in schedule.items()))
    position = Position(epoch=int(state["epoch"]), step=int(state["step_in_epoch"]), history=list(state["history"]),
                        best=float(state["best_top1"]), meters=restore_meters(state["meters"], ctx))
    if position.step >= run.steps_per_epoch:
        position.epoch, position.step, position.meters = position.epoch + 1, 0, {}
    if position.epoch > cfg.optim.epochs:
        raise ConfigError(f"--resume {source}: optim.epochs is {cfg.optim.epochs} but the run being resumed "
                          f"has finished {position.epoch} epochs; set optim.epochs >= {position.epoch}")
    for note in filter(None, notes):
        if run.show:
            print(f"note: {note}", flush=True)
    return position


def carry_best(run: Run, position: Position, source: Path) -> None:
    """A run resumed into another work dir brings the best.pt its top-1 so far belongs to.

    Without it the new work dir would name a best.pt that is not there whenever no later epoch
    beats the recorded best. With no best.pt beside ``source``, the best is chosen anew among
    the epochs run here (and said). Rank 0 looks at the files, copies, and decides for every
    rank: ranks that disagreed on the best so far would disagree on when to save best.pt, a
    collective.
    """
    here, there = run.work_dir / "best.pt", Path(source).parent / "best.pt"

    def decide() -> str | None:
        if here.exists() or Path(source).resolve().parent == run.work_dir.resolve() or position.best < 0:
            return None
        if not there.is_file():
            return "missing"
        with atomic_output(here) as tmp:
            shutil.copyfile(there, tmp)
        return "copied"

    outcome = decided_by_rank0(decide, run.ctx)
    if outcome is None:
        return
    if outcome == "copied":
        note = f"best.pt (val top-1 {position.best:.2f}%) copied from {there}"
    else:
        position.best = -1.0
        note = f"no best.pt beside {source}: best.pt is chosen among the epochs run in {run.work_dir}"
    if run.show:
        print(f"note: {note}", flush=True)


# --------------------------------------------------------------------------- epoch end
def finish_epoch(run: Run, position: Position, epoch: int, timing: dict[str, Any]) -> None:
    """Validate (when due), record the epoch, write ``last.pt``/``best.pt`` and the reports."""
    cfg = run.cfg
    row = epoch_row(run, epoch, timing)
    if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.optim.epochs:
        row["val_top1"], row["val_top5"] = validate(run)
    else:
        row["val_top1"] = row["val_top5"] = math.nan
    position.history.append(row)
    improved = not math.isnan(row["val_top1"]) and row["val_top1"] > position.best
    if improved:
        position.best = row["val_top1"]
    position.epoch, position.step, position.meters = epoch + 1, 0, {}
    # best.pt first: last.pt records the best top-1 so far, and a run stopped between the two
    # writes must not resume believing in a best.pt that never reached the disk
    if improved:
        save(run, "best.pt", position, epoch=epoch, step=run.steps_per_epoch, with_state=False)
    save(run, "last.pt", position, epoch=epoch, step=run.steps_per_epoch, with_state=True)
    if run.ctx.is_main:
        _write_history(run, position)
        _tensorboard(run.work_dir, row)
        if run.show:
            print(_epoch_line(row, cfg.optim.epochs), flush=True)
    barrier(run.ctx)


def _write_history(run: Run, position: Position) -> None:
    """``metrics.csv`` and ``curves.png`` from the epochs' history (rank 0)."""
    write_metrics(position.history, run.work_dir / "metrics.csv")
    write_curves(position.history, run.work_dir / "curves.png", title=run.cfg.name,
                 intervals=read_step_log(run.work_dir / STEP_LOG))


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

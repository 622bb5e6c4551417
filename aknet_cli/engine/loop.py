"""One epoch of training and one validation pass.

The step loop does not wait for the device: the loss terms, hits and the first non-finite
loss are accumulated on the device and read back only every ``train.log_every`` steps (the
progress bar, the interval's record in ``steps.jsonl`` and TensorBoard, and the divergence
check), before a checkpoint, and at the end of the epoch. Under DDP the divergence check is one
all-reduce at those points, not one per step. Where the progress goes to a log file, rank 0
also reads its own sums when a line is due by time (``AKNET_LOG_SECONDS``): no collective
there, since the other ranks do not know the time has come.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .._progress import StepProgress
from .checkpoint_saver import save
from .distributed import DistContext, agree, all_reduce_sum, average_batchnorm_buffers
from .optim import apply_partial_bn
from .precision import autocast
from .scoring import accuracy_counts, collect_scores, to_device
from .state import Position, Run, TrainingDiverged
from .steplog import IntervalLog, base_lr

#: The sums an epoch row is computed from, in this order.
METER_KEYS = ("loss", "cls", "aux", "sparsity", "correct", "seen")
StepCallback = Callable[[int], None]


def set_train_mode(model: nn.Module, cfg) -> None:
    """``train()``, then TSM's partial BN or mmaction2's ``norm_eval`` (every BN on running stats)."""
    model.train()
    if cfg.model.norm_eval:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    elif cfg.model.partial_bn:
        apply_partial_bn(model)


def loss_terms(out, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """``loss`` (what is minimised) and its parts; a backbone's output is its logits (CE)."""
    if isinstance(out, torch.Tensor):
        loss = nn.functional.cross_entropy(out, target)
        return {"loss": loss, "cls": loss, "logits": out}
    terms = dict(out.loss_terms(target))
    terms["logits"] = out.logits
    return terms


class Meters:
    """Running sums over an epoch's clips (:data:`METER_KEYS`), float64 on the device, and the
    first step whose loss was not finite, with its terms.

    Nothing a step adds is made from a Python value (``torch.tensor(step, device=...)`` copies
    from pageable host memory and waits for the device): the global step is counted on the
    device, and the clip count enters as a kernel's scalar argument.

    Args:
        device: where the sums live.
        saved: the sums of a partly done epoch being resumed.
        first_step: the global step (1-based) of the first step :meth:`add` will see.
    """

    def __init__(self, device: torch.device, saved: dict[str, float] | None = None, *, first_step: int = 1) -> None:
        self.sums = torch.tensor([float((saved or {}).get(k, 0.0)) for k in METER_KEYS], dtype=torch.float64,
                                 device=device)
        self.step = torch.full((), first_step - 1, dtype=torch.long, device=device)  # the last step added
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.bad_terms = torch.zeros(len(METER_KEYS) - 2, dtype=torch.float64, device=device)
        self._zero = torch.zeros((), dtype=torch.float64, device=device)  # stage 1's missing aux/sparsity terms

    def add(self, terms: dict[str, torch.Tensor], target: torch.Tensor) -> None:
        """Add one step's loss terms and hits over its ``len(target)`` clips (no host sync)."""
        n = len(target)
        parts = torch.stack([terms[k].detach().double() if k in terms else self._zero for k in METER_KEYS[:4]])
        correct = (terms["logits"].detach().argmax(1) == target).sum()
        self.sums[:4].add_(parts, alpha=n)
        self.sums[4].add_(correct)
        self.sums[5].add_(n)
        self.step.add_(1)
        first = (self.bad_step < 0) & ~torch.isfinite(terms["loss"].detach())
        self.bad_step = torch.where(first, self.step, self.bad_step)
        self.bad_terms = torch.where(first, parts, self.bad_terms)

    def as_dict(self) -> dict[str, float]:
        return dict(zip(METER_KEYS, self.sums.tolist()))

    def check_finite(self, ctx: DistContext, epoch: int, run: Run) -> None:
        """Raise :class:`TrainingDiverged` on every rank if any rank saw a non-finite loss."""
        bad = int(self.bad_step)
        if agree(bad < 0, ctx):
            return
        parts = ", ".join(f"{k}={v:.4g}" for k, v in zip(METER_KEYS, self.bad_terms.tolist()))
        where = f"step {bad}" if bad >= 0 else "a step of another process"
        raise TrainingDiverged(f"loss is not finite at epoch {epoch + 1}, {where} ({parts}); "
                               f"{run.work_dir / 'last.pt'} holds the last good state; lower optim.lr or check the data")


def _step(run: Run, clips: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Forward, backward, clip, optimizer and scheduler step; returns the loss terms and the
    targets on the device."""
    clips = to_device(clips, run.ctx.device, channels_last=run.channels_last)
    target = target.to(run.ctx.device, non_blocking=True)
    with autocast(run.ctx.device, run.amp_dtype):
        terms = loss_terms(run.ddp_model(clips), target)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(terms["loss"]).backward()
    if run.cfg.optim.clip_grad_norm > 0:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.optim.clip_grad_norm)
    optimizer_step(run.scaler, run.optimizer, run.scheduler)
    return terms, target


def optimizer_step(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer, scheduler) -> bool:
    """The optimizer step through ``scaler``, then the lr schedule's, unless the scaler skipped it.

    A float16 ``GradScaler`` skips the optimizer step when the scaled gradients overflowed (and
    halves its scale); the schedule must not advance on that step, or warm-up and milestones
    run ahead of the updates actually made (and PyTorch warns that the scheduler stepped before
    the optimizer). A skip is what lowers the scale, so comparing the scale before and after
    ``update`` tells it (as Accelerate does). Reading the scale waits for the device, but only
    with the scaler on: float16 on GPUs without native bf16, where ``scaler.step`` itself already
    reads the overflow flag back every step. bf16 and float32 steps stay free of host syncs.

    Returns:
        Whether the optimizer stepped.
    """
    before = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(optimizer)
    scaler.update()
    stepped = before is None or scaler.get_scale() >= before
    if stepped:
        scheduler.step()
    return stepped


def train_one_epoch(run: Run, position: Position, epoch: int, on_step_end: Iterable[StepCallback] = ()) -> dict:
    """Run epoch ``epoch`` from ``position.step`` to its end; return its timing and sums."""
    cfg, steps = run.cfg, run.steps_per_epoch
    step0 = position.step
    run.sampler.set_epoch(epoch)
    run.sampler.set_start(step0 * run.batch)
    set_train_mode(run.model, cfg)
    meters = Meters(run.ctx.device, position.meters if step0 else None, first_step=epoch * steps + step0 + 1)
    bar = StepProgress(f"epoch {epoch + 1}/{cfg.optim.epochs}", steps, enabled=run.show, done=step0,
                       reads_stats=True)
    intervals = IntervalLog(run, epoch, step0, position.meters if step0 else dict.fromkeys(METER_KEYS, 0.0))
    lr = base_lr(run.optimizer)  # the base lr this epoch starts at (after warm-up)
    tic = last = time.perf_counter()
    wait, step = 0.0, step0
    with bar, intervals:
        for clips, target in run.train_loader:
            wait += time.perf_counter() - last
            step_lr = base_lr(run.optimizer)  # the lr this step uses (the scheduler steps after it)
            terms, target = _step(run, clips, target)
            step += 1
            global_step = epoch * steps + step
            meters.add(terms, target)
            checkpoint_due = cfg.ckpt.every_steps and global_step % cfg.ckpt.every_steps == 0 and step < steps
            log_due = step % cfg.train.log_every == 0 or step == steps or checkpoint_due
            if log_due:  # every rank at the same steps: the divergence check is a collective
                meters.check_finite(run.ctx, epoch, run)
            if log_due or bar.due():
                stats = intervals.record(step, meters.as_dict(), lr=step_lr, wait=wait,
                                         elapsed=time.perf_counter() - tic)
                bar.update(**stats)
            else:
                bar.update()
            if checkpoint_due:
                position.meters = meters.as_dict()
                save(run, "last.pt", position, epoch=epoch, step=step, with_state=True)
            for callback in on_step_end:
                callback(global_step)
            last = time.perf_counter()
    return {"seconds": time.perf_counter() - tic, "wait": wait, "steps": steps - step0, "sums": meters.as_dict(),
            "lr": lr}


def epoch_row(run: Run, epoch: int, timing: dict[str, Any]) -> dict[str, Any]:
    """One ``metrics.csv`` row (training part) from an epoch's sums, reduced over processes."""
    cfg, ctx = run.cfg, run.ctx
    totals = dict(zip(METER_KEYS, all_reduce_sum([timing["sums"][k] for k in METER_KEYS], ctx)))
    seen, stage2 = max(totals["seen"], 1.0), cfg.model.stage == 2
    seconds = timing["seconds"]
    return {
        "epoch": epoch + 1, "lr": timing["lr"],
        "train_loss": totals["loss"] / seen, "train_cls": totals["cls"] / seen,
        "train_aux": totals["aux"] / seen if stage2 else math.nan,
        "train_sparsity": totals["sparsity"] / seen if stage2 else math.nan,
        "train_top1": 100 * totals["correct"] / seen,
        "clips_per_s": timing["steps"] * run.batch * ctx.world_size / seconds,
        "data_wait": timing["wait"] / seconds, "seconds": seconds,
    }


def validate(run: Run) -> tuple[float, float]:
    """Val top-1 and top-5 (%), every clip counted once over all processes.

    Under DDP the BatchNorm running statistics are averaged over processes first (timm's
    ``distribute_bn``), so every rank scores with the statistics of all the training data.
    """
    average_batchnorm_buffers(run.model, run.ctx)
    run.model.eval()
    scores, labels = collect_scores(run.model, run.val_loader, run.ctx, amp_dtype=run.amp_dtype,
                                    channels_last=run.channels_last, progress=run.show, description="validating")
    top1, top5, n = all_reduce_sum(list(accuracy_counts(scores, labels)), run.ctx)
    return 100 * top1 / n, 100 * top5 / n

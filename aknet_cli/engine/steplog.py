"""What a training run records every log interval, beside ``metrics.csv``'s row per epoch.

Every ``train.log_every`` steps (and when a line is due in a log file) the step loop reads its
device-side sums back anyway (:mod:`~aknet_cli.engine.loop`); :class:`IntervalLog` turns them
into the interval's numbers: the loss over the steps since the last record (what a diverging
run or a warm-up mistake shows first), the epoch's running loss and top-1, the lr the
scheduler set, clips/s and the data-wait share so far this epoch, the ETAs of the epoch and of
the run's remaining training steps (validation not counted), and on CUDA the peak memory
allocated. Rank 0 appends them to ``WORK/steps.jsonl`` (one JSON object a line, flushed at
once; ``curves.png`` plots its loss) and, when ``tensorboard`` is installed, writes them as
scalars ``step/<name>`` on the global-step axis to ``WORK/tensorboard/steps``, a run of its
own beside the per-epoch rows in ``WORK/tensorboard``.

A resumed run first drops what the stopped run recorded past the step it resumes from (the
JSON lines, and TensorBoard's events through ``purge_step``), so each step is recorded once.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_output
from .state import Run

STEP_LOG = "steps.jsonl"
TENSORBOARD_STEPS = "tensorboard/steps"
#: Sums whose interval means a record holds (eq. 16's terms in stage 2).
TERMS = ("loss", "cls", "aux", "sparsity")


def read_step_log(path: Path) -> list[dict[str, Any]]:
    """The records of a ``steps.jsonl`` (none if it is missing); a line cut short by a killed
    run is skipped."""
    return _parse(Path(path).read_text(encoding="utf-8").splitlines() if Path(path).is_file() else [])


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def prune_step_log(path: Path, after: int) -> None:
    """Drop the records past global step ``after`` (a stopped run's, past its resume point) and
    any line a kill cut short; a log with neither is left as it is."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [r for r in _parse(lines) if r.get("global_step", 0) <= after]
    if len(kept) == len(lines):
        return
    with atomic_output(path, suffix=".jsonl") as tmp:
        tmp.write_text("".join(_json_line(r) for r in kept), encoding="utf-8")


def _json_line(record: dict[str, Any]) -> str:
    """One JSON line; NaN and infinity (a loss on its way to the divergence check) as null."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    return json.dumps(clean, allow_nan=False) + "\n"


class StepLog:
    """Rank 0's writer of one epoch's records (``steps.jsonl`` and TensorBoard); inert elsewhere."""

    def __init__(self, work_dir: Path, *, start_step: int, enabled: bool) -> None:
        self.path = Path(work_dir) / STEP_LOG
        self.tb_dir = Path(work_dir) / TENSORBOARD_STEPS
        self.start_step, self.enabled = start_step, enabled
        self._writer = None

    def __enter__(self) -> "StepLog":
        if self.enabled:
            prune_step_log(self.path, self.start_step)
            self._writer = _summary_writer(self.tb_dir, purge_step=self.start_step + 1)
        return self

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(_json_line(record))
        if self._writer is not None:
            step = record["global_step"]
            for key, value in record.items():
                if key not in ("time", "epoch", "step", "steps", "global_step") and isinstance(value, float) \
                        and math.isfinite(value):
                    self._writer.add_scalar(f"step/{key}", value, step)
            self._writer.flush()  # TensorBoard follows the run as the log file does


def _summary_writer(folder: Path, *, purge_step: int):
    """TensorBoard's writer, when the optional ``tensorboard`` package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)


class IntervalLog:
    """The numbers of each log interval of one epoch, from the loop's running sums.

    Args:
        run: the run (its config, batch, processes, optimizer, steps per epoch).
        epoch: the epoch, 0-based.
        step0: the step the epoch starts (or resumes) at.
        sums: the epoch's sums at ``step0`` (host values: a resumed epoch's saved meters).
    """

    def __init__(self, run: Run, epoch: int, step0: int, sums: dict[str, float]) -> None:
        self.run, self.epoch, self.step0 = run, epoch, step0
        self.previous = dict(sums)
        self.log = StepLog(run.work_dir, start_step=epoch * run.steps_per_epoch + step0, enabled=run.ctx.is_main)

    def __enter__(self) -> "IntervalLog":
        self.log.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.log.__exit__(*exc)

    def record(self, step: int, sums: dict[str, float], *, lr: float, wait: float, elapsed: float) -> dict[str, float]:
        """Record the interval that ends at ``step`` (rank 0) and return what a progress line
        shows: ``loss`` (the interval's), ``top1`` (the epoch's so far), ``lr`` (the one step
        ``step`` used), ``rate``, ``wait``, ``eta``, ``eta_run`` and, on CUDA, ``mem``.

        ``wait`` and ``elapsed`` are the seconds waited for data and run since the epoch (or
        its resume) began."""
        run, steps = self.run, self.run.steps_per_epoch
        record = {"time": round(time.time(), 3), "epoch": self.epoch + 1, "step": step, "steps": steps,
                  "global_step": self.epoch * steps + step, **self._means(sums)}
        done = max(step - self.step0, 1)
        per_step = elapsed / done
        record.update(
            lr=lr, clips_per_s=done * run.batch * run.ctx.world_size / max(elapsed, 1e-9),
            data_wait=wait / max(elapsed, 1e-9), eta_epoch_s=per_step * (steps - step),
            eta_run_s=per_step * ((run.cfg.optim.epochs - self.epoch - 1) * steps + steps - step))
        if run.ctx.device.type == "cuda":  # the allocator's host-side counter: no wait on the GPU
            record["gpu_mem_gib"] = torch.cuda.max_memory_allocated(run.ctx.device) / 2**30
        self.log.write(record)
        self.previous = dict(sums)
        shown = {"loss": record["loss"], "top1": record["top1_epoch"], "lr": record["lr"],
                 "rate": record["clips_per_s"], "wait": record["data_wait"], "eta": record["eta_epoch_s"],
                 "eta_run": record["eta_run_s"]}
        if "gpu_mem_gib" in record:
            shown["mem"] = record["gpu_mem_gib"]
        return shown

    def _means(self, sums: dict[str, float]) -> dict[str, float]:
        """The interval's mean of each loss term (stage 1 has its loss only), the epoch's running
        loss and top-1 (%)."""
        seen = sums["seen"]
        fresh = seen - self.previous.get("seen", 0.0)
        out = {}
        for key in TERMS if self.run.cfg.model.stage == 2 else ("loss",):
            delta = sums[key] - self.previous.get(key, 0.0)
            out[key] = delta / fresh if fresh > 0 else sums[key] / max(seen, 1.0)
        out["loss_epoch"] = sums["loss"] / max(seen, 1.0)
        out["top1_epoch"] = 100.0 * sums["correct"] / max(seen, 1.0)
        return out


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The schedule's lr now (warm-up included), without the first group's multiplier."""
    group = optimizer.param_groups[0]
    return float(group["lr"] / group.get("lr_mult", 1.0))

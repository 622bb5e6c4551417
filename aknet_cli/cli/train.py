"""``aknet train``: a thin wrapper over :func:`aknet_cli.engine.trainer.train`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from typer import _click

from ..exceptions import ConfigError
from ._common import console


def train_command(
    ctx: typer.Context,
    config: Optional[str] = typer.Argument(None, help="A config file (TOML) or the name of a shipped config (see --list-configs)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key, repeatable: --set optim.lr=0.02 --set model.aknet.alpha=0.5."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Where checkpoints, metrics and plots go [default: work_dirs/CONFIG_NAME]."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Resume: alone, from the work dir's last.pt; or from the checkpoint given (--resume CKPT.pt)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (train.seed)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or auto (train.device)."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision on CUDA: bf16 where supported, else fp16 with a GradScaler (train.amp)."),
    nproc: int = typer.Option(1, "--nproc", help="Processes on this machine: launches the same job through torchrun (torch.distributed.run)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
    list_configs: bool = typer.Option(False, "--list-configs", help="List the shipped configs and exit."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars, progress lines or epoch lines (the work dir's files are written all the same)."),
) -> None:
    """Train a backbone (stage 1) or AK-Net (stage 2) from a TOML config.

    Stage 2 converts the stage-1 checkpoint named by `model.init_from` (the code of
    `aknet convert-1d`) and fine-tunes every module with eq. 16. The work dir gets
    `config.toml`, `metrics.csv`, `curves.png`, `steps.jsonl`, `last.pt` and `best.pt`. In a
    terminal a bar shows each epoch; in a file (`> run.log 2>&1`) a plain line every
    `train.log_every` steps and at least every 30 s (`aknet --log-seconds S train ...`). Examples:

        aknet train tsm_r50_sthv1_stage1 --set data.dataset=data/sthv1

        aknet train configs/demo_tdn_stage1.toml --set optim.epochs=2 --work-dir runs/try

        aknet train tsm_r50_sthv1_stage1 --resume

        torchrun --nproc_per_node=8 -m aknet_cli train tsm_r50_sthv2_stage1
    """
    from ..engine.config import load_config, packaged_configs, to_toml

    if list_configs:
        for name, path in sorted(packaged_configs().items()):
            console.print(f"{name}  [dim]{path}[/]", highlight=False, soft_wrap=True)
        return
    if config is None:
        # a usage error (exit 2, like any missing argument): CONFIG is optional only for --list-configs
        raise _click.exceptions.UsageError("missing CONFIG: a config file or a shipped config name (see "
                                           "`aknet train --list-configs`)", ctx=ctx)
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    overrides = list(set_)
    for key, value in (("train.seed", seed), ("train.device", device)):
        if value is not None:
            overrides.append(f"{key}={value}")
    if amp is not None:
        overrides.append(f"train.amp={'true' if amp else 'false'}")
    cfg = load_config(config, overrides, check_paths=not print_config)
    if print_config:
        sys.stdout.write(to_toml(cfg))
        return
    work = work_dir or Path("work_dirs") / cfg.name
    from .._atomic import check_output_dir

    check_output_dir(work, option="--work-dir")
    from ..engine.distributed import launched_by_torchrun, setup, teardown
    from ..engine.resume import refuse_overwrite

    if nproc > 1 and not launched_by_torchrun():
        refuse_overwrite(resume, work)  # before the launch: one line, not one per process
        _launch_torchrun(nproc)
        return
    from ..engine.trainer import train

    try:
        # Under torchrun the process group comes first, so that rank 0 decides for every rank
        # whether this launch would overwrite a run (each rank looking for itself could split them).
        refuse_overwrite(resume, work, setup(cfg.train.device))
        result = train(cfg, work_dir=work, resume=resume, progress=not quiet)
    finally:  # under torchrun: leave the process group cleanly (NCCL warns otherwise)
        teardown()
    if not quiet and int(os.environ.get("RANK", "0")) == 0:  # one line per job, not per process
        console.print(f"best val top-1 {result.best_top1:.2f}%  →  {result.best_checkpoint}", highlight=False)


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".tar")


def optional_resume_value(argv: list[str]) -> list[str]:
    """Let ``--resume`` stand alone: ``--resume`` not followed by a checkpoint means ``auto``.

    Click options take exactly one value, so a bare ``--resume`` would swallow the next
    argument (the config, or another option). A following argument counts as the checkpoint
    only if it names a checkpoint file (``.pt``, ``.pth``, ``.ckpt``, ``.tar``).
    """
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--resume":
            following = out[i + 1] if i + 1 < len(out) else None
            if following is None or not following.endswith(CHECKPOINT_SUFFIXES):
                out[i] = "--resume=auto"
    return out


def _launch_torchrun(nproc: int) -> None:
    """Re-run this very command under torchrun with ``nproc`` processes on this machine."""
    from torch.distributed.run import main as torchrun

    args = [a for a in sys.argv[1:]]
    cleaned, skip = [], False
    for arg in args:  # drop --nproc N: the workers must not launch again
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        cleaned.append(arg)
    torchrun([f"--nproc_per_node={nproc}", "--standalone", "-m", "aknet_cli", *cleaned])

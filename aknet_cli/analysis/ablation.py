"""``aknet ablate``: the paper's ablations (Tables IV–VI, and a τ sweep) run as stage-2 trainings.

Every row of every table fine-tunes AK-Net from **one shared stage-1 checkpoint** (trained
once in ``WORK/stage1`` from ``stage1_config``, or given), with the same seed and schedule,
differing only in the row's switches. Rows run through :func:`aknet_cli.engine.trainer.train`
in ``WORK/<table>/<row>``: a finished row is skipped on re-run, an interrupted one resumes,
``force`` redoes them. The result is a table of our top-1 and GFLOPs beside the paper's
top-1 for that row (numbers from :mod:`aknet_cli.analysis.paper`).
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..exceptions import ConfigError
from ..engine.trainer import run_finished as finished
from . import paper

TABLES = ("iv", "v", "vi", "tau")
TITLES = {
    "iv": "Table IV: components of AK-Net (split res2)",
    "v": "Table V: position information (split res2, ranking on)",
    "vi": "Table VI: point sampling rate α",
    "tau": "τ sweep (beyond the paper): ranking weight of eq. 7",
}


@dataclass
class AblationRun:
    """One row: its name, switches, where it trains, and (after running) its result."""

    name: str
    switches: dict[str, Any]
    paper_top1: float | None
    work_dir: Path
    gflops: float | None = None
    top1: float | None = None
    status: str = "planned"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "switches": self.switches, "top1": self.top1, "gflops": self.gflops,
                "paper_top1": self.paper_top1, "status": self.status}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower().replace("α", "alpha").replace("τ", "tau")).strip("_")


def _tau_rows(split: str, crop: int, stride: int) -> list[paper.AblationRow]:
    """τ ∈ {1, 2, w, h + w} on the split map of this input size (the paper leaves τ open)."""
    side = math.ceil(crop / stride)
    values = {"τ=1": 1.0, "τ=2": 2.0, f"τ=w ({side})": float(side), f"τ=h+w ({2 * side})": float(2 * side)}
    return [paper.AblationRow(name, {"split": split, "tau": tau}, None) for name, tau in values.items()]


def plan(table: str, *, base_cfg, work_dir: Path) -> list[AblationRun]:
    """The runs of one table, in the paper's order."""
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if table == "tau":
        from .._registry import create_backbone

        split = base_cfg.model.aknet.get("split", "res4")
        net = create_backbone(base_cfg.model.backbone, num_classes=2, num_segments=base_cfg.model.num_segments)
        rows = _tau_rows(split, base_cfg.data.crop, net.specs[split].stride)
    else:
        rows = list(paper.ABLATION_TABLES[table])
    return [AblationRun(r.name, dict(r.switches), r.paper_top1, work_dir / table / _slug(r.name)) for r in rows]


def row_config(run: AblationRun, *, base_source: str, stage1: Path, data: str, epochs: int | None,
               overrides: list[str]):
    """The stage-2 config of one row: the base config, the shared stage 1, the row's switches."""
    from ..engine.config import load_config
    from ..engine.config import _toml_value as toml_value

    sets = [f"data.dataset={data}", f"model.init_from={stage1}", f"name={run.work_dir.name}"]
    sets += [f"model.aknet.{k}={toml_value(v)}" for k, v in run.switches.items()]
    if epochs is not None:
        sets.append(f"optim.epochs={epochs}")
    return load_config(base_source, sets + list(overrides), check_paths=False)


def count_gflops(cfg) -> float:
    """Inference GFLOPs of a row's AK-Net at its training crop (the convention of `aknet flops`)."""
    from ..data import load_manifest
    from .flops import count

    switches = dict(cfg.model.aknet)
    split, alpha = switches.pop("split", "res4"), switches.pop("alpha", 0.3)
    classes = load_manifest(Path(cfg.data.dataset)).num_classes
    return count(cfg.model.backbone, split=split, alpha=alpha, frames=cfg.model.num_segments, size=cfg.data.crop,
                 num_classes=classes, options=switches).gflops


def best_top1(work: Path) -> float | None:
    metrics = work / "metrics.csv"
    if not metrics.is_file():
        return None
    values = pd.read_csv(metrics)["val_top1"].dropna()
    return float(values.max()) if len(values) else None


def ensure_stage1(*, stage1: Path | None, stage1_config: str, data: str, work_dir: Path, epochs: int | None,
                  progress: bool, dry_run: bool) -> Path:
    """The shared stage-1 checkpoint: given, already trained in ``WORK/stage1``, or trained now."""
    if stage1 is not None:
        if not Path(stage1).is_file():
            raise ConfigError(f"--stage1 {stage1} does not exist; train a stage-1 model first or leave --stage1 out")
        return Path(stage1)
    from ..engine.config import load_config

    work = work_dir / "stage1"
    cfg = load_config(stage1_config, [f"data.dataset={data}", "name=stage1"], check_paths=not dry_run)
    if dry_run or finished(work, cfg.optim.epochs):
        return work / "best.pt"
    from ..engine.trainer import train

    train(cfg, work_dir=work, resume="auto" if (work / "last.pt").is_file() else None, progress=progress)
    return work / "best.pt"


def run_table(
    table: str,
    *,
    data: str | Path = "runs/demo/synth",
    config: str = "demo_aknet_tdn_stage2",
    stage1_config: str = "demo_tdn_stage1",
    stage1: Path | None = None,
    overrides: list[str] | None = None,
    epochs: int | None = None,
    work_dir: str | Path = "runs/ablate",
    dry_run: bool = False,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Plan (and unless ``dry_run``, run) one ablation table.

    Returns:
        ``{"table", "title", "rows": [{"name", "switches", "top1", "gflops", "paper_top1", "status"}],
        "stage1", "files"}``.
    """
    from ..engine.config import load_config, resolve_config_path

    data, work_dir, overrides = str(data), Path(work_dir), list(overrides or [])
    if not (Path(data) / "dataset.json").is_file():
        raise ConfigError(f"--data {data} is not a prepared dataset; run `aknet prepare synthetic --out {data}` "
                          f"(or `make demo`) first")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    base_source = str(resolve_config_path(config))
    base_cfg = load_config(base_source, [f"data.dataset={data}", *overrides], check_paths=False)
    if base_cfg.model.stage != 2:
        raise ConfigError(f"--config {config} is a stage-{base_cfg.model.stage} config; ablations fine-tune AK-Net "
                          f"(stage 2)")
    shared = ensure_stage1(stage1=stage1, stage1_config=stage1_config, data=data, work_dir=work_dir, epochs=epochs,
                           progress=progress, dry_run=dry_run)
    runs = plan(table, base_cfg=base_cfg, work_dir=work_dir)
    from ..engine.trainer import train

    for run in runs:
        cfg = row_config(run, base_source=base_source, stage1=shared, data=data, epochs=epochs, overrides=overrides)
        run.gflops = count_gflops(cfg)
        if dry_run:
            run.status = "done" if finished(run.work_dir, cfg.optim.epochs) else "planned"
            run.top1 = best_top1(run.work_dir) if run.status == "done" else None
            continue
        if force and run.work_dir.exists():
            shutil.rmtree(run.work_dir)
        if finished(run.work_dir, cfg.optim.epochs):
            run.status = "reused"
        else:
            resume = "auto" if (run.work_dir / "last.pt").is_file() else None
            if progress:
                print(f"\n== {TITLES[table]} — row {run.name!r}: {run.switches}", flush=True)
            train(cfg, work_dir=run.work_dir, resume=resume, progress=progress)
            run.status = "trained"
        run.top1 = best_top1(run.work_dir)
    result = {"table": table, "title": TITLES[table], "stage1": str(shared), "dry_run": dry_run,
              "rows": [r.as_dict() for r in runs]}
    if not dry_run:
        result["files"] = write_outputs(table, runs, work_dir / table)
    return result


def results_frame(runs: list[AblationRun]) -> pd.DataFrame:
    return pd.DataFrame([{"row": r.name, "top1": r.top1, "paper_top1": r.paper_top1, "gflops": r.gflops,
                          "switches": ", ".join(f"{k}={v}" for k, v in r.switches.items())} for r in runs])


def write_outputs(table: str, runs: list[AblationRun], folder: Path) -> dict[str, str]:
    """``results.csv``, ``results.md`` and a plot (Table VI: top-1 vs α; others: bars)."""
    from .._atomic import atomic_output
    from .plots import plot_ablation

    frame = results_frame(runs)
    with atomic_output(folder / "results.csv", suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.2f")
    with atomic_output(folder / "results.md", suffix=".md") as tmp:
        tmp.write_text(f"{TITLES[table]}\n\n" + frame.to_markdown(index=False, floatfmt=".2f") + "\n", encoding="utf-8")
    plot = folder / f"table_{table}.png"
    plot_ablation(plot, table, [r.as_dict() for r in runs], title=TITLES[table])
    return {"csv": str(folder / "results.csv"), "markdown": str(folder / "results.md"), "plot": str(plot)}

"""``aknet ablate``: the paper's ablations (Tables IV–VI, and a τ sweep) run as stage-2 trainings.

Every row of every table fine-tunes AK-Net from **one shared stage-1 checkpoint** (trained
once in ``WORK/stage1`` from ``stage1_config``, or given), with the same schedule, differing
only in the row's switches, once per training seed (``--seeds 0,1,2``: ``train.seed``). A run
trains through :func:`aknet_cli.engine.trainer.train` in ``WORK/<table>/<row>/seed_<s>``: a
finished run is reused, an interrupted one resumes, ``force`` redoes them.

``best.pt`` is chosen on ``val`` as in every training; each run's ``best.pt`` is then scored on
the **held-out test split** (when the dataset has a labelled one, as synth-sth does), so the
reported numbers were selected on nothing. A row reports the mean ± standard deviation of its
test top-1 over the seeds it has, and its **paired** difference to the table's baseline row
(the same clips, the same seeds): the mean over seeds, with a 95% paired-bootstrap interval over
clips of the seed-averaged correctness (:mod:`aknet_cli.engine.statistics`). The paper's top-1
for each row comes from :mod:`aknet_cli.analysis.paper`.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..engine.evaluate import correct_per_clip_from_csv
from ..engine.statistics import LEVEL, mean_std, paired_bootstrap
from ..engine.trainer import run_finished as finished
from ..exceptions import ConfigError
from . import paper

TABLES = ("iv", "v", "vi", "tau", "transform")
TITLES = {
    "iv": "Table IV: components of AK-Net (split res2)",
    "v": "Table V: position information (split res2, ranking on)",
    "vi": "Table VI: point sampling rate α",
    "tau": "τ sweep (beyond the paper): ranking weight of eq. 7",
    "transform": "transform net forms (beyond the paper): what eq. 10's matrix costs and buys",
}


@dataclass
class AblationRun:
    """One row trained with one seed: where it trains and, once scored, what it measured."""

    name: str
    switches: dict[str, Any]
    paper_top1: float | None
    seed: int
    work_dir: Path
    gflops: float | None = None
    val_top1: float | None = None  # best val top-1: what selected best.pt
    top1: float | None = None  # best.pt on the report split
    status: str = "planned"
    correct: np.ndarray | None = field(default=None, repr=False)  # per clip of the report split

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "switches": self.switches, "val_top1": self.val_top1,
                "top1": self.top1, "gflops": self.gflops, "status": self.status, "work_dir": str(self.work_dir)}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower().replace("α", "alpha").replace("τ", "tau")).strip("_")


def _tau_rows(split: str, crop: int, stride: int) -> list[paper.AblationRow]:
    """τ ∈ {1, 2, w, h + w} on the split map of this input size (the paper leaves τ open)."""
    side = math.ceil(crop / stride)
    values = {"τ=1": 1.0, "τ=2": 2.0, f"τ=w ({side})": float(side), f"τ=h+w ({2 * side})": float(2 * side)}
    return [paper.AblationRow(name, {"split": split, "tau": tau}, None) for name, tau in values.items()]


def _transform_rows(split: str) -> list[paper.AblationRow]:
    """The transform net's forms at the config's split, the previous default (``uv``, rank 64)
    first, as the row the others are compared with."""
    forms = {"uv r=64": {"transform": "uv", "transform_rank": 64}, "core r=64": {"transform": "core", "transform_rank": 64},
             "core r=16": {"transform": "core", "transform_rank": 16}, "full (paper)": {"transform": "full", "transform_rank": None},
             "no position": {"position": "none"}}
    return [paper.AblationRow(name, {"split": split, "position": "transform", **switches}, None)
            for name, switches in forms.items()]


def table_rows(table: str, base_cfg) -> list[paper.AblationRow]:
    """The rows of one table, in the paper's order."""
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if table == "transform":
        return _transform_rows(base_cfg.model.aknet.get("split", "res4"))
    if table != "tau":
        return list(paper.ABLATION_TABLES[table])
    from .._registry import create_backbone

    split = base_cfg.model.aknet.get("split", "res4")
    net = create_backbone(base_cfg.model.backbone, num_classes=2, num_segments=base_cfg.model.num_segments)
    return _tau_rows(split, base_cfg.data.crop, net.specs[split].stride)


def baseline_of(table: str, name: str, names: list[str]) -> str | None:
    """The row a row is compared with: Table IV's bare 1-D subnet, Table V's row without
    position information, Table VI's baseline at the same α, the τ sweep's first row."""
    if table == "vi":
        return name.replace("ours", "baseline", 1) if name.startswith("ours") else None
    base = {"iv": "Q only", "v": "baseline"}.get(table, names[0])
    return None if name == base else base


def plan(table: str, *, base_cfg, work_dir: Path, seeds: tuple[int, ...] = (0,),
         rows: tuple[str, ...] | None = None) -> list[AblationRun]:
    """The runs of one table: its rows (or the named ``rows``) × ``seeds``, in the paper's order."""
    chosen = table_rows(table, base_cfg)
    if rows:
        unknown = sorted(set(rows) - {r.name for r in chosen})
        if unknown:
            raise ConfigError(f"--rows: table {table} has no row {unknown[0]!r}; its rows: "
                              f"{', '.join(r.name for r in chosen)}")
        chosen = [r for r in chosen if r.name in rows]
    return [AblationRun(r.name, dict(r.switches), r.paper_top1, seed, work_dir / table / _slug(r.name) / f"seed_{seed}")
            for r in chosen for seed in seeds]


def row_config(run: AblationRun, *, base_source: str, stage1: Path, data: str, epochs: int | None,
               overrides: list[str]):
    """The stage-2 config of one run: the base config, the shared stage 1, the row's switches,
    the run's seed."""
    from ..engine.config import _toml_value as toml_value
    from ..engine.config import load_config

    sets = [f"data.dataset={data}", f"model.init_from={stage1}", f"name={run.work_dir.parent.name}",
            f"train.seed={run.seed}"]
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


def best_val_top1(work: Path) -> float | None:
    metrics = work / "metrics.csv"
    if not metrics.is_file():
        return None
    values = pd.read_csv(metrics)["val_top1"].dropna()
    return float(values.max()) if len(values) else None


def report_split(data: str) -> str:
    """``test`` where the dataset holds a labelled held-out split, else ``val`` (which then
    both selected ``best.pt`` and is reported: said in the results)."""
    from ..data import load_manifest

    manifest = load_manifest(Path(data))
    roles = manifest.data.get("split_roles") or {}
    return "test" if roles.get("test", "").startswith("held out") else "val"


def score_run(run: AblationRun, *, data: str, split: str) -> None:
    """Score a finished run's ``best.pt`` on ``split`` (cached in ``eval_<split>``): its top-1
    and the correctness of every clip, in the split's order."""
    out = run.work_dir / f"eval_{split}"
    predictions, best = out / "predictions.csv", run.work_dir / "best.pt"
    if not (predictions.is_file() and predictions.stat().st_mtime >= best.stat().st_mtime):
        from ..engine.evaluate import evaluate

        evaluate(best, data, split=split, out=out, num_workers=1, progress=False)
    run.correct = correct_per_clip_from_csv(predictions)
    run.top1 = round(100.0 * float(run.correct.mean()), 2) if len(run.correct) else None
    run.val_top1 = best_val_top1(run.work_dir)


def stage1_path(stage1: Path | None, work_dir: Path) -> Path:
    """Where the shared stage-1 checkpoint is (given) or will be (trained in ``WORK/stage1``)."""
    return Path(stage1) if stage1 is not None else work_dir / "stage1" / "best.pt"


def ensure_stage1(*, stage1: Path | None, stage1_config: str, data: str, work_dir: Path, progress: bool,
                  dry_run: bool) -> Path:
    """The shared stage-1 checkpoint: given, already trained in ``WORK/stage1``, or trained now;
    in a dry run, checked as its training would check it, and not trained."""
    if stage1 is not None:
        if not Path(stage1).is_file():
            raise ConfigError(f"--stage1 {stage1} does not exist; train a stage-1 model first or leave --stage1 out")
        return Path(stage1)
    from ..engine.config import load_config
    from ..engine.trainer import check_before_training, train

    work = work_dir / "stage1"
    cfg = load_config(stage1_config, [f"data.dataset={data}", "name=stage1"])
    if finished(work, cfg.optim.epochs):
        return work / "best.pt"
    check_before_training(cfg)
    if not dry_run:
        train(cfg, work_dir=work, resume="auto" if (work / "last.pt").is_file() else None, progress=progress)
    return work / "best.pt"


def _train_run(run: AblationRun, cfg, *, force: bool, progress: bool, table: str) -> None:
    if force and run.work_dir.exists():
        shutil.rmtree(run.work_dir)
    if finished(run.work_dir, cfg.optim.epochs):
        run.status = "reused"
        return
    from ..engine.trainer import train

    if progress:
        print(f"\n== {TITLES[table]} — row {run.name!r}, seed {run.seed}: {run.switches}", flush=True)
    train(cfg, work_dir=run.work_dir, resume="auto" if (run.work_dir / "last.pt").is_file() else None,
          progress=progress)
    run.status = "trained"


def _runs_progress(table: str, total: int, *, show: bool):
    """What to call after each run of a table: a line with how many are done, the time so far and
    an ETA from the runs so far (reused ones count as done), as a plain line in a terminal too,
    where each run's training draws its own bar (:mod:`aknet_cli._progress`)."""
    from rich.console import Console

    from .._progress import LoopBar

    bar = LoopBar(Console(stderr=True) if show else None, unit="run", rate=False, plain=True)
    task = bar.add_task(f"ablate table {table}", total=total)
    return lambda: bar.update(task, advance=1, stats={})


def _runs_on_disk(table: str, planned: list[AblationRun], work_dir: Path, base_cfg) -> list[AblationRun]:
    """The planned runs plus every other finished seed of the same rows found in the work dir,
    so a row's summary covers all its seeds however many invocations trained them."""
    have = {(r.name, r.seed) for r in planned}
    extra = []
    for row in table_rows(table, base_cfg):
        folder = work_dir / table / _slug(row.name)
        for seed_dir in sorted(folder.glob("seed_*")) if folder.is_dir() else []:
            seed = int(seed_dir.name.split("_")[1])
            if (row.name, seed) not in have and (seed_dir / "best.pt").is_file():
                extra.append(AblationRun(row.name, dict(row.switches), row.paper_top1, seed, seed_dir, status="found"))
    order = {row.name: i for i, row in enumerate(table_rows(table, base_cfg))}
    return sorted(planned + extra, key=lambda r: (order[r.name], r.seed))


def run_table(
    table: str,
    *,
    data: str | Path = "runs/demo/synth",
    config: str = "demo_aknet_tdn_stage2",
    stage1_config: str = "demo_tdn_stage1",
    stage1: Path | None = None,
    overrides: list[str] | None = None,
    epochs: int | None = None,
    seeds: tuple[int, ...] = (0,),
    rows: tuple[str, ...] | None = None,
    work_dir: str | Path = "runs/ablate",
    dry_run: bool = False,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Plan (and unless ``dry_run``, run and score) one ablation table.

    Returns:
        ``{"table", "title", "split", "seeds", "runs": [per run], "rows": [per row: "name",
        "switches", "seeds", "top1" (mean), "top1_std", "baseline", "diff", "diff_ci",
        "paper_top1", "gflops", "status"], "stage1", "files"}``.
    """
    from ..engine.config import load_config, resolve_config_path

    data, work_dir, overrides = str(data), Path(work_dir), list(overrides or [])
    _check_options(data, epochs, seeds)
    base_source = str(resolve_config_path(config))
    base_cfg = load_config(base_source, [f"data.dataset={data}", *overrides], check_paths=False)
    if base_cfg.model.stage != 2:
        raise ConfigError(f"--config {config} is a stage-{base_cfg.model.stage} config; ablations fine-tune AK-Net "
                          f"(stage 2)")
    shared = stage1_path(stage1, work_dir)
    runs = plan(table, base_cfg=base_cfg, work_dir=work_dir, seeds=seeds, rows=rows)
    split = report_split(data)
    config_of = functools.partial(row_config, base_source=base_source, stage1=shared, data=data, epochs=epochs,
                                  overrides=overrides)
    configs = [config_of(run) for run in runs]
    if runs:  # what the first row's training refuses, refused before anything trains (a dry run included)
        from ..engine.trainer import check_before_training

        check_before_training(configs[0], stage1_exists=shared.is_file())
    shared = ensure_stage1(stage1=stage1, stage1_config=stage1_config, data=data, work_dir=work_dir,
                           progress=progress, dry_run=dry_run)
    row_gflops: dict[str, float] = {}  # a row's seeds share its architecture, so it is counted once

    def gflops_of(run: AblationRun, cfg=None) -> float:
        if run.name not in row_gflops:
            row_gflops[run.name] = count_gflops(cfg if cfg is not None else config_of(run))
        return row_gflops[run.name]

    run_done = _runs_progress(table, len(runs), show=progress and not dry_run)
    for run, cfg in zip(runs, configs):
        run.gflops = gflops_of(run, cfg)
        if dry_run:
            run.status = "done" if finished(run.work_dir, cfg.optim.epochs) else "planned"
            continue
        _train_run(run, cfg, force=force, progress=progress, table=table)
        run_done()
    result = {"table": table, "title": TITLES[table], "stage1": str(shared), "dry_run": dry_run, "split": split,
              "seeds": list(seeds)}
    if dry_run:
        result["runs"] = [r.as_dict() for r in runs]
        result["rows"] = summarize(table, runs)
        return result
    runs = _runs_on_disk(table, runs, work_dir, base_cfg)
    for run in runs:
        if run.gflops is None:  # a seed trained by an earlier invocation
            run.gflops = gflops_of(run)
        score_run(run, data=data, split=split)
    result["runs"] = [r.as_dict() for r in runs]
    result["rows"] = summarize(table, runs)
    result["files"] = write_outputs(table, result, work_dir / table)
    return result


def _check_options(data: str, epochs: int | None, seeds: tuple[int, ...]) -> None:
    if not (Path(data) / "dataset.json").is_file():
        raise ConfigError(f"--data {data} is not a prepared dataset; run `aknet prepare synthetic --out {data}` "
                          f"(or `make demo`) first")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds needs distinct seeds >= 0, got {','.join(map(str, seeds)) or 'nothing'}")


# --------------------------------------------------------------------------- summary
def _row_summary(name: str, runs: list[AblationRun]) -> dict[str, Any]:
    first = runs[0]
    scored = [r for r in runs if r.top1 is not None]
    mean, std, n = mean_std([r.top1 for r in scored])
    statuses = sorted({r.status for r in runs})
    return {"name": name, "switches": first.switches, "paper_top1": first.paper_top1, "gflops": first.gflops,
            "seeds": sorted(r.seed for r in scored), "top1": None if n == 0 else round(mean, 2),
            "top1_std": None if n < 2 else round(std, 2), "top1_by_seed": {r.seed: r.top1 for r in scored},
            "val_top1_by_seed": {r.seed: r.val_top1 for r in scored}, "baseline": None, "diff": None,
            "diff_ci": None, "diff_seed_std": None, "status": statuses[0] if len(statuses) == 1 else "+".join(statuses)}


def _paired(row: list[AblationRun], base: list[AblationRun]) -> dict[str, Any] | None:
    """The row against its baseline on the seeds both have: mean of the per-seed differences,
    their std, and the 95% paired-bootstrap interval over clips of the seed-averaged correctness."""
    by_seed = {r.seed: r for r in base if r.correct is not None}
    pairs = [(r, by_seed[r.seed]) for r in row if r.correct is not None and r.seed in by_seed]
    if not pairs:
        return None
    diffs = [100 * float(a.correct.mean() - b.correct.mean()) for a, b in pairs]
    _, std, _ = mean_std(diffs)
    mine = np.mean([a.correct for a, _ in pairs], axis=0)
    theirs = np.mean([b.correct for _, b in pairs], axis=0)
    diff, low, high = paired_bootstrap(mine, theirs)
    return {"diff": round(100 * diff, 2), "diff_ci": [round(100 * low, 2), round(100 * high, 2)],
            "diff_seed_std": None if len(pairs) < 2 else round(std, 2), "diff_seeds": [a.seed for a, _ in pairs]}


def summarize(table: str, runs: list[AblationRun]) -> list[dict[str, Any]]:
    """One entry per row, in the paper's order (see :func:`run_table`)."""
    names = list(dict.fromkeys(r.name for r in runs))
    by_row = {name: [r for r in runs if r.name == name] for name in names}
    rows = []
    for name in names:
        row = _row_summary(name, by_row[name])
        base = baseline_of(table, name, names)
        if base in by_row:
            row["baseline"] = base
            row.update(_paired(by_row[name], by_row[base]) or {})
        rows.append(row)
    return rows


def summary_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    def pm(r):
        if r["top1"] is None:
            return "—"
        return f"{r['top1']:.2f}" + (f" ± {r['top1_std']:.2f}" if r["top1_std"] is not None else "")

    def vs(r):
        if r["diff"] is None:
            return ""
        lo, hi = r["diff_ci"]
        return f"{r['diff']:+.2f} [{lo:+.2f}, {hi:+.2f}] vs {r['baseline']}"

    return pd.DataFrame([{"row": r["name"], "seeds": ",".join(map(str, r["seeds"])), "top1 (mean ± std)": pm(r),
                          f"paired diff [{int(100 * LEVEL)}% CI]": vs(r), "paper top1": r["paper_top1"],
                          "gflops": None if r["gflops"] is None else round(r["gflops"], 3)} for r in rows])


def write_outputs(table: str, result: dict[str, Any], folder: Path) -> dict[str, str]:
    """``runs.csv`` (every run), ``results.csv`` and ``results.md`` (every row), and a plot
    with the seeds' standard deviation as error bars."""
    from .._atomic import atomic_output
    from .plots import plot_ablation

    runs = pd.DataFrame([{k: v for k, v in r.items() if k != "switches"} for r in result["runs"]])
    rows = pd.DataFrame([{k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()
                          if k not in ("switches", "top1_by_seed", "val_top1_by_seed")} for r in result["rows"]])
    files = {"runs": folder / "runs.csv", "csv": folder / "results.csv", "markdown": folder / "results.md",
             "plot": folder / f"table_{table}.png"}
    for key in ("runs", "csv"):
        with atomic_output(files[key], suffix=".csv") as tmp:
            (runs if key == "runs" else rows).to_csv(tmp, index=False, float_format="%.2f")
    note = (f"top-1 of best.pt (chosen on val) on the **{result['split']}** split; mean ± std over seeds; paired "
            f"difference to the baseline row on the same clips and seeds, {int(100 * LEVEL)}% paired-bootstrap CI")
    with atomic_output(files["markdown"], suffix=".md") as tmp:
        tmp.write_text(f"{TITLES[table]}\n\n{note}\n\n" + summary_frame(result["rows"]).to_markdown(index=False)
                       + "\n", encoding="utf-8")
    plot_ablation(files["plot"], table, result["rows"], title=f"{TITLES[table]} ({result['split']} split)")
    return {k: str(v) for k, v in files.items()}

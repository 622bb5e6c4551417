#!/usr/bin/env python
"""Hostile-input sweep of the aknet CLI: hundreds of runs a careless user or a hostile input would
make, each one a separate ``aknet`` subprocess, each judged against what it must do.

    .venv/bin/python scripts/hostile_cli.py --out /tmp/hostile [--only train --only eval] [--json]

It builds tiny scratch inputs under ``OUT/fx`` (synth-sth in the Sth-Sth V1/V2 and Diving48
layouts, a one-step TSM-ResNet-18 and AK-Net, damaged checkpoints, odd videos, broken configs
and label files; reused by later runs) and runs every case in its own folder ``OUT/cases/ID``.
A case expects ``clean`` (exit 1, one line naming the thing), ``usage`` (exit 2, one line) or
``ok`` (exit 0 and a check of the output); any case fails on a traceback, a timeout, or a change
to the scratch inputs (fingerprinted around every case, SHA-256 over the whole sweep). Prints a
table per subcommand, the counts and every failure; ``--json`` also writes ``OUT/hostile.json``.
Exit status 1 when a case failed. A QA tool, not a test: see docs/testing.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aknet_cli._machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn  # noqa: E402

from hostile import cases_analysis, cases_general, cases_models, cases_prepare, cases_train, cases_video  # noqa: E402
from hostile.case import Case, judge  # noqa: E402
from hostile.fixtures import NEEDS, Fixtures  # noqa: E402
from hostile.report import Result, print_report, save_json, summary  # noqa: E402
from hostile.runner import changes, deep_digest, fingerprint, run_plain  # noqa: E402

CASE_MODULES = (cases_general, cases_prepare, cases_train, cases_models, cases_analysis, cases_video)
#: Variables that would make a case part of someone else's distributed job.
_FOREIGN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "TORCHELASTIC_RESTART_COUNT", "CUDA_VISIBLE_DEVICES")


def all_cases(fx: Fixtures) -> list[Case]:
    """Every case, with ids stable across ``--only`` selections (``train-012``)."""
    cases = [case for module in CASE_MODULES for case in module.cases(fx)]
    seen: dict[str, int] = {}
    for case in cases:
        seen[case.command] = seen.get(case.command, 0) + 1
        case.id = f"{case.command}-{seen[case.command]:03d}"
    return cases


def default_aknet() -> str:
    beside = Path(sys.executable).with_name("aknet")
    found = str(beside) if beside.is_file() else shutil.which("aknet")
    if not found:
        sys.exit("hostile_cli: no aknet executable beside this Python or on PATH; pass --aknet")
    return found


def case_environment(out: Path) -> dict[str, str]:
    """The user's environment, minus distributed-job variables, with an empty torch hub cache
    (so that pretrained weights are as offline as on a cluster's compute node)."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env["TORCH_HOME"] = str(out / "torch_home")
    env["CUDA_VISIBLE_DEVICES"] = ""  # the same answers on a machine with a GPU
    (out / "torch_home").mkdir(parents=True, exist_ok=True)
    return env


def run_case(case: Case, out: Path, fx: Fixtures, env: dict[str, str]) -> Result:
    case_dir = out / "cases" / case.id
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    if case.setup:
        case.setup(case_dir)
    merged = dict(env)
    for key, value in case.env.items():
        merged[key] = value
    before = fingerprint(fx.root)
    outcome = case.run(case, case_dir, merged, fx.aknet) if case.run else run_plain(case, case_dir, merged, fx.aknet)
    changed = changes(before, fingerprint(fx.root))
    return Result(case, outcome, judge(case, outcome, changed, case_dir))


def environment(aknet: str) -> dict[str, str]:
    return {"aknet": aknet, "python": sys.version.split()[0], "cpu": cpu_model(), "cores": str(os.cpu_count()),
            "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="scratch folder: fixtures, one folder per case, the report")
    parser.add_argument("--only", action="append", default=[], metavar="SUBCOMMAND",
                        help="run only this subcommand's cases (repeatable): aknet, backbones, prepare, train, eval, "
                             "convert-1d, flops, bench, ablate, visualize, predict, export")
    parser.add_argument("--json", action="store_true", help="also write OUT/hostile.json")
    parser.add_argument("--aknet", default=None, help="the aknet executable [default: the one beside this Python]")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    console = Console()
    out = args.out.resolve()
    unknown = [o for o in args.only if o not in NEEDS]
    if unknown:
        parser.error(f"--only {unknown[0]}: no such subcommand; choose from {', '.join(NEEDS)}")
    fx = Fixtures(out, args.aknet or default_aknet())
    fx.build(args.only or None, log=lambda line: console.print(f"[dim]{line}[/]"))
    cases = all_cases(fx)
    if args.only:
        cases = [c for c in cases if c.command in args.only]
    if args.list:
        for c in cases:
            console.print(f"{c.id:16} {c.expect:6} {c.name}", markup=False, highlight=False)
        return 0
    env, info = case_environment(out), environment(fx.aknet)
    digests_before = deep_digest(fx.root)
    started = time.monotonic()
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("cases", total=len(cases))
        for case in cases:
            progress.update(task, description=f"{case.id} {case.name[:40]}")
            results.append(run_case(case, out, fx, env))
            progress.advance(task)
    seconds = time.monotonic() - started
    digests_after = deep_digest(fx.root)
    deep_changes = sorted(k for k in digests_before.keys() | digests_after.keys() if digests_before.get(k) != digests_after.get(k))
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["minutes"] = f"{seconds / 60:.1f}"
    print_report(console, results, deep_changes=deep_changes, seconds=seconds)
    console.print(f"[dim]{info['cpu']}, {info['cores']} cores, load {info['load_before']} → {info['load_after']}[/]")
    if args.json:
        save_json(out / "hostile.json", results, deep_changes=deep_changes, environment=info)
        console.print(f"wrote {out / 'hostile.json'}")
    return 1 if summary(results)["failures"] or deep_changes else 0


if __name__ == "__main__":
    sys.exit(main())

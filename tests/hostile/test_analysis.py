"""``aknet flops``, ``aknet bench`` and ``aknet ablate``: ranges, unknown names, unwritable plots,
and successes checked against published numbers and the paper's formulas."""

from __future__ import annotations

from pathlib import Path

import pytest

from .case import CLEAN, OK, USAGE, Case, option_or_word
from .checks import all_of, csv_rows, files, png, stdout_json
from .inputs import UNWRITABLE, Inputs
from .parametrize import each_case

pytestmark = pytest.mark.hostile

TINY_NET = ["--backbone", "resnet18", "--size", "32", "--frames", "2"]


def _in_the_way(d: Path) -> None:
    (d / "taken").write_text("the user's file\n")


def _plot_cases(command: str, argv_for) -> list[Case]:
    return [
        Case(command, "--plot under a file", argv_for("taken/p.png"), CLEAN, ("taken",), setup=_in_the_way),
        Case(command, "--plot is a folder", argv_for("."), CLEAN, ("--plot",)),
        Case(command, "--plot unwritable", argv_for(UNWRITABLE + "/p.png"), CLEAN, (UNWRITABLE,)),
    ]


# ---------------------------------------------------------------------------- flops
def _table_i(cin: int, cout: int, ks: int, kt: int, t: int, h: int, w: int):
    """Table I's 3-D convolution: C_in·C_out·k_s²·k_t multiply-adds at each of T·H·W positions."""
    want = cin * cout * ks * ks * kt * t * h * w

    def test(payload):
        row = next(r for r in payload["rows"] if r["method"] == "3D CNN")
        if row["flops_formula"] != want or row["flops_fvcore"] != want:
            return f"3D CNN: {row['flops_formula']} by formula, {row['flops_fvcore']} by fvcore, expected {want}"
        return None
    return stdout_json(test)


def _gflops_between(low: float, high: float, key: str = "gflops"):
    return stdout_json(lambda p: None if low <= p[key] <= high else f"{key} = {p[key]}, expected {low}-{high}")


def _results_csv(d: Path) -> None:
    (d / "acc.csv").write_text("model,backbone,split,top1\naknet,tsm_resnet18,res3,41.5\ntsm,tsm_resnet18,none,40.0\n")


def _results_bad(d: Path) -> None:
    (d / "acc.csv").write_text("model,backbone,split,top1\naknet,tsm_resnet18,res3,high\n")


def _results_columns(d: Path) -> None:
    (d / "acc.csv").write_text("name;accuracy\naknet;41.5\n")


def _results_binary(d: Path) -> None:
    (d / "acc.csv").write_bytes(bytes(range(256)))


def flops_cases(fx: Inputs) -> list[Case]:
    def fl(*extra: str) -> list[str]:
        return ["flops", *TINY_NET, *extra]

    def selection_counted(p):
        parts = p["by_part"]
        return None if parts.get("selection", {}).get("gflops", 0) > 0 else f"selection is free: {sorted(parts)}"

    cases = [
        Case("flops", "ResNet-18, 1 frame at 224: 1.82 G as torchvision publishes",
             ["flops", "--backbone", "resnet18", "--frames", "1", "--json"], OK, check=_gflops_between(1.80, 1.83)),
        Case("flops", "Table I at the paper's layer", ["flops", "--table", "i", "--json"], OK,
             check=_table_i(256, 256, 3, 3, 8, 14, 14)),
        Case("flops", "Table I at a small layer", ["flops", "--table", "i", "--cin", "8", "--cout", "16", "--t", "2", "--h", "4",
                                                   "--w", "4", "--json"], OK, check=_table_i(8, 16, 3, 3, 2, 4, 4)),
        Case("flops", "AK-Net counts its selection", fl("--split", "res3", "--json"), OK, check=stdout_json(selection_counted)),
        Case("flops", "--plot", ["flops", "--plot", "fig.png", "--compare", "resnet18", "--size", "32", "--frames", "2"], OK,
             check=png("fig.png"), timeout=400),
        Case("flops", "--plot with --results", ["flops", "--plot", "fig.png", "--results", "acc.csv", "--size", "32", "--frames", "2"],
             OK, setup=_results_csv, check=png("fig.png"), timeout=400),
        Case("flops", "--results with a word as top-1", ["flops", "--plot", "fig.png", "--results", "acc.csv"], CLEAN, ("acc.csv",),
             setup=_results_bad),
        Case("flops", "--results without its columns", ["flops", "--plot", "fig.png", "--results", "acc.csv"], CLEAN,
             ("acc.csv",), setup=_results_columns),
        Case("flops", "--results missing", ["flops", "--plot", "fig.png", "--results", "nope.csv"], CLEAN, ("nope.csv",)),
        Case("flops", "--compare names an unknown backbone", ["flops", "--plot", "fig.png", "--compare", "resnet18,nope_net"],
             CLEAN, ("nope_net",)),
        Case("flops", "unknown backbone", ["flops", "--backbone", "nope_net"], CLEAN, ("nope_net",)),
        Case("flops", "--alpha abc", fl("--alpha", "abc"), USAGE, ("--alpha",)),
        Case("flops", "--table iii", ["flops", "--table", "iii"], CLEAN, ("iii",)),
        Case("flops", "stray argument", ["flops", "resnet18"], USAGE, ("resnet18",)),
    ]
    for option, values in (("--split", ("res5",)), ("--alpha", ("0", "2", "nan")), ("--frames", ("0",)),
                           ("--size", ("0",)), ("--mode", ("bogus",)), ("--transform-rank", ("bogus",))):
        split = () if option == "--split" else ("--split", "res3")
        cases += [Case("flops", f"{option} {value}", fl(*split, option, value), CLEAN, (option_or_word(option),)) for value in values]
    cases += [
        Case("flops", "--set an unknown switch", fl("--split", "res3", "--set", "turbo=1"), CLEAN, ("turbo",)),
        Case("flops", "--set without '='", fl("--split", "res3", "--set", "ranking"), CLEAN, ("ranking",)),
    ]
    for option, value in (("--cin", "0"), ("--n", "0"), ("--n", "100000")):
        cases.append(Case("flops", f"--table i {option} {value}", ["flops", "--table", "i", option, value], CLEAN, (option_or_word(option),)))
    return cases + _plot_cases("flops", lambda p: ["flops", *TINY_NET, "--plot", p])


# ---------------------------------------------------------------------------- bench
BENCH = ["bench", *TINY_NET, "--split", "res4", "--runs", "1", "--warmup", "0", "--no-memory", "--no-breakdown"]


def _bench_rows(*, batches: tuple[int, ...] = (1,)):
    def test(p):
        rows = p["rows"]
        seen = {(r["split"], r["batch"]) for r in rows}
        want = {(s, b) for s in ("none", "res4") for b in batches}
        if not want <= seen:
            return f"rows for {sorted(seen)}, expected {sorted(want)}"
        slow = [r for r in rows if not r["latency_ms_median"] > 0]
        return f"latency {slow[0]['latency_ms_median']}" if slow else None
    return stdout_json(test)


def bench_cases(fx: Inputs) -> list[Case]:
    def be(*extra: str) -> list[str]:
        return [*BENCH, *extra]

    cases = [
        Case("bench", "tiny ResNet-18, --json", be("--json"), OK, check=_bench_rows()),
        Case("bench", "--batch 1,2", be("--batch", "1,2", "--json"), OK, check=_bench_rows(batches=(1, 2))),
        Case("bench", "--plot", be("--plot", "b.png"), OK, check=png("b.png")),
        Case("bench", "--runtime onnxruntime", be("--runtime", "onnxruntime", "--json"), OK, check=_bench_rows(), timeout=400),
        Case("bench", "unknown backbone", ["bench", "--backbone", "nope_net", "--runs", "1"], CLEAN, ("nope_net",)),
        Case("bench", "--device tpu", be("--device", "tpu"), CLEAN, ("tpu",)),
        Case("bench", "--device cuda without a GPU", be("--device", "cuda"), CLEAN, ("cuda",)),
        Case("bench", "--runs abc", be("--runs", "abc"), USAGE, ("--runs",)),
        Case("bench", "--set an unknown switch", be("--set", "turbo=1"), CLEAN, ("turbo",)),
    ]
    for option, values in (("--split", ("res5",)), ("--batch", ("0", "abc", "1,,2")),
                           ("--frames", ("0",)), ("--size", ("0",)), ("--threads", ("0",)), ("--runs", ("0",)),
                           ("--runtime", ("bogus",))):
        cases += [Case("bench", f"{option} {value!r}", be(option, value), CLEAN, (option_or_word(option),)) for value in values]
    return cases + _plot_cases("bench", lambda p: be("--plot", p))


# ---------------------------------------------------------------------------- ablate
def _planned(count: int):
    def test(p):
        runs = p["runs"]
        if len(runs) != count:
            return f"{len(runs)} runs planned, expected {count}"
        return None if all(r["status"] == "planned" for r in runs) else "a dry run did not only plan"
    return stdout_json(test)


def _nothing_trained(outcome, d: Path):
    written = [p for p in (d / "ab").rglob("*.pt")] if (d / "ab").exists() else []
    return f"a dry run wrote {written[0]}" if written else None


def _gflops_grow_with_alpha(p):
    for variant in ("baseline", "ours"):
        runs = sorted((r["switches"]["alpha"], r["gflops"]) for r in p["runs"] if r["name"].startswith(variant))
        if any(b[1] <= a[1] for a, b in zip(runs, runs[1:])):
            return f"{variant}: GFLOPs do not grow with α: {runs}"
    return None


def ablate_cases(fx: Inputs) -> list[Case]:
    base = {"--table": "vi", "--data": fx["v1"], "--config": fx["cfg_s2"], "--stage1": fx["s1_best"], "--work-dir": "ab"}

    def ab(*extra: str, **options: str | None) -> list[str]:
        """The tiny ablation with ``options`` replaced (``stage1_config="x"`` → ``--stage1-config x``; None drops one)."""
        chosen = dict(base)
        for key, value in options.items():
            chosen[f"--{key.replace('_', '-')}"] = value
        return ["ablate", *[a for k, v in chosen.items() if v is not None for a in (k, v)], *extra]

    dry = ("--dry-run", "--json")
    cases = [
        Case("ablate", "--dry-run Table VI", ab(*dry), OK, check=all_of(stdout_json(_gflops_grow_with_alpha), _nothing_trained)),
        Case("ablate", "--dry-run Table IV", ab(*dry, table="iv"), OK,
             check=all_of(stdout_json(lambda p: None if p["runs"] else "no runs"), _nothing_trained)),
        Case("ablate", "--dry-run --seeds 0,1 --rows", ab(*dry, "--seeds", "0,1", "--rows", "ours α=0.3,baseline α=0.3"), OK,
             check=all_of(_planned(4), _nothing_trained)),
        Case("ablate", "one row, one epoch", ab("--rows", "ours α=0.3", "--epochs", "1"), OK,
             check=all_of(files("ab/vi/results.csv"), csv_rows("ab/vi/runs.csv", 1)), timeout=400),
        Case("ablate", "--table vii", ab(*dry, table="vii"), CLEAN, ("vii",)),
        Case("ablate", "--rows names no row", ab(*dry, "--rows", "ours α=0.99"), CLEAN, ("0.99",)),
        Case("ablate", "--data missing", ab("--epochs", "1", data=fx["missing"]), CLEAN, (fx["missing"],)),
        Case("ablate", "--data a raw release", ab("--epochs", "1", data=fx["v1_raw"]), CLEAN, (fx["v1_raw"],)),
        Case("ablate", "--config missing", ab(*dry, config=fx["missing"]), CLEAN, (fx["missing"],)),
        Case("ablate", "--stage1 missing", ab("--epochs", "1", stage1=fx["missing"]), CLEAN, (fx["missing"],)),
        Case("ablate", "--stage1 with flipped bytes", ab("--epochs", "1", stage1=fx["ck_flipped"]), CLEAN, (fx["ck_flipped"],)),
        Case("ablate", "--stage1 an AK-Net checkpoint", ab("--epochs", "1", stage1=fx["ak"]), CLEAN, (fx["ak"],)),
        Case("ablate", "--dry-run, --stage1 with flipped bytes", ab(*dry, stage1=fx["ck_flipped"]), CLEAN,
             (fx["ck_flipped"], "corrupt"), check=_nothing_trained),
        Case("ablate", "--dry-run, --stage1 with an option its backbone lacks", ab(*dry, stage1=fx["ck_meta_kwargs"]), CLEAN,
             (fx["ck_meta_kwargs"], "config.backbone_kwargs")),
        Case("ablate", "--dry-run, --stage1 edited after saving", ab(*dry, stage1=fx["ck_meta_edited"]), CLEAN,
             (fx["ck_meta_edited"], "edited")),
        Case("ablate", "--dry-run, --stage1 an AK-Net checkpoint", ab(*dry, stage1=fx["ak"]), CLEAN, (fx["ak"],)),
        Case("ablate", "--dry-run, --stage1 of 5 classes on 2", ab(*dry, stage1=fx["ck_classes5"]), CLEAN,
             (fx["ck_classes5"], "5")),
        Case("ablate", "--dry-run, --data with an empty val split", ab(*dry, data=fx["ds_empty_val"]), CLEAN, ("val",)),
        Case("ablate", "--dry-run, --work-dir under a file", ab(*dry, work_dir="taken/ab"), CLEAN, ("taken",),
             setup=_in_the_way),
        Case("ablate", "--stage1-config missing", ab("--epochs", "1", stage1=None, stage1_config=fx["missing"]), CLEAN,
             (fx["missing"],)),
        Case("ablate", "--set a bad lr", ab("--set", "optim.lr=-1", "--epochs", "1"), CLEAN, ("optim.lr",)),
        Case("ablate", "--set an unknown key", ab("--set", "optim.turbo=1", "--epochs", "1"), CLEAN, ("turbo",)),
        Case("ablate", "--epochs abc", ab("--epochs", "abc"), USAGE, ("--epochs",)),
        Case("ablate", "no --table", ["ablate", "--dry-run"], USAGE, ("--table",)),
        Case("ablate", "--work-dir under a file", ab("--epochs", "1", work_dir="taken/ab"), CLEAN, ("taken",), setup=_in_the_way),
        Case("ablate", "--work-dir unwritable", ab("--epochs", "1", work_dir=UNWRITABLE), CLEAN, (UNWRITABLE,)),
    ]
    for value in ("abc", "-1", "0,0"):
        cases.append(Case("ablate", f"--seeds {value!r}", ab("--seeds", value, "--epochs", "1"), CLEAN, ("--seeds",)))
    for value in ("0", "-1"):
        cases.append(Case("ablate", f"--epochs {value}", ab("--epochs", value), CLEAN, ("--epochs",)))
    return cases


# ---------------------------------------------------------------------------- the tests
@pytest.mark.usefixtures("misc")
@each_case(flops_cases)
def test_flops(case: Case, run_case) -> None:
    run_case(case)


@pytest.mark.usefixtures("misc")
@each_case(bench_cases)
def test_bench(case: Case, run_case) -> None:
    run_case(case)


@pytest.mark.usefixtures("misc", "datasets", "prepared_variants", "checkpoints", "configs")
@each_case(ablate_cases)
def test_ablate(case: Case, run_case) -> None:
    run_case(case)

"""``aknet eval``, ``aknet convert-1d`` and ``aknet export`` against damaged checkpoints, broken
datasets and unusable options; their successes are checked against independent computations
(the predictions they wrote, the eager model, the reference evaluation)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from .case import CLEAN, OK, USAGE, Case, Outcome, option_or_word
from .checks import all_of, checkpoint, csv_rows, files, stdout_json
from .inputs import UNWRITABLE, Inputs
from .parametrize import each_case

pytestmark = pytest.mark.hostile

BROKEN_CHECKPOINTS = {  # fixture → a fragment the one line must hold besides the path
    "missing": "", "ck_dir": "", "ck_zero": "", "ck_truncated": "", "ck_text": "", "ck_flipped": "corrupt",
    "ck_malicious": "", "ck_kind_unknown": "teacher", "ck_future_format": "", "ck_bare_ak_state": "",
    # intact tensors, a wrong model description: written so, or edited after saving
    "ck_meta_kwargs": "config.backbone_kwargs", "ck_meta_word_classes": "config.num_classes",
    "ck_meta_no_aknet": "config.aknet", "ck_meta_alpha": "config.aknet", "ck_meta_edited": "edited after it was written",
}
#: The few of them the commands that load through the same loader as eval are run on.
SOME_BROKEN = ("missing", "ck_truncated", "ck_flipped", "ck_malicious", "ck_dir", "ck_meta_kwargs", "ck_meta_edited")


def _in_the_way(d: Path) -> None:
    (d / "taken").write_text("the user's file\n")


def _pickle_did_not_run(fx: Inputs):
    return lambda o, d: "the malicious pickle ran" if fx.path("pwned").exists() else None


def _broken_checkpoint_cases(fx: Inputs, command: str, argv_for, only: tuple[str, ...] | None = None) -> list[Case]:
    cases = []
    for name, fragment in BROKEN_CHECKPOINTS.items():
        if only is not None and name not in only:
            continue
        names = (fx[name],) + ((fragment,) if fragment else ())
        cases.append(Case(command, f"checkpoint: {name.removeprefix('ck_').replace('_', ' ')}", argv_for(fx[name]), CLEAN,
                          names, check=_pickle_did_not_run(fx)))
    return cases


def _output_cases(command: str, argv_for, *, folder: bool) -> list[Case]:
    cases = [
        Case(command, "output under a file", argv_for("taken/sub"), CLEAN, ("taken",), setup=_in_the_way),
        Case(command, "output unwritable", argv_for(UNWRITABLE), CLEAN, (UNWRITABLE,)),
    ]
    if folder:
        cases.append(Case(command, "output folder is a file", argv_for("taken"), CLEAN, ("taken",), setup=_in_the_way))
    else:
        cases.append(Case(command, "output file is a folder", argv_for("."), CLEAN, (".",)))
    return cases


# ---------------------------------------------------------------------------- eval
def _read_predictions(path: Path) -> dict[str, dict]:
    with open(path, newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def _scored(out: str, clips: int, views: str = "1x1"):
    """metrics.json agrees with predictions.csv: top-1 recomputed from the rows."""
    def check(outcome: Outcome, d: Path):
        metrics = json.loads((d / out / "metrics.json").read_text())
        rows = _read_predictions(d / out / "predictions.csv")
        if metrics["num_clips"] != clips or len(rows) != clips:
            return f"{metrics['num_clips']} clips in metrics.json, {len(rows)} rows, expected {clips}"
        top1 = 100.0 * sum(r["top1"] == r["label"] for r in rows.values()) / clips
        if abs(top1 - metrics["top1"]) > 0.01:
            return f"top-1 {metrics['top1']} in metrics.json, {top1} from predictions.csv"
        if metrics["views"] != views:
            return f"views {metrics['views']}, expected {views}"
        low, high = metrics["top1_ci"]
        return None if low <= top1 <= high else f"top-1 {top1} outside its own CI {metrics['top1_ci']}"
    return check


def _read_as_official_tsm(out: str):
    """Read as TSM's own file: 4 segments from its name, TSM's 224-pixel test crop (the file
    records no preprocessing, so the scores differ from the aknet checkpoint's 32-pixel ones)."""
    def check(outcome: Outcome, d: Path):
        metrics = json.loads((d / out / "metrics.json").read_text())
        if metrics.get("checkpoint_format") != "an official TSM checkpoint" or metrics.get("crop") != 224:
            return f"read as {metrics.get('checkpoint_format')!r} at crop {metrics.get('crop')}"
        return None
    return check


def _same_scores_as_reference(fx: Inputs, out: str, tol: float = 1e-4):
    """Every clip's top-1 class and score equal the reference evaluation's (same weights)."""
    def check(outcome: Outcome, d: Path):
        ref = _read_predictions(fx.path("ref_eval") / "predictions.csv")
        got = _read_predictions(d / out / "predictions.csv")
        for vid, row in ref.items():
            if vid not in got:
                return f"clip {vid} missing"
            if got[vid]["top1"] != row["top1"] or abs(float(got[vid]["top1_score"]) - float(row["top1_score"])) > tol:
                return f"clip {vid}: {got[vid]['top1']}@{got[vid]['top1_score']} vs reference {row['top1']}@{row['top1_score']}"
        return None
    return check


def eval_cases(fx: Inputs) -> list[Case]:
    def ev(ckpt: str, *extra: str, data: str = "v1", out: str = "ev") -> list[str]:
        return ["eval", ckpt, "--data", fx[data], "--out", out, "--workers", "0", "--device", "cpu", *extra]

    def beside(d: Path) -> None:
        shutil.copy2(fx.path("s1_best"), d / "m.pt")

    def official_copy(d: Path) -> None:
        shutil.copy2(fx.path("ck_tsm_official_noseg"), d / "TSM_something_RGB_resnet18_shift8_blockres_avg_segment4_e1.pth")

    s1, ak = fx["s1_best"], fx["ak"]
    cases = [
        Case("eval", "stage-1 model on val", ev(s1), OK,
             check=all_of(_scored("ev", 2), _same_scores_as_reference(fx, "ev"), files("ev/per_class.png", "ev/confusion.png"))),
        Case("eval", "AK-Net on val", ev(ak), OK, check=_scored("ev", 2)),
        Case("eval", "trained AK-Net on the test split", ev(fx["s2_best"], "--split", "test"), OK, check=_scored("ev", 2)),
        Case("eval", "--views 2x3", ev(s1, "--views", "2x3"), OK, check=_scored("ev", 2, "2x3")),
        Case("eval", "--fuse scores like the unfused model", ev(s1, "--fuse"), OK, check=_same_scores_as_reference(fx, "ev")),
        Case("eval", "--batch-size 1 scores like batches of 8", ev(s1, "--batch-size", "1"), OK,
             check=_same_scores_as_reference(fx, "ev", 1e-5)),
        Case("eval", "--compare", ev(ak, "--compare", s1, "--json"), OK,
             check=stdout_json(lambda p: None if "McNemar" in json.dumps(p) or "mcnemar" in json.dumps(p).lower()
                               else "no paired comparison in --json")),
        Case("eval", "a WebM dataset, --backend pyav", ev(s1, "--backend", "pyav", data="v2"), OK, check=_scored("ev", 2)),
        Case("eval", "an unlabelled test split", ev(s1, "--split", "test", data="ds_unlabelled_test"), OK,
             check=csv_rows("ev/predictions.csv", 2)),
        Case("eval", "default --out beside the checkpoint", ["eval", "m.pt", "--data", fx["v1"], "--workers", "0"], OK,
             setup=beside, check=files("eval_val_1x1/metrics.json")),
        Case("eval", "official TSM layout, --num-segments", ev("TSM_something_RGB_resnet18_shift8_blockres_avg_segment4_e1.pth"),
             OK, setup=official_copy, check=all_of(csv_rows("ev/predictions.csv", 2), _read_as_official_tsm("ev"))),
        Case("eval", "official TSM layout without a frame count", ev(fx["ck_tsm_official_noseg"]), CLEAN, ("--num-segments",)),
        Case("eval", "a checkpoint of 5 classes on 2", ev(fx["ck_classes5"]), CLEAN, ("5", "2")),
        Case("eval", "--data missing", ev(s1, data="missing"), CLEAN, (fx["missing"],)),
        Case("eval", "--data without dataset.json", ev(s1, data="ds_no_manifest"), CLEAN, ("dataset.json",)),
        Case("eval", "--data whose media are gone", ev(s1, data="ds_media_gone"), CLEAN, ("nowhere",)),
        Case("eval", "--data with an empty val split", ev(s1, data="ds_empty_val"), CLEAN, ("val",)),
        Case("eval", "--split train with a label out of range", ev(s1, "--split", "train", data="ds_label_out_of_range"),
             CLEAN, ("train.csv",)),
        Case("eval", "--split bogus", ev(s1, "--split", "bogus"), CLEAN, ("bogus",)),
        Case("eval", "--split test, no test split", ev(s1, "--split", "test", data="v1_notest"), CLEAN, ("test",)),
        Case("eval", "--batch-size abc", ev(s1, "--batch-size", "abc"), USAGE, ("--batch-size",)),
        Case("eval", "--device tpu", ev(s1)[:-2] + ["--device", "tpu"], CLEAN, ("tpu",)),
        Case("eval", "--device cuda without a GPU", ev(s1)[:-2] + ["--device", "cuda"], CLEAN, ("cuda",)),
        Case("eval", "--backend bogus", ev(s1, "--backend", "bogus"), CLEAN, ("bogus",)),
        Case("eval", "--compare missing", ev(s1, "--compare", fx["missing"]), CLEAN, (fx["missing"],)),
        Case("eval", "--compare of other classes", ev(s1, "--compare", fx["ck_classes5"]), CLEAN, (fx["ck_classes5"],)),
        Case("eval", "no --data", ["eval", s1], USAGE, ("--data",)),
        Case("eval", "no checkpoint", ["eval", "--data", fx["v1"]], USAGE),
    ]
    for option, values in (("--views", ("3", "axb")), ("--batch-size", ("0",)),
                           ("--num-segments", ("0",))):
        cases += [Case("eval", f"{option} {value!r}", ev(s1, option, value), CLEAN, (option_or_word(option),)) for value in values]
    cases += _broken_checkpoint_cases(fx, "eval", lambda ck: ev(ck))
    return cases + _output_cases("eval", lambda out: ev(s1, out=out), folder=True)


# ---------------------------------------------------------------------------- convert-1d
def _converted(out: str, **expected):
    def test(ckpt: dict):
        if ckpt["kind"] != "aknet":
            return f"kind {ckpt['kind']}"
        options = ckpt["config"]["aknet"]
        for key, value in expected.items():
            if options.get(key) != value:
                return f"aknet.{key} is {options.get(key)!r}, expected {value!r}"
        return None
    return checkpoint(out, test)


def convert_cases(fx: Inputs) -> list[Case]:
    def cv(*extra: str, ck: str | None = None, out: str = "ak.pt") -> list[str]:
        return ["convert-1d", "-c", ck or fx["s1_best"], "--out", out, *extra]

    def existing(d: Path) -> None:
        (d / "ak.pt").write_bytes(b"the user's old file")

    def kept(outcome, d):
        return None if (d / "ak.pt").read_bytes() == b"the user's old file" else "--out was replaced without --force"

    cases = [
        Case("convert-1d", "split res3", cv("--split", "res3"), OK, check=_converted("ak.pt", split="res3", alpha=0.3)),
        Case("convert-1d", "split res4, alpha 1", cv("--alpha", "1"), OK, check=_converted("ak.pt", split="res4", alpha=1.0)),
        Case("convert-1d", "--tau 5", cv("--tau", "5"), OK, check=_converted("ak.pt", tau=5.0)),
        Case("convert-1d", "--position embedding", cv("--position", "embedding"), OK, check=_converted("ak.pt", position="embedding")),
        Case("convert-1d", "--transform-rank none", cv("--transform-rank", "none", "--split", "res2"), OK, check=_converted("ak.pt")),
        Case("convert-1d", "--set ranking=false", cv("--set", "ranking=false"), OK, check=_converted("ak.pt", ranking=False)),
        Case("convert-1d", "--calibrate on a dataset", cv("--split", "res3", "--calibrate", fx["v1"], "--batches", "1",
                                                          "--batch-size", "2", "--crop", "32"), OK, check=_converted("ak.pt")),
        Case("convert-1d", "--force replaces --out", cv("--force"), OK, setup=existing, check=_converted("ak.pt")),
        Case("convert-1d", "an official TSM file, --num-segments", cv("--num-segments", "4", ck=fx["ck_tsm_official_noseg"]), OK,
             check=_converted("ak.pt")),
        Case("convert-1d", "--out exists", cv(), CLEAN, ("ak.pt", "--force"), setup=existing, check=kept),
        Case("convert-1d", "an AK-Net checkpoint as input", cv(ck=fx["ak"]), CLEAN, (fx["ak"],)),
        Case("convert-1d", "a 2-class checkpoint, --num-classes 7", cv("--num-classes", "7"), CLEAN, ("7",)),
        Case("convert-1d", "--backbone contradicts", cv("--backbone", "resnet50"), CLEAN, ("resnet50",)),
        Case("convert-1d", "--alpha abc", cv("--alpha", "abc"), USAGE, ("--alpha",)),
        Case("convert-1d", "--set without '='", cv("--set", "ranking"), CLEAN, ("ranking",)),
        Case("convert-1d", "--set an unknown switch", cv("--set", "turbo=1"), CLEAN, ("turbo",)),
        Case("convert-1d", "--calibrate missing", cv("--calibrate", fx["missing"]), CLEAN, (fx["missing"],)),
        Case("convert-1d", "--calibrate on a raw release", cv("--calibrate", fx["v1_raw"]), CLEAN, (fx["v1_raw"],)),
        Case("convert-1d", "no --out", ["convert-1d", "-c", fx["s1_best"]], USAGE, ("--out",)),
    ]
    for option, values in (("--split", ("res5",)), ("--alpha", ("0", "nan")),
                           ("--tau", ("abc",)), ("--position", ("bogus",)), ("--transform-rank", ("abc", "0")),
                           ("--label-order", ("bogus",)), ("--batches", ("0",))):
        extra = ("--calibrate", fx["v1"]) if option in ("--batches", "--batch-size", "--crop") else ()
        cases += [Case("convert-1d", f"{option} {value}", cv(option, value, *extra), CLEAN, (option_or_word(option),)) for value in values]
    cases += _broken_checkpoint_cases(fx, "convert-1d", lambda ck: cv(ck=ck), SOME_BROKEN)
    return cases + _output_cases("convert-1d", lambda out: cv(out=out), folder=False)


# ---------------------------------------------------------------------------- export
def _eager_model(ckpt: str):
    import torch

    from aknet_cli.checkpoints.reader import model_from_checkpoint

    model, _ = model_from_checkpoint(ckpt)
    return model.eval(), torch


def _onnx_matches_eager(ckpt: str, out: str, batch: int = 1):
    """ONNX Runtime's logits on a random clip equal the eager checkpoint's (independent of export's own check)."""
    def check(outcome: Outcome, d: Path):
        import numpy as np
        import onnx
        import onnxruntime

        onnx.checker.check_model(str(d / out))
        model, torch = _eager_model(ckpt)
        clips = torch.randn(batch, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        session = onnxruntime.InferenceSession(str(d / out), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: clips.numpy()})[0]
        with torch.no_grad():
            want = model(clips).numpy()
        diff = float(np.abs(got - want).max())
        return None if got.shape == want.shape and diff < 1e-3 else f"ONNX logits {got.shape} differ from eager by {diff:g}"
    return check


def _program_matches_eager(ckpt: str, out: str):
    def check(outcome: Outcome, d: Path):
        model, torch = _eager_model(ckpt)
        program = torch.export.load(str(d / out))
        clips = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            got, want = program.module()(clips), model(clips)
        got = got[0] if isinstance(got, (tuple, list)) else got
        diff = float((got - want).abs().max())
        return None if diff < 1e-3 else f"exported program differs from eager by {diff:g}"
    return check


def export_cases(fx: Inputs) -> list[Case]:
    def ex(*extra: str, ck: str | None = None, fmt: str = "onnx", out: str = "m.onnx") -> list[str]:
        return ["export", ck or fx["s1_best"], "--format", fmt, "--out", out, "--size", "32", *extra]

    def existing(d: Path) -> None:
        (d / "m.onnx").write_bytes(b"the user's old file")

    s1 = fx["s1_best"]
    cases = [
        Case("export", "stage-1 model to ONNX", ex(), OK, check=_onnx_matches_eager(s1, "m.onnx"), timeout=300),
        Case("export", "AK-Net to ONNX", ex(ck=fx["ak"]), OK, check=files("m.onnx"), timeout=300),
        Case("export", "--batch dynamic", ex("--batch", "dynamic"), OK, check=_onnx_matches_eager(s1, "m.onnx", batch=3),
             timeout=300),
        Case("export", "--no-fuse --json", ex("--no-fuse", "--json"), OK,
             check=all_of(stdout_json(lambda p: None if p.get("max_abs_logit_diff", 1) < 1e-3 else f"{p}"),
                          _onnx_matches_eager(s1, "m.onnx")), timeout=300),
        Case("export", "torch-export", ex(fmt="torch-export", out="m.pt2"), OK, check=_program_matches_eager(s1, "m.pt2"),
             timeout=300),
        Case("export", "--force replaces --out", ex("--force"), OK, setup=existing, check=_onnx_matches_eager(s1, "m.onnx"),
             timeout=300),
        Case("export", "--out exists", ex(), CLEAN, ("m.onnx", "--force"), setup=existing),
        Case("export", "--format tflite", ex(fmt="tflite"), CLEAN, ("tflite",)),
        Case("export", "--size abc", ex("--size", "abc"), USAGE, ("--size",)),
        Case("export", "no --format", ["export", s1, "--out", "m.onnx"], USAGE, ("--format",)),
        Case("export", "official TSM file without a frame count", ex(ck=fx["ck_tsm_official_noseg"]), CLEAN, ("--num-segments",)),
    ]
    for option, values in (("--batch", ("0", "-1", "abc")), ("--size", ("0",)), ("--num-segments", ("0",))):
        cases += [Case("export", f"{option} {value}", ex(option, value), CLEAN, (option_or_word(option),)) for value in values]
    cases += _broken_checkpoint_cases(fx, "export", lambda ck: ex(ck=ck), SOME_BROKEN)
    return cases + _output_cases("export", lambda out: ex(out=out), folder=False)


# ---------------------------------------------------------------------------- the tests
@pytest.mark.usefixtures("misc", "datasets", "prepared_variants", "checkpoints", "reference_eval")
@each_case(eval_cases)
def test_eval(case: Case, run_case) -> None:
    run_case(case)


@pytest.mark.usefixtures("misc", "datasets", "prepared_variants", "checkpoints")
@each_case(convert_cases)
def test_convert_1d(case: Case, run_case) -> None:
    run_case(case)


@pytest.mark.usefixtures("misc", "checkpoints")
@each_case(export_cases)
def test_export(case: Case, run_case) -> None:
    run_case(case)

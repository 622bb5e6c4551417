"""``aknet visualize`` and ``aknet predict`` on anyone's videos: odd shapes, broken files, label
files in the wrong encoding; successes checked against the paper's selection and ranking
(eqs. 7, N = round(α·T·H·W)) and against ``aknet eval``'s scores for the same clip."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from .case import CLEAN, OK, USAGE, Case, Outcome, option_or_word
from .checks import all_of, files, png, stdout_json
from .inputs import UNWRITABLE, Inputs
from .parametrize import each_case

pytestmark = pytest.mark.hostile

#: Every video backend (a case per backend where the backends differ in what they can open).
BACKENDS = ("torchcodec", "decord", "pyav")

#: Inputs no model can read (the fixture and a fragment of the one line besides its path).
UNREADABLE = {
    "missing": "", "vid_zero_mp4": "", "vid_trunc_mp4": "", "vid_trunc_webm": "", "vid_audio": "", "vid_text_mp4": "",
    "vid_one_px": "", "vid_wide": "", "vid_tiny": "", "vid_frames_empty": "", "vid_frames_corrupt": "00003.jpg",
    "vid_frames_zero": "00003.jpg",
}
BAD_LABELS = ("lab_three", "lab_latin1", "lab_map_word", "lab_map_gap", "lab_not_json", "lab_empty", "missing")


def _in_the_way(d: Path) -> None:
    (d / "taken").write_text("the user's file\n")


def _keypoints(folder: str, *, count: int, frames: int, side: int, tau: float | None = None):
    """keypoints.json holds N = round(α·T·h·w) points on the h×w split map, ranked by
    x + y + τ·t descending (eq. 7, τ = h + w − 1 by default), boxes inside the frame."""
    def check(outcome: Outcome, d: Path):
        data = json.loads((d / folder / "keypoints.json").read_text())
        points = data["keypoints"]
        if len(points) != count:
            return f"{len(points)} keypoints, expected round(α·T·h·w) = {count}"
        # num_frames is the source's length; the model sees the len(frame_indices) sampled ones
        if tuple(data["feature_size"]) != (side, side) or len(data["frame_indices"]) != frames:
            return (f"map {data['feature_size']} over {len(data['frame_indices'])} sampled frames, "
                    f"expected {side}×{side} over {frames}")
        if any(not 0 <= i < data["num_frames"] for i in data["frame_indices"]):
            return f"a sampled frame index lies outside the source's {data['num_frames']} frames"
        weight = tau if tau is not None else 2 * side - 1
        keys = [p["x"] + p["y"] + weight * p["t"] for p in points]
        if any(a < b for a, b in zip(keys, keys[1:])):
            return "keypoints are not ranked by x + y + τ·t descending"
        if any(not (0 <= p["t"] < frames and 0 <= p["y"] < side and 0 <= p["x"] < side) for p in points):
            return "a keypoint lies off the split map"
        height, width = data["geometry"]["height"], data["geometry"]["width"]
        for p in points:
            y0, x0, y1, x1 = p["box"]  # keypoints.json's order (docs/visualize.md)
            if not (-1e-3 <= x0 < x1 <= width + 1e-3 and -1e-3 <= y0 < y1 <= height + 1e-3):
                return f"box {p['box']} outside the {width}×{height} frame"
        if sum(data["counts"]) != count:
            return f"per-frame counts {data['counts']} do not add up to {count}"
        return None
    return check


def _drawn(folder: str = "vis", animation: str = "keypoints.mp4"):
    return all_of(png(f"{folder}/keypoints.png"), png(f"{folder}/keypoints_heatmap.png"), files(f"{folder}/{animation}"))


def _top_names(names: list[str]):
    def check(outcome: Outcome, d: Path):
        data = json.loads((d / "vis" / "keypoints.json").read_text())
        shown = {row["name"] for row in data["top5"]}
        return None if shown == set(names) else f"class names {sorted(shown)}, expected {names}"
    return check


def visualize_cases(fx: Inputs) -> list[Case]:
    def vis(video: str, *extra: str, ck: str | None = "ak", out: str = "vis") -> list[str]:
        return ["visualize", "--video", fx[video], *(["-c", fx[ck]] if ck else []), "--out", out, *extra]

    ak_points = _keypoints("vis", count=19, frames=4, side=4)  # res3 of 32 px: 4×4, round(0.3·4·16) = 19
    untrained = ("-b", "resnet18", "--frames", "2", "--split", "res3", "--crop", "32", "--resize", "36")
    cases = [
        Case("visualize", "a frame folder, AK-Net", vis("v1_clip"), OK, check=all_of(ak_points, _drawn())),
        Case("visualize", "an MP4", vis("vid_mp4"), OK, check=all_of(ak_points, _drawn())),
        Case("visualize", "a WebM, --json", vis("vid_webm", "--json"), OK,
             check=all_of(ak_points, stdout_json(lambda p: None if len(p["keypoints"]) == 19 else "--json disagrees"))),
        Case("visualize", "a file name with spaces and accents", vis("vid_unicode"), OK, check=ak_points),
        Case("visualize", "a 2000x32 strip", vis("vid_strip"), OK,
             check=all_of(ak_points, lambda o, d: None if json.loads((d / "vis/keypoints.json").read_text())["window"]
                          else "the cut window is not reported")),
        Case("visualize", "a one-frame video", vis("vid_one_frame"), OK, check=ak_points),
        Case("visualize", "a res4 model", vis("v1_clip", ck="ak_res4"), OK,
             check=_keypoints("vis", count=5, frames=4, side=2)),  # res4 of 32 px: 2×2, round(0.3·4·4) = 5
        Case("visualize", "untrained, resnet18 at res3", vis("vid_mp4", *untrained, ck=None), OK,
             check=_keypoints("vis", count=10, frames=2, side=4)),  # round(0.3·2·16) = 10
        Case("visualize", "untrained, --alpha 1", vis("vid_mp4", *untrained, "--alpha", "1", ck=None), OK,
             check=_keypoints("vis", count=32, frames=2, side=4)),
        Case("visualize", "--video-format gif", vis("vid_mp4", "--video-format", "gif"), OK, check=_drawn(animation="keypoints.gif")),
        Case("visualize", "--labels, one a line", vis("vid_mp4", "--labels", fx["lab_ok"]), OK,
             check=_top_names(["left to right", "right to left"])),
        Case("visualize", "--labels, a V2 map", vis("vid_mp4", "--labels", fx["lab_map_json"]), OK,
             check=_top_names(["left to right", "right to left"])),
        Case("visualize", "--alpha 0.5 with a checkpoint trained at 0.3", vis("vid_mp4", "--alpha", "0.5"), OK,
             warns=("differs from the α = 0.3",), check=_keypoints("vis", count=32, frames=4, side=4)),  # round(0.5·4·16)
        Case("visualize", "--alpha 1 with a res4 checkpoint", vis("v1_clip", "--alpha", "1", ck="ak_res4"), OK,
             warns=("differs from the α = 0.3",), check=_keypoints("vis", count=16, frames=4, side=2)),
        Case("visualize", "a stage-1 checkpoint", vis("vid_mp4", ck="s1_best"), CLEAN, (fx["s1_best"],)),
        Case("visualize", "untrained, --split res5", vis("vid_mp4", "-b", "resnet18", "--split", "res5", ck=None), CLEAN, ("res5",)),
        Case("visualize", "--crop larger than --resize", vis("vid_mp4", "--crop", "64", "--resize", "36"), CLEAN, ("--crop",)),
        Case("visualize", "no --video", ["visualize", "-c", fx["ak"]], USAGE, ("--video",)),
    ]
    for name, fragment in UNREADABLE.items():
        cases.append(Case("visualize", f"video: {name.removeprefix('vid_').replace('_', ' ')}", vis(name), CLEAN,
                          (fx[name],) + ((fragment,) if fragment else ())))
    for backend in BACKENDS:
        cases.append(Case("visualize", f"a file name that is not UTF-8, --backend {backend}",
                          vis("vid_latin1_name", "--backend", backend), OK, check=ak_points))
    for name in ("missing", "ck_flipped", "ck_malicious", "ck_bare_ak_state", "ck_meta_alpha", "ck_meta_no_aknet",
                 "ck_meta_edited"):
        cases.append(Case("visualize", f"checkpoint: {name.removeprefix('ck_')}", vis("vid_mp4", ck=name), CLEAN, (fx[name],),
                          check=lambda o, d: "the malicious pickle ran" if fx.path("pwned").exists() else None))
    for name in ("lab_three", "lab_latin1", "lab_map_word", "lab_not_json"):
        cases.append(Case("visualize", f"--labels {name.removeprefix('lab_')}", vis("vid_mp4", "--labels", fx[name]), CLEAN,
                          (fx[name],)))
    for option, values in (("--frames", ("0",)), ("--alpha", ("0", "nan")),
                           ("--resize-mode", ("bogus",)), ("--backend", ("bogus",)), ("--video-format", ("avi",))):
        cases += [Case("visualize", f"{option} {value}", vis("vid_mp4", option, value), CLEAN, (option_or_word(option),)) for value in values]
    cases += [
        Case("visualize", "--out under a file", vis("vid_mp4", out="taken/vis"), CLEAN, ("taken",), setup=_in_the_way),
        Case("visualize", "--out unwritable", vis("vid_mp4", out=UNWRITABLE), CLEAN, (UNWRITABLE,)),
    ]
    return cases


def _predictions(videos: int, *, k: int | None = None, skipped: int = 0):
    """--json: ``videos`` scored, ``skipped`` counted, each top-k descending and summing to at most 1."""
    def test(p):
        scored = [v for v in p["videos"] if v["error"] is None]
        if len(scored) != videos or p["num_skipped"] != skipped:
            return f"{len(scored)} scored and {p['num_skipped']} skipped, expected {videos} and {skipped}"
        for v in scored:
            probs = [row["prob"] for row in v["top"]]
            if k is not None and len(probs) != k:
                return f"{len(probs)} classes shown, expected {k}"
            if any(a < b for a, b in zip(probs, probs[1:])) or sum(probs) > 1 + 1e-5:
                return f"probabilities {probs} not descending or over 1"
        return None
    return stdout_json(test)


def _scored_like_eval(fx: Inputs, clip: str):
    """The clip's top-1 class and probability equal ``aknet eval``'s for it (same preprocessing).

    eval's ``predictions.csv`` holds its protocol's scores: probabilities, or under ``tsm``
    TSM's mean logits, which predict turns into probabilities as ``test_models.py --softmax``
    does; the fixture's classes all fit in the file's top 5, so the softmax can be taken here.
    """
    def test(p):
        ref_dir = fx.path("ref_eval")
        with open(ref_dir / "predictions.csv", newline="") as handle:
            ref = next(r for r in csv.DictReader(handle) if r["id"] == clip)
        scores = [float(ref[f"top{j}_score"]) for j in range(1, 6) if ref.get(f"top{j}_score")]
        metrics = json.loads((ref_dir / "metrics.json").read_text())
        metrics = metrics[0] if isinstance(metrics, list) else metrics  # one model: a dict
        if "logit" in metrics.get("scores", ""):
            exps = [math.exp(x - scores[0]) for x in scores]
            scores = [e / sum(exps) for e in exps]
        top = p["videos"][0]["top"][0]
        if str(top["index"]) != ref["top1"] or abs(top["prob"] - scores[0]) > 1e-4:
            return f"predict says {top['index']}@{top['prob']:.6f}, eval said {ref['top1']}@{scores[0]:.6f}"
        return None
    return stdout_json(test)


def predict_cases(fx: Inputs) -> list[Case]:
    def pr(target: str, *extra: str, ck: str = "s1_best") -> list[str]:
        return ["predict", fx[target], "-c", fx[ck], *extra]

    def csv_out(rows: int):
        def check(outcome: Outcome, d: Path):
            with open(d / "p.csv", newline="") as handle:
                got = list(csv.DictReader(handle))
            return None if len(got) == rows else f"p.csv has {len(got)} rows, expected {rows}"
        return check

    official = ("--num-segments", "4")
    cases = [
        Case("predict", "a val clip scores as eval scored it", pr("v1_clip", "--json"), OK, check=_scored_like_eval(fx, "2")),
        Case("predict", "an MP4", pr("vid_mp4", "--json"), OK, check=_predictions(1, k=2)),
        Case("predict", "--top-k 1", pr("vid_mp4", "--top-k", "1", "--json"), OK, check=_predictions(1, k=1)),
        Case("predict", "--top-k larger than the classes", pr("vid_mp4", "--top-k", "50", "--json"), OK, check=_predictions(1, k=2)),
        Case("predict", "a folder of videos", pr("vid_vids", "--json"), OK, check=_predictions(2)),
        Case("predict", "a list with a blank line", pr("vid_list_ok", "--json"), OK, check=_predictions(2)),
        Case("predict", "a list naming a missing video", pr("vid_list_missing", "--json"), OK, check=_predictions(1, skipped=1)),
        Case("predict", "a folder with a broken video", pr("vid_vids_one_bad"), OK, warns=("broken.mp4",)),
        Case("predict", "a folder with a broken video, --json", pr("vid_vids_one_bad", "--json"), OK,
             check=_predictions(1, skipped=1)),
        Case("predict", "--out CSV", pr("vid_vids", "--out", "p.csv"), OK, check=csv_out(2)),
        Case("predict", "--views 2x3", pr("vid_mp4", "--views", "2x3", "--json"), OK, check=_predictions(1)),
        Case("predict", "AK-Net --keypoints", pr("vid_mp4", "--keypoints", "kp", "--json", ck="ak"), OK,
             check=all_of(_predictions(1), _keypoints("kp/ok", count=19, frames=4, side=4))),
        Case("predict", "a 2000x32 strip", pr("vid_strip", "--json"), OK, check=_predictions(1)),
        Case("predict", "official TSM file, --labels", pr("vid_mp4", *official, "--labels", fx["lab_ok"], "--json",
                                                         ck="ck_tsm_official_noseg"), OK,
             check=stdout_json(lambda p: None if p["videos"][0]["top"][0]["name"] in ("left to right", "right to left")
                               else f"names {p['videos'][0]['top']}")),
        Case("predict", "an empty folder", pr("vid_vids_empty"), CLEAN, (fx["vid_vids_empty"],)),
        Case("predict", "an empty list", pr("vid_list_empty"), CLEAN, (fx["vid_list_empty"],)),
        Case("predict", "a Latin-1 list", pr("vid_list_latin1"), CLEAN, (fx["vid_list_latin1"],)),
        Case("predict", "--strict with a broken video", pr("vid_vids_one_bad", "--strict"), CLEAN, ("broken.mp4",)),
        Case("predict", "--keypoints of a stage-1 model", pr("vid_mp4", "--keypoints", "kp"), CLEAN, ("--keypoints",)),
        Case("predict", "--keypoints under a file", pr("vid_mp4", "--keypoints", "taken/kp", ck="ak"), CLEAN, ("taken",),
             setup=_in_the_way),
        Case("predict", "--top-k abc", pr("vid_mp4", "--top-k", "abc"), USAGE, ("--top-k",)),
        Case("predict", "--backbone contradicts", pr("vid_mp4", "--backbone", "resnet50"), CLEAN, ("resnet50",)),
        Case("predict", "no --checkpoint", ["predict", fx["vid_mp4"]], USAGE, ("--checkpoint",)),
    ]
    for name, fragment in UNREADABLE.items():
        if name in ("vid_trunc_mp4", "vid_tiny", "vid_frames_empty", "vid_frames_zero"):
            continue  # visualize has them: the same reader
        cases.append(Case("predict", f"video: {name.removeprefix('vid_').replace('_', ' ')}", pr(name), CLEAN,
                          (fx[name],) + ((fragment,) if fragment else ())))
    for backend in BACKENDS:
        cases.append(Case("predict", f"a file name that is not UTF-8, --backend {backend}",
                          pr("vid_latin1_name", "--backend", backend, "--json"), OK, check=_predictions(1, k=2)))
    for name in ("missing", "ck_flipped", "ck_a_list", "ck_meta_word_classes", "ck_meta_kwargs"):
        cases.append(Case("predict", f"checkpoint: {name.removeprefix('ck_')}", pr("vid_mp4", ck=name), CLEAN, (fx[name],),
                          check=lambda o, d: "the malicious pickle ran" if fx.path("pwned").exists() else None))
    for name in ("lab_three", "lab_latin1", "lab_map_gap", "lab_empty"):
        cases.append(Case("predict", f"--labels {name.removeprefix('lab_')}",
                          pr("vid_mp4", *official, "--labels", fx[name], ck="ck_tsm_official_noseg"), CLEAN, (fx[name],)))
    for option, values in (("--views", ("bogus",)), ("--top-k", ("0",)), ("--label-order", ("bogus",))):
        cases += [Case("predict", f"{option} {value}", pr("vid_mp4", option, value), CLEAN, (option_or_word(option),)) for value in values]
    cases += [
        Case("predict", "--out under a file", pr("vid_mp4", "--out", "taken/p.csv"), CLEAN, ("taken",), setup=_in_the_way),
        Case("predict", "--out is a folder", pr("vid_mp4", "--out", "."), CLEAN, ("--out",)),
        Case("predict", "--out unwritable", pr("vid_mp4", "--out", UNWRITABLE + "/p.csv"), CLEAN, (UNWRITABLE,)),
    ]
    return cases


# ---------------------------------------------------------------------------- the tests
@pytest.mark.usefixtures("misc", "datasets", "checkpoints", "videos", "label_files")
@each_case(visualize_cases)
def test_visualize(case: Case, run_case) -> None:
    run_case(case)


@pytest.mark.usefixtures("misc", "datasets", "checkpoints", "videos", "label_files", "reference_eval")
@each_case(predict_cases)
def test_predict(case: Case, run_case) -> None:
    run_case(case)

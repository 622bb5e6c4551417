"""`aknet visualize` and aknet_cli.analysis.overlay: keypoints land on the pixels they came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from aknet_cli.analysis import overlay
from aknet_cli.data import video_source
from aknet_cli.cli.main import app
from aknet_cli.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform
from aknet_cli.exceptions import DataError
from cli_helpers import assert_one_line_error
from data_fixtures import video_backends

runner = CliRunner()
SMALL = dict(resize=128, crop=112, resize_mode="short")


def _square_clip(h: int, w: int, n: int, side: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``uint8 (n, h, w, 3)``: a dark frame with a bright square moving diagonally; its corners."""
    frames, corners = [], []
    for i in range(n):
        f = np.full((h, w, 3), 16, np.uint8)
        y = int((h - side) * i / max(1, n - 1))
        x = int((w - side) * (0.15 + 0.7 * i / max(1, n - 1)))
        f[y:y + side, x:x + side] = 240
        frames.append(f)
        corners.append((y, x))
    return np.stack(frames), corners


def _write_mp4(path: Path, clip: np.ndarray, rate: int = 10) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = clip.shape[2], clip.shape[1], "yuv420p"
        s.options = {"qscale": "1"}
        for f in clip:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _write_folder(folder: Path, clip: np.ndarray, name: str = "frame_{}.png") -> Path:
    folder.mkdir()
    for i, f in enumerate(clip):
        Image.fromarray(f).save(folder / name.format(i + 1))
    return folder


# ------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("h, w, resize, crop, mode", [
    (192, 256, 128, 112, "short"), (250, 140, 128, 112, "short"), (97, 203, 96, 64, "short"),
    (180, 240, 128, 128, "square"), (256, 144, 100, 90, "short"),
])
def test_geometry_matches_the_transform_pixel_by_pixel(h, w, resize, crop, mode):
    # Linear ramps survive a (bi)linear resize: after the transform each pixel still tells
    # which original row (channel 0) and column (channel 1) it was taken from (sides <= 256: uint8).
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    frame = np.stack([yy, xx, np.zeros_like(yy)], -1).astype(np.uint8)
    frames = torch.from_numpy(frame).permute(2, 0, 1)[None]
    out, _ = build_transform(train=False, resize=resize, crop=crop, resize_mode=mode)(frames, 0)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    seen = (out[0] * std + mean) * 255  # back to 0..255: original row/column numbers
    g = overlay.Geometry.of(h, w, resize=resize, crop=crop, resize_mode=mode)
    inner = slice(4, crop - 4)  # away from the borders, where the resize clamps
    cy, cx = np.meshgrid(np.arange(crop)[inner], np.arange(crop)[inner], indexing="ij")
    oy, ox = g.to_original(cy + 0.5, cx + 0.5)  # pixel centres
    assert np.abs(seen[0].numpy()[inner, inner] - (oy - 0.5)).max() < 1.0
    assert np.abs(seen[1].numpy()[inner, inner] - (ox - 0.5)).max() < 1.0


# ----------------------------------------------------------------------- keypoints land
def _clip_input_probe(model):
    seen = {}
    handle = model.features.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0].clone()))
    return seen, handle


@pytest.mark.parametrize("h, w, n, backbone, shown_frames", [
    # TSM's test sampling, int(L/2 + L*i), L = n/8: L = 3.75 -> 1, 5, 9, 13, 16, 20, 24, 28
    (240, 320, 30, "tsm_resnet18", [1, 5, 9, 13, 16, 20, 24, 28]),  # landscape video
    # L = 0.625 -> int(0.3125 + 0.625 i): 0, 0, 1, 2, 2, 3, 4, 4
    (300, 168, 5, "tsm_resnet18", [0, 0, 1, 2, 2, 3, 4, 4]),   # portrait, fewer frames than T
    # TDN's windows: tick = (24 - 4)/8 = 2.5, starts int(1.25 + 2.5 i) = 1, 3, 6, 8, 11, 13, 16, 18;
    # the window's centre (start + 2, what the RGB stem reads) is shown
    (200, 260, 24, "tdn_resnet18", [3, 5, 8, 10, 13, 15, 18, 20]),
])
def test_every_cell_maps_onto_the_pixels_it_came_from(tmp_path, h, w, n, backbone, shown_frames):
    clip, _ = _square_clip(h, w, n, side=48)
    src = video_source.open_source(_write_mp4(tmp_path / "clip.mp4", clip))
    assert src.num_frames == n
    loaded = overlay.load_overlay_model(None, backbone=backbone, split="res3", alpha=0.3, frames=8, num_classes=5)
    seen, handle = _clip_input_probe(loaded.model)
    try:
        vis, shown, heat = overlay.visualize(src, loaded, **SMALL)
    finally:
        handle.remove()

    assert vis.frame_indices == shown_frames
    # (lossy MPEG-4: close, not equal)
    assert (shown.float() - torch.from_numpy(clip[vis.frame_indices]).permute(0, 3, 1, 2).float()).abs().mean() < 3

    # What the model saw, in its own input (the centre frame of each segment for TDN).
    x = seen["x"][0]
    x = x[:, (x.shape[1] - 1) // 2] if x.dim() == 5 else x
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    seen_px = ((x * std + mean) * 255).mean(1)  # (T, crop, crop) brightness
    s, (fh, fw) = vis.stride, vis.feature_size
    assert (fh, fw) == tuple(heat.shape[-2:]) == (-(-112 // s), -(-112 // s))
    bright_cells = 0
    for t in range(8):
        original = clip[vis.frame_indices[t]].mean(-1)  # the test's own pixels, before encoding
        for y in range(fh):
            for xx in range(fw):
                cell = seen_px[t, y * s:(y + 1) * s, xx * s:(xx + 1) * s].mean().item()
                y0, x0, y1, x1 = vis.geometry.cell_box(y, xx, s)
                box = original[int(round(y0)):int(round(y1)), int(round(x0)):int(round(x1))].mean()
                assert abs(box - cell) < 40, (t, y, xx, box, cell)
                bright_cells += cell > 200
    assert bright_cells > 0  # the square was seen: the comparison above is not all dark
    for kp in vis.keypoints:
        assert kp["box"] == [round(v, 3) for v in vis.geometry.cell_box(kp["y"], kp["x"], s)]
        assert kp["frame"] == vis.frame_indices[kp["t"]]
    assert sum(vis.counts) == len(vis.keypoints) == round(0.3 * 8 * fh * fw)


def test_frame_folder_with_any_names(tmp_path):
    clip, _ = _square_clip(120, 90, 6, side=24)
    folder = _write_folder(tmp_path / "frames", clip, "shot_{}.png")
    src = video_source.open_source(folder)
    assert (src.kind, src.num_frames) == ("images", 6)
    # Natural order: shot_2 before shot_10.
    assert [p.name for p in src.files][:2] == ["shot_1.png", "shot_2.png"]
    got = src.read([0, 5], "pyav")
    assert torch.equal(got, torch.from_numpy(clip[[0, 5]]).permute(0, 3, 1, 2))


# ------------------------------------------------------------------------------- CLI
def _invoke(*args):
    return runner.invoke(app, ["visualize", *args])


def test_cli_untrained_draws_and_warns(tmp_path):
    clip, _ = _square_clip(180, 240, 16, side=40)
    video = _write_mp4(tmp_path / "v.mp4", clip)
    out = tmp_path / "vis"
    res = _invoke("--video", str(video), "-b", "tsm_resnet18", "--split", "res3", "--frames", "4",
                  "--resize", "128", "--crop", "112", "--out", str(out), "--video-format", "gif")
    assert res.exit_code == 0, res.output
    assert "untrained" in res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["keypoints.gif", "keypoints.json", "keypoints.png", "keypoints_heatmap.png"]
    for png in ("keypoints.png", "keypoints_heatmap.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.width > 200
    with Image.open(out / "keypoints.gif") as im:
        assert im.n_frames == 4
    data = json.loads((out / "keypoints.json").read_text())
    assert data["trained"] is False and len(data["counts"]) == 4 and sum(data["counts"]) == len(data["keypoints"])


def _aknet_checkpoint(path: Path, classes=None) -> Path:
    from dataclasses import asdict

    from aknet_cli.checkpoints.format import save_checkpoint
    from aknet_cli.models.aknet import build_aknet

    torch.manual_seed(0)
    model = build_aknet("tsm_resnet18", split="res3", alpha=0.2, num_classes=6, num_segments=4)
    config = {"backbone": "tsm_resnet18", "num_classes": 6, "num_segments": 4, "backbone_kwargs": {},
              "aknet": asdict(model.config)}
    if classes:
        config["classes"] = classes
    save_checkpoint(path, kind="aknet", config=config, state_dict=model.state_dict())
    return path


def test_cli_checkpoint_mp4_and_class_names(tmp_path):
    import av

    clip, _ = _square_clip(144, 256, 10, side=30)
    video = _write_mp4(tmp_path / "v.mp4", clip)
    names = ["pushing", "pulling", "lifting", "dropping", "spinning", "waving"]
    ckpt = _aknet_checkpoint(tmp_path / "ak.pt", classes=names)
    out = tmp_path / "vis"
    res = _invoke("--video", str(video), "-c", str(ckpt), "--resize", "128", "--crop", "112", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["trained"] is True and data["alpha"] == pytest.approx(0.2)
    assert len(data["top5"]) == 5 and all(p["name"] == names[p["index"]] for p in data["top5"])
    with av.open(str(out / "keypoints.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 4
    # A contradicting --frames is one line.
    assert_one_line_error(_invoke("--video", str(video), "-c", str(ckpt), "--frames", "8"), "--frames 8 contradicts")


@pytest.mark.parametrize("alpha", [0.05, 0.5, 1.0, 0.2], ids=["smaller", "larger", "every point", "as trained"])
def test_cli_checkpoint_at_another_alpha_picks_from_the_same_scores_and_says_so(tmp_path, alpha):
    """The weights do not depend on α (it only sets N): at another α the trained model picks
    round(α·T·h·w) points from the same heatmap, so its picks at α = 0.2 (its own) are among
    them whenever α is larger, and the output says that α is not the one it was trained with."""
    video = _write_mp4(tmp_path / "v.mp4", _square_clip(144, 256, 10, side=30)[0])
    ckpt = _aknet_checkpoint(tmp_path / "ak.pt")
    stamp = ckpt.read_bytes()
    common = ("--video", str(video), "-c", str(ckpt), "--resize", "128", "--crop", "112", "--json")
    trained = json.loads(_invoke(*common, "--out", str(tmp_path / "a")).stdout)
    res = _invoke(*common, "--out", str(tmp_path / "b"), "--alpha", str(alpha))
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    cells = 4 * 14 * 14  # T × the res3 map of a 112² crop
    assert len(data["keypoints"]) == round(alpha * cells) and data["alpha"] == alpha
    assert data["trained_alpha"] == pytest.approx(0.2) and trained["alpha"] == pytest.approx(0.2)
    picked = lambda d: {(k["t"], k["y"], k["x"]) for k in d["keypoints"]}  # noqa: E731
    smaller, larger = sorted((picked(trained), picked(data)), key=len)
    assert smaller <= larger
    assert data["top5"] != trained["top5"] or alpha == 0.2  # another α, another prediction
    said = "differs from the α = 0.2" in res.stderr
    assert said is (alpha != 0.2)
    assert ckpt.read_bytes() == stamp


def test_cli_stage1_checkpoint_is_explained(tmp_path):
    from aknet_cli import create_backbone
    from aknet_cli.checkpoints.format import save_checkpoint

    net = create_backbone("tsm_resnet18", num_classes=4, num_segments=4)
    ckpt = tmp_path / "stage1.pt"
    save_checkpoint(ckpt, kind="backbone", config={"backbone": "tsm_resnet18", "num_classes": 4, "num_segments": 4},
                    state_dict=net.state_dict())
    video = _write_mp4(tmp_path / "v.mp4", _square_clip(64, 64, 4, 16)[0])
    assert_one_line_error(_invoke("--video", str(video), "-c", str(ckpt)), "stage-1 backbone checkpoint", "aknet convert-1d")


def test_cli_bad_inputs_are_one_line(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    good = _write_mp4(tmp_path / "good.mp4", _square_clip(96, 128, 40, 20)[0])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    folder = tmp_path / "nothing"
    folder.mkdir()
    for path in (text, empty, cut, folder, tmp_path / "missing.mp4"):
        assert_one_line_error(_invoke("--video", str(path), "-b", "tsm_resnet18"), path.name)


@pytest.mark.parametrize("backend", video_backends())
def test_variable_frame_rate_video_is_read_by_frame_order(tmp_path, backend):
    import av
    from fractions import Fraction

    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += (33, 100, 17, 250)[i % 4]  # irregular gaps between frames
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    src = video_source.open_source(path, backend=backend)
    assert src.num_frames == 12
    got = src.read([0, 5, 11], backend).float().mean(dim=(1, 2, 3))
    assert torch.allclose(got, torch.tensor([0.0, 100.0, 220.0]), atol=3)


def test_label_files_in_the_three_formats(tmp_path):
    (tmp_path / "a.csv").write_text("Pushing something\nPulling something\n\n")
    (tmp_path / "b.json").write_text(json.dumps(["x", "y", "z"]))
    (tmp_path / "c.json").write_text(json.dumps({"Tearing [something]": "2", "Holding [something]": "0", "Moving [something]": "1"}))
    assert overlay.load_labels(tmp_path / "a.csv") == ["Pushing something", "Pulling something"]
    assert overlay.load_labels(tmp_path / "b.json") == ["x", "y", "z"]
    assert overlay.load_labels(tmp_path / "c.json") == ["Holding [something]", "Moving [something]", "Tearing [something]"]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json"):
        overlay.load_labels(tmp_path / "bad.json")

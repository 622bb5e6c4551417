"""``aknet eval`` on checkpoints in the official TSM and TDN layouts, saved as their ``main.py``
saves them, with no option but ``--views``: the scores must be those of the official test
pipeline, which this test rebuilds on its own from the official formulas (worked out by hand
below: frame indices, crop offsets, view averaging) and the network the checkpoint holds.

The official scripts themselves are not run here (their code is not installed); what is checked
is that ``eval`` feeds the network the frames and crops the official code would and averages as
it does. Frames are 256 pixels on the short side, so that no resampling enters.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from aknet_backbones.tsm_layouts import tsm_name_in_file
from aknet_cli import create_backbone
from aknet_cli.cli.main import app
from aknet_cli.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from cli_helpers import assert_one_line_error
from test_checkpoints_tdn_layout import _randomise, official_state_dict

runner = CliRunner()
T = 2
NAMES = ["Moving something up", "Pushing something from left to right", "Pushing something from right to left"]
FRAMES = {"4": 9, "5": 6, "6": 3}  # clip id -> frames: > T + 4, = T + 4, < T
HEIGHT, WIDTH = 256, 302


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A Sth-Sth V1 release (classes sorted = file order here) whose val clips have 9, 6 and 3
    random-textured 256 x 302 JPEG frames, prepared by ``aknet prepare sthv1``."""
    root = tmp_path_factory.mktemp("sthv1")
    (root / "frames").mkdir()
    (root / "something-something-v1-labels.csv").write_text("".join(n + "\n" for n in NAMES))
    (root / "something-something-v1-train.csv").write_text(f"1;{NAMES[0]}\n2;{NAMES[1]}\n3;{NAMES[2]}\n")
    (root / "something-something-v1-validation.csv").write_text(
        "".join(f"{vid};{NAMES[i]}\n" for i, vid in enumerate(FRAMES)))
    rng = np.random.default_rng(0)
    for vid, count in {"1": 4, "2": 4, "3": 4, **FRAMES}.items():
        folder = root / "frames" / vid
        folder.mkdir()
        for i in range(count):
            pixels = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 2, 3), dtype=np.uint8)
            image = Image.fromarray(pixels).resize((WIDTH, HEIGHT), Image.NEAREST)  # 8x2 blocks: texture JPEG keeps
            image.save(folder / f"{i + 1:05d}.jpg", quality=95)
    out = tmp_path_factory.mktemp("prepared") / "data"
    done = runner.invoke(app, ["prepare", "sthv1", "--root", str(root), "--frames-dir", "frames", "--out", str(out)])
    assert done.exit_code == 0, done.output
    return out


def _frame(release: Path, vid: str, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) as the official code loads it: PIL, RGB."""
    from aknet_cli.data import load_manifest

    path = load_manifest(release).media_root / vid / f"{index + 1:05d}.jpg"
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _clip(release: Path, vid: str, windows: list[list[int]], top: int, left: int, size: int) -> torch.Tensor:
    """``(T, L, 3, size, size)`` normalised, the crop at ``(top, left)`` of each frame."""
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    frames = [[_frame(release, vid, i)[top:top + size, left:left + size] for i in w] for w in windows]
    x = torch.from_numpy(np.array(frames)).permute(0, 1, 4, 2, 3).float() / 255
    return (x - mean) / std


def _save_as_main_py(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """What TSM's and TDN's ``main.py`` write: ``<store name>/ckpt.best.pth.tar``."""
    path.parent.mkdir(parents=True)
    torch.save({"epoch": 45, "arch": "resnet18", "state_dict": state, "best_prec1": 50.0}, path)
    return path


def _eval(release: Path, ckpt: Path, views: str, out: Path, *extra: str) -> tuple[dict, pd.DataFrame]:
    result = runner.invoke(app, ["eval", str(ckpt), "--data", str(release), "--views", views, "--out", str(out),
                                 "--json", "--workers", "0", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), pd.read_csv(out / "predictions.csv")


def _check(table: pd.DataFrame, expected: dict[str, torch.Tensor]) -> None:
    """Clip for clip: the same top-1 and the same top-3 scores (3 classes), within 1e-4."""
    for _, row in table.iterrows():
        want = expected[str(row["id"])]
        assert row["top1"] == int(want.argmax())
        got = [row[f"top{k}_score"] for k in (1, 2, 3)]
        assert got == pytest.approx(sorted(want.tolist(), reverse=True), abs=1e-4)


# ---------------------------------------------------------------------------------------- TDN
# TDN's _get_test_indices, T = 2: n = 9 > T + 4: tick = (9 - 4)/2 = 2.5, starts int(1.25) = 1 and
# int(3.75) = 3; n = 6 and n = 3 (<= T + 4): every window starts at 0; TSNDataSet.get reads 5
# frames from the start, the index stopping at the last frame.
TDN_WINDOWS = {"4": [[1, 2, 3, 4, 5], [3, 4, 5, 6, 7]], "5": [[0, 1, 2, 3, 4]] * 2, "6": [[0, 1, 2, 2, 2]] * 2}


@pytest.fixture(scope="module")
def tdn(tmp_path_factory):
    torch.manual_seed(0)
    net = _randomise(create_backbone("tdn_resnet18", num_classes=3, num_segments=T), seed=4)
    store = tmp_path_factory.mktemp("tdn") / "TDN__something_RGB_resnet18_avg_segment2_e60"
    return net, _save_as_main_py(store / "ckpt.best.pth.tar", official_state_dict(net))


def test_official_tdn_1x1_and_1x3_are_scored_as_tdn_s_scripts(release, tdn, tmp_path):
    net, ckpt = tdn
    # 1x1 (test_models_center_crop.py): GroupScale(256) leaves a 256 x 302 frame as it is;
    # GroupCenterCrop(224): top round(32/2) = 16, left round(78/2) = 39; pkl_to_results: softmax.
    # 1x3 (test_models_three_crops.py --full_res): GroupFullResSample(256): s = (302 - 256)//4 = 11,
    # left 0, 44, 22 at top 0; pkl_to_results adds the crops' softmax scores, / 3.
    with torch.no_grad():
        one = {vid: net(_clip(release, vid, w, 16, 39, 224)[None]).softmax(1)[0] for vid, w in TDN_WINDOWS.items()}
        three = {vid: torch.stack([net(_clip(release, vid, w, 0, left, 256)[None]).softmax(1)[0]
                                   for left in (0, 44, 22)]).mean(0) for vid, w in TDN_WINDOWS.items()}
    report, table = _eval(release, ckpt, "1x1", tmp_path / "1x1")
    assert report["protocol"] == "tdn" and report["checkpoint_format"] == "an official TDN checkpoint"
    assert "TSNDataSet._get_test_indices" in report["protocol_rules"]["rules"]["test sampling"]
    assert "segment2" in " ".join(report["checkpoint_notes"])  # T read from the store name, as main.py writes it
    _check(table, one)
    report, table = _eval(release, ckpt, "1x3", tmp_path / "1x3")
    assert report["protocol"] == "tdn" and report["crop"] == 256
    _check(table, three)


def test_a_protocol_that_does_not_define_the_views_or_the_model_is_refused_before_any_work(release, tdn, tmp_path):
    _, ckpt = tdn
    for extra, fragments in ((["--protocol", "mmaction2"], ("mmaction2 has no TDN", "--protocol tdn")),
                             (["--views", "3x1"], ("1 or 2 clips", "--protocol aknet")),
                             (["--protocol", "i3d"], ("--protocol 'i3d'", "tsm, tdn, mmaction2, aknet"))):
        result = runner.invoke(app, ["eval", str(ckpt), "--data", str(release), "--out", str(tmp_path / "x"),
                                     "--workers", "0", *extra])
        assert_one_line_error(result, *fragments)
        assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------- TSM
# TSM's _get_test_indices with twice_sample, T = 2, tick = n/2: centres int(tick/2 + tick x),
# then starts int(tick x). n = 9: 2, 6 | 0, 4; n = 6: 1, 4 | 0, 3; n = 3: 0, 2 | 0, 1.
TSM_CLIPS = {"4": ([2, 6], [0, 4]), "5": ([1, 4], [0, 3]), "6": ([0, 2], [0, 1])}


@pytest.fixture(scope="module")
def tsm(tmp_path_factory):
    torch.manual_seed(1)
    net = create_backbone("tsm_resnet18", num_classes=3, num_segments=T)
    net = _randomise(net, seed=5)
    state = {f"module.{tsm_name_in_file(k)}": v for k, v in net.state_dict().items()}
    store = tmp_path_factory.mktemp("tsm") / "TSM_something_RGB_resnet18_shift8_blockres_avg_segment2_e45"
    return net, _save_as_main_py(store / "ckpt.best.pth.tar", state)


def test_official_tsm_1x1_and_2x3_are_scored_as_test_models_py(release, tsm, tmp_path):
    net, ckpt = tsm
    # 2x3 (--twice_sample --test_crops 3 --full_res): 2 clips x GroupFullResSample's left 0, 44, 22;
    # eval_video averages the 6 views' logits (no --softmax).
    with torch.no_grad():
        def logits(vid, frames, top, left, size):
            return net(_clip(release, vid, [[i] for i in frames], top, left, size)[:, 0][None])[0]

        one = {vid: logits(vid, clips[0], 16, 39, 224) for vid, clips in TSM_CLIPS.items()}
        six = {vid: torch.stack([logits(vid, frames, 0, left, 256) for frames in clips
                                 for left in (0, 44, 22)]).mean(0) for vid, clips in TSM_CLIPS.items()}
    report, table = _eval(release, ckpt, "1x1", tmp_path / "1x1")
    assert report["protocol"] == "tsm" and report["scores"] == "mean logit over the views"
    _check(table, one)
    report, table = _eval(release, ckpt, "2x3", tmp_path / "2x3")
    assert report["protocol"] == "tsm" and report["num_views"] == 6
    _check(table, six)
    assert "twice_sample" in report["protocol_rules"]["rules"]["two clips"]


def test_mmaction2_tsm_2x3_follows_its_test_pipeline(release, tsm, tmp_path):
    from aknet_backbones.tsm_layouts import mmaction2_name_in_file

    net, _ = tsm
    state = {mmaction2_name_in_file(k): v for k, v in net.state_dict().items()}
    ckpt = tmp_path / "tsm_imagenet-pretrained-r18_8xb16-1x1x2-50e_sthv1-rgb.pth"
    torch.save({"state_dict": state, "meta": {"cfg": "model = dict(backbone=dict(num_segments=2))"}}, ckpt)
    # SampleFrames(clip_len=1, num_clips=2, twice_sample=True): the TSM clips above; Resize(-1, 256):
    # int(302 * 1.0 + 0.5) = 302, unchanged; ThreeCrop(256): s' = (302 - 256)//2 = 23, left 0, 46, 23;
    # average_clips='prob': the mean of the 6 views' softmax.
    with torch.no_grad():
        six = {vid: torch.stack([net(_clip(release, vid, [[i] for i in frames], 0, left, 256)[:, 0][None])[0].softmax(0)
                                 for frames in clips for left in (0, 46, 23)]).mean(0)
               for vid, clips in TSM_CLIPS.items()}
    report, table = _eval(release, ckpt, "2x3", tmp_path / "2x3", "--label-order", "sorted")
    assert report["protocol"] == "mmaction2" and report["scores"] == "mean softmax probability over the views"
    assert "ThreeCrop" in report["protocol_rules"]["rules"]["three crops"]
    _check(table, six)


def _aknet_checkpoint(path: Path, backbone: str, net, data: dict) -> Path:
    from aknet_cli.checkpoints.format import save_checkpoint

    save_checkpoint(path, kind="backbone", state_dict=net.state_dict(),
                    config={"backbone": backbone, "num_classes": 3, "num_segments": T, "backbone_kwargs": {},
                            "classes": NAMES, "data": data})
    return path


def test_an_aknet_checkpoint_is_scored_under_the_protocol_it_recorded_else_its_family(release, tdn, tmp_path):
    net, _ = tdn
    small = {"resize": 32, "crop": 32, "resize_mode": "short"}
    recorded = _aknet_checkpoint(tmp_path / "a.pt", "tdn_resnet18", net, {**small, "protocol": "aknet"})
    older = _aknet_checkpoint(tmp_path / "b.pt", "tdn_resnet18", net, small)  # written before data.protocol
    assert _eval(release, recorded, "1x1", tmp_path / "ea")[0]["protocol"] == "aknet"
    assert _eval(release, older, "1x1", tmp_path / "eb")[0]["protocol"] == "tdn"
    assert _eval(release, older, "1x1", tmp_path / "ec", "--protocol", "tsm")[0]["protocol"] == "tsm"
    bad = _aknet_checkpoint(tmp_path / "c.pt", "tdn_resnet18", net, {**small, "protocol": "slowfast"})
    result = runner.invoke(app, ["eval", str(bad), "--data", str(release), "--out", str(tmp_path / "ed")])
    assert_one_line_error(result, "config.data.protocol", "slowfast", "tsm, tdn, mmaction2, aknet")


def test_a_training_protocol_is_checked_against_the_backbone_before_training():
    from aknet_cli.engine.protocol import check_training_protocol
    from aknet_cli.exceptions import ConfigError

    check_training_protocol("auto", "tdn_resnet18", num_segments=8)
    check_training_protocol("aknet", "tdn_resnet18", num_segments=8)  # the uniform sampler stays an option
    with pytest.raises(ConfigError, match="use data.protocol = tdn"):
        check_training_protocol("mmaction2", "tdn_resnet18", num_segments=8)
    with pytest.raises(ConfigError, match="data.protocol 'x'"):
        check_training_protocol("x", "resnet18", num_segments=8)

"""`aknet export`: the exported model gives eager's logits and keypoints at several batch sizes."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import assert_one_line_error
from typer.testing import CliRunner

from aknet_cli import build_aknet, create_backbone
from aknet_cli.cli.main import app
from aknet_cli.checkpoints.format import save_checkpoint
from aknet_cli.convert.export import example_clip, export_model, onnx_outputs, onnxruntime_latency

runner = CliRunner()
SIZE = 64


def _aknet(split="res3", **kw):
    torch.manual_seed(0)
    return build_aknet("tsm_resnet18", split=split, alpha=0.3, num_classes=7, num_segments=4, **kw).eval()


def _eager(model, clip):
    with torch.no_grad():
        return model(clip, return_keypoints=True) if hasattr(model, "selector") else (model(clip),)


def _assert_same(model, got, clip):
    expected = _eager(model, clip)
    torch.testing.assert_close(torch.as_tensor(got[0]), expected[0], rtol=1e-4, atol=1e-4)
    if len(expected) > 1:
        # The ranking (x + y + τt) has many ties on a 4×8×8 map: equality checks the stable sort too.
        assert torch.equal(torch.as_tensor(got[1]), expected[1])


def test_torch_export_dynamic_batch_matches_eager_at_two_batch_sizes(tmp_path):
    model = _aknet()
    report = export_model(model, tmp_path / "m.pt2", format="torch-export", batch="dynamic", size=SIZE)
    assert report.keypoints_equal and report.max_abs_logit_diff < 1e-4
    assert report.mode == "batched"  # the whole batch at once, not the per-clip fallback
    program = torch.export.load(tmp_path / "m.pt2").module()
    for batch in (1, 3):
        clip = example_clip(model, batch=batch, size=SIZE, seed=batch)
        with torch.no_grad():
            got = program(clip)
        _assert_same(model, got, clip)


def test_onnx_backbone_dynamic_batch_matches_eager_at_two_batch_sizes(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_backbone("tsm_resnet18", num_classes=7, num_segments=4).eval()
    report = export_model(model, tmp_path / "b.onnx", format="onnx", batch="dynamic", size=SIZE)
    assert report.mode == "batched" and report.keypoints_equal is None
    for batch in (1, 3):
        clip = example_clip(model, batch=batch, size=SIZE, seed=batch)
        _assert_same(model, onnx_outputs(tmp_path / "b.onnx", clip), clip)
    times = onnxruntime_latency(tmp_path / "b.onnx", clip, runs=2, warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)


def test_onnx_aknet_fixed_batch_matches_eager(tmp_path):
    pytest.importorskip("onnxruntime")
    model = _aknet(split="res2", transform_rank=8)
    export_model(model, tmp_path / "a.onnx", format="onnx", batch=2, size=SIZE)
    for seed in (1, 2):
        clip = example_clip(model, batch=2, size=SIZE, seed=seed)
        _assert_same(model, onnx_outputs(tmp_path / "a.onnx", clip), clip)


def test_onnx_aknet_dynamic_batch(tmp_path):
    pytest.importorskip("onnxruntime")
    model = _aknet()
    export_model(model, tmp_path / "d.onnx", format="onnx", batch="dynamic", size=SIZE)
    for batch in (1, 3):
        clip = example_clip(model, batch=batch, size=SIZE, seed=batch)
        _assert_same(model, onnx_outputs(tmp_path / "d.onnx", clip), clip)


@pytest.fixture()
def aknet_checkpoint(tmp_path):
    model = _aknet(split="res4", transform_rank=4)
    path = tmp_path / "aknet.pt"
    save_checkpoint(path, kind="aknet", state_dict=model.state_dict(), config={
        "backbone": "tsm_resnet18", "num_classes": 7, "num_segments": 4,
        "aknet": {**model.config.__dict__},
    })
    return path, model


def test_cli_export_writes_the_file_and_reports_the_check(tmp_path, aknet_checkpoint):
    path, model = aknet_checkpoint
    out = tmp_path / "sub" / "aknet.pt2"
    result = runner.invoke(app, ["export", str(path), "--format", "torch-export", "--out", str(out),
                                 "--size", str(SIZE), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["keypoints_equal"] is True and report["outputs"] == ["logits", "keypoints"]
    assert out.exists() and not list(out.parent.glob(".aknet.pt2.*")), "no temporary file left behind"
    clip = example_clip(model, batch=1, size=SIZE, seed=5)
    with torch.no_grad():
        got = torch.export.load(out).module()(clip)
    _assert_same(model, got, clip)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--format", "tflite"], "--format must be one of onnx, torch-export"),
        (["--format", "onnx", "--batch", "zero"], "--batch must be a positive integer or 'dynamic'"),
        (["--format", "onnx", "--batch", "0"], "--batch must be a positive integer or 'dynamic'"),
        (["--format", "onnx", "--size", "8"], "--size must be at least 32"),
    ],
)
def test_cli_export_user_mistakes_are_one_line(tmp_path, aknet_checkpoint, args, fragment):
    path, _ = aknet_checkpoint
    result = runner.invoke(app, ["export", str(path), "--out", str(tmp_path / "x.onnx"), *args])
    assert_one_line_error(result, fragment)


def test_cli_export_refuses_to_overwrite_and_missing_checkpoint(tmp_path, aknet_checkpoint):
    path, _ = aknet_checkpoint
    existing = tmp_path / "x.pt2"
    existing.write_text("keep")
    result = runner.invoke(app, ["export", str(path), "--format", "torch-export", "--out", str(existing)])
    assert_one_line_error(result, "already exists")
    assert existing.read_text() == "keep"
    result = runner.invoke(app, ["export", str(tmp_path / "nope.pt"), "--format", "onnx", "--out", str(existing)])
    assert_one_line_error(result, "nope.pt")

"""The decoding benchmarks: the CUDA check skips cleanly without a GPU, and the loading
benchmark's exactness check catches a backend that returns the wrong frames."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_fixtures import make_sthv2, video_backends

from aknet_cli.data.formats import read_sthv2
from aknet_cli.data.prepare import prepare_release
from aknet_cli.data.video_io import backend_installed

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cuda_decode_check_skips_cleanly_without_a_gpu(tmp_path):
    out = tmp_path / "cuda.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_cuda_decode.py"), "--json", str(out)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("skipped: ") and len(result.stdout.strip().splitlines()) == 1
    assert json.loads(out.read_text())["skipped"] in result.stdout
    if backend_installed("torchcodec"):
        assert "no CUDA device" in result.stdout


@pytest.mark.skipif(not backend_installed("torchcodec"), reason="torchcodec or FFmpeg's shared libraries missing")
def test_cuda_decode_comparison_on_the_cpu_finds_identical_frames(tmp_path):
    bench = _load("bench_cuda_decode")
    path = tmp_path / "h264.mp4"
    bench.write_clip(path, "libx264", 64, 48)
    result = bench.compare(path, device="cpu", repeats=2)
    assert result["max_abs_diff"] == 0 and result["cpu_fallback"] is False
    assert result["cpu_ms"] > 0 and result["device_ms"] > 0


@pytest.mark.parametrize("backend", video_backends())
def test_loading_benchmark_exactness_counts_wrong_frames(tmp_path, backend, monkeypatch):
    bench = _load("bench_loading")
    root = make_sthv2(tmp_path / "raw", frames=12)
    prepare_release(read_sthv2(root), out=tmp_path / "ds", backend=backend)
    exact = bench.exactness(tmp_path / "ds", backend)
    # 3 clips (train 10 and 11, val 12), each with 8 test centres and 8 training draws
    assert exact == {"frames": 3 * 2 * bench.SEGMENTS, "wrong": 0, "failed": 0}

    real = bench.read_video

    def off_by_one(path, indices, backend):  # the decord #91 kind of bug: the neighbouring frame
        return real(path, [min(i + 1, 11) for i in indices], backend=backend)

    monkeypatch.setattr(bench, "read_video", off_by_one)
    assert bench.exactness(tmp_path / "ds", backend)["wrong"] > 0

"""analysis.cuda_decoding (benchmarks/bench_cuda_decode.py's comparison): run with the CPU as the
"device", it finds the frames identical."""

import pytest

from aknet_cli.analysis import cuda_decoding
from aknet_cli.data.video_io import backend_installed


@pytest.mark.skipif(not backend_installed("torchcodec"), reason="torchcodec or FFmpeg's shared libraries missing")
def test_cuda_decode_comparison_on_the_cpu_finds_identical_frames(tmp_path):
    path = tmp_path / "h264.mp4"
    cuda_decoding.write_clip(path, "libx264", 64, 48)
    result = cuda_decoding.compare(path, device="cpu", repeats=2)
    assert result["max_abs_diff"] == 0 and result["cpu_fallback"] is False
    assert result["cpu_ms"] > 0 and result["device_ms"] > 0

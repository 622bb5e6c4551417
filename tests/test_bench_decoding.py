"""benchmarks/bench_cuda_decode.py's command line: it skips cleanly without a GPU. (Its
comparison is tested in test_analysis_cuda_decoding.py, the loading benchmark's exactness
check in test_data_decode_exactness.py.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

from aknet_cli.data.video_io import backend_installed

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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

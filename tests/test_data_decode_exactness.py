"""data.decode_exactness (benchmarks/bench_loading.py's exactness check): it catches a backend that
returns the wrong frames."""

import pytest
from data_fixtures import make_sthv2, video_backends

from aknet_cli.data import decode_exactness
from aknet_cli.data.formats import read_sthv2
from aknet_cli.data.prepare import prepare_release


@pytest.mark.parametrize("backend", video_backends())
def test_loading_benchmark_exactness_counts_wrong_frames(tmp_path, backend, monkeypatch):
    root = make_sthv2(tmp_path / "raw", frames=12)
    prepare_release(read_sthv2(root), out=tmp_path / "ds", backend=backend)
    exact = decode_exactness.exactness(tmp_path / "ds", backend)
    # 3 clips (train 10 and 11, val 12), each with 8 test centres and 8 training draws
    assert exact == {"frames": 3 * 2 * decode_exactness.SEGMENTS, "wrong": 0, "failed": 0}

    real = decode_exactness.read_video

    def off_by_one(path, indices, backend):  # the decord #91 kind of bug: the neighbouring frame
        return real(path, [min(i + 1, 11) for i in indices], backend=backend)

    monkeypatch.setattr(decode_exactness, "read_video", off_by_one)
    assert decode_exactness.exactness(tmp_path / "ds", backend)["wrong"] > 0
